"""k-means, through faiss when it is installed and scikit-learn otherwise.

Used directly for the clustering ablation and, with few iterations, to build the micro-clusters
that make :class:`~medcl.cluster.WardClustering` scale.
"""

from __future__ import annotations

import numbers

import numpy as np
from sklearn.base import BaseEstimator, ClusterMixin
from sklearn.utils import check_array

from medcl.cluster._elbow import cluster_sums

__all__ = ["KMeansClustering"]

# Rows per faiss search call. A multiple of faiss's query tile (4096 rows), so every tile holds
# the same rows as in one search over all points and the labels are identical; faiss's own
# buffers (distances, query norms) then scale with the chunk, not with n.
_ASSIGN_CHUNK = 262_144


def _faiss():
    try:
        import faiss
    except ImportError:  # pragma: no cover - depends on the environment
        return None
    return faiss


def _seed(random_state) -> int:
    if random_state is None:
        return int(np.random.default_rng().integers(2**31 - 1))
    return int(random_state)


def check_random_state_arg(random_state) -> None:
    """Accept ``None`` or a non-negative int, as faiss needs an integer seed."""
    if random_state is not None and (
        not isinstance(random_state, numbers.Integral)
        or isinstance(random_state, bool)
        or random_state < 0
    ):
        raise ValueError(f"random_state must be None or a non-negative int, got {random_state!r}")


