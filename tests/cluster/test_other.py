"""k-means and DBSCAN wrappers, and the registry contract."""

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score

from medcl.cluster import CLUSTERERS, DBSCANClustering, KMeansClustering, k_distance_eps


@pytest.fixture(scope="module")
def blobs():
    return make_blobs(
        n_samples=500,
        centers=4,
        n_features=3,
        cluster_std=0.6,
        center_box=(-15, 15),
        random_state=4,
    )


def test_kmeans_on_blobs(blobs):
    X, y = blobs
    km = KMeansClustering(n_clusters=4, random_state=0).fit(X)
    assert adjusted_rand_score(y, km.labels_) == 1.0
    assert km.n_clusters_ == 4 and km.labels_.dtype == np.int64
    for c in range(4):
        np.testing.assert_allclose(km.cluster_centers_[c], X[km.labels_ == c].mean(axis=0))


def test_dbscan_on_blobs(blobs):
    X, y = blobs
    db = DBSCANClustering().fit(X)
    assert db.n_clusters_ == 4
    core = db.labels_ >= 0
    assert core.mean() > 0.9
    assert adjusted_rand_score(y[core], db.labels_[core]) == 1.0
    assert db.eps_ == pytest.approx(k_distance_eps(X, 5))
    fixed = DBSCANClustering(eps=db.eps_).fit(X)
    np.testing.assert_array_equal(fixed.labels_, db.labels_)


def test_dbscan_noise_is_minus_one():
    X = np.r_[np.zeros((10, 2)), [[100.0, 100.0]]] + np.arange(11)[:, None] * 1e-3
    db = DBSCANClustering(eps=1.0, min_samples=3).fit(X)
    assert db.labels_[-1] == -1 and db.n_clusters_ == 1


@pytest.mark.parametrize("name", sorted(CLUSTERERS))
def test_registry_contract(name, blobs):
    X, _ = blobs
    cls = CLUSTERERS[name]
    est = cls()
    assert clone(est).get_params() == est.get_params()
    assert est.fit(X) is est
    assert est.labels_.shape == (len(X),) and est.labels_.dtype == np.int64
    assert est.n_clusters_ == len(np.unique(est.labels_[est.labels_ >= 0]))


@pytest.mark.parametrize(
    "est, bad",
    [
        (KMeansClustering(n_clusters=0), "0"),
        (KMeansClustering(n_clusters=2, random_state="x"), "x"),
        (KMeansClustering(n_clusters=2, n_iter=0), "0"),
        (DBSCANClustering(eps=-1.0), "-1.0"),
        (DBSCANClustering(min_samples=0), "0"),
    ],
)
def test_bad_arguments_raise(est, bad):
    with pytest.raises(ValueError, match=bad):
        est.fit(np.zeros((10, 2)))


def test_kmeans_k_larger_than_n():
    with pytest.raises(ValueError, match=r"k=11 is larger than the number of images \(10\)"):
        KMeansClustering(n_clusters=11).fit(np.random.default_rng(0).normal(size=(10, 2)))
