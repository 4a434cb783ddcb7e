"""Paired comparisons of methods over seeds (and folds), with 95% confidence intervals.

Every benchmark cell of a seed shares the labelled subset and the decoder's initialisation
across methods, so two methods are compared by the per-seed *difference* of their test
Dice, not by their means: ``d_s = dice(A, s) - dice(B, s)``. The interval is Student's t
over those differences, ``mean(d) ± t(0.975, n - 1) · sd(d) / sqrt(n)`` (with ``n - 1`` in
the standard deviation); with one seed there is no interval.

A comparison reads "ahead" or "behind" only when its whole interval lies on one side of
zero; otherwise "no difference detectable".
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = [
    "comparison_sentence",
    "comparisons_markdown",
    "label_trend_flags",
    "paired_comparisons",
    "paired_difference",
]

DISPLAY = {
    "random": "random init",
    "simclr": "SimCLR",
    "moco": "MoCo v2",
    "byol": "BYOL",
    "glcl": "GLCL",
    "pcl": "PCL",
    "ufc": "UFC",
    "ld": "LD",
}


def _name(method: str) -> str:
    return DISPLAY.get(method, method)


def paired_difference(a: Sequence[float], b: Sequence[float], level: float = 0.95) -> dict:
    """Mean of ``a - b`` with its two-sided t interval, and how often ``a`` is ahead.

    >>> d = paired_difference([3.0, 4.0, 5.0], [1.0, 2.0, 3.0])
    >>> d["mean"], d["n"], d["ahead"], round(d["low"], 3), round(d["high"], 3)
    (2.0, 3, 3, 2.0, 2.0)
    """
    from scipy import stats

    a_, b_ = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a_.shape != b_.shape:
        raise ValueError(f"paired values differ in length: {a_.shape} vs {b_.shape}")
    d = a_ - b_
    n = len(d)
    mean = float(d.mean()) if n else float("nan")
    if n >= 2:
        half = float(stats.t.ppf(0.5 + level / 2, n - 1) * d.std(ddof=1) / math.sqrt(n))
    else:
        half = float("nan")
    return {
        "mean": mean,
        "low": mean - half,
        "high": mean + half,
        "n": n,
        "ahead": int((d > 0).sum()),
    }


def _dice_by_cell(rows: list[dict]) -> dict:
    """``{(method, fraction): {(seed, fold): Dice %}}``."""
    out: dict = {}
    for r in rows:
        key = (r["method"], float(r["label_fraction"]))
        out.setdefault(key, {})[(r["seed"], r.get("fold", 0))] = 100.0 * r["dice"]
    return out


def paired_comparisons(
    rows: list[dict], baselines: Sequence[str] = ("random", "simclr")
) -> list[dict]:
    """Every method against each baseline present, at every label fraction.

    Returns dicts with ``method``, ``baseline``, ``fraction`` and the fields of
    :func:`paired_difference`, in the order methods first appear in ``rows``.
    """
    cells = _dice_by_cell(rows)
    methods = list(dict.fromkeys(r["method"] for r in rows))
    fractions = sorted({f for _, f in cells})
    out = []
    for base in baselines:
        if base not in methods:
            continue
        for method in methods:
            if method == base:
                continue
            for f in fractions:
                a, b = cells.get((method, f), {}), cells.get((base, f), {})
                keys = sorted(set(a) & set(b))
                if not keys:
                    continue
                d = paired_difference([a[k] for k in keys], [b[k] for k in keys])
                out.append({"method": method, "baseline": base, "fraction": f, **d})
    return out


def comparison_sentence(c: dict) -> str:
    """One sentence for a :func:`paired_comparisons` entry.

    >>> comparison_sentence({"method": "ufc", "baseline": "simclr", "fraction": 0.05,
    ...     "mean": 2.1, "low": 0.8, "high": 3.4, "n": 5, "ahead": 5})
    'UFC is ahead of SimCLR at 5% labels by 2.1 Dice, 95% CI 0.8 to 3.4, 5/5 seeds.'
    """
    who, base, pct = _name(c["method"]), _name(c["baseline"]), f"{c['fraction'] * 100:g}%"
    seeds = f"{c['ahead']}/{c['n']} seeds ahead"
    if c["n"] < 2 or not math.isfinite(c["low"]):
        return (
            f"{who} vs {base} at {pct} labels: {c['mean']:+.1f} Dice from one seed; no "
            "interval, no conclusion."
        )
    ci = f"95% CI {c['low']:.1f} to {c['high']:.1f}"
    if c["low"] > 0:
        return (
            f"{who} is ahead of {base} at {pct} labels by {c['mean']:.1f} Dice, {ci}, "
            f"{c['ahead']}/{c['n']} seeds."
        )
    if c["high"] < 0:
        return (
            f"{who} is behind {base} at {pct} labels by {-c['mean']:.1f} Dice, {ci}, "
            f"{c['ahead']}/{c['n']} seeds ahead."
        )
    return (
        f"{who} vs {base} at {pct} labels: no difference detectable ({c['mean']:+.1f} Dice, "
        f"{ci}, {seeds})."
    )


def comparisons_markdown(rows: list[dict], baselines: Sequence[str] = ("random", "simclr")) -> str:
    """Tables of paired differences (one per baseline) followed by one sentence each."""
    comps = paired_comparisons(rows, baselines)
    if not comps:
        return ""
    fractions = sorted({c["fraction"] for c in comps})
    out = []
    for base in dict.fromkeys(c["baseline"] for c in comps):
        mine = [c for c in comps if c["baseline"] == base]
        out += [
            f"Paired difference in test Dice, method minus {_name(base)} (mean [95% CI], "
            "seeds ahead):",
            "",
            "| method | " + " | ".join(f"{f * 100:g}% labels" for f in fractions) + " |",
            "|" + "---|" * (len(fractions) + 1),
        ]
        for method in dict.fromkeys(c["method"] for c in mine):
            cells = []
            for f in fractions:
                c = next((c for c in mine if c["method"] == method and c["fraction"] == f), None)
                if c is None:
                    cells.append("")
                elif c["n"] < 2:
                    cells.append(f"{c['mean']:+.1f} (1 seed)")
                else:
                    mark = " ✔" if c["low"] > 0 else (" ✘" if c["high"] < 0 else "")
                    cells.append(
                        f"{c['mean']:+.1f} [{c['low']:+.1f}, {c['high']:+.1f}] "
                        f"{c['ahead']}/{c['n']}{mark}"
                    )
            out.append(f"| {_name(method)} | " + " | ".join(cells) + " |")
        out.append("")
    out += ["✔: interval above 0; ✘: interval below 0.", ""]
    out += [comparison_sentence(c) for c in comps]
    return "\n".join(out) + "\n"


def label_trend_flags(rows: list[dict]) -> list[str]:
    """A sentence for each method whose mean Dice falls from one label fraction to the next.

    The drop is paired by seed; "falls" when its 95% interval lies below 0, "dips (within
    noise)" otherwise. An empty list means every method's Dice rises (or stays) as labels
    are added.
    """
    cells = _dice_by_cell(rows)
    methods = list(dict.fromkeys(r["method"] for r in rows))
    out = []
    for method in methods:
        fractions = sorted(f for m, f in cells if m == method)
        for lo, hi in zip(fractions, fractions[1:], strict=False):
            a, b = cells[(method, hi)], cells[(method, lo)]
            keys = sorted(set(a) & set(b))
            if not keys:
                continue
            d = paired_difference([a[k] for k in keys], [b[k] for k in keys])
            if d["mean"] >= 0:
                continue
            kind = "falls" if d["n"] >= 2 and d["high"] < 0 else "dips (within noise)"
            ci = f", 95% CI {d['low']:.1f} to {d['high']:.1f}" if math.isfinite(d["low"]) else ""
            out.append(
                f"{_name(method)}: Dice {kind} from {lo * 100:g}% to {hi * 100:g}% labels "
                f"({d['mean']:+.1f}{ci}, {d['n']} seeds)."
            )
    return out
