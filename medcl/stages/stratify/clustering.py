"""Stage 3, clustering and prototypes: the training latents grouped into k strata.

Reads ``embed/latents.npy``; writes ``prototypes.npy`` (k x latent_dim, the centroids in the
space of ``cluster.normalize``), ``cluster.json`` (k, the curves it was read from, sizes),
``train_latents.npy`` / ``train_clusters.npy`` (what ``cluster.assign=knn`` votes with) and
``cluster/done.json``.

The choice of k is one call, :func:`k_by_rule`, over a table of rules (:data:`K_RULES`): a
new rule is a function there plus a ``cluster.k_rule`` value.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from medcl._load import load_npy
from medcl.cluster import (
    SPECTRAL_METHODS,
    KMeansClustering,
    WardClustering,
    choose_k,
    knee_point,
    partitions,
    silhouette_curve,
    within_cluster_distance,
)
from medcl.rundir import atomic_save_npy, say
from medcl.stages._checks import check_summary
from medcl.stages._deps import stratify_cluster_deps, stratify_embed_deps
from medcl.stages._done import require_current, reusable, write_record
from medcl.stages.stratify._shared import LATENTS, Job, latent_space

RECORD = "cluster/done.json"
OUTPUTS = ["prototypes.npy", "cluster.json", "train_latents.npy", "train_clusters.npy"]


def update_prototypes(h: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Prototypes as weighted means of the latents: ``P_j = sum_i w_ij h_i / sum_i w_ij``.

    ``weights`` is ``(n, k)``: one-hot rows give the KMeans centroids, soft assignments give
    soft prototypes. A prototype with zero total weight is left at zero.

    Example:
        >>> update_prototypes(np.array([[0.0, 0], [2, 0], [0, 4]]), np.eye(2)[[0, 0, 1]]).tolist()
        [[1.0, 0.0], [0.0, 4.0]]
    """
    weights = np.asarray(weights, dtype=np.float64)
    total = weights.sum(0)
    return (weights.T @ np.asarray(h, np.float64)) / np.where(total > 0, total, 1.0)[:, None]


def partition(z: np.ndarray, method: str, k: int, seed: int, ward=None) -> np.ndarray:
    """Labels of ``z`` in ``k`` groups by ``method``; ``ward``: the Ward tree fitted on ``z``
    (method ``ward`` cuts it). ``spectral``, ``merge`` and ``kmeans`` are the partitions of
    :func:`medcl.cluster.partitions`, which the stability rule scores: spectral is
    scikit-learn's spectral clustering of the 10-nearest-neighbour graph (``cluster_qr``),
    from one eigendecomposition; merge over-clusters that way and merges along the graph."""
    if method == "ward":
        return ward.labels_for(k)
    if method in SPECTRAL_METHODS:  # k <= len(z) - 1: checked when the data are loaded
        return partitions(z, [k], method, seed=seed)[k]
    return KMeansClustering(k, random_state=seed, n_init=5).fit(z).labels_


def _elbow_rule(info: dict, labels_for: Callable[[int], np.ndarray], z, seed: int) -> int:
    """The paper's rule: the knee of the within-cluster distance curve."""
    return info["elbow_k"]


def _silhouette_rule(info: dict, labels_for: Callable[[int], np.ndarray], z, seed: int) -> int:
    """The k whose partition has the highest mean cosine silhouette (Rousseeuw 1987)."""
    ks = info["k_values"]
    info["silhouette"] = silhouette_curve(z, {k: labels_for(k) for k in ks}, seed=seed).tolist()
    info["silhouette_k"] = ks[int(np.argmax(info["silhouette"]))]
    return info["silhouette_k"]


def _choose_k_rule(name: str, method: str, settings: dict) -> Callable[..., int]:
    """A rule of :func:`medcl.cluster.choose_k` (``stability``, ``eigengap``) over the same
    k range and partition method, with the rule's ``settings`` (choose_k keyword arguments);
    its curves, plausible k and confidence go to ``info``."""

    def rule(info: dict, labels_for: Callable[[int], np.ndarray], z, seed: int) -> int:
        choice = choose_k(z, info["k_values"], method=method, rule=name, seed=seed, **settings)
        info.update(choice.curves)  # e.g. "stability" and "eigengap", each over k_values
        info[f"{name}_k"] = choice.k
        info[f"{name}_plausible"] = choice.plausible
        info[f"{name}_confident"] = choice.confident
        if "threshold" in settings:  # the line the report draws on the curve
            info[f"{name}_threshold"] = settings["threshold"]
        if not choice.confident:
            say(
                f"cluster: no k in {info['k_values'][0]}..{info['k_values'][-1]} is stable "
                f"(cluster.k_rule={name}); k = {choice.k} is the best available, not a finding: "
                "the latents may hold no clear groups, or set cluster.k"
            )
        return choice.k

    return rule


def rule_for(k_rule: str, method: str, settings: dict | None = None) -> Callable[..., int]:
    """The rule ``cluster.k_rule`` names: rule(info, labels_for, z, seed) -> k."""
    if k_rule in K_RULES:
        return K_RULES[k_rule]
    return _choose_k_rule(k_rule, method, settings or {})


