"""Stage 3: contrastive pretraining of the UNet encoder (method from the registry)."""

from __future__ import annotations

import time

import numpy as np
import torch

from medcl.config import Config
from medcl.data import ImageSet, TwoViews
from medcl.errors import MedclError
from medcl.methods import METHODS
from medcl.rundir import RunDir, atomic_torch_save
from medcl.stages._common import build_encoder, read_done, require, seed_all, to_device
from medcl.train import train_loop


def method_or_error(name: str):
    if name not in METHODS:
        raise MedclError(f"Unknown method '{name}'; choose one of {sorted(METHODS)}.")
    return METHODS[name]


def encoder_path(run: RunDir, method: str, seed: int):
    return run.path / "pretrain" / method / f"seed{seed}" / "encoder.pt"


def run_pretrain(
    run: RunDir, cfg: Config, method_name: str, seed: int, data: ImageSet, fabric
) -> dict:
    """Writes ``pretrain/METHOD/seedS/encoder.pt``; nothing for methods that do not pretrain."""
    method = method_or_error(method_name)
    if not method.pretrains:
        return {"seconds": 0.0}
    out = run.path / "pretrain" / method_name / f"seed{seed}"
    done = read_done(out / "done.json")
    if done:
        return done
    p = cfg.pretrain
    train_idx = data.indices("train")
    images = data.images[train_idx]
    labels = None
    if method.uses_pseudo_labels:
        labels = np.load(
            require(run.path / "cluster" / "labels.npy", "Pseudo-labels", "cluster", run)
        )
        if len(labels) != len(images):
            raise MedclError(
                f"The pseudo-labels in '{run.path}/cluster' are for {len(labels)} images but the "
                f"training split has {len(images)}; rerun `medcl features` and `medcl cluster`."
            )
    seed_all(seed)
    encoder = build_encoder(cfg, data.channels)
    head = method.build_head(encoder.out_dim, p.proj_hidden, p.proj_out)
    module = torch.nn.ModuleDict({"encoder": encoder, "head": head})
    views = TwoViews(data.image_size, strength=p.aug_strength)
    t0 = time.perf_counter()
    label_t = None if labels is None else torch.as_tensor(labels)

    def step_loss(idx: np.ndarray) -> torch.Tensor:
        v = views(to_device(fabric, images, idx))
        lab = None if label_t is None else fabric.to_device(label_t[idx])
        return method.loss(
            encoder, head, v, lab, p.temperature, p.variant if method.uses_pseudo_labels else None
        )

    history = train_loop(
        fabric=fabric,
        module=module,
        step_loss=step_loss,
        n_items=len(images),
        epochs=p.epochs,
        batch_size=min(p.batch_size, len(images)),
        lr=p.lr,
        weight_decay=p.weight_decay,
        warmup_epochs=p.warmup_epochs,
        seed=seed,
        checkpoint=out / "checkpoint.pt",
        desc=f"pretrain {method_name} seed {seed}",
        log=lambda **r: run.log(stage="pretrain", method=method_name, seed=seed, **r),
    )
    atomic_torch_save(encoder.state_dict(), encoder_path(run, method_name, seed))
    done = {"seconds": round(time.perf_counter() - t0, 2), "loss": history}
    run.write_json(f"pretrain/{method_name}/seed{seed}/done.json", done)
    (out / "checkpoint.pt").unlink(missing_ok=True)
    return done
