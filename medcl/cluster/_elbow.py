"""Choosing k: the within-cluster distance curve and its knee.

The curve is the mean, over points, of the Euclidean distance from each point to the centroid
of its cluster, as a function of the number of clusters k. It decreases as k grows; the "elbow"
is where adding clusters stops paying off. :func:`knee_point` finds it with the Kneedle idea
(Satopää et al., "Finding a 'Kneedle' in a Haystack", ICDCSW 2011): normalise both axes to
[0, 1] and take the point farthest below the chord joining the curve's end points.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from scipy import sparse

from medcl.cluster._linkage import cut_nodes, tree_layout

__all__ = ["elbow_curve", "knee_point", "within_cluster_distance"]

_CHUNK = 65536  # rows per block when streaming over large X


def cluster_sums(X: np.ndarray, labels: np.ndarray, n_labels: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-cluster ``(n_labels, d)`` float64 sums and ``(n_labels,)`` counts of ``X``.

    Streams over ``X`` in blocks so a float32 ``X`` is never copied whole to float64.
    """
    n, d = X.shape
    sums = np.zeros((n_labels, d))
    for s in range(0, n, _CHUNK):
        lab = labels[s : s + _CHUNK]
        indicator = sparse.csr_matrix(
            (np.ones(len(lab)), (lab, np.arange(len(lab)))), shape=(n_labels, len(lab))
        )
        sums += indicator @ np.asarray(X[s : s + _CHUNK], dtype=np.float64)
    counts = np.bincount(labels, minlength=n_labels).astype(np.float64)
    return sums, counts


def _row_norms(a: np.ndarray) -> np.ndarray:
    return np.sqrt(np.einsum("ij,ij->i", a, a))


def within_cluster_distance(X, labels) -> float:
    """Mean Euclidean distance from each point to the centroid of its cluster.

    Args:
        X: ``(n, d)`` points.
        labels: ``(n,)`` integer cluster labels (any values; ``-1`` is an ordinary label here).

    Returns:
        ``mean_i ||x_i - mean(X[labels == labels[i]])||``.

    Example:
        >>> within_cluster_distance([[0.0], [2.0], [10.0]], [0, 0, 1])
        0.6666666666666666
    """
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[0] == 0:
        raise ValueError(f"X must be a non-empty (n, d) array, got shape {X.shape}")
    labels = np.asarray(labels)
    if labels.shape != (X.shape[0],):
        raise ValueError(f"labels must have shape ({X.shape[0]},), got {labels.shape}")
    _, inverse = np.unique(labels, return_inverse=True)
    inverse = inverse.ravel()
    sums, counts = cluster_sums(X, inverse, int(inverse.max()) + 1)
    centroids = sums / counts[:, None]
    total = 0.0
    for s in range(0, X.shape[0], _CHUNK):
        block = np.asarray(X[s : s + _CHUNK], dtype=np.float64)
        total += float(_row_norms(block - centroids[inverse[s : s + _CHUNK]]).sum())
    return total / X.shape[0]


def check_curve(ks, values) -> tuple[np.ndarray, np.ndarray]:
    """``(ks, values)`` of a curve over k, checked and sorted by k (every k rule reads one)."""
    ks = np.asarray(ks)
    values = np.asarray(values, dtype=np.float64)
    if ks.ndim != 1 or ks.shape != values.shape or len(ks) == 0:
        raise ValueError(
            f"ks and values must be non-empty 1D arrays of equal length, got {ks.shape} and "
            f"{values.shape}"
        )
    if not np.isfinite(values).all():
        raise ValueError("values contain NaN or infinite entries")
    if len(np.unique(ks)) != len(ks):
        raise ValueError(f"ks must be distinct, got {ks.tolist()}")
    order = np.argsort(ks)
    return ks[order], values[order]


