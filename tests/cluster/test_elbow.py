"""Elbow curve and knee detection."""

import numpy as np
import pytest
from sklearn.datasets import make_blobs

from medcl.cluster import (
    KMeansClustering,
    WardClustering,
    elbow_curve,
    knee_point,
    within_cluster_distance,
)
from medcl.cluster._elbow import tree_elbow_curve


def _naive_within(X, labels):
    total = 0.0
    for i in range(len(X)):
        members = X[labels == labels[i]]
        total += np.sqrt(((X[i] - members.mean(axis=0)) ** 2).sum())
    return total / len(X)


def test_within_cluster_distance_matches_naive_loop():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 5))
    labels = rng.integers(-1, 6, size=120)
    assert within_cluster_distance(X, labels) == pytest.approx(_naive_within(X, labels), rel=1e-12)
    assert within_cluster_distance([[0.0], [2.0], [10.0]], [0, 0, 1]) == pytest.approx(2 / 3)
    assert within_cluster_distance(X, np.arange(120)) == 0.0


def test_within_cluster_distance_bad_shapes():
    with pytest.raises(ValueError, match=r"\(3,\)"):
        within_cluster_distance(np.zeros((3, 2)), [0, 1])


@pytest.mark.parametrize("elbow", [3, 7, 12])
def test_knee_point_on_piecewise_linear_curve(elbow):
    ks = np.arange(1, 31)
    values = np.where(
        ks <= elbow, 100.0 - 20.0 * (ks - 1), 100.0 - 20.0 * (elbow - 1) - 0.5 * (ks - elbow)
    )
    assert knee_point(ks, values) == elbow
    # order of the input does not matter, and a python int comes back
    perm = np.random.default_rng(0).permutation(len(ks))
    out = knee_point(ks[perm], values[perm])
    assert out == elbow and isinstance(out, int)


def test_knee_point_on_one_over_k():
    ks = np.arange(2, 201)
    # for 1/k the normalised chord distance is maximal near k = sqrt(2 * 200) = 20
    assert abs(knee_point(ks, 1.0 / ks) - 20) <= 1


def test_knee_point_without_knee_returns_first_k():
    assert knee_point([2, 3, 4, 5], [4.0, 3.0, 2.0, 1.0]) == 2  # straight line
    assert knee_point([2, 3, 4], [1.0, 1.0, 1.0]) == 2  # flat
    assert knee_point([5], [1.0]) == 5


def test_knee_point_bad_input():
    with pytest.raises(ValueError, match="distinct"):
        knee_point([2, 2, 3], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="equal length"):
        knee_point([1, 2], [1.0])
    with pytest.raises(ValueError, match="NaN"):
        knee_point([1, 2, 3], [1.0, np.nan, 0.0])


def test_tree_curve_matches_relabelling_for_every_k():
    X = np.random.default_rng(1).normal(size=(2000, 6)).astype(np.float32)
    ward = WardClustering(n_clusters=2, mode="micro", n_micro=150).fit(X)
    ks = np.arange(1, 60)
    fast = elbow_curve(X, ward, ks)
    slow = elbow_curve(X, ward.labels_for, ks)
    np.testing.assert_allclose(fast, slow, rtol=1e-5)
    assert np.all(np.diff(slow) <= 1e-9) or slow[0] > slow[-1]


def test_tree_curve_subsample_is_close_and_seeded():
    X = np.random.default_rng(2).normal(size=(3000, 4))
    ward = WardClustering(n_clusters=2, mode="micro", n_micro=100).fit(X)
    ks = [2, 10, 50]
    full = elbow_curve(X, ward, ks, max_samples=None)
    sub = elbow_curve(X, ward, ks, max_samples=1000, random_state=0)
    np.testing.assert_allclose(sub, full, rtol=0.05)
    np.testing.assert_array_equal(sub, elbow_curve(X, ward, ks, max_samples=1000, random_state=0))
    with pytest.raises(ValueError, match="1..100"):
        tree_elbow_curve(X, ward.children_, [101], leaf_of_point=ward.micro_labels_)


def test_elbow_curve_with_kmeans_callable_finds_blobs():
    X, _ = make_blobs(
        n_samples=600,
        centers=4,
        n_features=5,
        cluster_std=0.5,
        center_box=(-20, 20),
        random_state=0,
    )
    ks = range(1, 12)
    curve = elbow_curve(X, lambda k: KMeansClustering(k).fit(X).labels_, ks)
    assert knee_point(list(ks), curve) == 4
    with pytest.raises(ValueError, match="int"):
        elbow_curve(X, 3, ks)
