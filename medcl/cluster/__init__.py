"""Clustering of embeddings into pseudo-classes: scalable Ward, k-means, DBSCAN, elbow/knee.

The main entry point is :class:`WardClustering` (exact Ward up to a few thousand points,
weighted Ward on k-means micro-clusters beyond), with k chosen at the knee of the mean
within-cluster distance curve (:func:`degeneracy` and :func:`largest_sound_k` guard
against a k too fine to serve as pseudo-classes). :func:`choose_k` reads k from points by
one of several rules over curves (:data:`CURVE_RULES`: UFC's elbow, the silhouette, the
eigengap, subsample stability) and returns it with its evidence. :class:`KMeansClustering`
and :class:`DBSCANClustering` serve ablations. Every clusterer follows scikit-learn's estimator contract (``fit(X)`` returns
``self`` and sets ``labels_`` and ``n_clusters_``) and is listed in :data:`CLUSTERERS`.

This package does not import torch.

Example:
    >>> import numpy as np
    >>> from medcl.cluster import CLUSTERERS
    >>> X = np.random.default_rng(0).normal(size=(200, 8))
    >>> CLUSTERERS["ward"](n_clusters=3).fit(X).n_clusters_
    3
"""

from medcl.cluster._choose_k import (
    CURVE_RULES,
    K_RULES,
    PARTITION_METHODS,
    SPECTRAL_METHODS,
    KChoice,
    argmax_k,
    choose_k,
    eigengap_curve,
    eigengap_k,
    laplacian_spectrum,
    largest_above,
    largest_near_max,
    partitions,
    silhouette_curve,
    stability_curve,
)
from medcl.cluster._dbscan import DBSCANClustering, k_distance_eps
from medcl.cluster._degenerate import degeneracy, largest_sound_k
from medcl.cluster._elbow import elbow_curve, knee_point, within_cluster_distance
from medcl.cluster._kmeans import KMeansClustering
from medcl.cluster._linkage import weighted_ward
from medcl.cluster._merge import LINKS, graph_merges, merged_labels
from medcl.cluster._ward import WardClustering

CLUSTERERS = {
    "ward": WardClustering,
    "kmeans": KMeansClustering,
    "dbscan": DBSCANClustering,
}

__all__ = [
    "CLUSTERERS",
    "CURVE_RULES",
    "K_RULES",
    "PARTITION_METHODS",
    "SPECTRAL_METHODS",
    "argmax_k",
    "choose_k",
    "DBSCANClustering",
    "degeneracy",
    "eigengap_curve",
    "eigengap_k",
    "elbow_curve",
    "k_distance_eps",
    "KChoice",
    "KMeansClustering",
    "knee_point",
    "LINKS",
    "graph_merges",
    "merged_labels",
    "laplacian_spectrum",
    "largest_above",
    "largest_near_max",
    "largest_sound_k",
    "partitions",
    "silhouette_curve",
    "stability_curve",
    "WardClustering",
    "weighted_ward",
    "within_cluster_distance",
]
