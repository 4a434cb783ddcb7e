"""Weighted Ward linkage by the nearest-neighbour chain, and how to cut the resulting tree.

Ward's criterion (Ward 1963) merges, at every step, the two clusters whose union increases the
total within-cluster sum of squares the least. That increase depends only on the two clusters'
sizes and means::

    cost(A, B) = nA * nB / (nA + nB) * ||cA - cB||^2

so Ward on a set of centroids *weighted by the number of points behind each* is exactly Ward
on the original points restricted to merges of whole groups. This is what makes the scalable
"micro-cluster then Ward" scheme in :class:`medcl.cluster.WardClustering` sound.

Ward is a reducible linkage, so the nearest-neighbour chain (Murtagh 1983; Müllner 2011,
"Modern hierarchical, agglomerative clustering algorithms", arXiv:1109.2378) finds the same
tree as the greedy algorithm in O(m^2) distance evaluations and O(m * d) memory.

The tree is returned in the scikit-learn / scipy convention: ``children[i] = (a, b)`` are the
two nodes merged at step ``i``; ids ``< m`` are leaves and id ``m + i`` is the node created at
step ``i``; steps are sorted by height.
"""

from __future__ import annotations

import numpy as np

__all__ = ["weighted_ward"]


def weighted_ward(centroids, weights=None) -> tuple[np.ndarray, np.ndarray]:
    """Ward agglomerative clustering of weighted points.

    Args:
        centroids: ``(m, d)`` points (typically micro-cluster means).
        weights: ``(m,)`` positive sizes (number of points behind each centroid); ``None``
            means all ones, which is ordinary Ward.

    Returns:
        ``children``: ``(m - 1, 2)`` int64, the nodes merged at each step (smaller id first),
        ids as in :func:`scipy.cluster.hierarchy.linkage`;
        ``heights``: ``(m - 1,)`` float64, non-decreasing merge heights in scipy's convention,
        ``sqrt(2 * cost)``, so that with unit weights they equal scipy's Ward heights.

    Example:
        >>> import numpy as np
        >>> children, heights = weighted_ward(np.array([[0.0], [1.0], [5.0]]), [1, 1, 2])
        >>> children.tolist(), heights.round(3).tolist()
        ([[0, 1], [2, 3]], [1.0, 6.364])
    """
    c = np.asarray(centroids, dtype=np.float64)
    if c.ndim != 2 or c.shape[0] < 1:
        raise ValueError(f"centroids must be a non-empty (m, d) array, got shape {c.shape}")
    if not np.isfinite(c).all():
        raise ValueError("centroids contain NaN or infinite values")
    m = c.shape[0]
    if weights is None:
        w = np.ones(m)
    else:
        w = np.asarray(weights, dtype=np.float64).copy()
        if w.shape != (m,):
            raise ValueError(f"weights must have shape ({m},), got {w.shape}")
        if not (np.isfinite(w).all() and (w > 0).all()):
            raise ValueError(f"weights must be positive and finite, got min {w.min()}")
    if m == 1:
        return np.empty((0, 2), dtype=np.int64), np.empty(0)

    pos = c.copy()
    sq = np.einsum("ij,ij->i", pos, pos)
    node = np.arange(m)  # id of the node held by each slot
    active = np.ones(m, dtype=bool)
    merged = np.empty((m - 1, 2), dtype=np.int64)
    cost = np.empty(m - 1)
    chain: list[int] = []
    for step in range(m - 1):
        if not chain:
            chain.append(int(np.argmax(active)))
        while True:
            a = chain[-1]
            # ||ca - cx||^2 for every slot via one matrix-vector product; exact enough to pick
            # the neighbour (the cost of the chosen pair is recomputed directly below).
            d2 = sq + sq[a] - 2.0 * (pos @ pos[a])
            np.maximum(d2, 0.0, out=d2)
            ward = w * w[a] / (w + w[a]) * d2
            ward[~active] = np.inf
            ward[a] = np.inf
            b = int(np.argmin(ward))
            if len(chain) > 1:
                prev = chain[-2]
                if ward[prev] <= ward[b]:  # prefer the chain's previous element on ties
                    break
            chain.append(b)
        a = chain.pop()
        b = chain.pop()
        diff = pos[a] - pos[b]
        wa, wb = w[a], w[b]
        cost[step] = wa * wb / (wa + wb) * float(diff @ diff)
        merged[step] = (node[a], node[b])
        pos[b] = (wa * pos[a] + wb * pos[b]) / (wa + wb)
        sq[b] = pos[b] @ pos[b]
        w[b] = wa + wb
        node[b] = m + step
        active[a] = False

    # Ward is monotone; guard against round-off making a parent lower than its child so that
    # sorting by height keeps every child before its parent.
    merged_list = merged.tolist()
    for i, (x, y) in enumerate(merged_list):
        for child in (x, y):
            if child >= m and cost[child - m] > cost[i]:
                cost[i] = cost[child - m]
    order = np.argsort(cost, kind="stable")
    new_id = np.arange(2 * m - 1)
    new_id[m + order] = m + np.arange(m - 1)
    children = np.sort(new_id[merged[order]], axis=1)
    heights = np.sqrt(2.0 * cost[order])
    return children, heights


def tree_layout(children: np.ndarray, n_leaves: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Place the leaves in dendrogram order so that every node covers a contiguous range.

    Returns ``order`` (``(m,)`` leaves in dendrogram order), ``start`` and ``n_under``
    (``(2m - 1,)`` each: the first position and the number of leaves of every node).
    """
    m = n_leaves
    n_under = np.ones(2 * m - 1, dtype=np.int64)
    pairs = np.asarray(children, dtype=np.int64).tolist()
    for i, (a, b) in enumerate(pairs):
        n_under[m + i] = n_under[a] + n_under[b]
    start = np.zeros(2 * m - 1, dtype=np.int64)
    for i in range(m - 2, -1, -1):
        a, b = pairs[i]
        start[a] = start[m + i]
        start[b] = start[m + i] + n_under[a]
    order = np.empty(m, dtype=np.int64)
    order[start[:m]] = np.arange(m)
    return order, start, n_under


def cut_nodes(children: np.ndarray, n_leaves: int, k: int) -> np.ndarray:
    """The ``k`` nodes that are the clusters when the tree is cut into ``k`` clusters.

    Cutting undoes the last ``k - 1`` merges: the clusters are the children of those merges
    that were not themselves created by one of them.
    """
    m = n_leaves
    if k == 1:
        return np.array([2 * m - 2], dtype=np.int64)
    candidates = np.asarray(children[m - k :]).ravel()
    return candidates[candidates < 2 * m - k]


def leaf_labels(children, n_leaves, k, layout) -> np.ndarray:
    """``(m,)`` int64 cluster of every leaf at ``k`` clusters, numbered in dendrogram order."""
    order, start, n_under = layout
    nodes = cut_nodes(children, n_leaves, k)
    nodes = nodes[np.argsort(start[nodes])]
    labels = np.empty(n_leaves, dtype=np.int64)
    labels[order] = np.repeat(np.arange(len(nodes), dtype=np.int64), n_under[nodes])
    return labels
