"""Paired differences between two sets of ``stratify_robustness.py`` tables: one setting
against another on the same variants, with a 95% t interval over the variants.

    python benchmarks/compare_robustness.py --base runs/strat-val-k68/table.md \\
        --candidate runs/strat-val-elastic/table.md [--rule stability]

Several tables may be given on each side (their rows are joined by variant name); only the
variants on both sides are compared. Printed per variant: k, mapping, kNN and linear of
each side; then for mapping, kNN and linear the differences (candidate − base), their mean
with its interval, and the worst variant of each side.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from scipy import stats

METRICS = {"mapping": 4, "kNN": 5, "linear": 6}  # column of each in a robustness table


def read_table(path: Path, rule: str) -> dict[str, dict[str, float]]:
    """``{variant: {"k": k, "mapping": .., "kNN": .., "linear": ..}}`` for ``rule``'s rows."""
    rows = {}
    for line in path.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 7 or cells[1] != rule:
            continue
        rows[cells[0]] = {"k": float(cells[3])} | {m: float(cells[i]) for m, i in METRICS.items()}
    return rows


def paired(base: dict, cand: dict) -> list[str]:
    names = [n for n in base if n in cand]
    if len(names) < 2:
        raise SystemExit("compare_robustness.py: fewer than two variants on both sides.")
    out = [f"{n}: base {base[n]}, candidate {cand[n]}" for n in names]
    for m in METRICS:
        d = np.array([cand[n][m] - base[n][m] for n in names])
        half = stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d))
        out.append(
            f"{m}: differences {np.round(d, 3).tolist()}, mean {d.mean():+.4f} "
            f"(95% CI {d.mean() - half:+.3f} to {d.mean() + half:+.3f}); worst "
            f"{min(base[n][m] for n in names):.3f} -> {min(cand[n][m] for n in names):.3f}"
        )
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base", nargs="+", type=Path, required=True)
    ap.add_argument("--candidate", nargs="+", type=Path, required=True)
    ap.add_argument("--rule", default="stability", help="the k rule whose rows are compared")
    args = ap.parse_args(argv)
    base = {k: v for p in args.base for k, v in read_table(p, args.rule).items()}
    cand = {k: v for p in args.candidate for k, v in read_table(p, args.rule).items()}
    print("\n".join(paired(base, cand)))


if __name__ == "__main__":
    main()
