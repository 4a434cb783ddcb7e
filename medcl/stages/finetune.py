"""Stage 4: fine-tune a UNet on a fraction of the masks; evaluate Dice on the test split."""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import torch
from monai.losses import DiceCELoss

from medcl._load import load_torch
from medcl.config import Config
from medcl.data import ImageSet, PairedAugment, label_subset
from medcl.evaluate import dice_scores
from medcl.models import SegmentationUNet
from medcl.rundir import RunDir, atomic_savez, atomic_torch_save
from medcl.stages._checks import check_best, check_finetune, check_result
from medcl.stages._common import build_encoder, groups_for, rows_of, seed_all, to_device
from medcl.stages._deps import evaluate_deps, finetune_deps
from medcl.stages._done import relative, require_current, reusable, write_record
from medcl.stages.pretrain import current_pretrain, decoder_path, encoder_path, method_or_error
from medcl.train import train_loop


def cell_dir(run: RunDir, method: str, fraction: float, seed: int):
    method_or_error(method)  # before the name is part of a path
    return run.path / "finetune" / method / f"labels{fraction:g}" / f"seed{int(seed)}"


@torch.no_grad()
def predict(model: torch.nn.Module, images: Any, fabric, batch_size: int = 64) -> np.ndarray:
    """Class maps ``(N, H, W)`` for ``images`` ``(N, C, H, W)`` (an array or stored rows)."""
    model.eval()
    out = []
    for start in range(0, len(images), batch_size):
        logits = model(to_device(fabric, images, slice(start, start + batch_size)))
        out.append(logits.argmax(1).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, *images.shape[2:]), dtype=np.int64)


def build_model(cfg: Config, data: ImageSet, method: str, seed: int, run: RunDir):
    """Pretrained (or random) encoder under a decoder initialised the same way for every method."""
    seed_all(seed)
    encoder = build_encoder(cfg, data.channels)
    if method_or_error(method).pretrains:
        current_pretrain(run, cfg, method, seed, data)  # the encoder is there and up to date
        encoder.load_state_dict(load_torch(encoder_path(run, method, seed)))
    torch.manual_seed(10_000 + seed)  # the decoder starts identically across methods
    model = SegmentationUNet(encoder, data.num_classes, cfg.model.num_res_units, cfg.model.norm)
    pretrained = decoder_path(run, method, seed)
    if pretrained.exists():  # GLCL with its local loss pretrains the decoder; not its head
        state = load_torch(pretrained)
        model.decoder.load_state_dict(
            {k: v for k, v in state.items() if not k.startswith("head.")}, strict=False
        )
    return model


def finetune_steps(
    steps: int,
    epochs: int | None,
    n_labelled: int,
    batch_size: int,
    min_steps: int | None = None,
    max_steps: int | None = None,
) -> int:
    """Optimiser steps of one fine-tuning run.

    ``steps`` (the same budget at every label fraction), unless ``epochs`` is set: then
    ``epochs * ceil(n_labelled / batch_size)``, so that every label fraction passes over its
    images that many times (the UFC paper fine-tunes 200 epochs on ISIC 2017), clipped to
    ``[min_steps, max_steps]`` when those are set: a few labels still get enough steps to
    fit them, and the full set a budget that the machine can afford.

    >>> finetune_steps(200, None, 100, 24), finetune_steps(200, 3, 100, 24)
    (200, 15)
    >>> finetune_steps(200, 20, 5, 16, 150, 600), finetune_steps(200, 20, 464, 16, 150, 600)
    (150, 580)
    """
    if epochs is None:
        return steps
    n = epochs * math.ceil(n_labelled / batch_size)
    if min_steps is not None:
        n = max(n, min_steps)
    if max_steps is not None:
        n = min(n, max_steps)
    return n


