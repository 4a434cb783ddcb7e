"""Stage 1, warm-up: the contrastive autoencoder (NT-Xent on the projector + alpha x MSE, LARS).

Reads the training images; writes ``warmup/model.pt`` (state dict) and ``warmup/done.json``.
While it trains, ``warmup/checkpoint.pt`` lets a killed run resume mid-way.
"""

from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from medcl.rundir import atomic_torch_save, say
from medcl.stages._checks import check_trained
from medcl.stages._deps import stratify_warmup_deps
from medcl.stages._done import reusable, write_record
from medcl.stages.stratify._shared import WARMUP_MODEL, Job, build_model
from medcl.train import LARS, lars_param_groups, train_loop, warmup_cosine_lr

RECORD = "warmup/done.json"
OUTPUTS = [WARMUP_MODEL]


def make_views(cfg, image_size: tuple[int, int]) -> nn.Module:
    """Kornia pipeline of the paper's augmentations, each applied with probability ``aug_p``
    (and the optional elastic warp and random erasing, off by default)."""
    import kornia.augmentation as K

    w, p = cfg.warmup, cfg.warmup.aug_p
    augs: list[nn.Module] = [K.RandomRotation(w.rotation, p=p)]
    if w.elastic > 0:  # smooth local warps (Simard et al. 2003); none at 0, the paper's views
        k = 2 * int(round(2 * w.elastic_sigma)) + 1
        augs.append(K.RandomElasticTransform((k, k), (w.elastic_sigma,) * 2, (w.elastic,) * 2, p=p))
    augs += [
        K.RandomGaussianBlur((3, 3), w.blur_sigma, p=p),
        K.RandomGaussianNoise(std=w.noise_std, p=p),
    ]
    if w.flip:
        augs.append(K.RandomHorizontalFlip(p=p))
    augs.append(K.RandomResizedCrop(image_size, scale=w.crop_scale, p=p))
    if w.erase > 0:  # one rectangle of background; none at 0, the paper's views
        augs.append(K.RandomErasing(scale=w.erase_scale, value=0.0, p=w.erase))
    # the same draws and output as K.AugmentationSequential, without its bookkeeping
    return nn.Sequential(*augs)


def train_warmup(cfg, run, x: torch.Tensor, fabric, fingerprint: str | None = None):
    """Returns the trained :class:`~medcl.models.ContrastiveAutoencoder` (on ``fabric.device``)
    and the loss history."""
    from medcl.losses import cluster_contrastive_loss

    w = cfg.warmup
    device = fabric.device
    torch.manual_seed(cfg.run.seed)
    size = (int(x.shape[2]), int(x.shape[3]))
    # channels_last: ~10% faster warm-up steps on CPU (benchmarks/bench_stratify_step.py)
    model = build_model(cfg, x.shape[1], size).to(device, memory_format=torch.channels_last)
    views = make_views(cfg, size).to(device)
    opt = LARS(
        lars_param_groups(model, w.weight_decay),
        lr=w.start_lr,
        momentum=w.momentum,
        weight_decay=w.weight_decay,
        eta=w.eta,
    )
    bs = min(w.batch_size, len(x))
    steps = max(1, len(x) // bs)

    @torch.no_grad()
    def prepare(idx: np.ndarray) -> torch.Tensor:
        # the step's only random draws, so run.prefetch may run it ahead (train_loop)
        xb = x[torch.from_numpy(idx)].to(device)
        v = torch.cat([views(xb), views(xb)]).clamp_(0, 1)
        return v.contiguous(memory_format=torch.channels_last)

    def step_loss(v: torch.Tensor, net: torch.nn.Module) -> torch.Tensor:
        h, z, rec = net(v)
        b = len(v) // 2
        nt_xent = cluster_contrastive_loss(
            torch.stack([z[:b], z[b:]], 1), None, w.temperature, "supcon"
        )
        return nt_xent + w.alpha * (F.mse_loss(rec[:b], v[:b]) + F.mse_loss(rec[b:], v[b:]))

    def lr_fn(step: int, total: int) -> float:
        return warmup_cosine_lr(
            step, total, w.start_lr, w.peak_lr, w.final_lr, w.warmup_epochs * steps
        )

    history = train_loop(
        fabric=fabric,
        module=model,
        step_loss=step_loss,
        n_items=len(x),
        epochs=w.epochs,
        batch_size=bs,
        lr=w.start_lr,
        seed=cfg.run.seed,
        checkpoint=run.file("warmup", "checkpoint.pt"),
        log=lambda **r: run.log(stage="warmup", **r),
        desc="warm-up (contrastive AE)",
        optimizer=opt,
        lr_fn=lr_fn,
        fingerprint=fingerprint,
        lr_key="warmup.peak_lr",
        prepare=prepare,
        prefetch=cfg.run.prefetch,
    )
    return model.eval(), history


def run_warmup(job: Job) -> dict:
    """Train the contrastive autoencoder unless ``warmup/done.json`` says it is current."""
    deps = stratify_warmup_deps(job.cfg, job.ds.data)  # type: ignore[attr-defined]
    done = reusable(job.run, RECORD, deps, check_trained)
    if done:
        return done
    t0 = time.perf_counter()
    x_tr = job.x_all()[torch.from_numpy(job.tr)]
    model, history = train_warmup(job.cfg, job.run, x_tr, job.fabric, deps.fingerprint)
    atomic_torch_save(model.state_dict(), job.run.file(WARMUP_MODEL))
    done = {"seconds": round(time.perf_counter() - t0, 1), "loss": history}
    write_record(job.run, RECORD, done, deps, OUTPUTS)
    (job.run.path / "warmup" / "checkpoint.pt").unlink(missing_ok=True)  # the record says done
    say(f"warm-up: contrastive autoencoder trained in {done['seconds']:.0f} s")
    return done
