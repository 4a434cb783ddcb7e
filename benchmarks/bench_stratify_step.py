"""Benchmark one ``medcl stratify`` warm-up step: contiguous (NCHW) vs channels_last (NHWC).

Usage::

    python benchmarks/bench_stratify_step.py [--batch 128] [--repeats 30] [--threads 2]

A step is what ``train_warmup`` does per batch on the packaged ``stratify-mnist`` config: two
kornia views of 28x28 digits, the contrastive autoencoder forward, NT-Xent + reconstruction
MSE, backward and a LARS update. Both memory layouts are built from the same seed and timed
in alternating rounds within one process (the machine is shared and noisy), then the medians
are printed with ``speed ratio = contiguous / channels_last`` (> 1: channels_last is faster).
The two layouts must give the same loss (checked and printed), since only the layout differs.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402


def make_step(channels_last: bool, batch: int):
    from medcl.losses import cluster_contrastive_loss
    from medcl.stages.stratify._shared import build_model
    from medcl.stages.stratify.warmup import make_views
    from medcl.stratify_config import load_stratify_config
    from medcl.train import LARS, lars_param_groups

    cfg = load_stratify_config(
        os.path.join(os.path.dirname(__file__), "..", "medcl", "configs", "stratify-mnist.yaml")
    )
    w = cfg.warmup
    torch.manual_seed(0)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = build_model(cfg, 1, (28, 28)).to(memory_format=fmt)
    views = make_views(cfg, (28, 28))
    opt = LARS(lars_param_groups(model, w.weight_decay), lr=0.1, eta=w.eta)
    x = torch.rand(batch, 1, 28, 28, generator=torch.Generator().manual_seed(1))

    def step() -> float:
        with torch.no_grad():
            v = torch.cat([views(x), views(x)]).clamp_(0, 1).contiguous(memory_format=fmt)
        _, z, rec = model(v)
        loss = cluster_contrastive_loss(
            torch.stack([z[:batch], z[batch:]], 1), None, w.temperature, "supcon"
        ) + w.alpha * F.mse_loss(rec, v)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return float(loss.detach())

    return step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    steps = {"contiguous": make_step(False, a.batch), "channels_last": make_step(True, a.batch)}
    # same seed for the augmentations of the first step: the layouts must agree on the loss
    first = {}
    for name, fn in steps.items():
        torch.manual_seed(2)
        first[name] = fn()
    times: dict[str, list[float]] = {n: [] for n in steps}
    for _ in range(3):  # warm-up rounds, not timed
        for fn in steps.values():
            fn()
    for _ in range(a.repeats):
        for name, fn in steps.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    med = {n: 1000 * float(np.median(t)) for n, t in times.items()}
    print(f"batch {a.batch} (two views each), {a.threads} threads, {a.repeats} rounds")
    print(
        f"first-step loss: contiguous {first['contiguous']:.6f}, "
        f"channels_last {first['channels_last']:.6f}"
    )
    for n, m in med.items():
        print(f"{n:>14}: median {m:.1f} ms/step")
    print(
        f"speed ratio (contiguous / channels_last): {med['contiguous'] / med['channels_last']:.2f}"
    )


if __name__ == "__main__":
    main()
