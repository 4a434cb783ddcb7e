"""``medcl stratify``: the seven stages in order, or one of them alone (``refine`` runs only
with ``refine.epochs`` > 0).

Each stage reads its inputs from the run directory and writes its outputs and its
``done.json`` record there (:mod:`medcl.stages._done`); a rerun reuses every stage whose
record still holds and recomputes, saying why in one line, the stage whose inputs changed and
every stage downstream of it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from medcl.errors import MedclError
from medcl.rundir import RunDir, say
from medcl.stages._deps import (
    stratify_cluster_deps,
    stratify_decoder_deps,
    stratify_embed_deps,
    stratify_evaluate_deps,
    stratify_refine_deps,
    stratify_report_deps,
    stratify_warmup_deps,
)
from medcl.stages._done import inspect_record
from medcl.stages.stratify import clustering, decoder, embed, evaluate, refine, report, warmup
from medcl.stages.stratify._shared import Job, load_stratify_data
from medcl.stratify_config import StratifyConfig
from medcl.train import make_fabric

# name -> (the stage, its record, what it writes, its dependencies)
STAGES: dict[str, tuple[Callable[[Job], dict], str, list[str], Callable]] = {
    "warmup": (warmup.run_warmup, warmup.RECORD, warmup.OUTPUTS, stratify_warmup_deps),
    "refine": (refine.run_refine, refine.RECORD, refine.OUTPUTS, stratify_refine_deps),
    "embed": (embed.run_embed, embed.RECORD, [embed.LATENTS], stratify_embed_deps),
    "cluster": (
        clustering.run_clustering, clustering.RECORD, clustering.OUTPUTS, stratify_cluster_deps
    ),
    "decoder": (decoder.run_decoder, decoder.RECORD, decoder.OUTPUTS, stratify_decoder_deps),
    "evaluate": (
        evaluate.run_evaluate, evaluate.RECORD, evaluate.OUTPUTS, stratify_evaluate_deps
    ),
    "report": (report.run_report, report.RECORD, report.OUTPUTS, stratify_report_deps),
}  # fmt: skip


def _retract_stale(job: Job) -> None:
    """Remove the outputs of every stage whose record does not hold, before anything runs, so
    that a run that stops part-way never leaves outputs of another config beside config.yaml."""
    for _, record, outputs, deps_fn in STAGES.values():
        deps = deps_fn(job.cfg, job.ds.data)  # type: ignore[attr-defined]
        if inspect_record(job.run, record, deps)[0] is None:
            job.run.retract(*outputs)


def run_stratify(cfg: StratifyConfig, out: str | Path, stage: str | None = None) -> dict:
    """Run every stage (reusing finished ones), or only ``stage``, in the run directory ``out``.

    Returns the metrics (``metrics.json``) once the evaluation has run, else the stage's record.
    """
    if stage is not None and stage not in STAGES:
        raise MedclError(f"Unknown stratify stage '{stage}'; choose one of {', '.join(STAGES)}.")
    run = RunDir(out)
    run.lock()
    run.save_config(cfg.model_dump(mode="json"))
    if cfg.run.num_threads:
        torch.set_num_threads(cfg.run.num_threads)
    job = Job(cfg, run, make_fabric(cfg.run.device), load_stratify_data(cfg))
    _retract_stale(job)
    labelled = "" if job.ds.labels is not None else " (no labels)"  # type: ignore[attr-defined]
    say(
        f"{cfg.data.dataset}: {len(job.tr)} train images, metrics on {len(job.te)} "
        f"{job.eval_split} images{labelled}, run directory {run.path}"
    )
    result: dict = {}
    for name, (fn, *_) in STAGES.items():
        if stage is None or name == stage:
            result = fn(job)
    if stage is None:
        return run.read_json("metrics.json")
    return result
