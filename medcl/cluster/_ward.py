"""Ward agglomerative clustering that scales to millions of points.

UFC (Zhang et al., "Unsupervised Feature Clustering Improves Contrastive Representation
Learning for Medical Image Segmentation", BIBM 2022) groups beta-VAE embeddings into
pseudo-classes with Ward agglomerative clustering, k chosen at the elbow of the within-cluster
distance curve. Exact Ward needs O(n^2) memory, so above ``exact_max`` points the data are
first cut into ``n_micro`` k-means micro-clusters and Ward is run on their centroids weighted
by their sizes: Ward's merge cost depends only on cluster sizes and means, so this is exact
Ward constrained to keep each micro-cluster whole (see :func:`weighted_ward`).
"""

from __future__ import annotations

import numbers

import numpy as np
from scipy.cluster.hierarchy import linkage
from sklearn.base import BaseEstimator, ClusterMixin
from sklearn.utils import check_array
from sklearn.utils.validation import check_is_fitted

from medcl.cluster._elbow import knee_point, tree_elbow_curve
from medcl.cluster._kmeans import check_random_state_arg, kmeans
from medcl.cluster._linkage import leaf_labels, tree_layout, weighted_ward

__all__ = ["WardClustering"]

_MODES = ("auto", "exact", "micro")


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


