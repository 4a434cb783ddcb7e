"""Train/val/test splits without leakage, and nested label fractions.

Splits are drawn over *groups*, not images: all slices of a volume form one group (so no
patient appears in two splits), and every 2D image is its own group. The groups are shuffled
with a seeded generator and the first ``round(test_fraction * G)`` go to test, the next
``round(val_fraction * G)`` to val and the rest to train (rounding half up). Groups with and
without masks are shuffled separately and interleaved evenly before this cut, so every split
gets its share of the masks.

Rules for tiny sets: with one group everything is train; with two or more groups and
``test_fraction > 0``, test gets at least one group; with three or more and
``val_fraction > 0``, val gets at least one; train always keeps at least one group (val gives
way first, then test).

:func:`kfold_splits` deals the volumes into K parts instead, for cross-validation (test on
one part, validate on the next, train on the rest).

Label fractions (:func:`label_subset`) come from one seeded permutation of the training images
that have masks, of which a prefix is taken; for the same seed the 5% subset is therefore
inside the 10% subset, which is inside the 20% subset, so results across fractions differ
only by the labels added.

Example::

    >>> assign_splits(ds, val_fraction=0.15, test_fraction=0.2, seed=0)
    >>> few = label_subset(ds.indices("train"), ds.has_mask, fraction=0.05, seed=0)
"""

from __future__ import annotations

import csv
import math
import os

import numpy as np

from medcl.data._imageset import ImageSet
from medcl.errors import MedclError

__all__ = ["SPLITS", "assign_splits", "kfold_splits", "label_subset", "stratified_group_split"]

SPLITS = ("train", "val", "test")


def _round_half_up(x: float) -> int:
    return int(math.floor(x + 0.5))


def assign_splits(
    imageset: ImageSet,
    val_fraction: float = 0.15,
    test_fraction: float = 0.2,
    seed: int = 0,
    split_csv: str | os.PathLike | None = None,
) -> ImageSet:
    """Set ``imageset.split`` in place (and return the ImageSet).

    Args:
        imageset: the images to split.
        val_fraction: share of groups (volumes or 2D images) for validation, in [0, 1).
        test_fraction: share of groups for testing, in [0, 1).
        seed: seed of the shuffle; the same seed and images give the same split.
        split_csv: a CSV file with columns ``id,split`` fixing the split of every image
            (an id may also be a volume id, covering all its slices); the fractions and
            seed are then ignored.
    """
    if split_csv is not None:
        imageset.split = _splits_from_csv(imageset, split_csv)
        return imageset
    for name, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0 <= value < 1:
            raise MedclError(f"data.{name} is {value}; use a value in [0, 1), e.g. 0.2.")
    if val_fraction + test_fraction >= 1:
        raise MedclError(
            f"data.val_fraction + data.test_fraction is {val_fraction + test_fraction}, leaving "
            "nothing to train on; make their sum smaller than 1."
        )
    n = len(imageset)
    group_of, labeled = _groups(imageset)
    n_groups = len(labeled)

    # Shuffle each stratum, then interleave them by relative rank so that every prefix of
    # the order holds labeled and unlabeled groups in the overall proportion.
    rng = np.random.default_rng(seed)
    rank = np.empty(n_groups, dtype=np.float64)
    for stratum in (np.flatnonzero(labeled), np.flatnonzero(~labeled)):
        order = stratum[rng.permutation(len(stratum))]
        rank[order] = (np.arange(len(order)) + 0.5) / max(len(order), 1)
    order = np.lexsort((~labeled, rank))  # ties: labeled first

    n_test, n_val = _split_counts(n_groups, val_fraction, test_fraction)
    group_split = np.empty(n_groups, dtype=object)
    group_split[order[:n_test]] = "test"
    group_split[order[n_test : n_test + n_val]] = "val"
    group_split[order[n_test + n_val :]] = "train"
    imageset.split = group_split[group_of] if n else np.array([], dtype=object)
    return imageset