def rule_settings(cluster) -> dict:
    """The ``choose_k`` keyword arguments that ``cluster.k_rule`` takes from the config."""
    if cluster.k_rule == "stability":
        return {
            "threshold": cluster.stability_threshold,
            "n_resamples": cluster.stability_resamples,
        }
    return {}


# cluster.k_rule -> rule(info, labels_for, z, seed) -> k; a rule may add its curve to info.
# ``stability`` and ``eigengap`` come from medcl.cluster.choose_k (see rule_for).
K_RULES: dict[str, Callable[..., int]] = {"elbow": _elbow_rule, "silhouette": _silhouette_rule}


def k_by_rule(
    rule: str,
    info: dict,
    labels_for: Callable[[int], np.ndarray],
    z,
    seed: int,
    method: str = "spectral",
    settings: dict | None = None,
) -> int:
    """k by ``cluster.k_rule`` from ``info`` (``k_values``, ``curve``, ``elbow_k``)."""
    return int(rule_for(rule, method, settings)(info, labels_for, z, seed))


def cluster_latents(z: np.ndarray, cfg) -> tuple[np.ndarray, int, dict]:
    """Labels of the training latents, k, and the curves k was read from.

    ``cluster.method=kmeans`` (the paper): KMeans; the within-cluster distance curve has one
    KMeans per k. ``ward``: one Ward tree gives the curve and the labels for every k
    (:class:`medcl.cluster.WardClustering`, the same as UFC's). ``spectral``: spectral
    clustering of the 10-nearest-neighbour graph, which follows curved groups that a partition
    into convex cells cuts across (its curve is the Ward tree's).

    k is ``cluster.k`` if given, else :func:`k_by_rule` by ``cluster.k_rule``: ``elbow`` (the
    paper) takes the knee of the within-cluster distance curve; ``silhouette`` takes the k
    whose partition by ``method`` has the highest mean cosine silhouette: compact groups far
    from their neighbours, with no curve shape to read; ``stability`` takes the largest k whose
    every cluster is found again on random subsamples of the latents, and ``eigengap`` the
    largest gap of the neighbourhood graph's spectrum (both :func:`medcl.cluster.choose_k`).
    """
    c = cfg.cluster
    seed = cfg.run.seed
    ks = list(range(c.k_min, min(c.k_max, len(z) - 1) + 1))
    ward = None
    fits: dict[int, np.ndarray] = {}
    if c.method == "kmeans":
        fits = {k: KMeansClustering(k, random_state=seed, n_init=2).fit(z).labels_ for k in ks}
        curve = [within_cluster_distance(z, fits[k]) for k in ks]
    else:
        ward = WardClustering(n_clusters=c.k, k_range=(ks[0], ks[-1])).fit(z)
        curve = (
            ward.curve_
            if ward.curve_ is not None
            else [within_cluster_distance(z, ward.labels_for(k)) for k in ks]
        )
    info: dict = {
        "k_values": ks,
        "curve": [float(v) for v in curve],
        "elbow_k": knee_point(ks, curve),
    }
    cache: dict[int, np.ndarray] = {}

    def labels_for(k_: int) -> np.ndarray:
        if c.method == "kmeans":  # the curve's fits; the chosen k is refitted below
            return fits[k_]
        cache[k_] = partition(z, c.method, k_, seed, ward)
        return cache[k_]

    chosen = k_by_rule(c.k_rule, info, labels_for, z, seed, c.method, rule_settings(c))
    k = c.k or chosen
    if k in cache:
        return cache[k], int(k), info
    return partition(z, c.method, k, seed, ward), int(k), info


def run_clustering(job: Job) -> dict:
    cfg, run, data = job.cfg, job.run, job.ds.data  # type: ignore[attr-defined]
    deps = stratify_cluster_deps(cfg, data)
    done = reusable(run, RECORD, deps, check_summary)
    if done:
        return done
    require_current(run, "embed/done.json", stratify_embed_deps(cfg, data), job.command("embed"))
    t0 = time.perf_counter()
    z_all = latent_space(load_npy(run.path / LATENTS), cfg.cluster.normalize)
    tr = job.tr
    train_labels, k, k_info = cluster_latents(z_all[tr], cfg)
    prototypes = update_prototypes(z_all[tr], np.eye(k)[train_labels]).astype(np.float32)
    atomic_save_npy(run.file("prototypes.npy"), prototypes)
    atomic_save_npy(run.file("train_latents.npy"), z_all[tr].astype(np.float32))
    atomic_save_npy(run.file("train_clusters.npy"), train_labels.astype(np.int64))
    summary = {
        **k_info,
        "method": cfg.cluster.method,
        "k": int(k),
        "sizes": np.bincount(train_labels).tolist(),
    }
    run.write_json("cluster.json", summary)
    summary["seconds"] = round(time.perf_counter() - t0, 1)
    say(
        f"cluster: k = {k} prototypes"
        + (f" ({cfg.cluster.k_rule})" if cfg.cluster.k is None else "")
    )
    return write_record(run, RECORD, summary, deps, OUTPUTS)