def knee_point(ks, values) -> int:
    """The k at the knee of a decreasing, convex curve (Kneedle-style).

    Both axes are rescaled to [0, 1]; the knee is the k whose point lies farthest below the
    straight line (chord) joining the first and last points. For a decreasing convex curve
    this is where the curve bends most. If no point lies below the chord (a straight or
    concave curve, or fewer than three points) there is no knee and the first k is returned.

    Args:
        ks: ``(p,)`` distinct k values (any order; they are sorted).
        values: ``(p,)`` curve values at those k.

    Returns:
        The chosen k, as a Python int.

    Example:
        >>> knee_point([1, 2, 3, 4, 5], [10.0, 2.0, 1.5, 1.0, 0.5])
        2
    """
    ks, values = check_curve(ks, values)
    span_y = values.max() - values.min()
    if len(ks) < 3 or span_y == 0:
        return int(ks[0])
    x = (ks - ks[0]) / (ks[-1] - ks[0])
    y = (values - values.min()) / span_y
    chord = y[0] + (y[-1] - y[0]) * x
    gap = chord - y  # vertical distance below the chord, proportional to the perpendicular one
    best = int(np.argmax(gap))
    if gap[best] <= 1e-12:
        return int(ks[0])
    return int(ks[best])


def tree_elbow_curve(
    X,
    children: np.ndarray,
    ks: Sequence[int],
    *,
    leaf_of_point: np.ndarray | None = None,
    leaf_sums: np.ndarray | None = None,
    leaf_counts: np.ndarray | None = None,
    max_samples: int | None = 100_000,
    random_state: int | None = 0,
) -> np.ndarray:
    """Within-cluster distance for every cut of one hierarchy, without relabelling per k.

    Two facts make this fast. (1) Ordering the points by the dendrogram position of their
    leaf makes every node's points one contiguous slice. (2) Going from ``k + 1`` to ``k``
    clusters merges two clusters and leaves the others untouched, so only the merged node's
    distances need computing: ``total_k = total_{k+1} - D(A) - D(B) + D(A u B)``. One full
    pass at the largest k, then one slice per merge. Centroids are exact (from per-leaf sums
    over all points); when ``n > max_samples`` distances are averaged over a fixed random
    subsample of ``max_samples`` points (seeded by ``random_state``), an unbiased estimate.

    Args:
        X: ``(n, d)`` points.
        children: ``(m - 1, 2)`` tree over ``m`` leaves (see :func:`weighted_ward`).
        ks: k values in ``1..m``.
        leaf_of_point: ``(n,)`` leaf of every point; ``None`` means point i is leaf i.
        leaf_sums, leaf_counts: ``(m, d)`` sums and ``(m,)`` counts of the points in each
            leaf, if already known (otherwise computed from ``X``).
        max_samples: subsample size for the distances; ``None`` uses every point.
        random_state: seed of the subsample.

    Returns:
        ``(len(ks),)`` float64 mean within-cluster distances, in the order of ``ks``.
    """
    X = np.asarray(X)
    n = X.shape[0]
    children = np.asarray(children, dtype=np.int64)
    m = children.shape[0] + 1
    if leaf_of_point is None:
        if m != n:
            raise ValueError(f"the tree has {m} leaves but X has {n} points")
        leaf_of_point = np.arange(n)
    k_arr = np.asarray(ks, dtype=np.int64)
    if len(k_arr) == 0 or k_arr.min() < 1 or k_arr.max() > m:
        raise ValueError(f"ks must lie in 1..{m} (the number of leaves), got {k_arr.tolist()}")
    if leaf_sums is None or leaf_counts is None:
        leaf_sums, leaf_counts = cluster_sums(X, leaf_of_point, m)

    order, start, n_under = tree_layout(children, m)
    sums = np.empty((2 * m - 1, X.shape[1]))
    counts = np.empty(2 * m - 1)
    sums[:m], counts[:m] = leaf_sums, leaf_counts
    for i, (a, b) in enumerate(children.tolist()):
        sums[m + i] = sums[a] + sums[b]
        counts[m + i] = counts[a] + counts[b]
    centroids = sums / np.maximum(counts, 1e-300)[:, None]

    if max_samples is not None and n > max_samples:
        rng = np.random.default_rng(random_state)
        idx = np.sort(rng.choice(n, size=max_samples, replace=False))
    else:
        idx = np.arange(n)
    pos = start[leaf_of_point[idx]]
    perm = np.argsort(pos, kind="stable")
    idx, pos = idx[perm], pos[perm]
    dtype = np.float32 if X.dtype == np.float32 else np.float64
    xs = np.asarray(X[idx], dtype=dtype)
    n_s = len(idx)

    def node_slice(node: int) -> slice:
        lo = np.searchsorted(pos, start[node], side="left")
        hi = np.searchsorted(pos, start[node] + n_under[node], side="left")
        return slice(int(lo), int(hi))

    k_hi, k_lo = int(k_arr.max()), int(k_arr.min())
    nodes = cut_nodes(children, m, k_hi)
    nodes = nodes[np.argsort(start[nodes])]
    lo = np.searchsorted(pos, start[nodes], side="left")
    hi = np.searchsorted(pos, start[nodes] + n_under[nodes], side="left")
    label = np.repeat(np.arange(len(nodes)), hi - lo)
    dist_sum = np.zeros(2 * m - 1)
    per_point = np.empty(n_s)
    for s in range(0, n_s, _CHUNK):
        block = xs[s : s + _CHUNK]
        per_point[s : s + _CHUNK] = _row_norms(
            block - centroids[nodes[label[s : s + _CHUNK]]].astype(dtype)
        )
    dist_sum[nodes] = np.bincount(label, weights=per_point, minlength=len(nodes))

    total = float(dist_sum[nodes].sum())
    curve = {k_hi: total / n_s}
    for k in range(k_hi - 1, k_lo - 1, -1):
        step = m - k - 1  # the merge that turns k + 1 clusters into k
        a, b = children[step]
        node = m + step
        part = xs[node_slice(node)]
        dist_sum[node] = float(_row_norms(part - centroids[node].astype(dtype)).sum())
        total += dist_sum[node] - dist_sum[a] - dist_sum[b]
        curve[k] = total / n_s
    return np.array([curve[int(k)] for k in ks])