def _groups(imageset: ImageSet) -> tuple[np.ndarray, np.ndarray]:
    """``(group_of, labeled)``: each image's group index, and whether a group has a mask.

    A group is the images sharing a ``group_ids`` entry (tiles of one field), else a volume
    (all its slices), else a single 2D image; groups are numbered in order of first
    appearance.
    """
    group_of = np.empty(len(imageset), dtype=np.int64)
    keys: dict[tuple[str, object], int] = {}
    for i, (grp, vol) in enumerate(zip(imageset.group_ids, imageset.volume_ids, strict=True)):
        if grp != "":
            key: tuple[str, object] = ("group", grp)
        else:
            key = ("volume", vol) if vol != "" else ("image", i)
        group_of[i] = keys.setdefault(key, len(keys))
    labeled = np.zeros(len(keys), dtype=bool)
    np.logical_or.at(labeled, group_of, np.asarray(imageset.has_mask, dtype=bool))
    return group_of, labeled


def kfold_splits(imageset: ImageSet, folds: int, fold: int, seed: int = 0) -> ImageSet:
    """Set ``imageset.split`` for fold ``fold`` of a ``folds``-fold cross-validation over volumes.

    The groups that hold a mask (volumes, or single 2D images) are shuffled with ``seed`` and
    dealt in turn into ``folds`` parts, so part sizes differ by at most one. Fold ``f`` tests
    on part ``f``, validates on part ``(f + 1) % folds`` and trains on the others; over all
    folds every labelled volume is tested exactly once, and the parts do not depend on
    ``fold``. Groups without any mask cannot be scored, so they always train. With 20 MMWHS
    volumes and 4 folds this is the protocol's 2:1:1 (10 train, 5 val, 5 test volumes).

    Args:
        imageset: the images to split (changed in place and returned).
        folds: the number of folds, at least 3 (test, val and train each need a part).
        fold: which fold, in ``0..folds-1``.
        seed: seed of the shuffle (``data.split_seed``); the same for every fold of a study.

    Example::

        >>> for f in range(4):
        ...     kfold_splits(ds, folds=4, fold=f, seed=0)   # train, evaluate, average
    """
    if isinstance(folds, bool) or not isinstance(folds, int | np.integer) or folds < 3:
        raise MedclError(
            f"data.folds is {folds}; cross-validation needs at least 3 folds (one part each "
            "for test and val, the rest to train), e.g. 4."
        )
    if isinstance(fold, bool) or not isinstance(fold, int | np.integer) or not 0 <= fold < folds:
        raise MedclError(f"data.fold is {fold}; with data.folds={folds} use 0 to {folds - 1}.")
    group_of, labeled = _groups(imageset)
    candidates = np.flatnonzero(labeled)
    if len(candidates) < folds:
        raise MedclError(
            f"data.folds={folds} needs at least {folds} volumes (or 2D images) with masks, "
            f"but there are {len(candidates)}; use fewer folds or add data."
        )
    part = np.full(len(labeled), -1, dtype=np.int64)  # -1: no mask, always train
    order = candidates[np.random.default_rng(seed).permutation(len(candidates))]
    part[order] = np.arange(len(order)) % folds
    group_split = np.full(len(labeled), "train", dtype=object)
    group_split[part == fold] = "test"
    group_split[part == (fold + 1) % folds] = "val"
    imageset.split = group_split[group_of]
    return imageset


def _split_counts(n_groups: int, val_fraction: float, test_fraction: float) -> tuple[int, int]:
    n_test = _round_half_up(test_fraction * n_groups)
    n_val = _round_half_up(val_fraction * n_groups)
    if n_groups >= 2 and test_fraction > 0:
        n_test = max(n_test, 1)
    if n_groups >= 3 and val_fraction > 0:
        n_val = max(n_val, 1)
    while n_groups - n_test - n_val < 1 and n_test + n_val > 0:
        if n_val > 0:
            n_val -= 1
        else:
            n_test -= 1
    return n_test, n_val


