"""load_folder: pairing, label remapping, resizing, channels, volumes, errors and the cache."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from medcl.data._folder import load_folder
from medcl.data._intensity import Intensity
from medcl.data._readers import READERS
from medcl.errors import MedclError


def png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def nifti(path, volume):
    import nibabel as nib

    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(volume, np.eye(4)), str(path))
    return path


@pytest.fixture
def isic(tmp_path):
    """Three 4x4 gray images; two have masks with stored values 0/205/420."""
    for i, value in enumerate([0, 128, 255]):
        png(tmp_path / "images" / f"ISIC_{i:04d}.png", np.full((4, 4), value, dtype=np.uint8))
    mask = np.zeros((4, 4), dtype=np.uint16)
    mask[:2, :2], mask[2:, 2:] = 205, 420
    png(tmp_path / "masks" / "ISIC_0000_segmentation.png", mask)
    png(tmp_path / "masks" / "ISIC_0002_segmentation.png", np.full((4, 4), 205, np.uint16))
    (tmp_path / "images" / "README.txt").write_text("not an image")
    return tmp_path


def test_pairs_masks_by_suffix_and_remaps_labels(isic):
    ds = load_folder(
        isic / "images",
        masks=isic / "masks",
        mask_suffix="_segmentation",
        label_values=[0, 205, 420],
        image_size=(4, 4),
    )
    assert list(ds.ids) == ["ISIC_0000", "ISIC_0001", "ISIC_0002"]
    assert ds.images.shape == (3, 1, 4, 4) and ds.images.dtype == np.float32
    np.testing.assert_allclose(ds.images[:, 0, 0, 0], [0.0, 128 / 255, 1.0], atol=1e-6)
    np.testing.assert_array_equal(ds.has_mask, [True, False, True])
    expected = np.zeros((4, 4), dtype=np.int64)
    expected[:2, :2], expected[2:, 2:] = 1, 2
    np.testing.assert_array_equal(ds.masks[0], expected)
    np.testing.assert_array_equal(ds.masks[1], 0)  # unlabeled: zeros
    np.testing.assert_array_equal(ds.masks[2], 1)
    assert ds.masks.dtype == np.int64
    assert ds.class_names == ["background", "class_1", "class_2"]
    assert list(ds.volume_ids) == ["", "", ""] and np.isnan(ds.positions).all()
    assert list(ds.split) == ["", "", ""]


def test_resize_keeps_only_declared_classes(isic):
    ds = load_folder(
        isic / "images",
        masks=isic / "masks",
        mask_suffix="_segmentation",
        label_values=[0, 205, 420],
        class_names=["bg", "lesion", "border"],
        image_size=(7, 9),
    )
    assert ds.images.shape == (3, 1, 7, 9) and ds.masks.shape == (3, 7, 9)
    assert set(np.unique(ds.masks[0]).tolist()) == {0, 1, 2}
    assert ds.masks[0, 0, 0] == 1 and ds.masks[0, -1, -1] == 2
    np.testing.assert_allclose(ds.images[1], 128 / 255, atol=1e-6)  # constant stays constant
    assert ds.class_names == ["bg", "lesion", "border"]


def test_image_resize_is_smooth_and_in_range(tmp_path):
    half = np.zeros((8, 8), dtype=np.uint8)
    half[:, 4:] = 255
    png(tmp_path / "a.png", half)
    ds = load_folder(tmp_path / "a.png", image_size=4)
    row = ds.images[0, 0, 0]
    np.testing.assert_allclose([row[0], row[3]], [0.0, 1.0], atol=1e-6)
    assert 0 < row[1] < row[2] < 1 and ds.images.min() >= 0 and ds.images.max() <= 1


def test_binary_255_masks_become_0_1_and_masks_in_image_folder(tmp_path):
    png(tmp_path / "a.png", np.zeros((4, 4), np.uint8))
    png(tmp_path / "b.png", np.zeros((4, 4), np.uint8))
    m = np.zeros((4, 4), np.uint8)
    m[1:3, 1:3] = 255
    png(tmp_path / "a_mask.png", m)
    ds = load_folder(tmp_path, masks=tmp_path, mask_suffix="_mask", image_size=(4, 4))
    assert list(ds.ids) == ["a", "b"]  # the mask file is not an image
    np.testing.assert_array_equal(ds.masks[0], m // 255)
    np.testing.assert_array_equal(ds.has_mask, [True, False])
    assert ds.class_names == ["background", "class_1"]


def test_masks_already_0_to_c_minus_1(tmp_path):
    png(tmp_path / "img" / "a.png", np.zeros((4, 4), np.uint8))
    png(tmp_path / "seg" / "a.png", np.array([[0, 1, 2, 3]] * 4, np.uint8))
    ds = load_folder(tmp_path / "img", masks=tmp_path / "seg", image_size=(4, 4))
    np.testing.assert_array_equal(ds.masks[0, 0], [0, 1, 2, 3])
    assert ds.num_classes == 4
    with pytest.raises(MedclError, match=r"values \[3\], outside the classes 0\.\.2.*label_values"):
        load_folder(
            tmp_path / "img", masks=tmp_path / "seg", class_names=["a", "b", "c"], image_size=4
        )


def test_raw_mask_values_need_label_values(isic):
    with pytest.raises(MedclError, match=r"values \[0, 205, 420\], not the classes 0\.\.420"):
        load_folder(isic / "images", masks=isic / "masks", mask_suffix="_segmentation")


def test_mask_values_outside_declared_list(isic):
    with pytest.raises(MedclError) as err:
        load_folder(
            isic / "images",
            masks=isic / "masks",
            mask_suffix="_segmentation",
            label_values=[0, 205],
            image_size=(4, 4),
        )
    message = str(err.value)
    assert "ISIC_0000_segmentation.png" in message and "[420]" in message
    assert "data.label_values" in message


def test_mask_size_mismatch(tmp_path):
    png(tmp_path / "img" / "a.png", np.zeros((30, 40), np.uint8))
    png(tmp_path / "seg" / "a.png", np.zeros((10, 20), np.uint8))
    with pytest.raises(MedclError) as err:
        load_folder(tmp_path / "img", masks=tmp_path / "seg", image_size=(8, 8))
    assert str(err.value) == (
        f"Mask '{tmp_path / 'seg' / 'a.png'}' is 10x20 but its image "
        f"'{tmp_path / 'img' / 'a.png'}' is 30x40; masks must have the same size as their image."
    )


def test_channels_default_and_conversion(tmp_path):
    rgb = np.zeros((4, 4, 3), np.uint8)
    rgb[..., 0] = 255
    png(tmp_path / "a.png", rgb)
    png(tmp_path / "b.png", np.full((4, 4), 255, np.uint8))
    ds = load_folder(tmp_path, image_size=(4, 4))
    assert ds.channels == 3  # from the first image
    np.testing.assert_allclose(ds.images[1], 1.0)  # gray repeated
    ds = load_folder(tmp_path, image_size=(4, 4), channels=1)
    assert ds.channels == 1
    np.testing.assert_allclose(ds.images[0], 0.299, atol=1e-6)  # luminance of pure red
    np.testing.assert_allclose(ds.images[1], 1.0, atol=1e-6)


def test_nifti_volumes_with_masks(tmp_path):
    pytest.importorskip("nibabel")
    vol = np.zeros((6, 6, 5), np.float32)
    vol[:] = np.arange(5, dtype=np.float32)
    nifti(tmp_path / "img" / "case_01.nii.gz", vol)
    nifti(tmp_path / "img" / "case_02.nii.gz", vol[..., :3])
    seg = np.zeros((6, 6, 5), np.int16)
    seg[2:4, 2:4, 1] = 500
    nifti(tmp_path / "seg" / "case_01_seg.nii.gz", seg)
    ds = load_folder(
        tmp_path / "img",
        masks=tmp_path / "seg",
        mask_suffix="_seg",
        label_values=[0, 500],
        image_size=(6, 6),
    )
    assert len(ds) == 8 and ds.is_volumetric
    assert list(ds.volume_ids) == ["case_01"] * 5 + ["case_02"] * 3
    assert list(ds.ids[:2]) == ["case_01:0", "case_01:1"] and ds.ids[-1] == "case_02:2"
    np.testing.assert_allclose(ds.positions, [0, 0.25, 0.5, 0.75, 1, 0, 0.5, 1])
    np.testing.assert_array_equal(ds.has_mask, [True] * 5 + [False] * 3)
    assert ds.masks[1].sum() == 4 and ds.masks.sum() == 4
    assert ds.images[0].max() == 0.0 and ds.images[4].min() == 1.0

    nifti(tmp_path / "seg" / "case_02_seg.nii.gz", seg)  # 5 slices for a 3-slice volume
    with pytest.raises(MedclError, match=r"case_02_seg.nii.gz' is 5x6x6 but its image .* is 3x6x6"):
        load_folder(tmp_path / "img", masks=tmp_path / "seg", mask_suffix="_seg")


def test_dicom_files_are_2d_images(tmp_path):
    pytest.importorskip("pydicom")
    from pydicom.dataset import Dataset

    for i in range(3):
        ds = Dataset()
        ds.Rows, ds.Columns, ds.SamplesPerPixel = 4, 4, 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated = ds.BitsStored = 16
        ds.HighBit, ds.PixelRepresentation = 15, 0
        ds.RescaleSlope, ds.RescaleIntercept = "1", "-100"
        ds.PixelData = (np.arange(16, dtype=np.uint16).reshape(4, 4) * (i + 1)).tobytes()
        ds.save_as(tmp_path / f"slice_{i}.dcm", implicit_vr=True, little_endian=True)
    # scale=type: rescaled DICOM values have no type range, so min-max per file
    ds = load_folder(tmp_path, image_size=(4, 4), intensity=Intensity(scale="type"))
    assert list(ds.ids) == ["slice_0", "slice_1", "slice_2"]
    assert list(ds.volume_ids) == ["", "", ""]
    np.testing.assert_allclose(ds.images[1, 0].ravel(), np.arange(16) / 15, atol=1e-6)


def test_missing_paths_and_empty_folders(tmp_path):
    with pytest.raises(MedclError, match="'.*nope' does not exist"):
        load_folder(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(MedclError, match=r"no supported image files.*\.png.*\.nii\.gz"):
        load_folder(tmp_path / "empty")
    (tmp_path / "empty" / "notes.txt").write_text("x")
    with pytest.raises(MedclError, match="no supported image files"):
        load_folder(tmp_path / "empty")
    png(tmp_path / "img" / "a.png", np.zeros((4, 4), np.uint8))
    with pytest.raises(MedclError, match="mask path .* does not exist"):
        load_folder(tmp_path / "img", masks=tmp_path / "nomasks")


def test_unreadable_image(tmp_path):
    png(tmp_path / "a.png", np.zeros((4, 4), np.uint8))
    (tmp_path / "b.png").write_bytes(b"\x00garbage" * 20)
    # skip (the default) and error: tests/data/test_unreadable.py
    with pytest.raises(MedclError, match=r"1 of the 2 files in '.*' cannot be read: b\.png \("):
        load_folder(tmp_path, image_size=4, on_unreadable="error")
    with pytest.raises(MedclError, match=r"Cannot read image '.*b\.png'.*valid PNG"):
        load_folder(tmp_path / "b.png", image_size=4, on_unreadable="error")


def test_no_mask_matches_and_duplicate_names(tmp_path):
    png(tmp_path / "img" / "a.png", np.zeros((4, 4), np.uint8))
    png(tmp_path / "seg" / "a_mask.png", np.zeros((4, 4), np.uint8))
    with pytest.raises(MedclError, match="mask_suffix"):
        load_folder(tmp_path / "img", masks=tmp_path / "seg", mask_suffix="_segmentation")
    png(tmp_path / "img" / "a.jpg", np.zeros((4, 4), np.uint8))
    with pytest.raises(MedclError, match="have the same name 'a'"):
        load_folder(tmp_path / "img")


def test_bad_settings(isic):
    with pytest.raises(MedclError, match="data.image_size"):
        load_folder(isic / "images", image_size=(0, 4))
    with pytest.raises(MedclError, match="data.class_names has 2 names"):
        load_folder(isic / "images", label_values=[0, 1, 2], class_names=["a", "b"])
    with pytest.raises(MedclError, match="repeats a value"):
        load_folder(isic / "images", label_values=[0, 1, 1])


def _boom(*args, **kwargs):
    raise AssertionError("decoded although the cache should have been used")


def test_cache_skips_decoding(isic, monkeypatch):
    kwargs = dict(
        masks=isic / "masks",
        mask_suffix="_segmentation",
        label_values=[0, 205, 420],
        image_size=(4, 4),
        cache_dir=isic / "cache",
    )
    first = load_folder(isic / "images", **kwargs)
    assert not [p for p in os.listdir(isic / "cache") if p.endswith(".tmp")]
    monkeypatch.setattr(READERS["pillow"], "read", _boom)
    monkeypatch.setattr(READERS["pillow"], "read_values", _boom)
    monkeypatch.setattr(READERS["pillow"], "read_labels", _boom)
    second = load_folder(isic / "images", **kwargs)
    assert not isinstance(second.images.raw, np.memmap)
    for name in ("images", "masks", "has_mask", "ids", "volume_ids"):
        np.testing.assert_array_equal(getattr(second, name), getattr(first, name))
    assert np.isnan(second.positions).all() and second.class_names == first.class_names

    # other settings -> another cache entry -> decoding again
    with pytest.raises(AssertionError, match="decoded although"):
        load_folder(isic / "images", **{**kwargs, "image_size": (5, 5)})


def test_cache_memmaps_large_arrays_and_tracks_file_changes(tmp_path, monkeypatch):
    pytest.importorskip("nibabel")
    nifti(tmp_path / "img" / "v.nii.gz", np.arange(48, dtype=np.float32).reshape(4, 4, 3))
    first = load_folder(tmp_path / "img", image_size=(4, 4), cache_dir=tmp_path / "c")
    monkeypatch.setattr(READERS["nifti"], "read", _boom)
    monkeypatch.setattr(READERS["nifti"], "read_values", _boom)
    second = load_folder(
        tmp_path / "img", image_size=(4, 4), cache_dir=tmp_path / "c", mmap_threshold=16
    )
    stored = second.images.raw  # the compact store behind the float32 view
    assert isinstance(stored, np.memmap) and not stored.flags.writeable
    np.testing.assert_array_equal(second.images, first.images)
    np.testing.assert_allclose(second.positions, [0, 0.5, 1])
    assert list(second.volume_ids) == ["v"] * 3

    path = tmp_path / "img" / "v.nii.gz"
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # file changed
    with pytest.raises(AssertionError, match="decoded although"):
        load_folder(tmp_path / "img", image_size=(4, 4), cache_dir=tmp_path / "c")


def test_channel_conversion_error_names_the_file(tmp_path):
    from medcl.data._folder import _convert_channels

    with pytest.raises(MedclError) as e:
        _convert_channels(np.zeros((1, 4, 8, 8), np.float32), 3, tmp_path / "odd.tif")
    assert "odd.tif" in str(e.value) and "4 channels" in str(e.value)


# ----------------------------------------------------------------------------- decoding to disk


def _rgb_folder(root, n=40, size=16, seed=0):
    rng = np.random.default_rng(seed)
    for i in range(n):
        png(root / f"im{i:03d}.png", rng.integers(0, 256, (size, size, 3), dtype=np.uint8))
    return root


def test_cache_takes_the_images_as_they_were_decoded_to_disk(tmp_path):
    """With a cache the images go to a file in it as each is decoded, and that file becomes
    the entry: the same bits as decoding in memory, a valid .npy, no scratch file left."""
    folder = _rgb_folder(tmp_path / "img")
    in_memory = load_folder(folder, image_size=16, workers=1)
    cached = load_folder(folder, image_size=16, cache_dir=tmp_path / "c", workers=1)
    assert cached.images.stored_dtype == in_memory.images.stored_dtype == "uint8"
    np.testing.assert_array_equal(cached.images.raw, in_memory.images.raw)
    (entry,) = (tmp_path / "c").glob("*.images.npy")
    np.testing.assert_array_equal(np.load(entry), in_memory.images.raw)
    assert not list((tmp_path / "c").glob("*.tmp"))
    again = load_folder(folder, image_size=16, cache_dir=tmp_path / "c", workers=1)
    np.testing.assert_array_equal(again.images.raw, in_memory.images.raw)


def test_mixed_depths_are_joined_in_memory_when_decoding_to_disk(tmp_path):
    """A 16-bit file after 8-bit ones cannot follow them in the file: what was written is
    taken back and the set joined as float32, exactly as without a cache."""
    folder = tmp_path / "img"
    rng = np.random.default_rng(1)
    for i in range(3):
        png(folder / f"a{i}.png", rng.integers(0, 256, (8, 8), dtype=np.uint8))
    Image.fromarray(rng.integers(0, 65536, (8, 8)).astype(np.uint16)).save(folder / "b.png")
    in_memory = load_folder(folder, image_size=8, workers=1)
    cached = load_folder(folder, image_size=8, cache_dir=tmp_path / "c", workers=1)
    assert cached.images.stored_dtype == in_memory.images.stored_dtype
    np.testing.assert_array_equal(cached.images[:], in_memory.images[:])
    assert not list((tmp_path / "c").glob("*.tmp"))


def test_a_failed_decode_leaves_no_scratch_file(tmp_path):
    folder = _rgb_folder(tmp_path / "img", n=5)
    (folder / "zz.png").write_bytes(b"\x00garbage" * 20)
    with pytest.raises(MedclError, match="cannot be read"):
        load_folder(folder, image_size=16, cache_dir=tmp_path / "c", on_unreadable="error")
    assert not list((tmp_path / "c").iterdir())


def test_decoding_to_disk_holds_one_file_not_the_collection(tmp_path):
    """numpy reports its allocations to tracemalloc: decoding 200 RGB files (2.4 MB of
    pixels) into a cache peaks below half of what decoding in memory holds."""
    import tracemalloc

    folder = _rgb_folder(tmp_path / "img", n=200, size=64)

    def peak(**kw) -> int:
        tracemalloc.start()
        load_folder(folder, image_size=64, workers=1, **kw)
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return top

    in_memory = peak()
    to_disk = peak(cache_dir=tmp_path / "c", mmap_threshold=0)
    assert in_memory > 200 * 3 * 64 * 64  # the collection, at least once
    assert to_disk < in_memory / 2, (to_disk, in_memory)


def test_a_full_disk_while_decoding_to_disk_is_one_sentence(tmp_path, monkeypatch):
    """A write that fails while the images stream into the cache (a full disk) names the
    file in one sentence and leaves no scratch file."""
    import errno

    from medcl.data import _stored

    folder = _rgb_folder(tmp_path / "img", n=5)

    def full(self, part):
        raise OSError(errno.ENOSPC, "No space left on device")

    real_add = _stored.PackedFile.add

    def add(self, part):
        if self.rows >= 2:
            self._file.write = lambda data: full(self, data)
        return real_add(self, part)

    monkeypatch.setattr(_stored.PackedFile, "add", add)
    with pytest.raises(MedclError, match=r"(?i)disk|space") as err:
        load_folder(folder, image_size=16, cache_dir=tmp_path / "c", workers=1)
    assert "images.npy" in str(err.value) and "\n" not in str(err.value)
    assert not list((tmp_path / "c").iterdir())
