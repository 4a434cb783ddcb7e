"""data.label_groups: an atlas's codes grouped into classes, everything else background."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from medcl.config import load_config
from medcl.data._folder import load_folder
from medcl.errors import MedclError

ATLAS = {"frontal": [101, 102], "parietal": [201, 202, 203], "occipital": [301, 304]}


def _atlas_volume(root):
    """One 4-slice NIfTI image and its label volume holding atlas codes 101 ... 304."""
    import nibabel as nib

    (root / "img").mkdir()
    (root / "lab").mkdir()
    rng = np.random.default_rng(0)
    codes = np.array([0, 101, 102, 201, 202, 203, 301, 304, 401, 999], np.int16)
    labels = codes[rng.integers(0, len(codes), (8, 8, 4))]
    image = rng.random((8, 8, 4)).astype(np.float32)
    nib.save(nib.Nifti1Image(image, np.eye(4)), str(root / "img" / "brain.nii.gz"))
    nib.save(nib.Nifti1Image(labels, np.eye(4)), str(root / "lab" / "brain.nii.gz"))
    return labels


def test_atlas_codes_become_the_groups_and_the_rest_background(tmp_path):
    labels = _atlas_volume(tmp_path)
    ds = load_folder(tmp_path / "img", tmp_path / "lab", image_size=(8, 8), label_groups=ATLAS)
    assert ds.class_names == ["background", "frontal", "parietal", "occipital"]
    expected = np.zeros_like(labels, dtype=np.int64)  # 0, 401 and 999 stay background
    for cls, values in enumerate(ATLAS.values(), start=1):
        expected[np.isin(labels, values)] = cls
    # the volume is sliced along its third axis: slice i is labels[:, :, i]
    for i in range(4):
        assert ds.masks[i].tolist() == expected[:, :, i].tolist()
    assert sorted(np.unique(ds.masks)) == [0, 1, 2, 3]


def test_label_groups_on_16_bit_pngs_and_in_the_cache_key(tmp_path):
    (tmp_path / "img").mkdir()
    (tmp_path / "msk").mkdir()
    mask = np.array([[0, 101, 102, 201], [301, 304, 999, 0]] * 2, np.uint16)
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "img" / "a.png")
    Image.fromarray(mask).save(tmp_path / "msk" / "a.png")
    args = dict(image_size=(4, 4), cache_dir=tmp_path / "cache")
    grouped = load_folder(tmp_path / "img", tmp_path / "msk", label_groups=ATLAS, **args)
    assert grouped.masks[0].tolist() == [[0, 1, 1, 2], [3, 3, 0, 0]] * 2
    two = load_folder(tmp_path / "img", tmp_path / "msk", label_groups={"x": [304]}, **args)
    assert two.class_names == ["background", "x"]
    assert two.masks[0].tolist() == [[0, 0, 0, 0], [0, 1, 0, 0]] * 2  # not the cached one


@pytest.mark.parametrize(
    ("groups", "extra", "match"),
    [
        ({"a": [1], "b": [1, 2]}, {}, "Stored value 1 is in data.label_groups.b and .*a"),
        ({"a": []}, {}, "data.label_groups.a is empty"),
        ({}, {}, "data.label_groups is empty"),
        ({"background": [0], "a": [1]}, {}, "names a group 'background'"),
        ({"a": [1]}, {"label_values": [0, 1]}, "either data.label_groups or data.label_values"),
        ({"a": [1]}, {"class_names": ["bg", "a"]}, "either data.label_groups or data.class_"),
    ],
)
def test_bad_label_groups_are_one_sentence(tmp_path, groups, extra, match):
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "a.png")
    with pytest.raises(MedclError, match=match):
        load_folder(tmp_path, image_size=4, label_groups=groups, **extra)


def test_config_refuses_label_groups_with_label_values():
    cfg = load_config(None, ["data.label_groups={lv: [101, 102], rv: [201]}"])
    assert cfg.data.label_groups == {"lv": [101, 102], "rv": [201]}
    with pytest.raises(MedclError) as err:
        load_config(None, ["data.label_groups={lv: [101]}", "data.label_values=[0,101]"])
    assert "either data.label_groups or data.label_values, not both" in str(err.value)
    assert str(err.value).count(".") <= 6 and "\n" not in str(err.value)


def test_label_values_keep_working(tmp_path):
    (tmp_path / "img").mkdir()
    (tmp_path / "msk").mkdir()
    Image.fromarray(np.zeros((2, 2), np.uint8)).save(tmp_path / "img" / "a.png")
    Image.fromarray(np.array([[0, 205], [420, 0]], np.uint16)).save(tmp_path / "msk" / "a.png")
    ds = load_folder(tmp_path / "img", tmp_path / "msk", image_size=2, label_values=[0, 205, 420])
    assert ds.masks[0].tolist() == [[0, 1], [2, 0]]
    with pytest.raises(MedclError, match="not in data.label_values"):
        load_folder(tmp_path / "img", tmp_path / "msk", image_size=2, label_values=[0, 205])


def test_label_groups_are_refused_where_the_classes_are_fixed():
    from medcl.stages._common import load_data

    cfg = load_config(None, ["data.dataset=dsb2018", "data.label_groups={a: [1]}"])
    with pytest.raises(MedclError, match="data.label_groups maps the stored values"):
        load_data(cfg)