def _splits_from_csv(imageset: ImageSet, split_csv: str | os.PathLike) -> np.ndarray:
    path = os.fspath(split_csv)
    if not os.path.isfile(path):
        raise MedclError(f"The split file '{path}' does not exist; check data.split_csv.")
    index_of: dict[str, list[int]] = {}
    for i, image_id in enumerate(imageset.ids):
        index_of.setdefault(str(image_id), []).append(i)
    slices_of: dict[str, list[int]] = {}
    for i, vol in enumerate(imageset.volume_ids):
        if vol != "":
            slices_of.setdefault(str(vol), []).append(i)
    split = np.full(len(imageset), "", dtype=object)
    try:
        _read_split_rows(path, split, index_of, slices_of)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise MedclError(
            f"The split file '{path}' is not a text CSV file ({str(exc).splitlines()[0][:60]}); "
            "give a CSV with the columns 'id' and 'split'."
        ) from None
    missing = [str(imageset.ids[i]) for i in np.flatnonzero(split == "")]
    if missing:
        shown = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
        raise MedclError(
            f"The split file '{path}' gives no split for {len(missing)} images ({shown}); "
            "add a row for every image."
        )
    _warn_split_groups(imageset, split, path)
    return split


def _warn_split_groups(imageset: ImageSet, split: np.ndarray, path: str) -> None:
    """One line on stderr when the CSV puts images of one volume (or group) in two splits.

    Slices of one patient in train and test let the test score what training has seen, so
    the CSV is accepted (the user may mean it) but never without a word.
    """
    import sys

    group_of, _ = _groups(imageset)
    named: dict[int, str] = {}
    spans: dict[int, set[str]] = {}
    for i, g in enumerate(group_of.tolist()):
        if g not in named:
            grp, vol = imageset.group_ids[i], imageset.volume_ids[i]
            named[g] = f"group '{grp}'" if grp != "" else f"volume '{vol}'"
        spans.setdefault(g, set()).add(str(split[i]))
    leaky = [g for g, names in spans.items() if len(names) > 1]
    if not leaky:
        return
    shown = "; ".join(
        f"{named[g]} in {' and '.join(s for s in SPLITS if s in spans[g])}" for g in leaky[:3]
    )
    more = f"; and {len(leaky) - 3} more" if len(leaky) > 3 else ""
    print(
        f"medcl: warning: the split file '{path}' puts the slices of one volume in more than "
        f"one split ({shown}{more}), so test images share a volume with training images; "
        "list each volume id once (it covers all its slices) to keep volumes whole.",
        file=sys.stderr,
        flush=True,
    )


