"""``medcl stratify`` on resamples and variants of its data: does a setting hold off its split?

Each variant is a name and config overrides on top of a packaged config (by default
``stratify-mnist``, its settings unchanged): e.g. another train/test partition of the built-in
digits (``data.test_seed=1``) or a class-imbalanced resample (``data.drop={'8': 0.5}``). Every
variant runs the whole pipeline in its own resumable run directory under ``--out``; with
``--rules`` the clustering stage onwards is rerun for each further ``cluster.k_rule`` in a copy
of the finished run (the warm-up and the embeddings are reused, so the rules see the same
latents). The table gives majority mapping, kNN and linear-probe accuracy, the chosen k and the
wall time of every run, and the worst variant of every rule against the goals.

Usage:
    python benchmarks/stratify_robustness.py --out DIR [--config stratify-mnist]
        [--rules silhouette stability] --variant NAME [key=value ...] ...

Example (choosing the k rule on the validation split of five variants)::

    python benchmarks/stratify_robustness.py --out runs/strat-val \\
        --rules silhouette stability eigengap --common data.val_fraction=0.1 \\
        data.eval_split=val evaluate.baselines=false \\
        --variant seed0 --variant seed1 run.seed=1 --variant cut89 "data.drop={'8': 0.5, '9': 0.4}"
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from medcl.config import packaged_config  # noqa: E402
from medcl.rundir import atomic_write_text  # noqa: E402
from medcl.stages.stratify import run_stratify  # noqa: E402
from medcl.stratify_config import load_stratify_config  # noqa: E402

GOALS = {"majority mapping": 0.95, "kNN": 0.97}


def _packaged(name: str) -> str:
    """``name`` if it is a file, else the packaged config of that name."""
    return name if os.path.exists(name) else (packaged_config(name) or name)


def _accuracy(metrics: dict, row: str) -> float | None:
    """Accuracy of the metrics row named ``row`` (or starting with it: "kNN (k=5)")."""
    rows = metrics.get("rows", {})
    name = next((n for n in rows if n == row or n.startswith(row + " (")), None)
    return None if name is None else rows[name].get("accuracy")


def _run(config: str, overrides: list[str], out: Path) -> dict:
    cfg = load_stratify_config(_packaged(config), overrides)
    t0 = time.perf_counter()
    metrics = run_stratify(cfg, out)
    return {
        "overrides": overrides,
        "k_rule": cfg.cluster.k_rule,
        "n_train": metrics["n_train"],
        "n_eval": metrics["n_eval"],
        "eval_split": metrics["eval_split"],
        "k": metrics["k"],
        "k_by_rule": {r: metrics.get(f"{r}_k") for r in ("silhouette", "stability", "eigengap")},
        "majority mapping": _accuracy(metrics, "majority mapping"),
        "kNN": _accuracy(metrics, "kNN"),
        "linear probe": _accuracy(metrics, "linear probe"),
        "supervised CNN": _accuracy(metrics, "supervised CNN"),  # evaluate.baselines=true
        "nmi": (metrics.get("cluster") or {}).get("nmi"),
        "wall_s": round(time.perf_counter() - t0, 1),
        "pipeline_s": metrics["seconds"].get("total"),
    }


def _copy_upstream(src: Path, dst: Path) -> None:
    """A copy of the finished run in ``dst``: the rerun keeps the warm-up and embeddings
    (their records still hold) and recomputes what the other rule changes."""
    if dst.exists():
        return
    tmp = dst.with_name(dst.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for item in src.iterdir():
        (shutil.copytree if item.is_dir() else shutil.copy2)(item, tmp / item.name)
    tmp.rename(dst)


def table(rows: list[dict]) -> str:
    """The runs as a markdown table, then the worst variant of every rule against the goals."""
    out = [
        "| variant | k rule | train / eval | k | majority mapping | kNN | linear "
        "| supervised CNN | wall |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        sup = r.get("supervised CNN")
        out.append(
            f"| {r['variant']} | {r['k_rule']} | {r['n_train']} / {r['n_eval']} "
            f"({r['eval_split']}) | {r['k']} | {r['majority mapping']:.3f} | {r['kNN']:.3f} | "
            f"{r['linear probe']:.3f} | {'-' if sup is None else f'{sup:.3f}'} | "
            f"{r['wall_s'] / 60:.1f} min |"
        )
    out.append("")
    for rule in dict.fromkeys(r["k_rule"] for r in rows):
        mine = [r for r in rows if r["k_rule"] == rule]
        worst = {g: min(r[g] for r in mine) for g in GOALS}
        met = all(worst[g] >= v for g, v in GOALS.items())
        ks = sorted({r["k"] for r in mine})
        out.append(
            f"- {rule}: worst of {len(mine)} variants: mapping {worst['majority mapping']:.3f}, "
            f"kNN {worst['kNN']:.3f}; k in {ks}; goal (mapping >= 0.95 and kNN >= 0.97 on "
            f"every variant) {'met' if met else 'NOT met'}"
        )
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True, help="folder of the run directories and table.md")
    p.add_argument("--config", default="stratify-mnist", help="packaged config or YAML path")
    p.add_argument("--common", nargs="*", default=[], help="overrides every variant gets")
    p.add_argument("--rules", nargs="*", default=[], help="further cluster.k_rule values")
    p.add_argument(
        "--variant",
        nargs="+",
        action="append",
        required=True,
        metavar=("NAME", "OVERRIDE"),
        help="a name, then key=value overrides (none: the packaged settings)",
    )
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for name, *overrides in args.variant:
        base = [*args.common, *overrides]
        print(f"== {name}: {' '.join(base) or '(packaged settings)'}", flush=True)
        row = _run(args.config, base, out / name)
        rows.append({"variant": name, **row})
        for rule in args.rules:
            if rule == row["k_rule"]:
                continue
            print(f"== {name}, cluster.k_rule={rule}", flush=True)
            _copy_upstream(out / name, out / f"{name}@{rule}")
            rows.append(
                {
                    "variant": name,
                    **_run(args.config, [*base, f"cluster.k_rule={rule}"], out / f"{name}@{rule}"),
                }
            )
        atomic_write_text(out / "study.json", json.dumps(rows, indent=1))
        atomic_write_text(out / "table.md", table(rows))
    print(table(rows), flush=True)


if __name__ == "__main__":
    main()
