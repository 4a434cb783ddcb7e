import numpy as np
import pytest

from medcl.evaluate import dice_scores, format_table, summarize


def test_dice_hand_built_masks():
    target = np.zeros((1, 4, 4), dtype=int)
    target[0, :2, :2] = 1  # 4 pixels of class 1
    target[0, 2:, 2:] = 2  # 4 pixels of class 2
    pred = np.zeros_like(target)
    pred[0, :2, :1] = 1  # 2 of the 4 class-1 pixels, no false positive
    pred[0, 2:, 2:] = 2  # class 2 exact
    pred[0, 0, 3] = 2  # one false positive for class 2
    s = dice_scores(pred, target, num_classes=3)
    d1 = 2 * 2 / (2 + 4)
    d2 = 2 * 4 / (5 + 4)
    assert s["dice_per_class"] == pytest.approx([d1, d2])
    assert s["dice"] == pytest.approx((d1 + d2) / 2)


def test_dice_per_volume_pools_slices():
    target = np.zeros((2, 2, 2), dtype=int)
    target[0, 0, 0] = 1  # class 1 only in slice 0
    pred = np.zeros_like(target)
    pred[0, 0, 0] = 1
    pred[1, 0, 0] = 1  # a false positive in slice 1
    per_image = dice_scores(pred, target, 2)
    per_volume = dice_scores(pred, target, 2, groups=np.array(["v", "v"]))
    # Per image, slice 1 has no class-1 truth, so MONAI's ignore_empty skips it and its false
    # positive goes unpunished; pooled per volume, the false positive counts.
    assert per_image["dice"] == pytest.approx(1.0)
    assert per_volume["dice"] == pytest.approx(2 * 1 / (2 + 1))


def test_absent_class_is_skipped_not_zero():
    target = np.zeros((1, 3, 3), dtype=int)
    target[0, 0] = 1
    s = dice_scores(target.copy(), target, 3)  # class 2 absent everywhere
    assert s["dice_per_class"][0] == pytest.approx(1.0)
    assert np.isnan(s["dice_per_class"][1])
    assert s["dice"] == pytest.approx(1.0)


def test_table_layout_and_values():
    rows = [
        {"method": "random", "label_fraction": 0.05, "seed": 0, "dice": 0.5},
        {"method": "random", "label_fraction": 0.05, "seed": 1, "dice": 0.7},
        {"method": "ufc", "label_fraction": 0.05, "seed": 0, "dice": 0.8},
    ]
    s = summarize(rows)
    assert s["random"][0.05] == pytest.approx((60.0, 10.0, 2))
    md = format_table(rows, ["random", "ufc"])
    assert "| random | 60.0 (±10.0) |" in md and "| ufc | 80.0 (±0.0) |" in md
    assert format_table(rows, fmt="csv").splitlines()[1] == "random,60.00,10.00"


def test_compare_to_baselines_is_paired_by_seed():
    from medcl.evaluate import compare_to_baselines

    rows = [
        {"method": m, "label_fraction": 0.05, "seed": s, "dice": d}
        for m, s, d in [
            ("random", 0, 0.70),
            ("random", 1, 0.50),
            ("simclr", 0, 0.75),
            ("simclr", 1, 0.55),
            ("ufc", 0, 0.74),
            ("ufc", 1, 0.60),
        ]
    ]
    lines = compare_to_baselines(rows)
    # paired: ufc - random = +4, +10 -> +7 (±3); ufc - simclr = -1, +5 -> +2 (±3)
    assert lines[0] == (
        "ufc at 5% labels: +7.0 (±3.0) vs random, ahead in 2/2 seeds; "
        "+2.0 (±3.0) vs simclr, ahead in 1/2 seeds"
    )
    assert "+2.6 vs random" in lines[1] and "+1.8 vs simclr" in lines[1]
