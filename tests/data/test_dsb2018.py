"""DSB2018 nuclei: the Kaggle-layout reader, appearance and acquisition groups, leak-free split."""

from collections import Counter

import numpy as np
import pytest
from PIL import Image

from medcl.config import load_config
from medcl.data import (
    acquisition_groups,
    appearance_group,
    load_builtin,
    load_dsb2018_folder,
    stratified_group_split,
)
from medcl.data._dsb2018 import Signature, resize_instances
from medcl.errors import MedclError
from medcl.stages._common import load_data
from tests.dsb_fixture import _field, write_dsb_fixture


@pytest.fixture(scope="module")
def dsb_root(tmp_path_factory):
    return write_dsb_fixture(tmp_path_factory.mktemp("dsb"))


def test_appearance_rule():
    dark = np.full((8, 8, 3), 10, np.uint8)
    bright = np.full((8, 8, 3), 230, np.uint8)
    purple = np.dstack([np.full((8, 8), 150), np.full((8, 8), 90), np.full((8, 8), 160)])
    assert appearance_group(dark) == "fluorescence"
    assert appearance_group(bright) == "brightfield"
    assert appearance_group(purple.astype(np.uint8)) == "stained"
    with pytest.raises(ValueError):
        appearance_group(np.zeros((8, 8), np.uint8))


def test_reader_layout_instances_and_groups(dsb_root):
    ds = load_dsb2018_folder(dsb_root, (32, 32))
    ids = list(ds.ids)
    assert ids == sorted(ids) and len(ids) == 12
    assert ds.images.shape == (12, 3, 32, 32) and ds.class_names == ["background", "nucleus"]
    assert ds.instances is not None and ds.instances.shape == ds.masks.shape
    assert np.array_equal(ds.masks, (ds.instances > 0).astype(np.int64))
    assert ds.has_mask.all() and not ds.is_volumetric
    app = dict(zip(ids, ds.reference_labels["appearance"], strict=True))
    assert {k for k, v in app.items() if v == "stained"} == {"stain0", "stain1", "stain2"}
    assert app["bright0"] == "brightfield" and app["tileA"] == "fluorescence"
    group = dict(zip(ids, ds.group_ids, strict=True))
    assert group["tileA"] == group["tileB"]  # tiles of one field
    assert group["orig"] == group["dup"]  # near-duplicate
    others = [group[k] for k in ids if k not in ("tileA", "tileB", "orig", "dup")]
    assert len(set(others)) == len(others)  # unrelated images stay apart
    assert group["tileA"] != group["orig"]


def test_root_may_be_stage1_train_itself(dsb_root):
    ds = load_dsb2018_folder(dsb_root / "stage1_train", (16, 16))
    assert len(ds) == 12


def test_instances_survive_downsizing():
    inst = np.zeros((1, 40, 40), np.int32)
    inst[0, 8:12, 8:12] = 1  # 4 x 4 nucleus -> 1 x 1 at 10 x 10
    inst[0, 12:14, 12:16] = 4  # half of one output pixel: kept
    inst[0, 20:30, 5:35] = 2
    inst[0, 0:1, 39:40] = 3  # a single pixel: under half an output pixel, so dropped
    fg, ids = resize_instances(inst, (10, 10))
    assert fg.dtype == np.uint8 and set(np.unique(ids)) == {0, 1, 2, 4}
    assert (ids == 1).sum() == 1 and (ids == 4).sum() == 1
    assert (ids == 2).sum() == 3 * 8 - 2  # rows 20-29 cover 2.5 output rows: 5/8..7 of 2.5
    assert np.array_equal(fg, (ids > 0).astype(np.uint8))


def test_tiles_link_only_along_their_shared_border():
    rng = np.random.default_rng(1)
    field, _ = _field(rng, 40, 120, 40)
    sigs = [Signature.of(np.repeat(field[:, i : i + 40, None], 3, 2)) for i in (0, 40, 80)]
    other, _ = _field(np.random.default_rng(5), 40, 40, 10)
    sigs.append(Signature.of(np.repeat(other[:, :, None], 3, 2)))
    assert acquisition_groups(sigs).tolist() == [0, 0, 0, 1]


