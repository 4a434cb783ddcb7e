"""Stage 4, the conditional decoder: reconstruction from the soft assignment to the prototypes.

Reads ``warmup/model.pt`` (the encoder, frozen) and ``prototypes.npy``; writes ``decoder.pt``,
``decoder/decoded.npy`` (the decoded prototypes, the typical image of each stratum),
``decoder/done.json`` and, for ``medcl stratify assign``, ``model.pt`` and ``model.json`` (the
trained model as state dicts; ``model.json`` is written last). While it trains,
``decoder/checkpoint.pt`` lets a killed run resume mid-way.
"""

from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F

from medcl._load import load_npy, load_torch
from medcl.models import ConditionalDecoder, soft_assign
from medcl.rundir import atomic_save_npy, atomic_torch_save, say
from medcl.stages._checks import check_trained
from medcl.stages._deps import stratify_cluster_deps, stratify_decoder_deps, stratify_warmup_deps
from medcl.stages._done import require_current, reusable, write_record
from medcl.stages.stratify._shared import Job, latent_space, load_trained_model
from medcl.train import train_loop

RECORD = "decoder/done.json"
DECODED = "decoder/decoded.npy"
OUTPUTS = ["decoder.pt", "model.pt", "model.json", DECODED]


def residual_and_assignment(
    h: torch.Tensor, prototypes: torch.Tensor, c
) -> tuple[torch.Tensor, torch.Tensor]:
    """``a = softmax(cos(h, P)/T)`` and the residual ``z - a @ P`` the decoder is fed."""
    z = latent_space(h, c.normalize)
    a = soft_assign(z, prototypes, c.temperature)
    return z - a @ prototypes, a


def train_decoder(cfg, run, model, x, prototypes: np.ndarray, fabric, fingerprint=None):
    """The conditional decoder, on reconstruction alone (the encoder is frozen); returns it
    and the loss history."""
    d = cfg.decoder
    device = fabric.device
    torch.manual_seed(cfg.run.seed + 1)
    dec = ConditionalDecoder(model.encoder, len(prototypes), d.conditioning).to(device)
    protos = torch.from_numpy(prototypes).float().to(device)
    for p in model.encoder.parameters():
        p.requires_grad_(False)
    opt = torch.optim.Adam(dec.parameters(), lr=d.lr)
    bs = min(d.batch_size, len(x))

    def step_loss(idx: np.ndarray, decoder: torch.nn.Module) -> torch.Tensor:
        xb = x[torch.from_numpy(idx)].to(device)
        with torch.no_grad():
            r, a = residual_and_assignment(model.encoder(xb), protos, cfg.cluster)
        return F.mse_loss(decoder(r, a), xb)

    history = train_loop(
        fabric=fabric,
        module=dec,
        step_loss=step_loss,
        n_items=len(x),
        epochs=d.epochs,
        batch_size=bs,
        lr=d.lr,
        seed=cfg.run.seed + 1,
        checkpoint=run.file("decoder", "checkpoint.pt"),
        log=lambda **r: run.log(stage="decoder", **r),
        desc="conditional decoder",
        optimizer=opt,
        lr_fn=lambda step, total: d.lr,
        fingerprint=fingerprint,
        lr_key="decoder.lr",
    )
    return dec.eval(), history


@torch.no_grad()
def decode_prototypes(dec, k: int, latent_dim: int, device) -> np.ndarray:
    """The typical image of every stratum: residual 0, assignment one-hot."""
    return dec(torch.zeros(k, latent_dim, device=device), torch.eye(k, device=device)).cpu().numpy()


def load_decoder(job: Job, model, k: int) -> ConditionalDecoder:
    """The trained decoder from ``decoder.pt``, on ``job.device``."""
    dec = ConditionalDecoder(model.encoder, k, job.cfg.decoder.conditioning).to(job.device)
    dec.load_state_dict(load_torch(job.run.path / "decoder.pt"))
    return dec.eval()


def run_decoder(job: Job) -> dict:
    cfg, run, data = job.cfg, job.run, job.ds.data  # type: ignore[attr-defined]
    deps = stratify_decoder_deps(cfg, data)
    done = reusable(run, RECORD, deps, check_trained)
    if done:
        return done
    require_current(run, "warmup/done.json", stratify_warmup_deps(cfg, data), job.command("warmup"))
    cluster = require_current(
        run, "cluster/done.json", stratify_cluster_deps(cfg, data), job.command("cluster")
    )
    t0 = time.perf_counter()
    x_all = job.x_all()
    model = load_trained_model(job, x_all)
    prototypes = load_npy(run.path / "prototypes.npy")
    x_tr = x_all[torch.from_numpy(job.tr)]
    dec, history = train_decoder(cfg, run, model, x_tr, prototypes, job.fabric, deps.fingerprint)
    k = int(cluster["k"])
    atomic_save_npy(run.file(DECODED), decode_prototypes(dec, k, cfg.model.latent_dim, job.device))
    atomic_torch_save(model.state_dict(), run.file("model.pt"))
    atomic_torch_save(dec.state_dict(), run.file("decoder.pt"))
    shape = {"channels": int(x_all.shape[1]), "image_size": [int(s) for s in x_all.shape[2:]]}
    run.write_json("model.json", {"k": k, **shape})  # written last: the model is complete
    done = {"seconds": round(time.perf_counter() - t0, 1), "loss": history}
    write_record(run, RECORD, done, deps, OUTPUTS)
    (run.path / "decoder" / "checkpoint.pt").unlink(missing_ok=True)  # the record says done
    say(f"conditional decoder trained in {done['seconds']:.0f} s")
    return done
