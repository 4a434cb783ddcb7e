"""``medcl benchmark``: every method x label fraction x seed (x fold), one resumable table.

The paper's protocol (UFC, Table I): each method pretrains the same encoder once per seed,
and the pretrained encoder is fine-tuned at every label fraction; five seeds by default.
With ``data.folds`` set, the whole grid runs once per cross-validation fold (MMWHS: 4 folds
over volumes, 2:1:1), each fold in its own sub-directory, and the table pools seeds and
folds. Every cell is one directory with a ``done.json``: a rerun skips finished cells and
resumes an interrupted one from its last checkpoint.
"""

from __future__ import annotations

from pathlib import Path

from medcl.config import Config, load_config, read_yaml, to_dict
from medcl.data import ImageSet
from medcl.methods import METHODS
from medcl.rundir import RunDir
from medcl.stages._common import load_data, say
from medcl.stages.pipeline import SUMMARIES, run_pipeline, write_results

BENCHMARK_SEEDS = [0, 1, 2, 3, 4]


def benchmark_config(path: str | None, overrides: list[str]) -> tuple[Config, bool]:
    """The config with the benchmark's defaults (5 seeds, every method) under the file's keys.

    Returns the config and whether the user named ``run.methods`` (else every method that
    applies to the data is run).
    """
    tree = read_yaml(path) if path else {}
    run = tree.get("run")
    named = (isinstance(run, dict) and "methods" in run) or any(
        o.startswith("run.methods=") for o in overrides
    )
    base = {"run": {"seeds": BENCHMARK_SEEDS, "methods": list(METHODS)}}
    return load_config(path, overrides, base=base), named


def applicable_methods(methods: list[str], data: ImageSet) -> tuple[list[str], list[str]]:
    """``methods`` that apply to ``data``, and those left out (volume methods on 2-D data)."""
    keep = [m for m in methods if data.is_volumetric or not METHODS[m].needs_volumes]
    return keep, [m for m in methods if m not in keep]


def run_benchmark(cfg: Config, out: str | Path, methods_named: bool = True) -> dict:
    """Run (or finish) the benchmark in ``out``; returns the pooled ``results.json`` dict."""
    run = RunDir(out)
    run.lock()
    if not methods_named:
        data = load_data(cfg, cache_dir=run.path / "cache")
        keep, skipped = applicable_methods(cfg.run.methods, data)
        if skipped:
            say(f"{', '.join(skipped)} left out: they need 3-D volumes and the data are 2-D")
        cfg = cfg.model_copy(update={"run": cfg.run.model_copy(update={"methods": keep})})
    folds = cfg.data.folds
    if not folds:
        return run_pipeline(cfg, run.path)
    run.retract(*SUMMARIES)
    rows: list[dict] = []
    stage_seconds: dict[str, float] = {}
    last: dict = {}
    for fold in range(folds):
        say(f"fold {fold + 1}/{folds}")
        fold_cfg = cfg.model_copy(deep=True)
        fold_cfg.data.fold = fold
        last = run_pipeline(fold_cfg, run.path / f"fold{fold}", make_report=False)
        if last.get("rank"):  # another DDP process: rank 0 writes the results
            continue
        rows += [{**r, "fold": fold} for r in last["rows"]]
        for k, v in last["stage_seconds"].items():
            stage_seconds[k] = round(stage_seconds.get(k, 0.0) + v, 2)
    if last.get("rank"):
        return last
    run.save_config(to_dict(cfg))
    results = {
        "rows": rows,
        "class_names": last.get("class_names", []),
        "k": last.get("k"),
        "folds": folds,
        "stage_seconds": stage_seconds,
    }
    write_results(run, results, cfg.run.methods)
    from medcl.report import write_report  # matplotlib: imported when a report is written

    write_report(run)
    return results
