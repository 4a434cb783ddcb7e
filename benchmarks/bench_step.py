"""Benchmark a whole training step against the raw model step, for every method.

Usage::

    python benchmarks/bench_step.py [--size 64] [--batch 32] [--device auto]
        [--precision 32-true] [--methods simclr moco byol ufc glcl pcl ld finetune]
        [--repeats 15] [--steps 4] [--threads 2] [--channels-last] [--sync-check] [--json OUT]

For each pretraining method, and for fine-tuning (``finetune``), three ways of running
``--steps`` consecutive optimiser steps are timed in alternating rounds within one process
(the machine is shared and noisy):

* ``raw``: the model alone on ready tensors: views (or augmented image/mask pairs) already on
  the device, then forward + loss + backward + optimiser step (+ the momentum update);
* ``full``: what a medcl stage does per step with ``run.prefetch=false``: draw a batch of
  indices, gather those images from an 8-bit cache in host memory, move them to the device
  (``medcl.stages._common.to_device``), augment with medcl's kornia pipelines (``TwoViews`` /
  ``PairedAugment``; GLCL's own views through ``prepare``), then the same forward, backward
  and optimiser step;
* ``ahead``: the same with ``run.prefetch=true`` (the default): the next batch is assembled
  and augmented on a worker thread (``medcl.train._prefetch.ahead``) while the model
  computes the current one. On a CPU that thread computes beside the model's ``--threads``
  threads, as a data loader's workers would.

Printed per method: images/s of each (median over repeats of the mean over ``--steps``) and
``full / raw`` and ``ahead / raw``, the share of the raw model's speed the whole step keeps
(1.0: the input pipeline costs nothing). ``--sync-check`` (CUDA only) runs one full step
under ``torch.cuda.set_sync_debug_mode`` and counts the implicit host-device
synchronisations it reports (0 expected; the CPU test ``tests/train/test_no_sync.py`` checks
the same on every test run).

The encoder is medcl's UNet encoder with the demo's widths (16, 32, 64, 128), 3 input
channels (RGB, as ISIC and DSB2018), the data synthetic (content does not change the cost).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import warnings

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402

ALL = ["simclr", "moco", "byol", "ufc", "glcl", "pcl", "ld", "finetune"]
SETTINGS = dict(temperature=0.1, momentum=0.99, queue_size=256, partitions=4, threshold=0.1)


def _sync(fabric) -> None:
    if fabric.device.type == "cuda":
        torch.cuda.synchronize(fabric.device)


def make_steps(name: str, fabric, args, cache: np.ndarray):
    """``(ready, draw, step)``: inputs assembled once, a callable that assembles new ones (the
    stage's batch assembly and augmentation), and one optimiser step on given inputs."""
    from monai.losses import DiceCELoss

    from medcl.data import PairedAugment, TwoViews
    from medcl.methods import Batch, build_method
    from medcl.models import SegmentationUNet, UNetEncoder
    from medcl.stages._common import to_device

    size, b = (args.size, args.size), args.batch
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    encoder = UNetEncoder(3, (16, 32, 64, 128), num_res_units=0)
    if name == "finetune":
        model: torch.nn.Module = SegmentationUNet(encoder, 2, 0)
    else:
        model = build_method(name, encoder, **SETTINGS)
    model = model.to(memory_format=fmt)  # type: ignore[call-overload]
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-3)
    model_f, opt_f = fabric.setup(model, opt)
    masks = (rng.random((len(cache), args.size, args.size)) > 0.5).astype(np.uint8)
    labels = fabric.to_device(torch.as_tensor(rng.integers(0, 8, len(cache))))
    positions = fabric.to_device(torch.as_tensor(rng.random(len(cache)), dtype=torch.float32))

    def images(idx: np.ndarray) -> torch.Tensor:
        return (to_device(fabric, cache, idx).float() / 255).contiguous(memory_format=fmt)

    if name == "finetune":
        aug, loss_fn = PairedAugment(size), DiceCELoss(to_onehot_y=True, softmax=True)

        def draw():
            idx = rng.choice(len(cache), b, replace=False)
            return aug(images(idx), to_device(fabric, masks, idx))

        def loss_of(inputs) -> torch.Tensor:
            x, y = inputs
            return loss_fn(model_f(x), y.unsqueeze(1))

    else:
        views = TwoViews(size)

        def draw():  # type: ignore[misc]
            idx = rng.choice(len(cache), b, replace=False)
            x, t = images(idx), fabric.to_device(torch.as_tensor(idx))
            batch = Batch(views=views(x), images=x, labels=labels[t], positions=positions[t])
            return model.prepare(batch)

        def loss_of(inputs) -> torch.Tensor:  # type: ignore[misc]
            return model_f(inputs)

    step_count = [0]

    def step(inputs) -> None:
        with fabric.autocast():
            loss = loss_of(inputs)
        opt_f.zero_grad(set_to_none=True)
        fabric.backward(loss)
        opt_f.step()
        step_count[0] += 1
        if hasattr(model, "after_step"):
            model.after_step(step_count[0], 10**6)

    return draw(), draw, step


