"""DBSCAN (Ester et al., KDD 1996) with eps chosen from the k-distance knee, for ablations."""

from __future__ import annotations

import numbers

import numpy as np
from sklearn.base import BaseEstimator, ClusterMixin
from sklearn.cluster import DBSCAN
from sklearn.neighbors import NearestNeighbors
from sklearn.utils import check_array

from medcl.cluster._elbow import knee_point
from medcl.cluster._kmeans import check_random_state_arg

__all__ = ["DBSCANClustering", "k_distance_eps"]


def k_distance_eps(X, min_samples: int, *, max_samples: int = 20_000, random_state=0) -> float:
    """eps at the knee of the sorted k-distance curve (Ester et al. 1996, section 4.2).

    For every point take the distance to its ``min_samples``-th nearest neighbour, counting
    the point itself (so a point is a DBSCAN core point exactly when this distance is
    ``<= eps``). Sorted in decreasing order the curve drops steeply for outliers and then
    flattens; its knee (:func:`knee_point`) separates noise from cluster points, and the
    distance there is eps. Above ``max_samples`` points the curve is computed on a seeded
    random subsample (the neighbours are still searched among all points).
    """
    X = np.asarray(X)
    n = X.shape[0]
    queries = X
    if n > max_samples:
        rng = np.random.default_rng(random_state)
        queries = X[np.sort(rng.choice(n, size=max_samples, replace=False))]
    nn = NearestNeighbors(n_neighbors=min(min_samples, n)).fit(X)
    dist, _ = nn.kneighbors(queries)
    curve = np.sort(dist[:, -1])[::-1]
    i = knee_point(np.arange(len(curve)), curve)
    eps = float(curve[i])
    return eps if eps > 0 else float(np.finfo(np.float64).eps)


class DBSCANClustering(ClusterMixin, BaseEstimator):
    """Density-based clustering (scikit-learn's DBSCAN) with automatic eps.

    Args:
        eps: neighbourhood radius; ``None`` picks it with :func:`k_distance_eps`.
        min_samples: points (including itself) a core point needs within ``eps``.
        random_state: seed of the subsample used to pick eps on large inputs.

    Attributes:
        labels_: ``(n,)`` int64, ``-1`` for noise.
        n_clusters_: number of clusters, noise excluded.
        eps_: the radius used.

    Example:
        >>> X = [[0.0], [0.1], [0.2], [5.0], [5.1], [5.2]]
        >>> DBSCANClustering(eps=0.5, min_samples=2).fit(X).n_clusters_
        2
    """

    def __init__(self, eps: float | None = None, min_samples: int = 5, random_state=0):
        self.eps = eps
        self.min_samples = min_samples
        self.random_state = random_state

    def fit(self, X, y=None):
        """Cluster ``X`` of shape ``(n, d)``; returns ``self``."""
        if self.eps is not None and (
            not isinstance(self.eps, numbers.Real) or not np.isfinite(self.eps) or self.eps <= 0
        ):
            raise ValueError(f"eps must be None or a positive number, got {self.eps!r}")
        if not isinstance(self.min_samples, numbers.Integral) or self.min_samples < 1:
            raise ValueError(f"min_samples must be a positive int, got {self.min_samples!r}")
        check_random_state_arg(self.random_state)
        X = check_array(X, dtype=[np.float32, np.float64])
        eps = self.eps
        if eps is None:
            eps = k_distance_eps(X, int(self.min_samples), random_state=self.random_state)
        self.eps_ = float(eps)
        labels = DBSCAN(eps=self.eps_, min_samples=int(self.min_samples)).fit_predict(X)
        self.labels_ = labels.astype(np.int64)
        self.n_clusters_ = int(len(np.unique(labels[labels >= 0])))
        return self
