"""Benchmark WardClustering with automatic k (elbow curve for k = 2..200) on 128-d embeddings.

Usage::

    python benchmarks/bench_cluster.py [--sizes 45000 1000000] [--repeats 3]

Data: a seeded mixture of 50 Gaussian blobs in 128 dimensions with unequal sizes (Dirichlet
proportions) and unequal spreads, plus 5% uniform background noise, generated in float32.

Each size runs in a fresh subprocess so that memory figures do not mix. Reported per size:

* ``time``: median wall time of ``WardClustering(k_range=(2, 200)).fit(X)`` over repeats
  (micro-clustering, weighted Ward, the elbow curve for k = 2..200 and the labels).
* ``peak mem``: peak RSS increase during fitting, i.e. ``ru_maxrss`` (``resource.getrusage``)
  after the fits minus ``ru_maxrss`` once the data are generated (generation fills the array
  in place, so that baseline is the loaded data plus interpreter and libraries). The input
  array itself is therefore not counted; it is printed separately, with the whole process's
  peak RSS (which also covers the reference and the unweighted fit run afterwards).
* ``ref``: a reference measured in the same process, sklearn ``KMeans(n_clusters=k_elbow,
  n_init=1)`` on all points (one k only), and ``speed ratio = ref time / our time``
  (> 1 means we are faster while also building the whole tree and curve).
* ``ARI``: adjusted Rand index against the generating blobs (noise points excluded) at
  k = 50 (the true number) for weighted micro-Ward and for the unweighted variant
  (``weighted=False``), which shows why the micro-centroids must carry their sizes.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

N_BLOBS = 50
DIM = 128
NOISE = 0.05


def make_data(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(n, 128)`` float32 points and ``(n,)`` blob ids (-1 for background noise)."""
    rng = np.random.default_rng(seed)
    n_noise = int(NOISE * n)
    props = rng.dirichlet(np.full(N_BLOBS, 1.0))
    sizes = rng.multinomial(n - n_noise, props)
    centers = rng.normal(scale=4.0, size=(N_BLOBS, DIM)).astype(np.float32)
    spreads = rng.uniform(0.5, 1.5, size=N_BLOBS).astype(np.float32)
    # shuffled ids first, then rows filled in place, so generation never holds a second copy
    y = rng.permutation(np.r_[np.repeat(np.arange(N_BLOBS), sizes), np.full(n_noise, -1)])
    X = np.empty((n, DIM), dtype=np.float32)
    for b in range(N_BLOBS):
        idx = np.flatnonzero(y == b)
        block = rng.standard_normal((len(idx), DIM), dtype=np.float32) * spreads[b]
        X[idx] = block + centers[b]
    idx = np.flatnonzero(y < 0)
    low, high = centers.min(0) - 3, centers.max(0) + 3
    X[idx] = rng.uniform(low, high, size=(len(idx), DIM)).astype(np.float32)
    return X, y.astype(np.int64)


def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def run_one(n: int, repeats: int) -> dict:
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score

    from medcl.cluster import WardClustering

    X, y = make_data(n)
    base = _maxrss_mb()
    times, ward = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        ward = WardClustering(k_range=(2, 200)).fit(X)
        times.append(time.perf_counter() - t0)
    peak = _maxrss_mb() - base
    k = ward.n_clusters_

    blob = y >= 0
    ari_w = adjusted_rand_score(y[blob], ward.labels_for(N_BLOBS)[blob])
    ari_elbow = adjusted_rand_score(y[blob], ward.labels_[blob])
    unweighted = WardClustering(n_clusters=N_BLOBS, weighted=False).fit(X)
    ari_u = adjusted_rand_score(y[blob], unweighted.labels_[blob])

    t0 = time.perf_counter()
    KMeans(n_clusters=k, n_init=1, random_state=0).fit(X)
    ref = time.perf_counter() - t0
    median = float(np.median(times))
    return {
        "n": n,
        "mode": ward.mode_,
        "time_s": median,
        "times_s": times,
        "peak_rss_increase_mb": peak,
        "peak_rss_total_mb": _maxrss_mb(),
        "input_mb": X.nbytes / 2**20,
        "elbow_k": k,
        "ref_kmeans_s": ref,
        "speed_ratio": ref / median,
        "ari_weighted_k50": ari_w,
        "ari_unweighted_k50": ari_u,
        "ari_weighted_elbow_k": ari_elbow,
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[45_000, 1_000_000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(run_one(args.sizes[0], args.repeats)))
        return
    env = dict(os.environ, OMP_WAIT_POLICY=os.environ.get("OMP_WAIT_POLICY", "PASSIVE"))
    print(
        f"WardClustering, auto k over 2..200, {DIM}-d, {N_BLOBS} blobs + {NOISE:.0%} noise, "
        f"median of {args.repeats}; peak = ru_maxrss increase over the loaded data"
    )
    for n in args.sizes:
        cmd = [
            sys.executable,
            __file__,
            "--child",
            "--sizes",
            str(n),
            "--repeats",
            str(args.repeats),
        ]
        out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(
            f"n={r['n']:>9,} mode={r['mode']:<5} time={r['time_s']:7.2f}s "
            f"(runs {', '.join(f'{t:.2f}' for t in r['times_s'])}) "
            f"peak mem +{r['peak_rss_increase_mb']:.0f} MB (input {r['input_mb']:.0f} MB, "
            f"process peak {r['peak_rss_total_mb']:.0f} MB) "
            f"elbow k={r['elbow_k']}"
        )
        print(
            f"    reference sklearn KMeans(k={r['elbow_k']}, n_init=1) {r['ref_kmeans_s']:.2f}s "
            f"-> speed ratio vs reference {r['speed_ratio']:.2f}x"
        )
        print(
            f"    ARI vs generating blobs at k={N_BLOBS}: weighted {r['ari_weighted_k50']:.3f}, "
            f"unweighted {r['ari_unweighted_k50']:.3f}; at elbow k: "
            f"{r['ari_weighted_elbow_k']:.3f}"
        )


if __name__ == "__main__":
    main()
