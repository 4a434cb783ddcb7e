"""Stage 3: pretraining of the UNet encoder by a method from the registry."""

from __future__ import annotations

import time

import numpy as np
import torch

from medcl._load import load_npy
from medcl.config import Config
from medcl.data import ImageSet, TwoViews
from medcl.errors import MedclError
from medcl.methods import METHODS, Batch, PretrainMethod, build_method
from medcl.rundir import RunDir, atomic_torch_save
from medcl.stages._checks import check_summary, check_trained
from medcl.stages._common import build_encoder, rows_of, seed_all, to_device
from medcl.stages._deps import SETTING_KEYS, cluster_deps, pretrain_deps
from medcl.stages._done import relative, require_current, reusable, write_record
from medcl.train import train_loop


def method_or_error(name: str):
    """The method class registered as ``name``; checked before ``name`` is part of any path."""
    if not isinstance(name, str) or name not in METHODS:
        raise MedclError(f"Unknown method '{name}'; choose one of {sorted(METHODS)}.")
    return METHODS[name]


def check_method_applies(name: str, data: ImageSet) -> None:
    """GLCL and PCL need slices of volumes; refuse them on 2-D images, as the papers do."""
    if method_or_error(name).needs_volumes and not data.is_volumetric:
        raise MedclError(
            f"Method '{name}' needs slices of 3-D volumes (it pairs slices by their position in "
            "a volume), but this data set is 2-D images; leave it out of run.methods (as the "
            "UFC paper does on ISIC) or give NIfTI/DICOM volumes."
        )


def method_settings(cfg: Config) -> dict:
    """Every method's hyperparameters by constructor argument name."""
    out = {}
    for arg, key in SETTING_KEYS.items():
        section, name = key.split(".")
        out[arg] = getattr(getattr(cfg, section), name)
    return out


def pretrain_dir(run: RunDir, method: str, seed: int):
    method_or_error(method)
    return run.path / "pretrain" / method / f"seed{int(seed)}"


def encoder_path(run: RunDir, method: str, seed: int):
    return pretrain_dir(run, method, seed) / "encoder.pt"


def decoder_path(run: RunDir, method: str, seed: int):
    return pretrain_dir(run, method, seed) / "decoder.pt"


def current_pretrain(run: RunDir, cfg: Config, method: str, seed: int, data: ImageSet) -> dict:
    """The pretraining record of ``method``/``seed``, which must be current; else an error."""
    rel = relative(run, pretrain_dir(run, method, seed) / "done.json")
    deps = pretrain_deps(cfg, data, method, seed)
    return require_current(run, rel, deps, f"pretrain method={method} seed={seed}", check_trained)


def distribute(model: PretrainMethod, fabric) -> PretrainMethod:
    """Under DDP, gather features across processes with gradients, and sync BatchNorm on GPUs.

    With the global batch gathered, every process computes the loss of the whole batch; the
    all-gather's backward sums each process's share and DDP averages, so the gradients equal
    those of one process on the whole batch (checked by a two-process test).
    """
    if fabric.world_size > 1:
        model.gather = lambda t: fabric.all_gather(t, sync_grads=True).flatten(0, 1)
        if fabric.device.type == "cuda":
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return model


def run_pretrain(
    run: RunDir, cfg: Config, method_name: str, seed: int, data: ImageSet, fabric
) -> dict:
    """Writes ``pretrain/METHOD/seedS/encoder.pt``; nothing for methods that do not pretrain."""
    method_cls = method_or_error(method_name)
    if not method_cls.pretrains:
        return {"seconds": 0.0}
    check_method_applies(method_name, data)
    out = pretrain_dir(run, method_name, seed)
    rel = relative(run, out / "done.json")
    deps = pretrain_deps(cfg, data, method_name, seed)
    quiet = not fabric.is_global_zero
    done = reusable(run, rel, deps, check_trained, quiet=quiet)
    if done:
        return done
    p = cfg.pretrain
    train_idx = data.indices("train")
    images = rows_of(data.images, train_idx)  # a compact store stays stored: read per batch
    labels = None
    if method_cls.uses_pseudo_labels:
        require_current(
            run, "cluster/summary.json", cluster_deps(cfg, data), "cluster", check_summary
        )
        labels = load_npy(run.path / "cluster" / "labels.npy")
        if len(labels) != len(images):
            raise MedclError(
                f"The pseudo-labels in '{run.path}/cluster' are for {len(labels)} images but the "
                f"training split has {len(images)}; rerun `medcl features` and `medcl cluster`."
            )
    seed_all(seed)
    model = build_method(method_name, build_encoder(cfg, data.channels), **method_settings(cfg))
    base = model
    model = distribute(model, fabric)
    views = TwoViews(data.image_size, strength=p.aug_strength)
    t0 = time.perf_counter()
    label_t = None if labels is None else torch.as_tensor(labels)
    positions = torch.as_tensor(data.positions[train_idx], dtype=torch.float32)
    stats: dict = {}

    def prepare(idx: np.ndarray) -> Batch:
        # Every random draw of a step happens here, so that run.prefetch can run it on a
        # worker thread without changing the results (medcl.train.train_loop).
        t = torch.as_tensor(idx)
        x = to_device(fabric, images, idx)
        batch = Batch(
            views=views(x),
            images=x,
            labels=None if label_t is None else fabric.to_device(label_t[t]),
            positions=fabric.to_device(positions[t]) if method_cls.needs_volumes else None,
        )
        return base.prepare(batch)

    def step_loss(batch: Batch, net: torch.nn.Module) -> torch.Tensor:
        return net(batch)

    history = train_loop(
        fabric=fabric,
        module=model,
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
        on_step_end=model.after_step,
        stats=stats,
        fingerprint=deps.fingerprint,
        lr_key="pretrain.lr",
        prepare=prepare,
        prefetch=cfg.run.prefetch,
    )
    if fabric.is_global_zero:
        atomic_torch_save(model.encoder.state_dict(), encoder_path(run, method_name, seed))
        decoder = getattr(model, "decoder", None)
        if decoder is not None:  # GLCL's local loss pretrains a decoder: transfer it too
            atomic_torch_save(decoder.state_dict(), decoder_path(run, method_name, seed))
        done = {
            "seconds": round(time.perf_counter() - t0, 2),
            "loss": history,
            "throughput": stats,
        }
        outputs = [relative(run, encoder_path(run, method_name, seed))]
        if decoder is not None:
            outputs.append(relative(run, decoder_path(run, method_name, seed)))
        write_record(run, rel, done, deps, outputs)
        (out / "checkpoint.pt").unlink(missing_ok=True)
    fabric.barrier()
    return reusable(run, rel, deps, check_trained, quiet=True) or {}
