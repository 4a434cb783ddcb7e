"""Where the augmentation's time goes: medcl's two views against kornia's container and a
single call on both views at once, in alternating rounds in one process.

Usage::

    python benchmarks/bench_views.py [--size 64] [--batch 32] [--channels 3] [--repeats 21]
        [--threads 1]

Timed (median of ``--repeats`` alternating rounds, ms):

* ``views``: ``TwoViews`` as the stages call it: two calls of ``batch`` images through a plain
  ``nn.Sequential`` of kornia augmentations;
* ``container``: the same two calls through ``kornia.augmentation.AugmentationSequential``
  holding the same augmentations (what medcl used before; the same output bit for bit);
* ``one call``: one ``nn.Sequential`` call on ``2 x batch`` images, to show whether per-call
  overhead or the work itself dominates (other random draws, so not a drop-in).

Printed with the ratios container / views and one call / views.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import kornia.augmentation as K  # noqa: E402
import torch  # noqa: E402


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--channels", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=21)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    from medcl.data import TwoViews

    views = TwoViews((args.size, args.size))
    container = K.AugmentationSequential(*views.aug.children())
    x = torch.rand(args.batch, args.channels, args.size, args.size)
    both = torch.cat([x, x])
    fns = {
        "views": lambda: views(x),
        "container": lambda: torch.stack([container(x), container(x)], dim=1),
        "one call": lambda: views.aug(both),
    }
    for fn in fns.values():  # warm-up, not timed
        fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(args.repeats):
        for key, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[key].append(time.perf_counter() - t0)
    ms = {k: 1e3 * statistics.median(v) for k, v in times.items()}
    print(
        f"two views of {args.batch} x {args.channels} x {args.size} x {args.size}, "
        f"{args.threads} thread(s), median of {args.repeats}"
    )
    for key, value in ms.items():
        print(f"{key:>10}: {value:7.1f} ms  ({value / ms['views']:.2f}x views)")
    return ms


if __name__ == "__main__":
    main()