class WardClustering(ClusterMixin, BaseEstimator):
    """Ward agglomerative clustering, exact or on weighted micro-clusters, with k from the elbow.

    One tree is built; :meth:`labels_for` cuts it at any k without refitting.

    Args:
        n_clusters: number of clusters; ``None`` picks k at the knee (:func:`knee_point`) of
            the mean within-cluster distance curve over ``k_range``.
        k_range: ``(k_min, k_max)``, inclusive, searched when ``n_clusters`` is None; k_max
            is clipped to the number of leaves minus one (and k_min to k_max).
        mode: ``"exact"`` (Ward on every point, scipy; O(n^2) memory), ``"micro"`` (k-means
            into ``n_micro`` micro-clusters, then Ward on their centroids) or ``"auto"``
            (exact when ``n <= exact_max``). Micro mode with ``n_micro >= n`` is exact.
        n_micro: number of k-means micro-clusters (1000-2000 is plenty for k <= 200).
        exact_max: largest n run exactly in ``"auto"`` mode.
        weighted: weight micro-centroids by their sizes (correct Ward); ``False`` treats every
            micro-centroid as one point, kept only to show that weighting matters.
        curve_sample: above this many points the elbow curve's distances are averaged over a
            fixed random subsample of this size (centroids stay exact).
        random_state: seed (int) or ``None`` for k-means and the curve subsample.

    Attributes:
        labels_: ``(n,)`` int64 cluster of every point, in ``0..n_clusters_-1``.
        n_clusters_: the k used.
        elbow_k_: the knee of the curve, or ``None`` when ``n_clusters`` was given.
        k_values_, curve_: ``(p,)`` the k values searched and the mean within-cluster
            distance at each (``None`` when ``n_clusters`` was given; see
            :func:`~medcl.cluster.elbow_curve` to compute it anyway).
        mode_: ``"exact"`` or ``"micro"``, the mode actually run.
        micro_labels_: ``(n,)`` int64 micro-cluster (= tree leaf) of every point, ``None`` in
            exact mode, where leaf i is point i.
        n_leaves_: number of tree leaves m (n in exact mode, micro-clusters otherwise).
        leaf_weights_: ``(m,)`` number of points in each leaf.
        children_: ``(m - 1, 2)`` int64 nodes merged at each step, in scipy's convention
            (ids ``< m`` are leaves, node ``m + i`` is made at step i, steps by height).
        distances_: ``(m - 1,)`` merge heights ``sqrt(2 * nA nB / (nA + nB) ||cA - cB||^2)``
            (scipy's Ward heights).

    Example:
        >>> import numpy as np
        >>> X = np.r_[np.zeros((5, 2)), np.ones((5, 2)) * 10] + np.arange(10)[:, None] * 0.01
        >>> ward = WardClustering(n_clusters=2).fit(X)
        >>> sorted(np.bincount(ward.labels_).tolist()), len(set(ward.labels_for(3)))
        ([5, 5], 3)
    """

    def __init__(
        self,
        n_clusters: int | None = None,
        k_range: tuple[int, int] = (2, 200),
        mode: str = "auto",
        n_micro: int = 1000,
        exact_max: int = 5000,
        weighted: bool = True,
        curve_sample: int = 100_000,
        random_state: int | None = 0,
    ):
        self.n_clusters = n_clusters
        self.k_range = k_range
        self.mode = mode
        self.n_micro = n_micro
        self.exact_max = exact_max
        self.weighted = weighted
        self.curve_sample = curve_sample
        self.random_state = random_state

    def _check_params(self) -> None:
        if self.n_clusters is not None and (not _is_int(self.n_clusters) or self.n_clusters < 1):
            raise ValueError(f"n_clusters must be None or a positive int, got {self.n_clusters!r}")
        kr = self.k_range
        if (
            not isinstance(kr, tuple | list)
            or len(kr) != 2
            or not all(_is_int(k) for k in kr)
            or not 1 <= kr[0] <= kr[1]
        ):
            raise ValueError(
                f"k_range must be two ints (k_min, k_max) with 1 <= k_min <= k_max, got {kr!r}"
            )
        if self.mode not in _MODES:
            raise ValueError(f"mode must be one of {_MODES}, got {self.mode!r}")
        if not _is_int(self.n_micro) or self.n_micro < 2:
            raise ValueError(f"n_micro must be an int >= 2, got {self.n_micro!r}")
        if not _is_int(self.exact_max) or self.exact_max < 1:
            raise ValueError(f"exact_max must be a positive int, got {self.exact_max!r}")
        if not isinstance(self.weighted, bool | np.bool_):
            raise ValueError(f"weighted must be True or False, got {self.weighted!r}")
        if not _is_int(self.curve_sample) or self.curve_sample < 1:
            raise ValueError(f"curve_sample must be a positive int, got {self.curve_sample!r}")
        check_random_state_arg(self.random_state)

    def fit(self, X, y=None):
        """Build the Ward tree of ``X`` (``(n, d)``, n >= 2), pick k, set ``labels_``."""
        self._check_params()
        X = check_array(X, dtype=[np.float64, np.float32], ensure_min_samples=2)
        n = X.shape[0]
        if self.n_clusters is not None and self.n_clusters > n:
            raise ValueError(f"k={self.n_clusters} is larger than the number of images ({n})")

        exact = (
            self.mode == "exact"
            or (self.mode == "auto" and n <= self.exact_max)
            or self.n_micro >= n
        )
        if exact:
            z = linkage(np.asarray(X, dtype=np.float64), method="ward")
            children = z[:, :2].astype(np.int64)
            heights = z[:, 2].copy()
            micro_labels, leaf_sums, leaf_weights = None, None, np.ones(n)
        else:
            micro_labels, centers, leaf_weights = kmeans(
                X,
                int(self.n_micro),
                random_state=self.random_state,
                n_iter=10,
                max_points_per_centroid=64,
            )
            leaf_sums = centers * leaf_weights[:, None]
            children, heights = weighted_ward(centers, leaf_weights if self.weighted else None)
        m = len(leaf_weights)
        if self.n_clusters is not None and self.n_clusters > m:
            raise ValueError(
                f"n_clusters={self.n_clusters} exceeds the {m} micro-clusters; raise n_micro "
                f"or use mode='exact'"
            )

        self.mode_ = "exact" if exact else "micro"
        self.micro_labels_ = micro_labels
        self.n_leaves_ = m
        self.leaf_weights_ = leaf_weights
        self.children_ = children
        self.distances_ = heights
        self._layout = tree_layout(children, m)

        if self.n_clusters is None:
            k_hi = max(1, min(self.k_range[1], m - 1))
            k_lo = min(self.k_range[0], k_hi)
            ks = np.arange(k_lo, k_hi + 1)
            curve = tree_elbow_curve(
                X,
                children,
                ks,
                leaf_of_point=micro_labels,
                leaf_sums=leaf_sums,
                leaf_counts=None if leaf_sums is None else leaf_weights,
                max_samples=self.curve_sample,
                random_state=self.random_state,
            )
            self.k_values_, self.curve_ = ks, curve
            self.elbow_k_ = knee_point(ks, curve)
            self.n_clusters_ = self.elbow_k_
        else:
            self.k_values_ = self.curve_ = self.elbow_k_ = None
            self.n_clusters_ = int(self.n_clusters)
        self.labels_ = self.labels_for(self.n_clusters_)
        return self

    def labels_for(self, k: int) -> np.ndarray:
        """``(n,)`` int64 labels of the fitted points with the tree cut into ``k`` clusters.

        Cuts are nested: every cluster at ``k + 1`` lies inside one cluster at ``k``.
        Labels are numbered in dendrogram order. ``k`` ranges over ``1..n_leaves_``.
        """
        check_is_fitted(self, "children_")
        n = self.n_leaves_ if self.micro_labels_ is None else len(self.micro_labels_)
        if not _is_int(k) or k < 1:
            raise ValueError(f"k must be a positive int, got {k!r}")
        if k > n:
            raise ValueError(f"k={k} is larger than the number of images ({n})")
        if k > self.n_leaves_:
            raise ValueError(
                f"k={k} exceeds the {self.n_leaves_} micro-clusters of this tree; refit with a "
                f"larger n_micro"
            )
        leaves = leaf_labels(self.children_, self.n_leaves_, int(k), self._layout)
        return leaves if self.micro_labels_ is None else leaves[self.micro_labels_]
