"""Stage 1b, refinement: SCAN (Van Gansbeke et al. 2020) on the warm-up's encoder.

Runs only with ``refine.epochs`` > 0. Reads ``warmup/model.pt`` and the training images;
writes ``refine/encoder.pt`` (the refined encoder's state dict) and ``refine/done.json``
(the head's k, both steps' losses). While it trains, ``refine/checkpoint-scan.pt`` and
``refine/checkpoint-self_label.pt`` let a killed run resume.

A linear head of k clusters goes on the encoder, k read from the warm-up's latents by
``refine.k_rule`` (stability) with the clustering stage's method and settings. Step 1 (``refine.epochs``): an image and one of
its ``refine.neighbours`` nearest training latents, both through the warm-up's views, should
share a confident cluster, and the batch's mean assignment should keep a high entropy
(:func:`medcl.losses.scan_loss`). Step 2 (``refine.self_label_epochs``): the views of the
images whose clean prediction is confident are trained towards it
(:func:`medcl.losses.self_label_loss`). The head is then dropped: the clustering stage
partitions the refined encoder's latents itself. On validation the head's own partition mapped
the digits worse than that (``benchmarks/results/scan/``).
"""

from __future__ import annotations

import time

import numpy as np
import torch
from torch import nn

from medcl.rundir import atomic_torch_save, say
from medcl.stages._checks import check_trained
from medcl.stages._deps import stratify_refine_deps, stratify_warmup_deps
from medcl.stages._done import require_current, reusable, write_record
from medcl.stages.stratify._shared import (
    REFINED_ENCODER,
    Job,
    encode,
    latent_space,
    load_trained_model,
)
from medcl.train import train_loop

RECORD = "refine/done.json"
OUTPUTS = [REFINED_ENCODER]


class Clusterer(nn.Module):
    """An encoder with a linear head of ``k`` clusters on its latent."""

    def __init__(self, encoder: nn.Module, latent_dim: int, k: int):
        super().__init__()
        self.encoder, self.head = encoder, nn.Linear(latent_dim, k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x))


def nearest_neighbours(z: np.ndarray, n: int) -> np.ndarray:
    """Each row's ``n`` nearest other rows by cosine similarity."""
    from sklearn.neighbors import NearestNeighbors

    z = latent_space(z, True)
    idx = NearestNeighbors(n_neighbors=n + 1).fit(z).kneighbors(z, return_distance=False)
    return idx[:, 1:]


def head_k(cfg, h_train: np.ndarray) -> int:
    """The head's k: ``refine.k_rule`` with the clustering stage's method, k range and rule
    settings, on the warm-up's latents ``h_train``. Neither ``cluster.k`` nor
    ``cluster.k_rule`` counts, so that fixing k or trying another rule reruns only the
    clustering, on the same refined latents."""
    from medcl.stages.stratify.clustering import cluster_latents

    by_rule = cfg.model_copy(deep=True)
    by_rule.cluster.k = None
    by_rule.cluster.k_rule = cfg.refine.k_rule
    return cluster_latents(latent_space(h_train, cfg.cluster.normalize), by_rule)[1]


