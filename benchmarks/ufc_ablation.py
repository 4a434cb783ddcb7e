"""Why does (or doesn't) UFC beat its baselines? Ablations scored on the VALIDATION split.

Each variant is a set of config overrides on top of the demo config. For each variant and
seed, the encoder is pretrained and fine-tuned at the given label fractions; the score is
the best validation Dice reached during fine-tuning (the same checkpoint-selection rule for
every variant). The test split is never read, so these runs can guide choices honestly.

Also reports how the pseudo-classes relate to slice position (normalised mutual
information with 10 position bins), since on brain-aal adjacent slices look alike.

Usage:
    python benchmarks/ufc_ablation.py [--seeds 0 1 2] [--fractions 0.05 0.1] [--out DIR]
        [--variants NAME ...]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
from sklearn.metrics import normalized_mutual_info_score  # noqa: E402

from medcl.rundir import RunDir  # noqa: E402
from medcl.stages._common import load_data  # noqa: E402
from medcl.stages.cluster import run_cluster  # noqa: E402
from medcl.stages.features import run_features  # noqa: E402
from medcl.stages.finetune import run_finetune  # noqa: E402
from medcl.stages.pipeline import demo_config  # noqa: E402
from medcl.stages.pretrain import run_pretrain  # noqa: E402
from medcl.train import make_fabric  # noqa: E402

VARIANTS = {
    "random": ("random", []),
    "simclr": ("simclr", []),
    "ufc": ("ufc", []),
    "ufc-supcon": ("ufc", ["pretrain.variant=supcon"]),
    "ufc-k4": ("ufc", ["cluster.k=4"]),
    "ufc-k20": ("ufc", ["cluster.k=20"]),
    "ufc-weak-aug": ("ufc", ["pretrain.aug_strength=0.5"]),
    "simclr-150ep": ("simclr", ["pretrain.epochs=150"]),
    "ufc-150ep": ("ufc", ["pretrain.epochs=150"]),
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--fractions", type=float, nargs="+", default=[0.05, 0.1])
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--out", default="runs/ufc-ablation")
    args = p.parse_args()
    fabric = make_fabric("cpu")
    table = {}
    for name in args.variants:
        method, overrides = VARIANTS[name]
        cfg = demo_config(False, overrides + [f"run.seeds={args.seeds}"])
        run = RunDir(os.path.join(args.out, name))
        data = load_data(cfg)
        t0 = time.perf_counter()
        nmi = None
        if method == "ufc":
            run_features(run, cfg, data, fabric)
            summary = run_cluster(run, cfg, data)
            labels = np.load(run.path / "cluster" / "labels.npy")
            pos = data.positions[data.indices("train")]
            nmi = normalized_mutual_info_score(np.minimum((pos * 10).astype(int), 9), labels)
            nmi = (summary["k"], round(float(nmi), 3))
        scores = {f: [] for f in args.fractions}
        for seed in args.seeds:
            run_pretrain(run, cfg, method, seed, data, fabric)
            for f in args.fractions:
                scores[f].append(run_finetune(run, cfg, method, f, seed, data, fabric)["val_dice"])
        table[name] = {
            "val_dice": {
                str(f): (float(np.mean(v)) * 100, float(np.std(v)) * 100) for f, v in scores.items()
            },
            "k_and_nmi_with_position": nmi,
            "seconds": round(time.perf_counter() - t0, 1),
        }
        cells = "  ".join(
            f"{f:g}: {m:.1f} ±{s:.1f}"
            for f, (m, s) in ((float(f), v) for f, v in table[name]["val_dice"].items())
        )
        print(
            f"{name:14s} {cells}   k/NMI(position) {nmi}   {table[name]['seconds']:.0f} s",
            flush=True,
        )
    RunDir(args.out).write_json("ablation.json", table)


if __name__ == "__main__":
    main()