def run_finetune(
    run: RunDir, cfg: Config, method: str, fraction: float, seed: int, data: ImageSet, fabric
) -> dict:
    """Writes ``best.pt`` (chosen on validation Dice) and ``done.json`` in the cell directory."""
    out = cell_dir(run, method, fraction, seed)
    deps = finetune_deps(cfg, data, method, fraction, seed)
    done = reusable(run, relative(run, out / "done.json"), deps, check_finetune)
    if done:
        return done
    ft = cfg.finetune
    train_idx = data.indices("train")
    labelled = label_subset(train_idx, data.has_mask, fraction, seed)
    images, masks = rows_of(data.images, labelled), rows_of(data.masks, labelled)
    val_idx = data.indices("val")
    val_idx = val_idx[data.has_mask[val_idx]]
    model = build_model(cfg, data, method, seed, run)
    aug = PairedAugment(data.image_size)
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True)
    batch = min(ft.batch_size, len(images))
    steps_per_epoch = max(1, len(images) // batch)
    total = finetune_steps(ft.steps, ft.epochs, len(images), batch, ft.min_steps, ft.max_steps)
    epochs = math.ceil(total / steps_per_epoch)
    eval_epochs = max(1, round(ft.eval_every / steps_per_epoch))
    best_path = out / "best.pt"
    best = {"val_dice": -1.0, "epoch": -1}
    best_rel = relative(run, out / "best.json")
    if (out / "best.json").exists():  # the best-so-far of an interrupted run, same settings
        best = reusable(run, best_rel, deps, check_best, quiet=True) or best
    t0 = time.perf_counter()
    stats: dict = {}

    def prepare(idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        # the step's only random draws, so run.prefetch may run it ahead (train_loop)
        return aug(to_device(fabric, images, idx), to_device(fabric, masks, idx))

    def step_loss(batch: tuple[torch.Tensor, torch.Tensor], net: torch.nn.Module) -> torch.Tensor:
        x, y = batch
        return loss_fn(net(x), y.unsqueeze(1))

    def on_epoch_end(epoch: int) -> None:
        if (epoch + 1) % eval_epochs and epoch + 1 != epochs:
            return
        pred = predict(model, rows_of(data.images, val_idx), fabric)
        score = dice_scores(pred, data.masks[val_idx], data.num_classes, groups_for(data, val_idx))[
            "dice"
        ]
        run.log(
            stage="finetune",
            method=method,
            fraction=fraction,
            seed=seed,
            epoch=epoch,
            val_dice=score,
        )
        if score > best["val_dice"]:
            best.update(val_dice=score, epoch=epoch)
            atomic_torch_save(model.state_dict(), best_path)
            write_record(run, best_rel, best, deps, [relative(run, best_path)])

    enc_params = {id(p) for p in model.encoder.parameters()}
    rest = [p for p in model.parameters() if id(p) not in enc_params]
    optimizer = torch.optim.AdamW(
        [
            {"params": list(model.encoder.parameters()), "lr_scale": ft.encoder_lr_scale},
            {"params": rest, "lr_scale": 1.0},
        ],
        lr=ft.lr,
        weight_decay=ft.weight_decay,
    )
    history = train_loop(
        fabric=fabric,
        module=model,
        optimizer=optimizer,
        step_loss=step_loss,
        n_items=len(images),
        epochs=epochs,
        batch_size=batch,
        lr=ft.lr,
        weight_decay=ft.weight_decay,
        seed=seed,
        checkpoint=out / "checkpoint.pt",
        checkpoint_every=eval_epochs,  # with the best-so-far, so a resume is consistent
        on_epoch_end=on_epoch_end,
        desc=f"finetune {method} {fraction * 100:g}% labels seed {seed}",
        log=lambda **r: run.log(stage="finetune", method=method, fraction=fraction, seed=seed, **r),
        stats=stats,
        fingerprint=deps.fingerprint,
        lr_key="finetune.lr",
        prepare=prepare,
        prefetch=cfg.run.prefetch,
    )
    done = {
        "seconds": round(time.perf_counter() - t0, 2),
        "n_labelled": int(len(labelled)),
        "best_epoch": best["epoch"],
        "val_dice": best["val_dice"],
        "loss": history,
        "throughput": stats,
    }
    write_record(run, relative(run, out / "done.json"), done, deps, [relative(run, best_path)])
    (out / "checkpoint.pt").unlink(missing_ok=True)
    return done


def run_evaluate_cell(
    run: RunDir, cfg: Config, method: str, fraction: float, seed: int, data: ImageSet, fabric
) -> dict:
    """Test-split Dice of a cell's best checkpoint; writes ``result.json`` in the cell."""
    out = cell_dir(run, method, fraction, seed)
    deps = evaluate_deps(cfg, data, method, fraction, seed)
    result = reusable(run, relative(run, out / "result.json"), deps, check_result)
    if result:
        return result
    command = f"finetune method={method} fraction={fraction:g} seed={seed}"
    up = finetune_deps(cfg, data, method, fraction, seed)
    require_current(run, relative(run, out / "done.json"), up, command, check_finetune)
    model = build_model_for_eval(cfg, data)
    model.load_state_dict(load_torch(out / "best.pt"))
    model = fabric.to_device(model)
    test_idx = data.indices("test")
    test_idx = test_idx[data.has_mask[test_idx]]
    pred = predict(model, rows_of(data.images, test_idx), fabric)
    scores = dice_scores(pred, data.masks[test_idx], data.num_classes, groups_for(data, test_idx))
    result = {"method": method, "label_fraction": fraction, "seed": seed, **scores}
    if data.reference_labels:  # judging only: Dice within each reference group
        result["dice_by"] = reference_dice(data, test_idx, pred)
    # A few test predictions for the report's overlays (spread over the test split).
    pick = np.linspace(0, len(test_idx) - 1, num=min(6, len(test_idx))).astype(int)
    atomic_savez(out / "examples.npz", index=test_idx[pick], pred=pred[pick].astype(np.uint8))
    examples = relative(run, out / "examples.npz")
    return write_record(run, relative(run, out / "result.json"), result, deps, [examples])


def reference_dice(data: ImageSet, idx: np.ndarray, pred: np.ndarray) -> dict:
    """``{name: {group: Dice}}``: Dice of ``pred`` within each group of every reference label.

    dsb2018's appearance groups, for instance: a method that helps only on the rare stained
    images shows it here; no method reads the groups.
    """
    out: dict = {}
    for name, labels in data.reference_labels.items():
        groups = labels[idx]
        out[name] = {
            str(g): dice_scores(
                pred[groups == g], data.masks[idx][groups == g], data.num_classes,
                groups_for(data, idx[groups == g]),
            )["dice"]
            for g in sorted(set(groups.tolist()))
        }  # fmt: skip
    return out


def build_model_for_eval(cfg: Config, data: ImageSet) -> SegmentationUNet:
    return SegmentationUNet(
        build_encoder(cfg, data.channels), data.num_classes, cfg.model.num_res_units, cfg.model.norm
    )
