"""ISIC 2017 and MMWHS CT read from tiny copies of the releases' own layouts."""

from __future__ import annotations

from importlib import resources

import numpy as np
import pytest
import torch
from PIL import Image

from medcl.config import load_config
from medcl.data import MMWHS_CLASSES, load_isic2017, load_mmwhs
from medcl.data._mmwhs import roi_box
from medcl.data._readers import robust_minmax
from medcl.errors import MedclError
from medcl.models import standardize_images
from medcl.stages._common import build_encoder, load_data

nib = pytest.importorskip("nibabel")

# ------------------------------------------------------------------------------ ISIC 2017

TRAIN = ["ISIC_0000000", "ISIC_0000001", "ISIC_0000002", "ISIC_0000003"]
VAL = ["ISIC_0001000", "ISIC_0001001"]
TEST = ["ISIC_0002000", "ISIC_0002001", "ISIC_0002002"]
RECT = (slice(4, 10), slice(3, 12))  # the lesion in every 16 x 16 mask


def _jpeg(path, colour, size=(16, 16)):
    """An RGB JPEG of mean ``colour`` with some texture (so every channel has a spread)."""
    texture = np.random.default_rng(sum(colour)).integers(-20, 21, size=(*size, 3))
    pixels = (np.array(colour) + texture - texture.mean(axis=(0, 1))).clip(0, 255)
    Image.fromarray(pixels.round().astype(np.uint8)).save(path, quality=95)


def _isic_split(root, data_name, mask_name, ids):
    data, masks = root / data_name, root / mask_name
    data.mkdir()
    masks.mkdir()
    for k, image_id in enumerate(ids):
        _jpeg(data / f"{image_id}.jpg", (40 * k + 20, 100, 200))
        # decoys the real folders hold: superpixel maps (PNG) and a metadata table
        Image.fromarray(np.full((16, 16, 3), 7, np.uint8)).save(
            data / f"{image_id}_superpixels.png"
        )
        mask = np.zeros((16, 16), np.uint8)
        mask[RECT] = 255
        Image.fromarray(mask).save(masks / f"{image_id}_segmentation.png")
    (data / f"{data_name}_metadata.csv").write_text("image_id,age_approximate,sex\n")


def make_isic(root, test_suffix="_v2"):
    root.mkdir()
    _isic_split(root, "ISIC-2017_Training_Data", "ISIC-2017_Training_Part1_GroundTruth", TRAIN)
    _isic_split(root, "ISIC-2017_Validation_Data", "ISIC-2017_Validation_Part1_GroundTruth", VAL)
    _isic_split(
        root,
        f"ISIC-2017_Test{test_suffix}_Data",
        f"ISIC-2017_Test{test_suffix}_Part1_GroundTruth",
        TEST,
    )
    return root


@pytest.fixture
def isic(tmp_path):
    return make_isic(tmp_path / "ISIC2017")


@pytest.fixture
def extras(tmp_path):
    """ISIC 2018 holds a train, a val and a test image of 2017 and one new image; 2020 holds a
    new image, the 2018 new image again, and a superpixel decoy."""
    y2018, y2020 = tmp_path / "ISIC2018_Task1-2_Training_Input", tmp_path / "ISIC_2020_Train"
    y2018.mkdir()
    y2020.mkdir()
    for image_id in [TRAIN[1], VAL[0], TEST[2], "ISIC_0010000"]:
        _jpeg(y2018 / f"{image_id}.jpg", (90, 90, 90), size=(20, 24))
    (y2018 / "LICENSE.txt").write_text("CC-BY-NC\n")
    for image_id in ["ISIC_0010000", "ISIC_2637011"]:
        _jpeg(y2020 / f"{image_id}.jpg", (60, 60, 60), size=(24, 20))
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(y2020 / "ISIC_2637011_superpixels.png")
    return [y2018, y2020]


@pytest.mark.parametrize("test_suffix", ["_v2", ""])
def test_isic_official_split_from_the_folders(tmp_path, test_suffix):
    ds = load_isic2017(make_isic(tmp_path / "r", test_suffix), image_size=(16, 16))
    for split, ids in (("train", TRAIN), ("val", VAL), ("test", TEST)):
        assert list(ds.ids[ds.indices(split)]) == ids
    assert len(ds) == 9  # no superpixel map, no CSV
    assert not any("superpixels" in i for i in ds.ids)
    assert ds.has_mask.all() and ds.class_names == ["background", "lesion"]
    assert ds.images.shape == (9, 3, 16, 16) and ds.is_volumetric is False