def test_stratified_group_split_keeps_groups_and_shares():
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(200), rng.integers(1, 5, 200))
    strata = np.where(groups % 5 == 0, "b", "a")
    split = stratified_group_split(groups, strata, 0.1, 0.2, seed=3)
    for g in np.unique(groups):
        assert len(set(split[groups == g])) == 1
    for s in ("a", "b"):
        share = Counter(split[strata == s].tolist())
        n = (strata == s).sum()
        assert abs(share["test"] / n - 0.2) < 0.03 and abs(share["val"] / n - 0.1) < 0.03
    again = stratified_group_split(groups, strata, 0.1, 0.2, seed=3)
    assert np.array_equal(split, again)
    assert not np.array_equal(split, stratified_group_split(groups, strata, 0.1, 0.2, seed=4))
    with pytest.raises(MedclError):
        stratified_group_split(groups, strata, 0.5, 0.6)


@pytest.fixture(scope="module")
def builtin():
    return load_builtin("dsb2018", (32, 32))


def test_builtin_copy_counts_and_split(builtin):
    ds = builtin
    assert len(ds) == 664 and ds.images.shape[1:] == (3, 32, 32)
    assert ds.images.dtype == np.float32 and 0 <= ds.images.min() and ds.images.max() <= 1
    assert Counter(ds.reference_labels["appearance"].tolist()) == {
        "fluorescence": 541,
        "stained": 107,
        "brightfield": 16,
    }
    assert len(set(ds.group_ids)) == 280
    counts = {s: len(ds.indices(s)) for s in ("train", "val", "test")}
    assert counts == {"train": 464, "val": 69, "test": 131}
    assert ds.has_mask.all() and ds.masks.max() == 1


def test_builtin_no_group_crosses_splits(builtin):
    for seed in (0, 1):
        ds = builtin if seed == 0 else load_builtin("dsb2018", (32, 32), split_seed=1)
        per_group: dict = {}
        for g, s in zip(ds.group_ids, ds.split, strict=True):
            per_group.setdefault(g, set()).add(s)
        assert all(len(v) == 1 for v in per_group.values())
        for app in ("fluorescence", "stained", "brightfield"):
            sel = ds.reference_labels["appearance"] == app
            test_share = (ds.split[sel] == "test").mean()
            assert 0.12 <= test_share <= 0.3, (app, test_share)


def test_builtin_split_seed_redraws_and_brain_refuses_it(builtin):
    other = load_builtin("dsb2018", (32, 32), split_seed=1)
    assert not np.array_equal(builtin.split, other.split)
    with pytest.raises(MedclError, match="split_seed"):
        load_builtin("brain-aal", (32, 16), split_seed=1)


def test_layout_through_the_config(dsb_root, tmp_path):
    cfg = load_config(
        None,
        [
            "data.layout=dsb2018",
            f"data.root={dsb_root}",
            "data.image_size=[32,32]",
            "data.val_fraction=0.2",
            "data.test_fraction=0.2",
            "model.channels=[4,8]",
        ],
    )
    ds = load_data(cfg, cache_dir=tmp_path / "cache")
    split = dict(zip(ds.ids, ds.split, strict=True))
    assert split["tileA"] == split["tileB"] and split["orig"] == split["dup"]
    assert {"train", "val", "test"} <= set(ds.split)
    cached = load_data(cfg, cache_dir=tmp_path / "cache")  # from the cache: same everything
    assert np.array_equal(cached.group_ids, ds.group_ids)
    assert np.array_equal(cached.instances, ds.instances)
    assert np.array_equal(cached.reference_labels["appearance"], ds.reference_labels["appearance"])


@pytest.mark.parametrize(
    "breakage, message",
    [
        ("no-root", "does not exist"),
        ("empty", "has no stage1_train"),
        ("no-image", "has no image"),
        ("bad-mask", "masks must have the image's size"),
    ],
)
def test_layout_errors_name_the_file(tmp_path, breakage, message):
    root = tmp_path / "dsb"
    if breakage != "no-root":
        root.mkdir()
    if breakage in ("no-image", "bad-mask"):
        case = root / "stage1_train" / "abc"
        (case / "images").mkdir(parents=True)
        (case / "masks").mkdir()
        if breakage == "bad-mask":
            Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(case / "images" / "abc.png")
            Image.fromarray(np.zeros((4, 4), np.uint8)).save(case / "masks" / "m.png")
        else:
            (root / "stage1_train" / "ok" / "images").mkdir(parents=True)
            Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(
                root / "stage1_train" / "ok" / "images" / "ok.png"
            )
    with pytest.raises(MedclError, match=message):
        load_dsb2018_folder(root, (8, 8))
