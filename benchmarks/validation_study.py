"""Settings studies scored on the VALIDATION split only: how choices were made.

Each variant is a method plus config overrides on top of a base config. For every variant
and seed the encoder is pretrained (when the method pretrains) and fine-tuned at each label
fraction; the score is the best validation Dice reached during fine-tuning (the checkpoint
rule of every benchmark cell). The test split is never evaluated, so these runs can guide
choices honestly. Every variant runs in its own resumable run directory under ``--out``;
a rerun reuses finished cells.

For methods with pseudo-classes the script also reports k and, when the data set has
reference labels (dsb2018's appearance groups), their normalised mutual information with
the pseudo-classes.

Usage:
    python benchmarks/validation_study.py CONFIG --variant NAME=METHOD[,key=value...] ...
        [--seeds 0 1] [--fractions 0.01 0.05] [--reference NAME] [--out DIR]

Example (the fine-tuning protocol study of the dsb2018 benchmark)::

    python benchmarks/validation_study.py benchmark-dsb2018 \\
        --variant steps200=random,finetune.steps=200 --variant steps600=random,finetune.steps=600
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
from sklearn.metrics import normalized_mutual_info_score  # noqa: E402

from medcl.config import load_config, packaged_config  # noqa: E402
from medcl.evaluate import paired_difference  # noqa: E402
from medcl.rundir import RunDir  # noqa: E402
from medcl.stages._common import load_data  # noqa: E402
from medcl.stages.cluster import run_cluster  # noqa: E402
from medcl.stages.features import run_features  # noqa: E402
from medcl.stages.finetune import run_finetune  # noqa: E402
from medcl.stages.pretrain import method_or_error, run_pretrain  # noqa: E402
from medcl.train import make_fabric, set_threads  # noqa: E402


def _packaged(name: str) -> str:
    """``name`` if it is a file, else the packaged config of that name."""
    return name if os.path.exists(name) else (packaged_config(name) or name)


def _variant(text: str) -> tuple[str, str, list[str]]:
    name, _, rest = text.partition("=")
    method, *overrides = rest.split(",")
    if not name or not method:
        raise SystemExit(f"--variant {text!r}: use NAME=METHOD[,key=value...]")
    return name, method, overrides


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("config", help="a YAML config or a packaged name (benchmark-dsb2018)")
    p.add_argument("--variant", action="append", required=True, metavar="NAME=METHOD[,k=v]")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--fractions", type=float, nargs="+", default=[0.01, 0.05])
    p.add_argument("--reference", help="variant the others are compared with (paired by seed)")
    p.add_argument("--out", default="runs/validation-study")
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args()
    set_threads(args.threads)
    fabric = make_fabric("cpu")
    variants = [_variant(v) for v in args.variant]
    scores: dict[str, dict[float, dict[int, float]]] = {}
    table = {}
    for name, method, overrides in variants:
        cfg = load_config(_packaged(args.config), overrides + [f"run.seeds={args.seeds}"])
        run = RunDir(os.path.join(args.out, name))
        run.save_config(cfg.model_dump(mode="json"))
        data = load_data(cfg)
        t0 = time.perf_counter()
        extra = ""
        if method_or_error(method).uses_pseudo_labels:
            run_features(run, cfg, data, fabric)
            summary = run_cluster(run, cfg, data)
            labels = np.load(run.path / "cluster" / "labels.npy")
            extra = f"k={summary['k']}"
            for ref, values in data.reference_labels.items():
                nmi = normalized_mutual_info_score(values[data.indices("train")], labels)
                extra += f" NMI({ref})={nmi:.3f}"
        scores[name] = {f: {} for f in args.fractions}
        for seed in args.seeds:
            run_pretrain(run, cfg, method, seed, data, fabric)
            for f in args.fractions:
                done = run_finetune(run, cfg, method, f, seed, data, fabric)
                scores[name][f][seed] = 100 * done["val_dice"]
        cells = "  ".join(
            f"{f * 100:g}%: {np.mean(list(v.values())):.1f} ±{np.std(list(v.values())):.1f}"
            for f, v in scores[name].items()
        )
        seconds = time.perf_counter() - t0
        table[name] = {"val_dice": {str(f): v for f, v in scores[name].items()}, "info": extra}
        print(f"{name:16s} {cells}   {extra}   {seconds:.0f} s", flush=True)
    if args.reference:
        ref = scores[args.reference]
        for name in scores:
            if name == args.reference:
                continue
            parts = []
            for f in args.fractions:
                seeds = sorted(set(ref[f]) & set(scores[name][f]))
                d = paired_difference(
                    [scores[name][f][s] for s in seeds], [ref[f][s] for s in seeds]
                )
                parts.append(f"{f * 100:g}%: {d['mean']:+.1f} [{d['low']:+.1f}, {d['high']:+.1f}]")
            print(f"{name} - {args.reference}: " + "  ".join(parts))
    RunDir(args.out).write_json("study.json", table)


if __name__ == "__main__":
    main()