def train_refine(cfg, run, net: Clusterer, x, nbrs, views, fabric, fingerprint=None) -> dict:
    """Both SCAN steps on ``net`` (in place); the loss history of each."""
    from medcl.losses import scan_loss, self_label_loss

    r, device = cfg.refine, fabric.device
    nb = torch.from_numpy(nbrs)

    @torch.no_grad()
    def prepare_scan(idx: np.ndarray) -> torch.Tensor:  # the step's only random draws
        i = torch.from_numpy(idx)
        pick = nb[i, torch.randint(0, nb.shape[1], (len(i),))]
        v = torch.cat([views(x[i].to(device)), views(x[pick].to(device))]).clamp_(0, 1)
        return v.contiguous(memory_format=torch.channels_last)

    def scan_step(v: torch.Tensor, model: nn.Module) -> torch.Tensor:
        logits = model(v)
        b = len(v) // 2
        return scan_loss(logits[:b], logits[b:], r.entropy_weight)[0]

    @torch.no_grad()
    def prepare_self_label(idx: np.ndarray) -> torch.Tensor:
        clean = x[torch.from_numpy(idx)].to(device)
        v = torch.cat([clean, views(clean).clamp_(0, 1)])
        return v.contiguous(memory_format=torch.channels_last)

    def self_label_step(v: torch.Tensor, model: nn.Module) -> torch.Tensor:
        b = len(v) // 2
        with torch.no_grad():
            weak = model(v[:b])
        return self_label_loss(weak, model(v[b:]), r.threshold)[0]

    history: dict[str, list[float]] = {}
    steps = (
        ("scan", r.epochs, prepare_scan, scan_step, "refinement 1/2 (SCAN)"),
        ("self_label", r.self_label_epochs, prepare_self_label, self_label_step,
         "refinement 2/2 (self-labelling)"),
    )  # fmt: skip
    for i, (name, epochs, prepare, step_loss, desc) in enumerate(steps):
        if epochs == 0:
            history[name] = []
            continue
        opt = torch.optim.Adam(net.parameters(), lr=r.lr, weight_decay=r.weight_decay)
        history[name] = train_loop(
            fabric=fabric,
            module=net,
            step_loss=step_loss,
            n_items=len(x),
            epochs=epochs,
            batch_size=min(r.batch_size, len(x)),
            lr=r.lr,
            seed=cfg.run.seed + i,
            checkpoint=run.file("refine", f"checkpoint-{name}.pt"),
            log=lambda **row: run.log(stage=f"refine-{name}", **row),  # noqa: B023
            desc=desc,
            optimizer=opt,
            lr_fn=lambda step, total: r.lr,
            fingerprint=None if fingerprint is None else f"{fingerprint}-{name}",
            lr_key="refine.lr",
            prepare=prepare,
            prefetch=cfg.run.prefetch,
        )
    return history


def run_refine(job: Job) -> dict:
    """Refine the warm-up's encoder unless ``refine/done.json`` says it is current; nothing
    when ``refine.epochs`` is 0."""
    from medcl.stages.stratify.warmup import make_views

    cfg, run, data = job.cfg, job.run, job.ds.data  # type: ignore[attr-defined]
    if cfg.refine.epochs == 0:
        return {}
    deps = stratify_refine_deps(cfg, data)
    done = reusable(run, RECORD, deps, check_trained)
    if done:
        return done
    require_current(run, "warmup/done.json", stratify_warmup_deps(cfg, data), job.command("warmup"))
    t0 = time.perf_counter()
    x_tr = job.x_all()[torch.from_numpy(job.tr)]
    model = load_trained_model(job, x_tr, refined=False)
    h_tr = encode(model.encoder, x_tr, job.device)
    k = head_k(cfg, h_tr)
    nbrs = nearest_neighbours(h_tr, min(cfg.refine.neighbours, len(x_tr) - 1))
    torch.manual_seed(cfg.run.seed)  # the head's initial weights
    net = Clusterer(model.encoder, cfg.model.latent_dim, k)
    net = net.to(job.device, memory_format=torch.channels_last)  # type: ignore[call-overload]
    size = (int(x_tr.shape[2]), int(x_tr.shape[3]))
    views = make_views(cfg, size).to(job.device)
    history = train_refine(cfg, run, net, x_tr, nbrs, views, job.fabric, deps.fingerprint)
    atomic_torch_save(net.encoder.state_dict(), run.file(REFINED_ENCODER))
    done = {
        "seconds": round(time.perf_counter() - t0, 1),
        "head_k": int(k),
        "loss": history["scan"] + history["self_label"],  # both steps, one after the other
        "loss_by_step": history,
    }
    write_record(run, RECORD, done, deps, OUTPUTS)
    for name in ("scan", "self_label"):  # the record says done
        (run.path / "refine" / f"checkpoint-{name}.pt").unlink(missing_ok=True)
    say(f"refinement: the encoder refined by SCAN (head k = {k}) in {done['seconds']:.0f} s")
    return done