def _read_split_rows(
    path: str, split: np.ndarray, index_of: dict[str, list[int]], slices_of: dict[str, list[int]]
) -> None:
    """Fill ``split`` from the rows of the CSV file ``path``."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        fields = [c.strip() for c in reader.fieldnames or []]
        if "id" not in fields or "split" not in fields:
            raise MedclError(
                f"The split file '{path}' has columns {fields}; it needs the columns 'id' and "
                "'split'."
            )
        reader.fieldnames = fields
        for line, row in enumerate(reader, start=2):
            image_id = (row.get("id") or "").strip()
            name = (row.get("split") or "").strip().lower()
            if name not in SPLITS:
                raise MedclError(
                    f"The split file '{path}' line {line} has split '{row.get('split')}'; use "
                    "train, val or test."
                )
            rows = index_of.get(image_id, slices_of.get(image_id))
            if rows is None:
                raise MedclError(
                    f"The split file '{path}' line {line} names '{image_id}', which is not an "
                    "image id (file stem, or stem:slice for volumes) nor a volume id."
                )
            clash = {str(s) for s in split[rows] if s not in ("", name)}
            if clash:
                raise MedclError(
                    f"The split file '{path}' line {line} puts '{image_id}' in {name} but an "
                    f"earlier line put it in {sorted(clash)[0]}; list each image once."
                )
            split[rows] = name


def stratified_group_split(
    groups: np.ndarray,
    strata: np.ndarray,
    val_fraction: float,
    test_fraction: float,
    seed: int = 0,
) -> np.ndarray:
    """``(N,)`` 'train' / 'val' / 'test': whole groups, each stratum split in the same shares.

    Within each stratum (e.g. an appearance group) the groups are shuffled with ``seed`` and
    dealt, one at a time, to the split furthest below its share of that stratum's images
    (``target - count``; ties go to test, then val, then train). Every image of a group
    lands in one split, so tiles of one field cannot leak from train into test. A group
    that spans strata is dealt with the stratum of its first image.

    Args:
        groups: ``(N,)`` group of each image (any hashable values).
        strata: ``(N,)`` stratum of each image.
        val_fraction, test_fraction: shares of each stratum's images, each in [0, 1).
        seed: seed of the shuffle.

    Example::

        >>> stratified_group_split(np.array([0, 0, 1, 2]), np.array(list("aaab")), 0, 0.5)
    """
    groups, strata = np.asarray(groups), np.asarray(strata)
    if groups.shape != strata.shape:
        raise ValueError(f"groups {groups.shape} and strata {strata.shape} differ in shape")
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise MedclError(
            f"data.val_fraction={val_fraction} and data.test_fraction={test_fraction} must "
            "each be in [0, 1) with a sum below 1."
        )
    rng = np.random.default_rng(seed)
    out = np.full(len(groups), "train", dtype=object)
    members: dict[object, list[int]] = {}
    for i, g in enumerate(groups.tolist()):
        members.setdefault(g, []).append(i)
    by_stratum: dict[object, list[object]] = {}
    for g, idx in members.items():
        by_stratum.setdefault(strata[idx[0]], []).append(g)
    shares = {"test": test_fraction, "val": val_fraction, "train": 1 - val_fraction - test_fraction}
    for stratum in sorted(by_stratum, key=str):
        names = by_stratum[stratum]
        total = sum(len(members[g]) for g in names)
        count = dict.fromkeys(shares, 0)
        for k in rng.permutation(len(names)):
            g = names[int(k)]
            name = max(shares, key=lambda s: shares[s] * total - count[s])
            out[members[g]] = name
            count[name] += len(members[g])
    return out


def label_subset(
    train_indices: np.ndarray, has_mask: np.ndarray, fraction: float, seed: int = 0
) -> np.ndarray:
    """The indices of a reproducible ``fraction`` of the training images with masks.

    Takes ``max(1, round(fraction * n))`` of the ``n`` images in ``train_indices`` whose
    ``has_mask`` is True, as a prefix of one seeded permutation, so subsets are nested across
    fractions for the same seed. The result is sorted.

    Args:
        train_indices: ``(M,)`` int indices of the training images (their order is ignored).
        has_mask: ``(N,)`` bool over all images.
        fraction: share of the masked training images, in (0, 1].
        seed: seed of the permutation.
    """
    if not 0 < fraction <= 1:
        raise MedclError(
            f"label fraction {fraction} is outside (0, 1]; use e.g. 0.05 for 5% of the masks."
        )
    train = np.unique(np.asarray(train_indices, dtype=np.int64))
    has_mask = np.asarray(has_mask, dtype=bool)
    candidates = train[has_mask[train]]
    if len(candidates) == 0:
        raise MedclError(
            "No training image has a mask, so there is nothing to fine-tune on; add masks "
            "(data.masks) or put masked images in the training split."
        )
    k = max(1, _round_half_up(fraction * len(candidates)))
    perm = np.random.default_rng(seed).permutation(len(candidates))
    return np.sort(candidates[perm[:k]])
