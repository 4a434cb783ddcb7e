"""Benchmark WardClustering with automatic k (elbow curve for k = 2..200) on 128-d embeddings.

Usage::

    python benchmarks/bench_cluster.py [--sizes 45000 1000000] [--repeats 3]
        [--ref auto|kmeans|minibatch|both] [--json results.json]
    python benchmarks/bench_cluster.py --sizes 10000000 --repeats 3   # 4.9 GiB of data

Data: a seeded mixture of 50 Gaussian blobs in 128 dimensions with unequal sizes (Dirichlet
proportions) and unequal spreads, plus 5% uniform background noise, generated in float32 into
one preallocated array, in blocks of 262,144 rows (10M points: 4.9 GiB of data).

Each size runs in a fresh subprocess so that memory figures do not mix. Reported per size:

* ``time``: median wall time of ``WardClustering(k_range=(2, 200)).fit(X)`` over repeats
  (micro-clustering, weighted Ward, the elbow curve for k = 2..200 and the labels).
* ``peak mem``: the median over repeats of one fit's peak RSS above the RSS at its start,
  with the data loaded (Linux: the peak, ``VmHWM`` in ``/proc/self/status``, is reset to the
  current RSS through ``/proc/self/clear_refs`` before each measured call, so a higher peak
  during data generation cannot hide the fit's). The input array itself is not counted; it is
  printed separately, with the RSS once it is loaded and the whole process's peak RSS (data
  generation, the fits, the unweighted fit and the references).
* ``reference``: measured in the same process on the same array, on all points, at one k (the
  elbow's): scikit-learn's ``MiniBatchKMeans(n_clusters=k, n_init=1, batch_size=1024)``
  (1024 is scikit-learn's default; ``max_iter=100`` epochs with its early stopping, then the
  labels of all points) at every size, and ``KMeans(n_clusters=k, n_init=1)`` (full Lloyd) up
  to 1,000,000 points (``--ref auto``, the default; full KMeans took 91 s at 1M, so
  ``--ref both`` at 10M would add roughly ten times that). Printed with its time, its peak
  RSS (measured as ours), its adjusted Rand index at that k and ``speed ratio = reference
  time / our time`` (> 1 means we are faster, while also building the whole tree and curve).
* ``ARI``: adjusted Rand index against the generating blobs (noise points excluded) at
  k = 50 (the true number) for weighted micro-Ward and for the unweighted variant
  (``weighted=False``), which shows why the micro-centroids must carry their sizes.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

N_BLOBS = 50
DIM = 128
NOISE = 0.05
GEN_BLOCK = 262_144
KMEANS_MAX = 1_000_000  # largest n at which --ref auto also runs full KMeans (91 s at 1M)
MB_BATCH = 1024  # scikit-learn's default MiniBatchKMeans batch size


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
    # and each blob is drawn in blocks of GEN_BLOCK rows (the same random stream as one draw)
    X = np.empty((n, DIM), dtype=np.float32)
    for b in range(N_BLOBS):
        idx = np.flatnonzero(y == b)
        for s in range(0, len(idx), GEN_BLOCK):
            rows = idx[s : s + GEN_BLOCK]
            block = rng.standard_normal((len(rows), DIM), dtype=np.float32) * spreads[b]
            X[rows] = block + centers[b]
    idx = np.flatnonzero(y < 0)
    low, high = centers.min(0) - 3, centers.max(0) + 3
    for s in range(0, len(idx), GEN_BLOCK):
        rows = idx[s : s + GEN_BLOCK]
        X[rows] = rng.uniform(low, high, size=(len(rows), DIM)).astype(np.float32)
    return X, y.astype(np.int64)


def _status_mb(field: str) -> float:
    """``VmRSS`` (resident now) or ``VmHWM`` (peak resident) of this process, in MiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0  # kB
    raise RuntimeError(f"{field} not in /proc/self/status")


def _reset_peak() -> float:
    """Reset the peak RSS to the current RSS (Linux ``clear_refs``); returns the old peak."""
    old = _status_mb("VmHWM")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    return old


def _measure(fn) -> tuple[float, float, object]:
    """Run ``fn()``; returns its wall time, its peak RSS above the RSS at its start, and its result."""
    _reset_peak()
    base = _status_mb("VmRSS")
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, _status_mb("VmHWM") - base, out


def _references(ref: str, n: int) -> list[str]:
    if ref == "auto":
        return ["kmeans", "minibatch"] if n <= KMEANS_MAX else ["minibatch"]
    return ["kmeans", "minibatch"] if ref == "both" else [ref]


