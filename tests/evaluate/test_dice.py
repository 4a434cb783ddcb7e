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


def _rows(table):
    return [{"method": m, "label_fraction": f, "seed": s, "dice": d} for m, f, s, d in table]


def test_paired_comparisons_are_paired_by_seed_with_a_t_interval():
    from scipy import stats

    from medcl.evaluate import comparison_sentence, paired_comparisons

    rows = _rows(
        [
            ("random", 0.05, 0, 0.70),
            ("random", 0.05, 1, 0.50),
            ("random", 0.05, 2, 0.60),
            ("ufc", 0.05, 0, 0.74),
            ("ufc", 0.05, 1, 0.56),
            ("ufc", 0.05, 2, 0.65),
        ]
    )
    (c,) = paired_comparisons(rows, baselines=("random",))
    # paired: +4, +6, +5 -> mean 5, sd 1, t(0.975, 2) = 4.303: 5 ± 2.48. Unpaired, the
    # seed-to-seed spread (sd 10) would swamp the same mean difference.
    d = np.array([4.0, 6.0, 5.0])
    half = stats.t.ppf(0.975, 2) * d.std(ddof=1) / np.sqrt(3)
    assert c["mean"] == pytest.approx(d.mean())
    assert (c["low"], c["high"]) == pytest.approx((d.mean() - half, d.mean() + half))
    assert c["ahead"] == 3 and c["n"] == 3
    assert comparison_sentence(c) == (
        f"UFC is ahead of random init at 5% labels by {d.mean():.1f} Dice, 95% CI "
        f"{d.mean() - half:.1f} to {d.mean() + half:.1f}, 3/3 seeds."
    )


def test_comparison_sentences_say_when_nothing_is_detectable():
    from medcl.evaluate import comparison_sentence, paired_comparisons

    rows = _rows(
        [
            ("simclr", 0.01, 0, 0.70),
            ("simclr", 0.01, 1, 0.50),
            ("ufc", 0.01, 0, 0.75),
            ("ufc", 0.01, 1, 0.45),
        ]
    )
    (c,) = paired_comparisons(rows)
    assert c["baseline"] == "simclr" and c["mean"] == pytest.approx(0.0)
    assert "no difference detectable" in comparison_sentence(c)
    behind = _rows(
        [("simclr", 0.1, s, 0.8) for s in range(3)]
        + [("ufc", 0.1, s, 0.7 + 0.01 * s) for s in range(3)]
    )
    (c,) = paired_comparisons(behind)
    assert comparison_sentence(c).startswith("UFC is behind SimCLR at 10% labels by 9.0 Dice")
    one = paired_comparisons(_rows([("random", 0.1, 0, 0.5), ("ufc", 0.1, 0, 0.6)]))
    assert "one seed" in comparison_sentence(one[0])


def test_label_trend_flags_name_a_falling_method():
    from medcl.evaluate import label_trend_flags

    rising = _rows(
        [("random", f, s, 0.5 + f / 10 + 0.01 * s) for f in (0.1, 1.0) for s in range(3)]
    )
    assert label_trend_flags(rising) == []
    falling = _rows(
        [("random", 0.1, s, 0.6 + 0.01 * s) for s in range(3)]
        + [("random", 1.0, s, 0.5 + 0.012 * s) for s in range(3)]
    )
    (line,) = label_trend_flags(falling)
    assert line.startswith(
        "random init: Dice falls from 10% to 100% labels (-9.8, 95% CI -10.3 to -9.3"
    )
    noisy = _rows(
        [
            ("random", 0.1, 0, 0.6),
            ("random", 0.1, 1, 0.5),
            ("random", 1.0, 0, 0.52),
            ("random", 1.0, 1, 0.56),
        ]
    )
    (line,) = label_trend_flags(noisy)
    assert "dips (within noise)" in line


def test_results_markdown_holds_table_comparisons_and_throughput():
    from medcl.evaluate import paper_note, results_markdown

    rows = [
        {
            **r,
            "images_per_s": {"pretrain": 100.0, "finetune": 50.0},
            "seconds": {"pretrain": 10.0, "finetune": 2.0},
        }
        for r in _rows(
            [
                (m, f, s, 0.5 + 0.1 * (m == "ufc") + 0.01 * s + f / 10)
                for m in ("random", "simclr", "ufc")
                for f in (0.05, 1.0)
                for s in range(3)
            ]
        )
    ]
    md = results_markdown(
        {"rows": rows, "k": 4, "agreement": {"appearance": {"nmi": 0.5, "ari": 0.25}}}
    )
    assert "| ufc |" in md and "k = 4; NMI with the appearance groups 0.50, ARI 0.25" in md
    assert "method minus random init" in md and "method minus SimCLR" in md
    assert "UFC is ahead of SimCLR at 5% labels by 10.0 Dice" in md
    assert "rises (or stays) with more labels for every method" in md
    assert "| ufc | 100.0 | 10.0 | 50.0 | 2.0 |" in md
    assert "paper" not in md.lower()
    assert paper_note("isic2017").startswith("The UFC paper, ISIC 2017") and paper_note(None) == ""
