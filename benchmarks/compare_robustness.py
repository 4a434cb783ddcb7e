"""Paired differences between two sets of ``stratify_robustness.py`` runs: one setting
against another on the same variants, with a 95% t interval over the variants.

    python benchmarks/compare_robustness.py --base runs/strat-val-k68/study.json \\
        --candidate runs/strat-val-elastic/study.json [--rule stability]

Reads the ``study.json`` that ``stratify_robustness.py`` writes beside its ``table.md`` (the
unrounded values). Several files may be given on each side (their rows are joined by variant
name); only the variants on both sides are compared. Printed per variant: k, mapping, kNN and
linear of each side; then for mapping, kNN and linear the differences (candidate − base),
their mean with its interval (:func:`medcl.evaluate.paired_difference`), and the worst
variant of each side.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from medcl.evaluate import paired_difference

METRICS = {"mapping": "majority mapping", "kNN": "kNN", "linear": "linear probe"}


def read_study(path: Path, rule: str) -> dict[str, dict[str, float]]:
    """``{variant: {"k": k, "mapping": .., "kNN": .., "linear": ..}}`` for ``rule``'s rows."""
    return {
        r["variant"]: {"k": r["k"]} | {m: r[key] for m, key in METRICS.items()}
        for r in json.loads(path.read_text())
        if r["k_rule"] == rule
    }


def paired(base: dict, cand: dict) -> list[str]:
    names = [n for n in base if n in cand]
    if len(names) < 2:
        raise SystemExit("compare_robustness.py: fewer than two variants on both sides.")
    out = [f"{n}: base {base[n]}, candidate {cand[n]}" for n in names]
    for m in METRICS:
        b, c = [base[n][m] for n in names], [cand[n][m] for n in names]
        d = paired_difference(c, b)
        out.append(
            f"{m}: differences {np.round(np.subtract(c, b), 3).tolist()}, mean {d['mean']:+.4f} "
            f"(95% CI {d['low']:+.3f} to {d['high']:+.3f}); worst {min(b):.3f} -> {min(c):.3f}"
        )
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base", nargs="+", type=Path, required=True, help="study.json files")
    ap.add_argument("--candidate", nargs="+", type=Path, required=True, help="study.json files")
    ap.add_argument("--rule", default="stability", help="the k rule whose rows are compared")
    args = ap.parse_args(argv)
    base = {k: v for p in args.base for k, v in read_study(p, args.rule).items()}
    cand = {k: v for p in args.candidate for k, v in read_study(p, args.rule).items()}
    print("\n".join(paired(base, cand)))


if __name__ == "__main__":
    main()