def nearest_centre(index, x32: np.ndarray, chunk: int | None = None) -> np.ndarray:
    """``(n,)`` int64 nearest centre in the faiss ``index`` of every row of float32 ``x32``.

    Searches ``chunk`` rows at a time into one preallocated label array. Equals
    ``index.search(x32, 1)[1].ravel()`` exactly, without its ``(n, 1)`` distance array or
    faiss's ``(n,)`` buffer of query norms: the chunk is rounded up to a multiple of faiss's
    query tile, so every tile holds the same rows as in one search, and to at least
    ``distance_compute_blas_threshold / d`` rows, below which faiss would switch from BLAS
    to direct distances (other rounding); the last chunk takes the remainder.
    """
    import faiss

    n, d = x32.shape
    tile = max(1, int(faiss.cvar.distance_compute_blas_query_bs))
    least = -(-int(faiss.cvar.distance_compute_blas_threshold) // max(d, 1))
    chunk = max(_ASSIGN_CHUNK if chunk is None else chunk, least, 1)
    chunk = -(-chunk // tile) * tile
    labels = np.empty(n, dtype=np.int64)
    starts = range(0, max(n - chunk, 0) + 1, chunk)
    dist = np.empty((min(n, 2 * chunk), 1), dtype=np.float32)
    for i, s in enumerate(starts):
        e = n if i == len(starts) - 1 else s + chunk
        index.search(x32[s:e], 1, D=dist[: e - s], I=labels[s:e].reshape(-1, 1))
    return labels


def kmeans(
    X: np.ndarray,
    k: int,
    *,
    random_state: int | None = 0,
    n_iter: int = 25,
    n_init: int = 1,
    max_points_per_centroid: int = 256,
    use_faiss: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lloyd k-means; returns compact labels, exact cluster means and counts.

    With ``use_faiss`` (and faiss installed) it trains on at most
    ``max_points_per_centroid * k`` randomly drawn points from a random initialisation, keeps
    the best of ``n_init`` runs, then assigns every point to its nearest centre. Otherwise
    scikit-learn's k-means++ ``KMeans`` (``MiniBatchKMeans`` above 50,000 points) is used.
    Empty clusters are dropped, so the number of returned clusters may be below ``k``. Means
    are recomputed from the final assignment in float64, so they are the exact centroids of
    the returned partition.

    Memory beyond ``X``: the ``(n,)`` int64 labels and blocks of a fixed number of rows (the
    assignment and the float64 sums stream over ``X``). A float32 C-contiguous ``X`` is not
    copied; any other ``X`` is converted once to float32 for faiss.

    Returns:
        ``labels`` ``(n,)`` int64 in ``0..k'-1``, ``centers`` ``(k', d)`` float64,
        ``counts`` ``(k',)`` float64.
    """
    n, d = X.shape
    faiss = _faiss() if use_faiss else None
    if faiss is not None:
        x32 = np.ascontiguousarray(X, dtype=np.float32)
        km = faiss.Kmeans(
            d,
            k,
            niter=n_iter,
            nredo=n_init,
            seed=_seed(random_state),
            max_points_per_centroid=max_points_per_centroid,
            min_points_per_centroid=1,
            verbose=False,
        )
        km.train(x32)
        labels = nearest_centre(km.index, x32)
    else:
        from sklearn.cluster import KMeans, MiniBatchKMeans

        if n > 50_000:
            est = MiniBatchKMeans(
                n_clusters=k,
                random_state=random_state,
                n_init=n_init,
                max_iter=n_iter,
                batch_size=max(4096, 4 * k),
            )
        else:
            est = KMeans(n_clusters=k, random_state=random_state, n_init=n_init, max_iter=n_iter)
        labels = est.fit_predict(X).astype(np.int64)
    counts = np.bincount(labels, minlength=k)
    kept = np.flatnonzero(counts)
    if len(kept) < k:
        remap = np.full(k, -1, dtype=np.int64)
        remap[kept] = np.arange(len(kept))
        for s in range(0, n, _ASSIGN_CHUNK):  # in place: no second (n,) array
            labels[s : s + _ASSIGN_CHUNK] = remap[labels[s : s + _ASSIGN_CHUNK]]
    sums, counts_f = cluster_sums(X, labels, len(kept))
    return labels, sums / counts_f[:, None], counts_f


class KMeansClustering(ClusterMixin, BaseEstimator):
    """k-means with a fixed k, for ablations.

    Up to ``faiss_above`` samples it runs scikit-learn's ``KMeans`` (k-means++ seeding, the
    better local optimum on small data); above, faiss (if installed) for speed.

    To choose k from the elbow, use
    ``elbow_curve(X, lambda k: KMeansClustering(k).fit(X).labels_, ks)`` and
    :func:`~medcl.cluster.knee_point`.

    Args:
        n_clusters: number of clusters k (at most the number of samples).
        random_state: seed (int) or ``None``.
        n_iter: Lloyd iterations (at most).
        n_init: independent restarts; the best inertia is kept.
        faiss_above: sample count above which faiss is used.

    Attributes:
        labels_: ``(n,)`` int64 cluster of every sample.
        n_clusters_: number of non-empty clusters found (normally ``n_clusters``).
        cluster_centers_: ``(n_clusters_, d)`` float64 cluster means.

    Example:
        >>> KMeansClustering(n_clusters=2).fit([[0.0], [0.1], [5.0], [5.1]]).n_clusters_
        2
    """

    def __init__(
        self,
        n_clusters: int = 8,
        random_state: int | None = 0,
        n_iter: int = 100,
        n_init: int = 3,
        faiss_above: int = 200_000,
    ):
        self.n_clusters = n_clusters
        self.random_state = random_state
        self.n_iter = n_iter
        self.n_init = n_init
        self.faiss_above = faiss_above

    def fit(self, X, y=None):
        """Cluster ``X`` of shape ``(n, d)``; returns ``self``."""
        if not isinstance(self.n_clusters, numbers.Integral) or self.n_clusters < 1:
            raise ValueError(f"n_clusters must be a positive int, got {self.n_clusters!r}")
        for name in ("n_iter", "n_init", "faiss_above"):
            value = getattr(self, name)
            if not isinstance(value, numbers.Integral) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        check_random_state_arg(self.random_state)
        X = check_array(X, dtype=[np.float32, np.float64])
        if self.n_clusters > X.shape[0]:
            raise ValueError(
                f"k={self.n_clusters} is larger than the number of images ({X.shape[0]})"
            )
        labels, centers, _ = kmeans(
            X,
            int(self.n_clusters),
            random_state=self.random_state,
            n_iter=int(self.n_iter),
            n_init=int(self.n_init),
            use_faiss=X.shape[0] > self.faiss_above,
        )
        self.labels_ = labels
        self.cluster_centers_ = centers
        self.n_clusters_ = int(len(centers))
        return self
