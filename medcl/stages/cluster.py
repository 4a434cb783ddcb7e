"""Stage 2: cluster the embeddings into pseudo-classes (k from the elbow, or given)."""

from __future__ import annotations

import time

import numpy as np

from medcl._load import load_npy
from medcl.cluster import (
    CLUSTERERS,
    WardClustering,
    degeneracy,
    elbow_curve,
    largest_sound_k,
)
from medcl.config import Config, check_k_for
from medcl.data import ImageSet
from medcl.rundir import RunDir, atomic_save_npy, say
from medcl.stages._checks import check_summary, check_trained
from medcl.stages._deps import cluster_deps, features_deps
from medcl.stages._done import require_current, reusable, write_record


def _sound_k(ward, k: int, k_min: int, n: int, fixed: bool) -> tuple[int, str | None]:
    """``k``, or the largest smaller cut of the Ward tree that is not degenerate; and a warning.

    A k the user fixed (``cluster.k``) is kept, with the warning only.
    """
    sizes = np.bincount(ward.labels_for(k)).tolist()
    problem = degeneracy(sizes, n)
    if problem is None:
        return k, None
    if fixed:
        return k, f"cluster.k = {k} for {n} images is degenerate: {problem}; kept as set"
    sound = largest_sound_k(ward.labels_for, k, min(k_min, k))
    if sound is None:
        return k, (
            f"the elbow chose k = {k} for {n} images and {problem}; no k from "
            f"{min(k_min, k)} to {k} avoids that, so k = {k} is kept (more images, or a "
            "fixed cluster.k, would help)"
        )
    return sound, (
        f"the elbow chose k = {k} for {n} images, but {problem}; using k = {sound}, the "
        "largest k below it without that (set cluster.k to choose k yourself)"
    )


def run_cluster(run: RunDir, cfg: Config, data: ImageSet) -> dict:
    """Writes ``cluster/labels.npy`` (one pseudo-label per train image) and ``summary.json``."""
    deps = cluster_deps(cfg, data)
    done = reusable(run, "cluster/summary.json", deps, check_summary)
    if done:
        return done
    c = cfg.cluster
    require_current(run, "features/done.json", features_deps(cfg, data), "features", check_trained)
    X = load_npy(run.path / "features" / "embeddings.npy")
    n = len(X)
    check_k_for(c, n, "training images")  # k_min < k_max is checked when the config loads
    t0 = time.perf_counter()
    # The elbow curve always comes from one Ward tree (the paper's rule); the other
    # clusterers then use that k unless the user fixed one (Table II ablation).
    k_range = (c.k_min, max(c.k_min, min(c.k_max, n - 1)))
    ward = WardClustering(n_clusters=c.k, k_range=k_range, random_state=0).fit(X)
    k_values = list(range(k_range[0], k_range[1] + 1))
    # With a fixed k the curve is still drawn in the report, for the user to compare.
    curve = ward.curve_ if ward.curve_ is not None else elbow_curve(X, ward, k_values)
    chosen = int(ward.n_clusters_)
    warning = None
    if c.method != "dbscan":
        chosen, warning = _sound_k(ward, chosen, c.k_min, n, fixed=c.k is not None)
    if c.method == "ward":
        labels, k = ward.labels_for(chosen), chosen
    elif c.method == "kmeans":
        model = CLUSTERERS["kmeans"](n_clusters=chosen, random_state=0).fit(X)
        labels, k = model.labels_, int(model.n_clusters_)
    else:
        model = CLUSTERERS["dbscan"]().fit(X)
        labels = model.labels_.copy()
        # DBSCAN's noise points (-1) each become their own pseudo-class: they are then
        # positives only of their own other view, as in SimCLR.
        noise = labels < 0
        labels[noise] = labels.max() + 1 + np.arange(noise.sum())
        k = int(model.n_clusters_)
    sizes = np.bincount(np.unique(labels, return_inverse=True)[1]).tolist()
    if c.method == "kmeans" or c.method == "dbscan":  # their own clusters, not Ward's cut
        problem = degeneracy(sizes, n)
        if problem and not warning:
            warning = f"the {c.method} clusters are degenerate: {problem}"
    if warning:
        say(f"warning: cluster: {warning}")
    atomic_save_npy(run.file("cluster", "labels.npy"), np.asarray(labels, dtype=np.int64))
    summary = {
        "method": c.method,
        "k": k,
        "warning": warning,
        "elbow_k": None if ward.elbow_k_ is None else int(ward.elbow_k_),
        "k_values": k_values,
        "curve": [float(v) for v in curve],
        "sizes": sizes,
        "seconds": round(time.perf_counter() - t0, 2),
    }
    return write_record(run, "cluster/summary.json", summary, deps, ["cluster/labels.npy"])
