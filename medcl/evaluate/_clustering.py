"""Judging clusters against real labels: majority mapping, kNN, linear probe, NMI/ARI/silhouette.

The protocol of Ferrante et al. ("Contrastive learning for unsupervised medical image
clustering and reconstruction"): (a) every cluster takes the most frequent label among the
labelled training images it holds, and test images are classified by their cluster; (b) a
k=5 nearest-neighbour vote (cosine) against the training latents; (c) a linear classifier
trained on a fraction (20%) of the training labels.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

__all__ = [
    "classification_scores",
    "cluster_agreement",
    "cluster_metrics",
    "knn_predict",
    "linear_probe",
    "majority_mapping",
]


def cluster_agreement(clusters, reference) -> dict:
    """How well pseudo-classes match reference labels that no method saw.

    Args:
        clusters: ``(n,)`` pseudo-class of each image.
        reference: ``(n,)`` reference label of each image (strings or integers), e.g. the
            appearance group of dsb2018.

    Returns:
        ``nmi`` and ``ari`` (scikit-learn, arithmetic NMI), ``purity`` (share of images whose
        pseudo-class's majority label is their own), ``classes`` (sorted reference labels),
        ``clusters`` (sorted pseudo-class ids) and ``contingency`` (rows: pseudo-classes,
        columns: classes, image counts).

    Example:
        >>> cluster_agreement([0, 0, 1, 1], ["a", "a", "b", "b"])["nmi"]
        1.0
    """
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    c = np.asarray(clusters).ravel()
    r = np.asarray([str(x) for x in np.asarray(reference).ravel()])
    if c.shape != r.shape or len(c) == 0:
        raise ValueError(f"need equally long, non-empty arrays, got {c.shape} and {r.shape}")
    classes = sorted(set(r.tolist()))
    ids = sorted(set(c.tolist()))
    table = np.zeros((len(ids), len(classes)), dtype=np.int64)
    np.add.at(table, (np.searchsorted(ids, c), np.searchsorted(classes, r)), 1)
    return {
        "nmi": float(normalized_mutual_info_score(r, c)),
        "ari": float(adjusted_rand_score(r, c)),
        "purity": float(table.max(axis=1).sum() / len(c)),
        "classes": classes,
        "clusters": [int(i) for i in ids],
        "contingency": table.tolist(),
    }


def majority_mapping(clusters, labels, n_clusters: int | None = None) -> np.ndarray:
    """The label each cluster takes: the most frequent label among its labelled members.

    Ties go to the smallest label; a cluster without labelled members takes the most frequent
    label overall.

    Args:
        clusters: ``(n,)`` cluster ids in ``0..k-1`` of the labelled images.
        labels: ``(n,)`` their non-negative integer labels.
        n_clusters: ``k`` (default: ``max(clusters) + 1``).

    Returns:
        ``(k,)`` int64, the label of each cluster; predict with ``mapping[test_clusters]``.

    Example:
        >>> majority_mapping([0, 0, 1, 1, 1], [3, 3, 1, 2, 2]).tolist()
        [3, 2]
    """
    clusters = np.asarray(clusters, dtype=np.int64).ravel()
    labels = np.asarray(labels, dtype=np.int64).ravel()
    if clusters.shape != labels.shape or len(clusters) == 0:
        raise ValueError(
            f"clusters and labels must be non-empty and equally long, got {clusters.shape} "
            f"and {labels.shape}"
        )
    if clusters.min() < 0 or labels.min() < 0:
        raise ValueError("clusters and labels must be non-negative")
    k = int(clusters.max()) + 1 if n_clusters is None else int(n_clusters)
    n_labels = int(labels.max()) + 1
    counts = np.zeros((k, n_labels), dtype=np.int64)
    np.add.at(counts, (clusters, labels), 1)
    mapping = counts.argmax(axis=1)
    mapping[counts.sum(axis=1) == 0] = np.bincount(labels).argmax()
    return mapping


def classification_scores(y_true, y_pred) -> dict[str, float]:
    """Accuracy and macro precision and recall (scikit-learn, 0 for a class never predicted)."""
    from sklearn.metrics import accuracy_score, precision_score, recall_score

    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "precision": float(precision_score(y_true, y_pred, average="macro", zero_division=0)),
        "recall": float(recall_score(y_true, y_pred, average="macro", zero_division=0)),
    }


def knn_predict(bank, bank_labels, queries, k: int = 5) -> np.ndarray:
    """Majority vote of the ``k`` nearest memory-bank entries by cosine similarity.

    Uses scikit-learn's exact brute-force search (ties in the vote go to the smallest label).

    Example:
        >>> knn_predict([[1.0, 0], [0.9, 0.1], [0, 1.0]], [0, 0, 1], [[1.0, 0.05]], k=1).tolist()
        [0]
    """
    from sklearn.neighbors import KNeighborsClassifier

    bank = np.asarray(bank, dtype=np.float64)
    k = min(k, len(bank))
    clf = KNeighborsClassifier(n_neighbors=k, metric="cosine", algorithm="brute")
    return clf.fit(bank, np.asarray(bank_labels)).predict(np.asarray(queries, dtype=np.float64))


def linear_probe(
    train_features,
    train_labels,
    test_features,
    *,
    epochs: int = 200,
    lr: float = 3e-4,
    batch_size: int = 256,
    seed: int = 0,
) -> np.ndarray:
    """Train a linear classifier (Adam, cross-entropy) on frozen features; predict the test set.

    Features are standardised with the training mean and standard deviation. Pick the
    labelled fraction before calling (e.g. 20% of the training images, stratified).
    """
    x = np.asarray(train_features, dtype=np.float32)
    y = np.asarray(train_labels, dtype=np.int64)
    mean, std = x.mean(0), x.std(0) + 1e-6
    xt = torch.from_numpy((x - mean) / std)
    yt = torch.from_numpy(y)
    gen = torch.Generator().manual_seed(seed)
    head = nn.Linear(x.shape[1], int(y.max()) + 1)
    with torch.no_grad():
        bound = 1 / np.sqrt(x.shape[1])
        head.weight.uniform_(-bound, bound, generator=gen)
        head.bias.zero_()
    opt = torch.optim.Adam(head.parameters(), lr=lr)
    for _ in range(epochs):
        order = torch.randperm(len(xt), generator=gen)
        for s in range(0, len(xt), batch_size):
            idx = order[s : s + batch_size]
            loss = nn.functional.cross_entropy(head(xt[idx]), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    q = torch.from_numpy((np.asarray(test_features, dtype=np.float32) - mean) / std)
    with torch.no_grad():
        return head(q).argmax(1).numpy()


def cluster_metrics(
    features, clusters, labels=None, max_silhouette: int = 5000
) -> dict[str, float]:
    """NMI and ARI against ``labels`` (if given) and the silhouette of ``clusters`` (cosine).

    The silhouette uses at most ``max_silhouette`` points (a fixed seeded sample), since it is
    quadratic; it is NaN with a single cluster.
    """
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score, silhouette_score

    clusters = np.asarray(clusters)
    out: dict[str, float] = {}
    if labels is not None:
        out["nmi"] = float(normalized_mutual_info_score(labels, clusters))
        out["ari"] = float(adjusted_rand_score(labels, clusters))
    n_clusters = len(np.unique(clusters))
    if 1 < n_clusters < len(clusters):
        size = min(max_silhouette, len(clusters))
        out["silhouette"] = float(
            silhouette_score(features, clusters, metric="cosine", sample_size=size, random_state=0)
        )
    else:
        out["silhouette"] = float("nan")
    return out