def run_one(n: int, repeats: int, ref: str) -> dict:
    from sklearn.cluster import KMeans, MiniBatchKMeans
    from sklearn.metrics import adjusted_rand_score

    from medcl.cluster import WardClustering

    t0 = time.perf_counter()
    X, y = make_data(n)
    data_s = time.perf_counter() - t0
    process_peak = _reset_peak()  # generation's peak; later peaks are measured from here
    loaded = _status_mb("VmRSS")
    times, peaks, ward = [], [], None
    for _ in range(repeats):
        ward = None  # the previous fit's arrays are freed before the next is measured
        t, peak, ward = _measure(lambda: WardClustering(k_range=(2, 200)).fit(X))
        times.append(t)
        peaks.append(peak)
        process_peak = max(process_peak, _status_mb("VmHWM"))
    assert ward is not None
    k = ward.n_clusters_

    blob = y >= 0
    ari_w = adjusted_rand_score(y[blob], ward.labels_for(N_BLOBS)[blob])
    ari_elbow = adjusted_rand_score(y[blob], ward.labels_[blob])
    unweighted = WardClustering(n_clusters=N_BLOBS, weighted=False).fit(X)
    ari_u = adjusted_rand_score(y[blob], unweighted.labels_[blob])
    del unweighted

    estimators = {
        "kmeans": lambda: KMeans(n_clusters=k, n_init=1, random_state=0),
        "minibatch": lambda: MiniBatchKMeans(
            n_clusters=k, n_init=1, batch_size=MB_BATCH, random_state=0
        ),
    }
    median = float(np.median(times))
    refs = {}
    for name in _references(ref, n):
        t, peak, est = _measure(lambda name=name: estimators[name]().fit(X))
        process_peak = max(process_peak, _status_mb("VmHWM"))
        refs[name] = {
            "time_s": t,
            "peak_rss_increase_mb": peak,
            "speed_ratio": t / median,
            "ari_elbow_k": adjusted_rand_score(y[blob], est.labels_[blob]),
        }
        del est
    return {
        "n": n,
        "mode": ward.mode_,
        "data_s": data_s,
        "time_s": median,
        "times_s": times,
        "peak_rss_increase_mb": float(np.median(peaks)),
        "peaks_mb": peaks,
        "loaded_rss_mb": loaded,
        "peak_rss_total_mb": max(process_peak, _status_mb("VmHWM")),
        "input_mb": X.nbytes / 2**20,
        "elbow_k": k,
        "refs": refs,
        "ari_weighted_k50": ari_w,
        "ari_unweighted_k50": ari_u,
        "ari_weighted_elbow_k": ari_elbow,
    }


_REF_NAMES = {
    "kmeans": "sklearn KMeans(k={k}, n_init=1)",
    "minibatch": f"sklearn MiniBatchKMeans(k={{k}}, n_init=1, batch_size={MB_BATCH})",
}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[45_000, 1_000_000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--ref",
        choices=["auto", "kmeans", "minibatch", "both"],
        default="auto",
        help=f"references: auto = MiniBatchKMeans, and full KMeans up to {KMEANS_MAX:,} points",
    )
    parser.add_argument("--json", help="also write the raw results to this file")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(run_one(args.sizes[0], args.repeats, args.ref)))
        return
    env = dict(os.environ, OMP_WAIT_POLICY=os.environ.get("OMP_WAIT_POLICY", "PASSIVE"))
    print(
        f"WardClustering, auto k over 2..200, {DIM}-d, {N_BLOBS} blobs + {NOISE:.0%} noise, "
        f"median of {args.repeats}; peak = peak RSS of one fit above the RSS with the data "
        f"loaded; OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, "
        f"{os.cpu_count()} CPUs"
    )
    results = []
    for n in args.sizes:
        cmd = [
            sys.executable,
            __file__,
            "--child",
            "--sizes",
            str(n),
            "--repeats",
            str(args.repeats),
            "--ref",
            args.ref,
        ]
        out = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if out.returncode != 0:
            sys.exit(f"n={n}: the benchmark subprocess failed:\n{out.stderr}")
        r = json.loads(out.stdout.strip().splitlines()[-1])
        results.append(r)
        print(
            f"n={r['n']:>10,} mode={r['mode']:<5} time={r['time_s']:7.2f}s "
            f"(runs {', '.join(f'{t:.2f}' for t in r['times_s'])}) "
            f"peak mem +{r['peak_rss_increase_mb']:.0f} MB "
            f"(runs {', '.join(f'{p:.0f}' for p in r['peaks_mb'])}; input "
            f"{r['input_mb']:.0f} MB, RSS with data {r['loaded_rss_mb']:.0f} MB, process peak "
            f"{r['peak_rss_total_mb']:.0f} MB) elbow k={r['elbow_k']} "
            f"(data generated in {r['data_s']:.1f}s)"
        )
        for name, ref in r["refs"].items():
            print(
                f"    reference {_REF_NAMES[name].format(k=r['elbow_k'])} {ref['time_s']:.2f}s, "
                f"peak mem +{ref['peak_rss_increase_mb']:.0f} MB, ARI at k={r['elbow_k']} "
                f"{ref['ari_elbow_k']:.3f} -> speed ratio (ref / ours) {ref['speed_ratio']:.2f}x"
            )
        print(
            f"    ARI vs generating blobs at k={N_BLOBS}: weighted {r['ari_weighted_k50']:.3f}, "
            f"unweighted {r['ari_unweighted_k50']:.3f}; at elbow k: "
            f"{r['ari_weighted_elbow_k']:.3f}"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
