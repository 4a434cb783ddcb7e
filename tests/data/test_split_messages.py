"""Split messages that name volumes and data.split_csv, and the leakage warning of a CSV."""

from __future__ import annotations

import numpy as np
import pytest

from medcl.config import load_config
from medcl.data._splits import assign_splits
from medcl.errors import MedclError
from medcl.stages._common import load_data
from tests.data.test_splits import make_set, volumes


def test_csv_splitting_a_volume_across_train_and_test_is_named(tmp_path, capsys):
    ds = make_set(["", "", "volA", "volA", "volB", "volB"])
    csv = tmp_path / "s.csv"
    csv.write_text("id,split\nimg0,train\nimg1,test\nvolA:0,train\nvolA:1,test\nvolB,val\n")
    assert list(assign_splits(ds, split_csv=csv).split) == [
        "train", "test", "train", "test", "val", "val",
    ]  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("medcl: warning:") and str(csv) in err[0]
    assert "volume 'volA' in train and test" in err[0] and "volB" not in err[0]


def test_csv_keeping_volumes_whole_says_nothing(tmp_path, capsys):
    ds = make_set(volumes(3, slices=2))
    csv = tmp_path / "s.csv"
    csv.write_text("id,split\nvol0,train\nvol1:0,val\nvol1:1,val\nvol2,test\n")
    assign_splits(ds, split_csv=csv)
    assert capsys.readouterr().err == ""


def test_many_leaking_volumes_show_three_and_count_the_rest(tmp_path, capsys):
    ds = make_set(volumes(5, slices=2))
    csv = tmp_path / "s.csv"
    csv.write_text("id,split\n" + "".join(f"vol{v}:0,train\nvol{v}:1,test\n" for v in range(5)))
    assign_splits(ds, split_csv=csv)
    err = capsys.readouterr().err
    assert "vol2" in err and "vol3" not in err and "and 2 more" in err


def _one_volume(root, slices=6):
    import nibabel as nib

    (root / "img").mkdir(parents=True)
    (root / "lab").mkdir()
    rng = np.random.default_rng(0)
    lab = np.zeros((16, 16, slices), np.uint8)
    lab[4:10, 4:10] = 1
    img = rng.random((16, 16, slices)).astype(np.float32)
    nib.save(nib.Nifti1Image(img, np.eye(4)), str(root / "img" / "scan1.nii.gz"))
    nib.save(nib.Nifti1Image(lab, np.eye(4)), str(root / "lab" / "scan1.nii.gz"))


def test_one_volume_names_volumes_and_split_csv(tmp_path):
    _one_volume(tmp_path)
    cfg = load_config(
        None,
        [f"data.images={tmp_path / 'img'}", f"data.masks={tmp_path / 'lab'}",
         "data.image_size=[16,16]", "model.channels=[4,8]"],
    )  # fmt: skip
    with pytest.raises(MedclError) as err:
        load_data(cfg)
    text = str(err.value)
    assert "slices of 1 volume ('scan1')" in text
    assert "data.split_csv" in text and "no fraction can fill it" in text
    # the unsupervised stages take the one volume as it is: all of it trains
    data = load_data(cfg, need_masks=False)
    assert len(data.indices("train")) == 6


def test_empty_split_from_a_csv_names_the_file(tmp_path):
    _one_volume(tmp_path)
    csv = tmp_path / "s.csv"
    csv.write_text("id,split\n" + "".join(f"scan1:{i},{'train' if i < 4 else 'test'}\n"
                                          for i in range(6)))  # fmt: skip
    cfg = load_config(
        None,
        [f"data.images={tmp_path / 'img'}", f"data.masks={tmp_path / 'lab'}",
         "data.image_size=[16,16]", "model.channels=[4,8]", f"data.split_csv={csv}"],
    )  # fmt: skip
    with pytest.raises(MedclError, match=r"The val split is empty: data.split_csv \('.*s.csv'\)"):
        load_data(cfg)
