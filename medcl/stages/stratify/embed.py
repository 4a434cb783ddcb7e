"""Stage 2, embeddings: the warm-up's frozen encoder (or the refined one, ``refine.epochs`` >
0) applied to every image.

Reads ``warmup/model.pt`` (and ``refine/encoder.pt``); writes ``embed/latents.npy`` (one latent per image of the data
set, in its order, before ``cluster.normalize``) and ``embed/done.json``.
"""

from __future__ import annotations

import time

from medcl.rundir import atomic_save_npy
from medcl.stages._checks import check_seconds
from medcl.stages._deps import stratify_embed_deps, stratify_refine_deps, stratify_warmup_deps
from medcl.stages._done import require_current, reusable, write_record
from medcl.stages.stratify._shared import LATENTS, Job, encode, load_trained_model

RECORD = "embed/done.json"


def run_embed(job: Job) -> dict:
    data = job.ds.data  # type: ignore[attr-defined]
    deps = stratify_embed_deps(job.cfg, data)
    done = reusable(job.run, RECORD, deps, check_seconds)
    if done:
        return done
    require_current(
        job.run, "warmup/done.json", stratify_warmup_deps(job.cfg, data), job.command("warmup")
    )
    if job.cfg.refine.epochs > 0:
        up = stratify_refine_deps(job.cfg, data)
        require_current(job.run, "refine/done.json", up, job.command("refine"))
    t0 = time.perf_counter()
    x_all = job.x_all()
    model = load_trained_model(job, x_all)
    atomic_save_npy(job.run.file(LATENTS), encode(model.encoder, x_all, job.device))
    done = {"seconds": round(time.perf_counter() - t0, 1), "n": len(x_all)}
    return write_record(job.run, RECORD, done, deps, [LATENTS])
