"""Which stability threshold chooses a good k on real latents? A study on finished runs.

For every run directory given (finished ``medcl stratify`` runs, e.g. the validation variants
that ``benchmarks/stratify_robustness.py`` wrote), this reads the embeddings and

1. partitions the training latents for every k in ``cluster.k_min..k_max`` exactly as the
   clustering stage does (``cluster.method``, seed ``run.seed``, ``cluster.assign``) and
   scores the majority mapping on the run's own evaluation split at every k;
2. draws the stability curve (:func:`medcl.cluster.stability_curve`, worst-cluster Jaccard)
   of the training latents several ways (``--draws``: number of subsamples and seed), to
   see how much one draw moves it;
3. for every threshold in ``--thresholds``, takes the k that the stability rule reads from
   each curve (:func:`medcl.cluster.largest_above`) and reports the worst and the mean
   mapping over all runs and draws.

No training is run. The evaluation labels only score; k is read from the training latents.
Use it on validation runs only.

    python benchmarks/k_rule_study.py runs/strat-val-packaged/* [--method merge] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402

from medcl._load import load_npy  # noqa: E402
from medcl.cluster import PARTITION_METHODS, largest_above, stability_curve  # noqa: E402
from medcl.data import stratified_split  # noqa: E402
from medcl.evaluate import majority_mapping  # noqa: E402
from medcl.stages.stratify._shared import (  # noqa: E402
    LATENTS,
    eval_indices,
    latent_space,
    load_stratify_data,
)
from medcl.stages.stratify.clustering import partition, update_prototypes  # noqa: E402
from medcl.stages.stratify.evaluate import assign_latents  # noqa: E402
from medcl.stratify_config import load_stratify_config  # noqa: E402


def load_run(run: Path, method: str | None = None):
    """A finished run as its evaluation sees it: ``(cfg, z, tr, te, y_tr, y_te, mapped)``,
    the config (``cluster.method`` replaced by ``method`` if given), the latents, the train
    and evaluation indices and labels, and the training images whose labels map clusters."""
    cfg = load_stratify_config(run / "config.yaml")
    if method is not None:
        cfg.cluster.method = method
    ds = load_stratify_data(cfg)
    tr, te = ds.data.indices("train"), eval_indices(cfg, ds)
    z = latent_space(load_npy(run / LATENTS), cfg.cluster.normalize)
    y_tr, y_te = ds.labels[tr], ds.labels[te]
    mapped = stratified_split(y_tr, cfg.evaluate.mapping_fraction, cfg.run.seed)
    return cfg, z, tr, te, y_tr, y_te, mapped


def mapped_predictions(z, tr, te, y_tr, mapped, labels, k: int, cfg):
    """The evaluation's view of a partition ``labels`` of the training latents ``z[tr]``:
    ``(predicted digit of every evaluation latent, cluster -> digit mapping)``, with the
    prototypes of the clustering stage, the assignment of ``cluster.assign`` and the majority
    mapping on the ``mapped`` training labels."""
    protos = update_prototypes(z[tr], np.eye(k)[labels])  # as the clustering stage
    te_lab, _ = assign_latents(z[te], protos, z[tr], labels, cfg)  # as the evaluation
    m = majority_mapping(labels[mapped], y_tr[mapped], k)
    return m[te_lab], m


def study_run(run: Path, draws: list[tuple[int, int]], method: str | None = None) -> dict:
    """Mapping at every k and the stability curve of every draw ``(n_resamples, seed)``,
    for the run's ``cluster.method`` or ``method``."""
    cfg, z, tr, te, y_tr, y_te, mapped = load_run(run, method)
    ks = list(range(cfg.cluster.k_min, cfg.cluster.k_max + 1))
    mapping = {}
    for k in ks:
        lab = partition(z[tr], cfg.cluster.method, k, cfg.run.seed)
        pred, _ = mapped_predictions(z, tr, te, y_tr, mapped, lab, k, cfg)
        mapping[k] = float((pred == y_te).mean())
    curves = {
        f"{r}x{s}": stability_curve(
            z[tr], ks, cfg.cluster.method, n_resamples=r, seed=cfg.run.seed + s
        ).tolist()
        for r, s in draws
    }
    return {"ks": ks, "mapping": mapping, "curves": curves}


def sweep(results: dict, thresholds: list[float]) -> list[dict]:
    """For every threshold: the mapping at the k the rule reads from every run's every draw."""
    rows = []
    for t in thresholds:
        got = []
        for name, r in results.items():
            for draw, curve in r["curves"].items():
                k = largest_above(r["ks"], curve, t)
                got.append((name, draw, k, r["mapping"][k]))
        acc = np.array([g[3] for g in got])
        worst = got[int(acc.argmin())]
        rows.append(
            {
                "threshold": t,
                "worst": float(acc.min()),
                "mean": float(acc.mean()),
                "below_0.9": int((acc < 0.9).sum()),
                "worst_at": f"{worst[0]} draw {worst[1]} k={worst[2]}",
            }
        )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", type=Path, help="finished medcl stratify run directories")
    ap.add_argument(
        "--draws",
        nargs="+",
        default=["8x0", "8x1", "8x2", "16x0", "16x1", "32x0"],
        help="stability draws as N_RESAMPLESxSEED_OFFSET",
    )
    ap.add_argument(
        "--thresholds",
        nargs="+",
        type=float,
        default=[round(t, 2) for t in np.arange(0.5, 0.81, 0.01)],
    )
    ap.add_argument(
        "--method",
        choices=PARTITION_METHODS,
        help="partition the latents by this cluster.method instead of the run's",
    )
    ap.add_argument("--json", type=Path, help="write everything here")
    args = ap.parse_args()
    draws = [tuple(int(v) for v in d.split("x")) for d in args.draws]
    results = {}
    t0 = time.perf_counter()
    for run in args.runs:
        if not (run / LATENTS).exists():
            print(f"{run}: no {LATENTS}, skipped")
            continue
        name = f"{run.parent.name}/{run.name}"
        r = results[name] = study_run(run, draws, args.method)  # type: ignore[arg-type]
        best = max(r["mapping"], key=r["mapping"].get)
        print(f"{name}: best k {best} ({r['mapping'][best]:.3f}); mapping by k:", flush=True)
        print("  " + " ".join(f"{k}:{v:.3f}" for k, v in r["mapping"].items()))
        for draw, curve in r["curves"].items():
            print(f"  stability {draw:>5}: " + " ".join(f"{v:.2f}" for v in curve))
    print(
        f"\nthreshold sweep over {len(results)} runs x {len(draws)} draws ({len(draws)} curves each)"
    )
    print("| threshold | worst mapping | mean | draws below 0.90 | worst at |")
    print("|---|---|---|---|---|")
    rows = sweep(results, args.thresholds)
    for row in rows:
        print(
            f"| {row['threshold']:.2f} | {row['worst']:.3f} | {row['mean']:.4f} | "
            f"{row['below_0.9']} | {row['worst_at']} |"
        )
    print(f"({time.perf_counter() - t0:.0f} s)")
    if args.json:
        args.json.write_text(json.dumps({"runs": results, "sweep": rows}, indent=1))


if __name__ == "__main__":
    main()
