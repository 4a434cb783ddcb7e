"""assign_splits and label_subset: no leakage, reproducibility, CSV splits, nested subsets."""

from __future__ import annotations

import numpy as np
import pytest

from medcl.data._imageset import ImageSet
from medcl.data._splits import _split_counts, assign_splits, kfold_splits, label_subset
from medcl.errors import MedclError


def make_set(volume_ids, has_mask=None, ids=None):
    n = len(volume_ids)
    volume_ids = np.array(volume_ids, dtype=object)
    if ids is None:
        counts: dict[str, int] = {}
        ids = []
        for i, v in enumerate(volume_ids):
            if v == "":
                ids.append(f"img{i}")
            else:
                ids.append(f"{v}:{counts.setdefault(v, 0)}")
                counts[v] += 1
    return ImageSet(
        images=np.zeros((n, 1, 2, 2), np.float32),
        masks=np.zeros((n, 2, 2), np.int64),
        has_mask=np.ones(n, bool) if has_mask is None else np.array(has_mask, bool),
        ids=np.array(ids, dtype=object),
        volume_ids=volume_ids,
        positions=np.zeros(n),
        class_names=["background", "fg"],
    )


def volumes(n_volumes, slices=4):
    return [f"vol{v}" for v in range(n_volumes) for _ in range(slices)]


def test_volumes_are_not_shared_between_splits():
    ds = assign_splits(make_set(volumes(20)), val_fraction=0.15, test_fraction=0.2, seed=3)
    for vol in set(ds.volume_ids):
        assert len(set(ds.split[ds.volume_ids == vol])) == 1
    per_split = {s: len(set(ds.volume_ids[ds.split == s])) for s in ("train", "val", "test")}
    assert per_split == {"train": 13, "val": 3, "test": 4}


def test_2d_images_are_their_own_groups_and_counts_round():
    ds = assign_splits(make_set([""] * 100), val_fraction=0.15, test_fraction=0.2, seed=0)
    assert (ds.split == "test").sum() == 20 and (ds.split == "val").sum() == 15
    assert (ds.split == "train").sum() == 65


def test_reproducible_per_seed():
    a = assign_splits(make_set(volumes(30)), seed=1).split.copy()
    b = assign_splits(make_set(volumes(30)), seed=1).split.copy()
    c = assign_splits(make_set(volumes(30)), seed=2).split.copy()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_returns_the_same_object():
    ds = make_set([""] * 5)
    assert assign_splits(ds) is ds and set(ds.split) <= {"train", "val", "test"}


def test_masks_are_shared_out_evenly():
    # 20 labeled and 80 unlabeled images: test gets 20% of each
    ds = make_set([""] * 100, has_mask=[True] * 20 + [False] * 80)
    for seed in range(5):
        assign_splits(ds, val_fraction=0.1, test_fraction=0.2, seed=seed)
        assert ds.has_mask[ds.split == "test"].sum() == 4
        assert ds.has_mask[ds.split == "val"].sum() == 2


@pytest.mark.parametrize(
    ("groups", "expected"),
    [(1, (0, 0)), (2, (1, 0)), (3, (1, 1)), (4, (1, 1)), (10, (2, 2)), (100, (20, 15))],
)
def test_tiny_set_rule(groups, expected):
    assert _split_counts(groups, 0.15, 0.2) == expected
    ds = assign_splits(make_set(volumes(groups, slices=2)), seed=0)
    assert (ds.split == "train").any()
    assert len(set(ds.volume_ids[ds.split == "test"])) == expected[0]


def test_zero_fractions_and_bad_fractions():
    ds = assign_splits(make_set([""] * 10), val_fraction=0.0, test_fraction=0.0)
    assert set(ds.split) == {"train"}
    with pytest.raises(MedclError, match="data.test_fraction is 1.2"):
        assign_splits(ds, test_fraction=1.2)
    with pytest.raises(MedclError, match="sum smaller than 1"):
        assign_splits(ds, val_fraction=0.5, test_fraction=0.5)


def test_split_csv(tmp_path):
    ds = make_set(["", "", "volA", "volA"], ids=["a", "b", "volA:0", "volA:1"])
    csv = tmp_path / "splits.csv"
    csv.write_text("id,split\na,train\nb, Test\nvolA,val\n")
    assign_splits(ds, split_csv=csv)
    assert list(ds.split) == ["train", "test", "val", "val"]

    csv.write_text("id,split\na,train\nb,test\nvolA:0,val\nvolA:1,train\n")
    assert list(assign_splits(ds, split_csv=csv).split) == ["train", "test", "val", "train"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("id,split\na,train\nzzz,test\n", r"line 3 names 'zzz', which is not an image id"),
        ("id,split\na,train\nb,holdout\n", r"line 3 has split 'holdout'; use train, val or test"),
        ("id,split\na,train\n", r"gives no split for 3 images \(b, volA:0, volA:1\)"),
        ("name,fold\na,train\n", r"needs the columns 'id' and 'split'"),
        ("id,split\na,train\na,test\n", r"line 3 puts 'a' in test but an earlier line"),
    ],
)
def test_split_csv_errors(tmp_path, text, message):
    ds = make_set(["", "", "volA", "volA"], ids=["a", "b", "volA:0", "volA:1"])
    csv = tmp_path / "splits.csv"
    csv.write_text(text)
    with pytest.raises(MedclError, match=message) as err:
        assign_splits(ds, split_csv=csv)
    assert "splits.csv" in str(err.value)


