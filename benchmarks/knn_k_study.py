"""Which k for the kNN probe (``evaluate.knn_k``)? A study on finished validation runs.

For every run directory given (finished ``medcl stratify`` runs on a validation split), this
reads the latents and scores, for every k in ``--ks``:

* kNN accuracy: each evaluation latent gets the majority label of its k nearest training
  latents (cosine; :func:`medcl.evaluate.knn_predict`, what the evaluation stage reports);
* the majority mapping of the run's own clustering (``train_clusters.npy``, which the
  clustering stage writes) when the evaluation images get their stratum the
  ``cluster.assign=knn`` way with that k.

No training is run, and nothing is refitted: only the probe's k changes. Use it on
validation runs only.

    python benchmarks/knn_k_study.py runs/strat-val/* [--ks 1 3 5 10 20]
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
from k_rule_study import load_run  # noqa: E402

from medcl._load import load_npy  # noqa: E402
from medcl.evaluate import knn_predict, majority_mapping  # noqa: E402


def study_run(run: Path, ks: list[int]) -> dict[int, tuple[float, float]]:
    """``{k: (kNN accuracy, majority mapping with knn assignment)}`` of one run."""
    _, z, tr, te, y_tr, y_te, mapped = load_run(run)
    clusters = load_npy(run / "train_clusters.npy")
    n_clusters = int(clusters.max()) + 1
    m = majority_mapping(clusters[mapped], y_tr[mapped], n_clusters)
    out = {}
    for k in ks:
        knn = float((knn_predict(z[tr], y_tr, z[te], k) == y_te).mean())
        strata = knn_predict(z[tr], clusters, z[te], k)
        out[k] = (knn, float((m[strata] == y_te).mean()))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", type=Path, help="finished medcl stratify run directories")
    ap.add_argument("--ks", nargs="+", type=int, default=[1, 3, 5, 10, 20])
    args = ap.parse_args()
    results = {}
    for run in args.runs:
        if not (run / "train_clusters.npy").exists():
            print(f"{run}: not clustered yet, skipped")
            continue
        results[run.name] = study_run(run, args.ks)
    print("| run | " + " | ".join(f"k={k}: kNN, mapping" for k in args.ks) + " |")
    print("|---|" + "---|" * len(args.ks))
    for name, r in results.items():
        cells = " | ".join(f"{r[k][0]:.3f}, {r[k][1]:.3f}" for k in args.ks)
        print(f"| {name} | {cells} |")
    for label, agg in (("worst", np.min), ("mean", np.mean)):
        cells = " | ".join(
            f"{agg([r[k][0] for r in results.values()]):.4f}, "
            f"{agg([r[k][1] for r in results.values()]):.4f}"
            for k in args.ks
        )
        print(f"| {label} | {cells} |")


if __name__ == "__main__":
    main()
