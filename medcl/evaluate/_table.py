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


# The UFC paper's ISIC 2017 Table I at 5% labels (Dice %): quoted only for ISIC 2017 runs.
PAPER_ISIC_5PCT = {"random": 79.3, "simclr": 80.1, "ufc": 81.9}


def paper_note(layout: str | None) -> str:
    """The paper's margins, for runs on the paper's own data set (ISIC 2017); else ''."""
    if layout != "isic2017":
        return ""
    p = PAPER_ISIC_5PCT
    return (
        f"The UFC paper, ISIC 2017 at 5% labels: UFC {p['ufc'] - p['random']:+.1f} Dice vs "
        f"random init, {p['ufc'] - p['simclr']:+.1f} vs SimCLR."
    )


def throughput_markdown(rows: list[dict], methods: list[str] | None = None) -> str:
    """Median images/s and seconds of pretraining (per seed) and fine-tuning (per cell)."""
    methods = [m for m in (methods or list(dict.fromkeys(r["method"] for r in rows)))]
    lines = [
        "| method | pretrain images/s | pretrain s (per seed) | fine-tune images/s | "
        "fine-tune s (per cell) |",
        "|---|---|---|---|---|",
    ]
    any_row = False
    for m in methods:
        mine = [r for r in rows if r["method"] == m]
        if not mine:
            continue
        any_row = True
        per_seed = {r["seed"]: r for r in mine}.values()

        def med(values) -> str:
            v = [x for x in values if x is not None]
            return f"{float(np.median(v)):.1f}" if v else "–"

        pre_ips = med(r.get("images_per_s", {}).get("pretrain") for r in per_seed)
        pre_s = med((r.get("seconds") or {}).get("pretrain") or None for r in per_seed)
        ft_ips = med(r.get("images_per_s", {}).get("finetune") for r in mine)
        ft_s = med((r.get("seconds") or {}).get("finetune") for r in mine)
        lines.append(f"| {m} | {pre_ips} | {pre_s} | {ft_ips} | {ft_s} |")
    if not any_row:
        return ""
    return (
        "Throughput (medians; images/s counts the images of the optimiser steps alone, "
        "seconds the whole stage):\n\n" + "\n".join(lines) + "\n"
    )


def results_markdown(
    results: dict, methods: list[str] | None = None, layout: str | None = None
) -> str:
    """``table.md``: the Dice table, paired comparisons, label-trend flags, k, throughput."""
    from medcl.evaluate._compare import comparisons_markdown, label_trend_flags

    rows = results["rows"]
    n_seeds = len({(r["seed"], r.get("fold", 0)) for r in rows})
    parts = [
        f"Test Dice % (mean (± std) over {n_seeds} seed{'s' if n_seeds != 1 else ''}{' and folds' if results.get('folds') else ''}):",
        "",
        format_table(rows, methods),
    ]
    if results.get("k"):
        agree = "".join(
            f"; NMI with the {name} groups {a['nmi']:.2f}, ARI {a['ari']:.2f}"
            for name, a in (results.get("agreement") or {}).items()
        )
        parts.append(f"UFC pseudo-classes: k = {results['k']}{agree}.\n")
    comparisons = comparisons_markdown(rows)
    if comparisons:
        parts.append(comparisons)
    flags = label_trend_flags(rows)
    parts.append(
        "Dice against label fraction: "
        + ("rises (or stays) with more labels for every method.\n" if not flags else "")
    )
    parts += [f"- {line}" for line in flags]
    if flags:
        parts.append("")
    note = paper_note(layout)
    if note:
        parts.append(note + "\n")
    by = reference_markdown(rows, methods)
    if by:
        parts.append(by)
    tp = throughput_markdown(rows, methods)
    if tp:
        parts.append(tp)
    return "\n".join(parts)


def reference_markdown(rows: list[dict], methods: list[str] | None = None) -> str:
    """Test Dice % within each reference group (mean over seeds), at the two lowest fractions."""
    rows = [r for r in rows if r.get("dice_by")]
    if not rows:
        return ""
    methods = [m for m in (methods or list(dict.fromkeys(r["method"] for r in rows)))]
    fractions = sorted({float(r["label_fraction"]) for r in rows})[:2]
    out = []
    for name in rows[0]["dice_by"]:
        groups = sorted({g for r in rows for g in r["dice_by"].get(name, {})})
        head = [f"{g} {f * 100:g}%" for f in fractions for g in groups]
        out += [
            f"Test Dice % by {name} group (mean over seeds; the groups judge only):",
            "",
            "| method | " + " | ".join(head) + " |",
            "|" + "---|" * (len(head) + 1),
        ]
        for m in methods:
            cells = []
            for f in fractions:
                for g in groups:
                    v = [
                        100 * r["dice_by"][name][g]
                        for r in rows
                        if r["method"] == m and float(r["label_fraction"]) == f
                        and g in r["dice_by"].get(name, {})
                    ]  # fmt: skip
                    v = [x for x in v if np.isfinite(x)]
                    cells.append(f"{np.mean(v):.1f}" if v else "")
            if any(cells):
                out.append(f"| {m} | " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out) + "\n"