def elbow_curve(
    X,
    clustering: Callable[[int], np.ndarray] | object,
    ks: Sequence[int],
    *,
    max_samples: int | None = 100_000,
    random_state: int | None = 0,
) -> np.ndarray:
    """The mean within-cluster distance for each k in ``ks``.

    Args:
        X: ``(n, d)`` points the clustering was fitted on.
        clustering: either a fitted hierarchical clusterer exposing ``children_`` and
            ``micro_labels_`` (e.g. :class:`~medcl.cluster.WardClustering`), whose single tree
            is cut at every k with :func:`tree_elbow_curve` (fast; subsampled above
            ``max_samples`` points); or any callable ``k -> (n,) labels`` (for example
            ``lambda k: KMeansClustering(k).fit(X).labels_``), evaluated exactly per k.
        ks: the k values.
        max_samples, random_state: subsampling for the tree path (see
            :func:`tree_elbow_curve`).

    Returns:
        ``(len(ks),)`` float64 curve values.

    Example:
        >>> ward = WardClustering(n_clusters=3).fit(X)              # doctest: +SKIP
        >>> curve = elbow_curve(X, ward, range(2, 20))               # doctest: +SKIP
        >>> k = knee_point(range(2, 20), curve)                      # doctest: +SKIP
    """
    ks = [int(k) for k in ks]
    if hasattr(clustering, "children_") and hasattr(clustering, "micro_labels_"):
        return tree_elbow_curve(
            X,
            clustering.children_,
            ks,
            leaf_of_point=clustering.micro_labels_,
            max_samples=max_samples,
            random_state=random_state,
        )
    if not callable(clustering):
        raise ValueError(
            f"clustering must be a fitted hierarchical clusterer or a callable k -> labels, "
            f"got {type(clustering).__name__}"
        )
    return np.array([within_cluster_distance(X, clustering(k)) for k in ks])
