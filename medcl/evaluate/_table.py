"""Result tables in the layout of the UFC paper's Table I: mean (+- std) Dice %."""

from __future__ import annotations

from collections import defaultdict

import numpy as np


def summarize(rows: list[dict]) -> dict:
    """``{method: {fraction: (mean %, std %, n)}}`` from result rows."""
    acc: dict = defaultdict(lambda: defaultdict(list))
    for r in rows:
        acc[r["method"]][float(r["label_fraction"])].append(100.0 * r["dice"])
    return {
        m: {f: (float(np.mean(v)), float(np.std(v)), len(v)) for f, v in sorted(fr.items())}
        for m, fr in acc.items()
    }


def format_table(rows: list[dict], methods: list[str] | None = None, fmt: str = "md") -> str:
    """A methods x label-fractions table of mean (+- std) Dice %, markdown or CSV."""
    summary = summarize(rows)
    methods = [m for m in (methods or list(summary)) if m in summary]
    fractions = sorted({f for m in methods for f in summary[m]})
    header = ["method", *[f"{f * 100:g}% labels" for f in fractions]]
    lines = []
    for m in methods:
        cells = [m]
        for f in fractions:
            if f in summary[m]:
                mean, std, n = summary[m][f]
                cells.append(f"{mean:.1f} (±{std:.1f})" if fmt == "md" else f"{mean:.2f},{std:.2f}")
            else:
                cells.append("")
        lines.append(cells)
    if fmt == "csv":
        head = ["method"] + [f"{f:g}_mean,{f:g}_std" for f in fractions]
        return "\n".join([",".join(head)] + [",".join(c) for c in lines]) + "\n"
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(c) + " |" for c in lines]
    return "\n".join(out) + "\n"


# The UFC paper's ISIC 2017 Table I at 5% labels (Dice %), for the demo's comparison line.
PAPER_ISIC_5PCT = {"random": 79.3, "simclr": 80.1, "ufc": 81.9}


def compare_to_baselines(
    rows: list[dict], method: str = "ufc", fractions: tuple[float, ...] = (0.05, 0.1)
) -> list[str]:
    """One sentence per low label fraction: ``method`` minus each baseline, in Dice points.

    Differences are paired by seed (every method sees the same labelled subset and decoder
    initialisation for a seed), given as mean ± std over seeds with the number of seeds in
    which ``method`` is ahead.
    """
    dice = {
        (r["method"], float(r["label_fraction"]), (r["seed"], r.get("fold", 0))): 100 * r["dice"]
        for r in rows
    }
    baselines = list(dict.fromkeys(r["method"] for r in rows if r["method"] != method))
    lines = []
    for f in fractions:
        parts = []
        for base in baselines:
            seeds = sorted(
                s for (m, fr, s) in dice if m == method and fr == f and (base, f, s) in dice
            )
            if not seeds:
                continue
            diffs = np.array([dice[(method, f, s)] - dice[(base, f, s)] for s in seeds])
            parts.append(
                f"{diffs.mean():+.1f} (±{diffs.std():.1f}) vs {base}, "
                f"ahead in {(diffs > 0).sum()}/{len(seeds)} seeds"
            )
        if parts:
            lines.append(f"{method} at {f * 100:g}% labels: " + "; ".join(parts))
    if lines and 0.05 in fractions:
        p = PAPER_ISIC_5PCT
        lines.append(
            f"(paper, ISIC 2017 at 5%: {p['ufc'] - p['random']:+.1f} vs random, "
            f"{p['ufc'] - p['simclr']:+.1f} vs simclr)"
        )
    return lines
