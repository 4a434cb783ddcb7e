"""Over-cluster, then merge along the neighbourhood graph.

A partition into many small groups (``fine_k``, more than the classes) rarely puts two classes
in one group; the errors of a coarse partition come from where it draws a border. Merging the
small groups two at a time, the pair most tied by the k-nearest-neighbour graph first, gives a
nested sequence of coarser partitions whose borders are those of the fine one (the idea of
over-cluster-and-merge methods such as Chameleon, Karypis, Han, Kumar, IEEE Computer 1999,
and PAGA's connectivity of groups, Wolf et al., Genome Biology 2019).

How tied two groups are (``link``):

* ``"smaller"`` -- the graph edges between them over the edges of the smaller one: the share
  of the smaller group's neighbourhood that lies in the other. A fragment is merged into the
  group it hangs from, whatever that group's size.
* ``"expected"`` -- the edges between them over the number expected if edges fell at random
  with the groups' degrees (PAGA's observed/expected ratio). It favours merging small groups
  with each other over merging into a large one.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse

__all__ = ["LINKS", "graph_merges", "merged_labels"]

LINKS = ("smaller", "expected")


def _group_edges(A: sparse.spmatrix, labels: np.ndarray, n_groups: int) -> np.ndarray:
    n = len(labels)
    C = sparse.csr_matrix((np.ones(n), (np.arange(n), labels)), shape=(n, n_groups))
    return np.asarray((C.T @ A @ C).todense(), dtype=np.float64)


def graph_merges(A, labels, *, link: str = "smaller") -> list[tuple[int, int]]:
    """The order in which the groups of ``labels`` merge along the graph ``A``.

    Args:
        A: ``(n, n)`` symmetric non-negative affinity (sparse or dense), e.g. the
            symmetrised k-nearest-neighbour connectivity of spectral clustering.
        labels: ``(n,)`` groups ``0..g-1``, each non-empty.
        link: how tied two groups are (:data:`LINKS`, see the module).

    Returns:
        ``g - 1`` pairs ``(keep, gone)``: merge ``gone`` into ``keep``, in order. Pairs with
        no edge between them merge last, the smallest groups first.

    Example:
        >>> A = np.array([[0, 1, 0, 0], [1, 0, 1, 0], [0, 1, 0, 0], [0, 0, 0, 0.0]])
        >>> graph_merges(A, np.array([0, 1, 1, 2]))
        [(0, 1), (0, 2)]
    """
    if link not in LINKS:
        raise ValueError(f"link must be one of {LINKS}, got {link!r}")
    labels = np.asarray(labels, dtype=np.int64)
    n_groups = int(labels.max()) + 1 if len(labels) else 0
    if labels.min(initial=0) < 0 or len(np.unique(labels)) != n_groups:
        raise ValueError("labels must number non-empty groups 0..g-1")
    A = sparse.csr_matrix(A, dtype=np.float64)
    if A.shape != (len(labels), len(labels)):
        raise ValueError(f"A must be ({len(labels)}, {len(labels)}), got {A.shape}")
    E = _group_edges(A, labels, n_groups)
    size = np.bincount(labels, minlength=n_groups).astype(np.float64)
    vol = E.sum(axis=1)
    total = max(vol.sum(), 1e-12)
    alive = np.ones(n_groups, dtype=bool)
    merges = []
    for _ in range(n_groups - 1):
        idx = np.flatnonzero(alive)
        between = E[np.ix_(idx, idx)]
        v = np.maximum(vol[idx], 1e-12)
        if link == "smaller":
            tie = between / np.minimum(v[:, None], v[None, :])
        else:
            tie = between * total / (v[:, None] * v[None, :])
        np.fill_diagonal(tie, -np.inf)
        if not np.isfinite(tie).any() or tie.max() <= 0:  # no edges left: smallest pair
            s = size[idx]
            tie = -(s[:, None] + s[None, :])
            np.fill_diagonal(tie, -np.inf)
        a, b = np.unravel_index(int(np.argmax(tie)), tie.shape)
        keep, gone = sorted((int(idx[a]), int(idx[b])))
        E[keep, :] += E[gone, :]
        E[:, keep] += E[:, gone]
        E[gone, :] = 0.0
        E[:, gone] = 0.0
        vol[keep] += vol[gone]
        size[keep] += size[gone]
        alive[gone] = False
        merges.append((keep, gone))
    return merges


def merged_labels(labels, merges: list[tuple[int, int]], k: int) -> np.ndarray:
    """``labels`` after the first ``g - k`` of ``merges``, renumbered ``0..k-1`` by first
    appearance.

    Example:
        >>> merged_labels(np.array([0, 1, 1, 2]), [(0, 1), (0, 2)], 2).tolist()
        [0, 0, 0, 1]
    """
    labels = np.asarray(labels, dtype=np.int64)
    n_groups = len(merges) + 1
    if not 1 <= k <= n_groups:
        raise ValueError(f"k must lie in 1..{n_groups}, got {k}")
    root = np.arange(n_groups)
    for keep, gone in merges[: n_groups - k]:
        root[root == gone] = keep
    _, first, inverse = np.unique(root[labels], return_index=True, return_inverse=True)
    rank = np.empty(len(first), dtype=np.int64)
    rank[np.argsort(first)] = np.arange(len(first))
    return rank[inverse.ravel()]
