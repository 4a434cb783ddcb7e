"""One short training loop shared by every stage, with resumable atomic checkpoints."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from medcl._load import load_torch
from medcl.errors import DamagedFile, MedclError
from medcl.rundir import atomic_torch_save, say
from medcl.train._prefetch import ahead
from medcl.train._schedule import lr_at

_CHECKPOINT_KEYS = ("model", "optimizer", "numpy_rng", "torch_rng", "history", "epoch")


def batches(
    n: int,
    batch_size: int,
    rng: np.random.Generator,
    drop_last: bool = True,
    rank: int = 0,
    world: int = 1,
) -> Iterator[np.ndarray]:
    """Index batches over one shuffled epoch; each process takes its own slice of a batch."""
    order = rng.permutation(n)
    stop = n - n % batch_size if drop_last and n >= batch_size else n
    for start in range(0, stop, batch_size):
        idx = order[start : start + batch_size]
        yield idx[rank::world]


def load_checkpoint(
    path: Path, fingerprint: str | None, desc: str = "training", quiet: bool = False
) -> dict | None:
    """The resumable state in ``path``, or None to start afresh, saying why in one line.

    A checkpoint saved from other settings (its ``fingerprint`` differs) or a damaged one
    (cut short, zeroed, missing a key) is not resumed. One that holds pickled Python objects
    raises :class:`~medcl.errors.UnsafeFile`: it is never loaded.
    """
    if not path.exists():
        return None
    try:
        state = load_torch(path)
        if not isinstance(state, dict) or any(k not in state for k in _CHECKPOINT_KEYS):
            raise DamagedFile(path, "not a medcl checkpoint")
    except DamagedFile as exc:
        if not quiet:
            say(f"{path} is damaged ({exc.reason}); starting {desc} again")
        return None
    if state.get("fingerprint") != fingerprint:
        if not quiet:
            say(f"{path} was saved with other settings or inputs; starting {desc} again")
        return None
    return state


def _fits(state: dict, module: nn.Module, optimizer) -> bool:
    """Whether ``state`` can be loaded into ``module`` and ``optimizer``, checked without
    changing either (so that a training that cannot resume still starts from scratch)."""
    mine, theirs = module.state_dict(), state["model"]
    if not isinstance(theirs, dict) or set(theirs) != set(mine):
        return False
    if any(getattr(theirs[k], "shape", None) != v.shape for k, v in mine.items()):
        return False
    groups = (
        (state["optimizer"] or {}).get("param_groups")
        if isinstance(state["optimizer"], dict)
        else None
    )
    if not isinstance(groups, list) or len(groups) != len(optimizer.param_groups):
        return False
    try:
        np.random.default_rng().bit_generator.state = state["numpy_rng"]
        if (
            not isinstance(state["torch_rng"], torch.Tensor)
            or state["torch_rng"].dtype != torch.uint8
        ):
            return False
        int(state["epoch"])
        [float(v) for v in state["history"]]
    except (KeyError, TypeError, ValueError):
        return False
    return True


def train_loop(
    *,
    fabric,
    module: nn.Module,
    step_loss: Callable[[Any, nn.Module], torch.Tensor],
    n_items: int,
    epochs: int,
    batch_size: int,
    lr: float,
    weight_decay: float = 1e-4,
    warmup_epochs: int = 0,
    seed: int = 0,
    checkpoint: Path | None = None,
    log: Callable[..., None] | None = None,
    desc: str = "train",
    on_epoch_end: Callable[[int], None] | None = None,
    checkpoint_every: int = 1,
    optimizer: torch.optim.Optimizer | None = None,
    lr_fn: Callable[[int, int], float] | None = None,
    on_step_end: Callable[[int, int], None] | None = None,
    stats: dict | None = None,
    progress_every: float = 30.0,
    fingerprint: str | None = None,
    lr_key: str | None = None,
    prepare: Callable[[np.ndarray], Any] | None = None,
    prefetch: bool = False,
) -> list[float]:
    """Train ``module`` with AdamW and a warm-up + cosine schedule; return per-epoch losses.

    ``step_loss(indices, model)`` computes the loss of one batch (it draws views, runs
    ``model``: ``module`` as set up by Fabric, so that DDP sees the forward pass).
    ``on_step_end(step, total)`` runs after each optimiser step (1-based step), e.g. for a
    momentum encoder.
    After every epoch the model, optimiser, RNG states and history are saved atomically to
    ``checkpoint`` (every ``checkpoint_every`` epochs and after the last one); if that file
    exists, training resumes after the last saved epoch.
    The loop is the same for every method and stage: what differs lives in ``step_loss``.
    ``prepare(indices)``, if given, assembles a batch (gathers the images, moves them, draws
    the views) and ``step_loss`` receives what it returns instead of the indices; it runs
    outside autocast, so views are drawn in float32. With ``prefetch`` it runs one batch ahead
    on a worker thread (:func:`~medcl.train._prefetch.ahead`) while the model computes the
    current one, never across an epoch's end (the checkpoint's RNG state stays that of the
    inline loop). ``prepare`` must then be the only code of a step that draws random numbers:
    the results are the same as inline, bit for bit (``tests/train/test_prefetch.py``).
    A stage that needs another optimiser (LARS, say) or schedule passes ``optimizer`` (built
    over ``module``'s parameters) and ``lr_fn(step, total_steps) -> lr``; a parameter group
    with an ``lr_scale`` entry trains at that multiple of the schedule's rate.
    ``stats``, if given, is filled with ``steps``, ``items`` (images over all processes),
    ``step_seconds`` (batch assembly or the wait for it, forward, backward and optimiser step
    only) and ``seconds`` (the whole loop, validation and checkpoints included), counted over every
    invocation of a resumed run, and ``images_per_s`` = items / step_seconds.
    Without a terminal the progress bar is off, so a line goes to stderr at most every
    ``progress_every`` seconds (and after the last epoch) instead: long stages show life in
    a log file too.
    ``fingerprint`` names the settings and inputs of this training (see
    :mod:`medcl.stages._done`): it is saved in the checkpoint, and a checkpoint saved under
    another one is not resumed. A loss that is NaN or infinite stops training with one
    sentence naming ``lr_key``, the learning rate to lower.
    """
    if optimizer is None:
        params = [p for p in module.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    module_f, optimizer_f = fabric.setup(module, optimizer)
    steps_per_epoch = max(1, n_items // batch_size if n_items >= batch_size else 1)
    total = epochs * steps_per_epoch
    warmup = warmup_epochs * steps_per_epoch
    schedule = lr_fn or (lambda step, total: lr_at(step, total, lr, warmup))

    rng = np.random.default_rng(seed)
    history: list[float] = []
    start_epoch = 0
    counts = {"steps": 0, "items": 0, "step_seconds": 0.0, "seconds": 0.0}
    quiet = not fabric.is_global_zero
    state = None if checkpoint is None else load_checkpoint(checkpoint, fingerprint, desc, quiet)
    if state is not None and not _fits(state, module, optimizer):
        if not quiet:
            say(f"{checkpoint} is damaged (it does not fit this model); starting {desc} again")
        state = None
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        module.load_state_dict(state["model"])
        rng.bit_generator.state = state["numpy_rng"]
        torch.set_rng_state(state["torch_rng"])
        history = [float(v) for v in state["history"]]
        start_epoch = int(state["epoch"]) + 1
        counts.update(state.get("counts", {}))
    step = start_epoch * steps_per_epoch
    # the current CUDA device is per thread: the worker's must be this process's GPU
    setup = (lambda: torch.cuda.set_device(fabric.device)) if fabric.device.type == "cuda" else None
    bar = tqdm(
        range(start_epoch, epochs),
        desc=desc,
        initial=start_epoch,
        total=epochs,
        disable=None if fabric.is_global_zero else True,
        leave=False,
        dynamic_ncols=True,
    )
    loop_start = time.perf_counter()
    seconds_before = counts["seconds"]
    # Without a terminal (a log file, a batch job) tqdm is silent: one line a minute instead.
    quiet_bar = bool(getattr(bar, "disable", False)) and fabric.is_global_zero
    last_line = loop_start
    for epoch in bar:
        module_f.train()
        losses = []
        order = batches(n_items, batch_size, rng, rank=fabric.global_rank, world=fabric.world_size)
        steps = ahead(prepare, order, prefetch, setup) if prepare else ((i, i) for i in order)
        while True:
            t_step = time.perf_counter()
            next_step = next(steps, None)
            if next_step is None:
                break
            idx, inputs = next_step
            for group in optimizer.param_groups:
                group["lr"] = schedule(step, total) * group.get("lr_scale", 1.0)
            with fabric.autocast():  # bf16 on GPUs; a no-op at 32-true (CPU default)
                loss = step_loss(inputs, module_f)
            optimizer_f.zero_grad(set_to_none=True)
            fabric.backward(loss)
            optimizer_f.step()
            # Kept on the device: float() here would wait for the device after every step.
            losses.append(loss.detach())
            counts["step_seconds"] += time.perf_counter() - t_step
            counts["steps"] += 1
            counts["items"] += len(idx) * fabric.world_size
            step += 1
            if on_step_end is not None:
                on_step_end(step, total)
        # One read per epoch waits for the device's queued steps: counted as step time, so
        # images/s stays honest on an asynchronous device.
        t_sync = time.perf_counter()
        epoch_loss = float(torch.stack(losses).double().mean()) if losses else float("nan")
        counts["step_seconds"] += time.perf_counter() - t_sync
        if fabric.world_size > 1:  # the mean over every process's batches, not rank 0's
            epoch_loss = float(fabric.all_reduce(torch.tensor(epoch_loss), reduce_op="mean"))
        if not np.isfinite(epoch_loss):
            lower = f"lower {lr_key}" if lr_key else "lower the learning rate"
            raise MedclError(
                f"{desc}: the training loss became {epoch_loss} in epoch {epoch + 1}; {lower} "
                "(or look for images with extreme values)."
            )
        history.append(epoch_loss)
        bar.set_postfix(loss=f"{epoch_loss:.4f}")
        now = time.perf_counter()
        if quiet_bar and (now - last_line >= progress_every or epoch + 1 == epochs):
            last_line = now
            print(
                f"medcl: {desc}: epoch {epoch + 1}/{epochs}, loss {epoch_loss:.4f}, "
                f"{now - loop_start:.0f} s",
                file=sys.stderr,
                flush=True,
            )
        if log is not None and fabric.is_global_zero:
            log(epoch=epoch, loss=epoch_loss, lr=optimizer.param_groups[0]["lr"])
        if on_epoch_end is not None:
            on_epoch_end(epoch)
        counts["seconds"] = seconds_before + time.perf_counter() - loop_start
        due = (epoch + 1) % checkpoint_every == 0 or epoch + 1 == epochs
        if checkpoint is not None and fabric.is_global_zero and due:
            atomic_torch_save(
                {
                    "model": module.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "numpy_rng": rng.bit_generator.state,
                    "torch_rng": torch.get_rng_state(),
                    "history": history,
                    "epoch": epoch,
                    "counts": dict(counts),
                    "fingerprint": fingerprint,
                },
                checkpoint,
            )
    if stats is not None:
        stats.update(
            steps=int(counts["steps"]),
            items=int(counts["items"]),
            step_seconds=round(float(counts["step_seconds"]), 3),
            seconds=round(float(counts["seconds"]), 3),
            images_per_s=round(counts["items"] / counts["step_seconds"], 2)
            if counts["step_seconds"] > 0
            else None,
        )
    return history