def test_split_csv_missing(tmp_path):
    with pytest.raises(MedclError, match="does not exist"):
        assign_splits(make_set([""]), split_csv=tmp_path / "nope.csv")


def test_label_subset_size_and_masks_only():
    has_mask = np.array([True, False] * 50)
    train = np.arange(80)  # 40 of them have masks
    subset = label_subset(train, has_mask, 0.1, seed=0)
    assert len(subset) == 4
    assert has_mask[subset].all() and np.isin(subset, train).all()
    assert np.all(np.diff(subset) > 0)
    assert len(label_subset(train, has_mask, 0.001, seed=0)) == 1  # at least one
    np.testing.assert_array_equal(label_subset(train, has_mask, 1.0, seed=0), train[::2])


def test_label_subset_nested_and_reproducible():
    has_mask = np.ones(200, bool)
    train = np.arange(200)
    for seed in (0, 1):
        previous = np.array([], dtype=np.int64)
        for fraction in (0.05, 0.1, 0.2, 0.5, 1.0):
            subset = label_subset(train, has_mask, fraction, seed)
            assert len(subset) == round(fraction * 200)
            assert np.isin(previous, subset).all()
            previous = subset
    np.testing.assert_array_equal(
        label_subset(train, has_mask, 0.1, seed=4), label_subset(train[::-1], has_mask, 0.1, 4)
    )
    assert not np.array_equal(
        label_subset(train, has_mask, 0.1, seed=0), label_subset(train, has_mask, 0.1, seed=1)
    )


@pytest.mark.parametrize("fraction", [0, 1.5, -0.1, float("nan")])
def test_label_fraction_outside_range(fraction):
    with pytest.raises(MedclError, match=r"outside \(0, 1\]; use e.g. 0.05 for 5% of the masks"):
        label_subset(np.arange(4), np.ones(4, bool), fraction, 0)


def test_label_subset_without_masks():
    with pytest.raises(MedclError, match="No training image has a mask"):
        label_subset(np.arange(4), np.zeros(4, bool), 0.5, 0)


# ----------------------------------------------------------------------------- k-fold


def test_kfold_mmwhs_protocol_20_volumes_4_folds_is_2_1_1():
    ds = make_set(volumes(20, slices=3))
    tested, validated = [], []
    for fold in range(4):
        kfold_splits(ds, folds=4, fold=fold, seed=0)
        vols = {s: set(ds.volume_ids[ds.split == s]) for s in ("train", "val", "test")}
        assert [len(vols[s]) for s in ("train", "val", "test")] == [10, 5, 5]
        for vol in set(ds.volume_ids):  # whole volumes, each in one split
            assert len(set(ds.split[ds.volume_ids == vol])) == 1
        tested += vols["test"]
        validated += vols["val"]
    # every volume is tested exactly once and validated exactly once over the folds
    assert sorted(tested) == sorted(validated) == sorted(set(ds.volume_ids))


def test_kfold_val_part_is_the_next_folds_test_part():
    ds = make_set(volumes(9))
    tests = [set(kfold_splits(ds, 3, f, seed=5).volume_ids[ds.split == "test"]) for f in range(3)]
    for f in range(3):
        kfold_splits(ds, 3, f, seed=5)
        assert set(ds.volume_ids[ds.split == "val"]) == tests[(f + 1) % 3]


def test_kfold_deterministic_per_seed_and_uneven_parts():
    a = kfold_splits(make_set(volumes(10)), 4, 1, seed=3).split.copy()
    b = kfold_splits(make_set(volumes(10)), 4, 1, seed=3).split.copy()
    c = kfold_splits(make_set(volumes(10)), 4, 1, seed=4).split.copy()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    # 10 volumes dealt into 4 parts: sizes 3, 3, 2, 2
    sizes = []
    for fold in range(4):
        ds = kfold_splits(make_set(volumes(10)), 4, fold, seed=3)
        sizes.append(len(set(ds.volume_ids[ds.split == "test"])))
    assert sorted(sizes) == [2, 2, 3, 3]


def test_kfold_unlabelled_volumes_always_train_and_2d_images_are_groups():
    vols = volumes(6, slices=2)
    has_mask = [v not in ("vol4", "vol5") for v in vols]
    for fold in range(4):
        ds = kfold_splits(make_set(vols, has_mask=has_mask), 4, fold, seed=0)
        assert (ds.split[~ds.has_mask] == "train").all()
    ds = kfold_splits(make_set([""] * 8), 4, 0, seed=0)
    assert [(ds.split == s).sum() for s in ("train", "val", "test")] == [4, 2, 2]


@pytest.mark.parametrize(
    "folds, fold, n, message",
    [
        (2, 0, 10, "data.folds is 2; cross-validation needs at least 3 folds"),
        (4, 4, 10, "data.fold is 4; with data.folds=4 use 0 to 3"),
        (4, -1, 10, "data.fold is -1"),
        (4, 0, 3, "data.folds=4 needs at least 4 volumes .* but there are 3"),
    ],
)
def test_kfold_bad_arguments(folds, fold, n, message):
    with pytest.raises(MedclError, match=message):
        kfold_splits(make_set(volumes(n)), folds, fold, seed=0)