def test_isic_masks_0_255_become_0_1_and_images_are_rgb_in_unit_range(isic):
    ds = load_isic2017(isic, image_size=(16, 16))
    expected = np.zeros((16, 16), np.int64)
    expected[RECT] = 1
    for mask in ds.masks:
        np.testing.assert_array_equal(mask, expected)
    assert 0.0 <= ds.images.min() and ds.images.max() <= 1.0
    # the second training image was saved as RGB (60, 100, 200); JPEG is close to lossless here
    np.testing.assert_allclose(
        ds.images[1].mean(axis=(1, 2)), np.array([60, 100, 200]) / 255, atol=0.02
    )


def test_isic_resizes_to_the_configured_size(isic):
    ds = load_isic2017(isic, image_size=(8, 12))
    assert ds.images.shape == (9, 3, 8, 12) and ds.masks.shape == (9, 8, 12)
    assert set(np.unique(ds.masks)) == {0, 1}


def test_isic_source_store_keeps_resized_photographs_in_8_bits(isic, tmp_path):
    exact = load_isic2017(isic, image_size=(8, 12))
    source = load_isic2017(isic, image_size=(8, 12), store="source", cache_dir=tmp_path / "c")
    assert exact.images.stored_dtype == "float32" and source.images.stored_dtype == "uint8"
    assert np.abs(source.images[:] - exact.images[:]).max() <= 0.5 / 255 + 1e-7
    assert list(source.split) == list(exact.split) and np.array_equal(source.masks, exact.masks)


def test_isic_extra_images_join_train_unlabelled_without_duplicates_or_leaks(isic, extras):
    ds = load_isic2017(isic, image_size=(16, 16), extra_images=extras)
    train = ds.indices("train")
    assert list(ds.ids[train]) == [*TRAIN, "ISIC_0010000", "ISIC_2637011"]
    assert list(ds.has_mask[train]) == [True] * 4 + [False] * 2
    assert list(ds.ids[ds.indices("val")]) == VAL and list(ds.ids[ds.indices("test")]) == TEST
    assert len(set(ds.ids)) == len(ds)
    assert (ds.masks[~ds.has_mask] == 0).all()


