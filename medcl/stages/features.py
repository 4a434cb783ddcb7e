"""Stage 1: train a beta-VAE on the training images; save the posterior means."""

from __future__ import annotations

import time

import numpy as np
import torch

from medcl.config import Config
from medcl.data import ImageSet
from medcl.losses import vae_loss
from medcl.models import BetaVAE
from medcl.rundir import RunDir, atomic_save_npy, atomic_torch_save
from medcl.stages._checks import check_trained
from medcl.stages._common import rows_of, seed_all, to_device
from medcl.stages._deps import features_deps
from medcl.stages._done import reusable, write_record
from medcl.train import train_loop

OUTPUTS = ["features/embeddings.npy", "features/ids.json", "features/vae.pt"]


def run_features(run: RunDir, cfg: Config, data: ImageSet, fabric) -> dict:
    """Writes ``features/embeddings.npy`` (train images x latent_dim), ``ids.json``, ``vae.pt``."""
    deps = features_deps(cfg, data)
    done = reusable(run, "features/done.json", deps, check_trained)
    if done:
        return done
    f = cfg.features
    beta = {"beta-vae": f.beta, "vae": 1.0, "ae": 0.0}[f.kind]
    train_idx = data.indices("train")
    images = rows_of(data.images, train_idx)  # a compact store stays stored: read per batch
    seed_all(0)
    vae = BetaVAE(
        data.image_size, data.channels, f.latent_dim, cfg.model.channels, variational=f.kind != "ae"
    )
    t0 = time.perf_counter()

    def step_loss(idx: np.ndarray, model: torch.nn.Module) -> torch.Tensor:
        x = to_device(fabric, images, idx)
        recon, mu, logvar = model(x)
        return vae_loss(recon, x, mu, logvar, beta=beta)[0]

    history = train_loop(
        fabric=fabric,
        module=vae,
        step_loss=step_loss,
        n_items=len(images),
        epochs=f.epochs,
        batch_size=min(f.batch_size, len(images)),
        lr=f.lr,
        seed=0,
        checkpoint=run.file("features", "checkpoint.pt"),
        desc=f"features ({f.kind})",
        log=lambda **r: run.log(stage="features", **r),
        fingerprint=deps.fingerprint,
        lr_key="features.lr",
    )
    vae.eval()
    embeddings = []
    with torch.no_grad():
        for start in range(0, len(images), 256):
            mu, _ = vae.encode(to_device(fabric, images, slice(start, start + 256)))
            embeddings.append(mu.float().cpu().numpy())
    atomic_save_npy(run.file("features", "embeddings.npy"), np.concatenate(embeddings))
    run.write_json("features/ids.json", [str(i) for i in data.ids[train_idx]])
    atomic_torch_save(vae.state_dict(), run.file("features", "vae.pt"))
    done = {"seconds": round(time.perf_counter() - t0, 2), "loss": history, "beta": beta}
    write_record(run, "features/done.json", done, deps, OUTPUTS)
    (run.path / "features" / "checkpoint.pt").unlink(missing_ok=True)  # the record says done
    return done