def count_syncs(fn) -> int | None:
    """Implicit host-device synchronisations in one call of ``fn`` (CUDA only), else None."""
    if not torch.cuda.is_available():
        return None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            fn()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return sum("synchroniz" in str(w.message) for w in caught)


def bench(name: str, fabric, args, cache: np.ndarray) -> dict:
    from medcl.train._prefetch import ahead

    ready, draw, step = make_steps(name, fabric, args, cache)
    k = args.steps
    rounds = {
        "raw": lambda: [step(ready) for _ in range(k)],
        "full": lambda: [step(draw()) for _ in range(k)],
        "ahead": lambda: [step(inputs) for _, inputs in ahead(lambda _: draw(), range(k))],
    }
    for _ in range(2):  # warm-up rounds (allocator, kernels, autotuning), not timed
        for fn in rounds.values():
            fn()
    _sync(fabric)
    syncs = count_syncs(lambda: step(draw())) if args.sync_check else None
    times: dict[str, list[float]] = {key: [] for key in rounds}
    for _ in range(args.repeats):
        for key, fn in rounds.items():
            _sync(fabric)
            t0 = time.perf_counter()
            fn()
            _sync(fabric)
            times[key].append((time.perf_counter() - t0) / k)
    s = {key: statistics.median(v) for key, v in times.items()}
    return {
        "method": name,
        "raw_images_per_s": round(args.batch / s["raw"], 1),
        "full_images_per_s": round(args.batch / s["full"], 1),
        "ahead_images_per_s": round(args.batch / s["ahead"], 1),
        "full_over_raw": round(s["raw"] / s["full"], 3),
        "ahead_over_raw": round(s["raw"] / s["ahead"], 3),
        "syncs": syncs,
    }


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=64, help="image side in pixels")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, mps")
    ap.add_argument("--precision", default=None, help="Fabric precision, e.g. bf16-mixed")
    ap.add_argument("--methods", nargs="+", default=ALL, choices=ALL)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--steps", type=int, default=4, help="consecutive steps in a timed round")
    ap.add_argument("--threads", type=int, default=None, help="CPU threads (torch)")
    ap.add_argument("--channels-last", action="store_true")
    ap.add_argument("--sync-check", action="store_true", help="count syncs (CUDA only)")
    ap.add_argument("--json", default=None, help="also write the rows to this file")
    a = ap.parse_args(argv)
    from medcl.train._device import make_fabric

    if a.threads:
        torch.set_num_threads(a.threads)
    fabric = make_fabric(a.device, a.precision)
    n = max(8 * a.batch, 256)
    cache = np.random.default_rng(1).integers(0, 256, (n, 3, a.size, a.size), dtype=np.uint8)
    print(
        f"device {fabric.device}, precision {a.precision or 'default'}, {a.size}x{a.size}, "
        f"batch {a.batch}, {a.repeats} repeats, threads {torch.get_num_threads()}",
        flush=True,
    )
    print(
        f"{'method':<9} {'raw img/s':>10} {'full img/s':>11} {'ahead img/s':>12} "
        f"{'full/raw':>9} {'ahead/raw':>10} {'syncs':>6}"
    )
    rows = []
    for name in a.methods:
        r = bench(name, fabric, a, cache)
        rows.append(r)
        syncs = "-" if r["syncs"] is None else str(r["syncs"])
        print(
            f"{name:<9} {r['raw_images_per_s']:>10.1f} {r['full_images_per_s']:>11.1f} "
            f"{r['ahead_images_per_s']:>12.1f} {r['full_over_raw']:>9.3f} "
            f"{r['ahead_over_raw']:>10.3f} {syncs:>6}",
            flush=True,
        )
    for key in ("full", "ahead"):
        ratios = [r[f"{key}_over_raw"] for r in rows]
        print(
            f"{key}/raw over methods: median {statistics.median(ratios):.3f}, "
            f"lowest {min(ratios):.3f} ({rows[ratios.index(min(ratios))]['method']})"
        )
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"args": vars(a), "rows": rows}, f, indent=1)
    return rows


if __name__ == "__main__":
    main(sys.argv[1:])