def test_isic_errors_name_the_path_and_what_is_expected(tmp_path, isic, extras):
    with pytest.raises(MedclError, match=r"'.*nowhere' does not exist; set data.root"):
        load_isic2017(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(
        MedclError, match=r"'.*empty' has no 'ISIC-2017_Training_Data' folder.*ISIC-2017_Test_v2"
    ):
        load_isic2017(tmp_path / "empty")
    with pytest.raises(MedclError, match=r"data.extra_images folder '.*missing' does not exist"):
        load_isic2017(isic, extra_images=[tmp_path / "missing"])
    (isic / "ISIC-2017_Validation_Part1_GroundTruth" / f"{VAL[1]}_segmentation.png").unlink()
    with pytest.raises(MedclError, match=rf"'.*{VAL[1]}.jpg' has no mask"):
        load_isic2017(isic)
    for p in (isic / "ISIC-2017_Validation_Part1_GroundTruth").iterdir():
        p.unlink()
    (isic / "ISIC-2017_Validation_Part1_GroundTruth").rmdir()
    with pytest.raises(MedclError, match="has 'ISIC-2017_Validation_Data' but not its masks"):
        load_isic2017(isic)


def test_isic_through_the_config_with_zscore(isic, extras):
    cfg = load_config(
        _packaged("isic2017"),
        [
            f"data.root={isic}",
            f"data.extra_images=[{extras[0]},{extras[1]}]",
            "data.image_size=[16,16]",
            "data.normalize=zscore",
        ],
    )
    ds = load_data(cfg)
    assert [len(ds.indices(s)) for s in ("train", "val", "test")] == [6, 2, 3]
    assert ds.images.min() >= 0 and ds.images.max() <= 1  # augmentations work on [0, 1]
    encoder = build_encoder(cfg, ds.channels)
    x = torch.as_tensor(ds.images[:4])
    assert encoder.standardize
    # the encoder sees each image standardised per channel: shifting and scaling an image
    # does not change its features
    torch.testing.assert_close(encoder(x), encoder(0.5 * x + 0.2), atol=1e-4, rtol=1e-4)
    z = standardize_images(x)
    torch.testing.assert_close(z.mean(dim=(2, 3)), torch.zeros(4, 3), atol=1e-5, rtol=0)
    torch.testing.assert_close(
        z.std(dim=(2, 3), unbiased=False), torch.ones(4, 3), atol=1e-3, rtol=0
    )


# ------------------------------------------------------------------------------ MMWHS CT

VALUES = list(MMWHS_CLASSES)  # 205, 420, ..., 850
SHAPE = (24, 24, 10)  # stored (x, y, z); slices along z


def _heart(v: int = 0):
    """Labels with every structure inside x 8..13, y 6..15, z 3..5; HU -1000 outside the box
    x 4..17, y 4..17, z 1..7 (the ROI for margin 2) and 0..400 inside it."""
    rng = np.random.default_rng(v)
    lab = np.zeros(SHAPE, np.int16)
    for k, value in enumerate(VALUES):
        lab[8:14, 6 + k : 7 + k, 3:6] = value
    lab[8:14, 13:16, 3:6] = VALUES[v % 7]
    img = np.full(SHAPE, -1000, np.int16)
    img[4:18, 4:18, 1:8] = rng.integers(0, 400, size=(14, 14, 7))
    return img, lab


def make_mmwhs(root, n=4):
    root.mkdir()
    for v in range(n):
        img, lab = _heart(v)
        nib.save(nib.Nifti1Image(img, np.eye(4)), root / f"ct_train_10{v + 1:02d}_image.nii.gz")
        nib.save(nib.Nifti1Image(lab, np.eye(4)), root / f"ct_train_10{v + 1:02d}_label.nii.gz")
    (root / "readme.txt").write_text("MM-WHS 2017\n")
    return root


@pytest.fixture
def mmwhs(tmp_path):
    return make_mmwhs(tmp_path / "ct_train")


def test_roi_box_on_a_hand_built_volume():
    lab = np.zeros((10, 24, 24), int)  # (S, H, W)
    lab[3:6, 8:14, 6:16] = 1
    # margin 2: S 1..7, H 6..15 (10 wide), W 4..17 (14 wide); H widened to 14, centred
    assert roi_box(lab, 2) == (slice(1, 8), slice(4, 18), slice(4, 18))
    # at the border the square is shifted inside the volume, and clipped where it cannot fit
    lab = np.zeros((4, 10, 30), int)
    lab[1, 0:2, 5:25] = 1
    assert roi_box(lab, 0) == (slice(1, 2), slice(0, 10), slice(5, 25))
    with pytest.raises(ValueError, match="no foreground"):
        roi_box(np.zeros((3, 4, 4), int), 1)


def test_mmwhs_labels_crop_ids_and_positions(mmwhs):
    ds = load_mmwhs(mmwhs, image_size=(14, 14), margin=2)
    assert ds.class_names == [
        "background",
        "LV myocardium",
        "left atrium",
        "LV blood cavity",
        "right atrium",
        "RV blood cavity",
        "ascending aorta",
        "pulmonary artery",
    ]
    assert len(ds) == 4 * 7 and ds.images.shape == (28, 1, 14, 14) and ds.has_mask.all()
    assert list(dict.fromkeys(ds.volume_ids)) == [f"ct_train_10{v:02d}" for v in range(1, 5)]
    first = ds.volume_ids == "ct_train_1001"
    assert list(ds.ids[first]) == [f"ct_train_1001:{z}" for z in range(1, 8)]
    np.testing.assert_allclose(ds.positions[first], np.linspace(0, 1, 7))
    # the crop is (z 1..7, x 4..17, y 4..17) of the stored volume, remapped 205.. -> 1..7
    img, lab = _heart(0)
    lookup = np.zeros(851, np.int64)
    lookup[VALUES] = np.arange(1, 8)
    expected = lookup[lab[4:18, 4:18, 1:8]].transpose(2, 0, 1)
    np.testing.assert_array_equal(ds.masks[first], expected)
    assert set(np.unique(ds.masks)) == set(range(8))


def test_mmwhs_intensities_per_volume_from_the_crop(mmwhs, tmp_path):
    ds = load_mmwhs(mmwhs, image_size=(14, 14), margin=2)
    img, _ = _heart(0)
    crop = img[4:18, 4:18, 1:8].transpose(2, 0, 1)[:, None]
    first = ds.volume_ids == "ct_train_1001"
    np.testing.assert_allclose(ds.images[first], robust_minmax(crop), atol=1e-6)
    for v in set(ds.volume_ids):
        x = ds.images[ds.volume_ids == v]
        assert x.min() == 0.0 and x.max() == 1.0
    # the air around the crop does not set the scale
    other = tmp_path / "other"
    other.mkdir()
    img, lab = _heart(0)
    img[img == -1000] = -3000
    nib.save(nib.Nifti1Image(img, np.eye(4)), other / "ct_train_1001_image.nii.gz")
    nib.save(nib.Nifti1Image(lab, np.eye(4)), other / "ct_train_1001_label.nii.gz")
    np.testing.assert_array_equal(
        load_mmwhs(other, image_size=(14, 14), margin=2).images, ds.images[first]
    )


def test_mmwhs_resizes_slices(mmwhs):
    ds = load_mmwhs(mmwhs, image_size=(16, 16))
    assert ds.images.shape[1:] == (1, 16, 16) and ds.masks.shape[1:] == (16, 16)
    assert 0.0 <= ds.images.min() and ds.images.max() <= 1.0


def test_mmwhs_errors(tmp_path, mmwhs):
    with pytest.raises(MedclError, match=r"'.*nowhere' does not exist; set data.root"):
        load_mmwhs(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(MedclError, match=r"'.*empty' holds no MMWHS CT volumes.*ct_train_1001"):
        load_mmwhs(tmp_path / "empty")
    _, lab = _heart(0)
    lab[0, 0, 0] = 421
    nib.save(nib.Nifti1Image(lab, np.eye(4)), mmwhs / "ct_train_1002_label.nii.gz")
    with pytest.raises(MedclError, match=r"ct_train_1002_label.nii.gz' holds the values \[421\]"):
        load_mmwhs(mmwhs)
    nib.save(nib.Nifti1Image(0 * lab, np.eye(4)), mmwhs / "ct_train_1002_label.nii.gz")
    with pytest.raises(MedclError, match="holds no labelled voxel"):
        load_mmwhs(mmwhs)
    (mmwhs / "ct_train_1002_label.nii.gz").unlink()
    with pytest.raises(MedclError, match=r"ct_train_1002_image.nii.gz' has no label file"):
        load_mmwhs(mmwhs)


def test_mmwhs_through_the_config_with_four_folds(mmwhs, tmp_path):
    overrides = [f"data.root={mmwhs}", "data.image_size=[16,16]"]
    tested = []
    for fold in range(4):
        cfg = load_config(_packaged("mmwhs"), [*overrides, f"data.fold={fold}"])
        ds = load_data(cfg, cache_dir=tmp_path / "cache")
        vols = {s: set(ds.volume_ids[ds.indices(s)]) for s in ("train", "val", "test")}
        assert [len(vols[s]) for s in ("train", "val", "test")] == [2, 1, 1]
        tested += vols["test"]
    assert sorted(tested) == [f"ct_train_10{v:02d}" for v in range(1, 5)]
    assert len(list((tmp_path / "cache").glob("*.meta.json"))) == 1  # decoded once


# ------------------------------------------------------------------------------ configs


def _packaged(name):
    return str(resources.files("medcl").joinpath(f"configs/{name}.yaml"))


def test_packaged_configs_validate_with_the_papers_settings():
    isic = load_config(_packaged("isic2017"), ["data.root=/data/ISIC2017"])
    assert isic.data.layout == "isic2017" and isic.data.image_size == (192, 192)
    assert (isic.features.lr, isic.pretrain.lr, isic.finetune.lr) == (1e-3, 2.5e-4, 1e-4)
    assert (isic.features.epochs, isic.pretrain.epochs, isic.finetune.epochs) == (200, 400, 200)
    assert (isic.features.batch_size, isic.pretrain.batch_size, isic.finetune.batch_size) == (
        60,
        55,
        24,
    )
    assert isic.run.methods == ["random", "simclr", "moco", "byol", "ufc"]
    assert isic.run.seeds == [0, 1, 2, 3, 4]
    heart = load_config(_packaged("mmwhs"), ["data.root=/data/ct_train"])
    assert heart.data.layout == "mmwhs" and heart.data.folds == 4
    assert (heart.features.lr, heart.pretrain.lr, heart.finetune.lr) == (3e-4, 3e-4, 5e-4)
    assert (heart.features.epochs, heart.pretrain.epochs, heart.finetune.epochs) == (200, 200, 120)
    assert heart.finetune.batch_size == 8 and heart.data.image_size == (256, 256)
    assert heart.run.methods == ["random", "simclr", "moco", "byol", "glcl", "pcl", "ufc"]


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["data.layout=mmwhs"], "data.layout=mmwhs needs data.root"),
        (["data.layout=isic2017", "data.root=/x", "data.images=/y"], "leave data.dataset"),
        (
            ["data.root=/x", "data.images=/y"],
            "data.root is for data.layout isic2017, mmwhs or dsb2018",
        ),
        (["data.layout=mmwhs", "data.root=/x", "data.extra_images=[/y]"], "not mmwhs"),
        (["data.layout=isic2017", "data.root=/x", "data.folds=4"], "own split"),
        (["data.dataset=brain-aal", "data.folds=4"], "own split"),
        (["data.images=/x", "data.folds=4", "data.split_csv=s.csv"], "not both"),
    ],
)
def test_contradicting_data_keys_are_refused_before_reading(overrides, message):
    with pytest.raises(MedclError, match=message):
        load_data(load_config(None, overrides))


def test_fold_keys_are_validated_by_the_config():
    with pytest.raises(MedclError, match="data.folds"):
        load_config(None, ["data.folds=2"])
    with pytest.raises(MedclError, match="data.fold is 4; with data.folds=4 use 0 to 3"):
        load_config(None, ["data.folds=4", "data.fold=4"])
