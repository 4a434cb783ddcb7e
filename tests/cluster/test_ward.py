"""WardClustering and weighted_ward against scipy, scikit-learn and duplicated points."""

import numpy as np
import pytest
from scipy.cluster.hierarchy import fcluster, linkage
from sklearn.base import clone
from sklearn.cluster import AgglomerativeClustering
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score

from medcl.cluster import WardClustering, weighted_ward, within_cluster_distance


@pytest.fixture(scope="module")
def blobs():
    X, y = make_blobs(n_samples=300, centers=5, n_features=6, cluster_std=2.0, random_state=1)
    return X, y


def _labels_from_children(children, m, k):
    """Reference cut by union-find over the first m - k merges."""
    parent = list(range(2 * m - 1))

    def find(i):
        while parent[i] != i:
            i = parent[i]
        return i

    for step, (a, b) in enumerate(children[: m - k]):
        parent[find(a)] = m + step
        parent[find(b)] = m + step
    roots = [find(i) for i in range(m)]
    return np.unique(roots, return_inverse=True)[1]


@pytest.mark.parametrize("k", [2, 3, 5, 8, 20])
def test_exact_mode_equals_sklearn_ward(blobs, k):
    X, _ = blobs
    ours = WardClustering(n_clusters=k, mode="exact").fit(X)
    ref = AgglomerativeClustering(n_clusters=k, linkage="ward").fit(X)
    assert ours.mode_ == "exact" and ours.micro_labels_ is None
    assert adjusted_rand_score(ref.labels_, ours.labels_) == 1.0
    assert adjusted_rand_score(ref.labels_, ours.labels_for(k)) == 1.0


def test_unit_weights_equal_scipy_ward():
    X = np.random.default_rng(0).normal(size=(150, 5))
    children, heights = weighted_ward(X)
    z = linkage(X, method="ward")
    np.testing.assert_allclose(heights, z[:, 2], rtol=1e-9)
    np.testing.assert_array_equal(children, np.sort(z[:, :2].astype(np.int64), axis=1))
    for k in (2, 4, 7, 30):
        ref = fcluster(z, k, criterion="maxclust")
        assert adjusted_rand_score(ref, _labels_from_children(children, len(X), k)) == 1.0


def test_weighted_equals_ward_on_duplicated_points():
    rng = np.random.default_rng(3)
    centroids = rng.normal(size=(40, 3))
    weights = rng.integers(1, 6, size=40)
    children, heights = weighted_ward(centroids, weights)
    dup = np.repeat(centroids, weights, axis=0)
    z = linkage(dup, method="ward")
    # duplicates merge first at height 0; the remaining merges are the weighted tree
    n_zero = int(weights.sum() - len(weights))
    np.testing.assert_allclose(z[:n_zero, 2], 0.0, atol=1e-12)
    np.testing.assert_allclose(heights, z[n_zero:, 2], rtol=1e-9)
    owner = np.repeat(np.arange(len(weights)), weights)
    for k in (2, 3, 6, 15):
        ref = fcluster(z, k, criterion="maxclust")
        ours = _labels_from_children(children, len(weights), k)[owner]
        assert adjusted_rand_score(ref, ours) == 1.0


def test_weighted_ward_small_exact_values():
    children, heights = weighted_ward(np.array([[0.0], [1.0], [5.0]]), [1, 1, 2])
    assert children.tolist() == [[0, 1], [2, 3]]
    # second merge: sizes 2 and 2, means 0.5 and 5 -> cost 1 * 4.5^2, height sqrt(2 cost)
    np.testing.assert_allclose(heights, [1.0, np.sqrt(2 * 4.5**2)])
    assert weighted_ward(np.zeros((1, 2)))[0].shape == (0, 2)


def test_micro_mode_recovers_separated_blobs():
    X, y = make_blobs(
        n_samples=6000,
        centers=6,
        n_features=8,
        cluster_std=1.0,
        center_box=(-30, 30),
        random_state=2,
    )
    ward = WardClustering(n_clusters=6, mode="micro", n_micro=200).fit(X)
    assert ward.mode_ == "micro" and ward.n_leaves_ <= 200
    assert ward.micro_labels_.shape == (6000,)
    assert ward.leaf_weights_.sum() == 6000
    assert adjusted_rand_score(y, ward.labels_) > 0.99
    auto = WardClustering(mode="auto", exact_max=1000, n_micro=200, k_range=(2, 30)).fit(X)
    assert auto.mode_ == "micro" and auto.elbow_k_ == 6
    assert adjusted_rand_score(y, auto.labels_) > 0.99


def test_micro_degenerates_to_exact_when_n_micro_ge_n(blobs):
    X, _ = blobs
    ward = WardClustering(n_clusters=4, mode="micro", n_micro=1000).fit(X)
    ref = AgglomerativeClustering(n_clusters=4, linkage="ward").fit(X)
    assert ward.mode_ == "exact"
    assert adjusted_rand_score(ref.labels_, ward.labels_) == 1.0


@pytest.mark.parametrize("mode", ["exact", "micro"])
def test_labels_for_are_nested_and_have_k_labels(mode):
    X = np.random.default_rng(5).normal(size=(400, 4))
    ward = WardClustering(n_clusters=3, mode=mode, n_micro=60).fit(X)
    previous = ward.labels_for(1)
    assert set(previous.tolist()) == {0}
    for k in range(2, 41):
        labels = ward.labels_for(k)
        assert labels.dtype == np.int64 and labels.shape == (400,)
        assert np.array_equal(np.unique(labels), np.arange(k))
        # each cluster at k lies inside one cluster at k - 1
        for c in range(k):
            assert len(np.unique(previous[labels == c])) == 1
        previous = labels


def test_auto_k_uses_elbow_curve(blobs):
    X, y = blobs
    ward = WardClustering(k_range=(2, 30)).fit(X)
    assert ward.n_clusters_ == ward.elbow_k_ == 5
    assert adjusted_rand_score(y, ward.labels_) > 0.95
    np.testing.assert_array_equal(ward.k_values_, np.arange(2, 31))
    for i in (0, 3, 10, 28):
        k = int(ward.k_values_[i])
        assert ward.curve_[i] == pytest.approx(within_cluster_distance(X, ward.labels_for(k)))
    fixed = WardClustering(n_clusters=3).fit(X)
    assert fixed.elbow_k_ is None and fixed.curve_ is None and fixed.n_clusters_ == 3


def test_k_range_clipped_to_leaves():
    X = np.random.default_rng(0).normal(size=(6, 2))
    ward = WardClustering(k_range=(2, 200)).fit(X)
    assert ward.k_values_.tolist() == [2, 3, 4, 5]
    assert WardClustering(k_range=(3, 4)).fit(X[:2]).n_clusters_ == 1


def test_estimator_contract(blobs):
    X, _ = blobs
    est = WardClustering(n_clusters=3, k_range=(2, 9), mode="exact", n_micro=7)
    assert vars(est) == {
        "n_clusters": 3,
        "k_range": (2, 9),
        "mode": "exact",
        "n_micro": 7,
        "exact_max": 5000,
        "weighted": True,
        "curve_sample": 100_000,
        "random_state": 0,
    }
    assert est.fit(X) is est
    assert est.labels_.dtype == np.int64 and est.labels_.shape == (len(X),)
    assert est.n_clusters_ == 3 and len(np.unique(est.labels_)) == 3
    assert clone(est).get_params() == est.get_params()
    assert np.array_equal(est.fit_predict(X), est.labels_)


@pytest.mark.parametrize(
    "kwargs, bad",
    [
        ({"n_clusters": 0}, "0"),
        ({"n_clusters": 2.5}, "2.5"),
        ({"k_range": (5, 2)}, "(5, 2)"),
        ({"k_range": (0, 3)}, "(0, 3)"),
        ({"mode": "fast"}, "fast"),
        ({"n_micro": 1}, "1"),
        ({"exact_max": -1}, "-1"),
        ({"weighted": "yes"}, "yes"),
        ({"curve_sample": 0}, "0"),
        ({"random_state": -3}, "-3"),
    ],
)
def test_bad_arguments_raise(kwargs, bad):
    X = np.random.default_rng(0).normal(size=(20, 2))
    with pytest.raises(ValueError, match=bad.replace("(", r"\(").replace(")", r"\)")):
        WardClustering(**kwargs).fit(X)


def test_k_larger_than_n_raises():
    X = np.random.default_rng(0).normal(size=(10, 2))
    with pytest.raises(ValueError, match=r"k=11 is larger than the number of images \(10\)"):
        WardClustering(n_clusters=11).fit(X)
    ward = WardClustering(n_clusters=2).fit(X)
    with pytest.raises(ValueError, match=r"k=12 is larger than the number of images \(10\)"):
        ward.labels_for(12)
    with pytest.raises(ValueError, match="0"):
        ward.labels_for(0)


def test_n_clusters_above_micro_clusters_raises():
    X = np.random.default_rng(0).normal(size=(500, 2))
    with pytest.raises(ValueError, match="n_clusters=80 exceeds"):
        WardClustering(n_clusters=80, mode="micro", n_micro=50).fit(X)


def test_float32_input_and_does_not_import_torch():
    import subprocess
    import sys

    code = (
        "import sys, numpy as np; from medcl.cluster import WardClustering;"
        "X = np.random.default_rng(0).normal(size=(3000, 16)).astype(np.float32);"
        "w = WardClustering(mode='micro', n_micro=100, k_range=(2, 20)).fit(X);"
        "assert w.labels_.shape == (3000,); assert 'torch' not in sys.modules; print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "ok", out.stderr


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_micro_fit_makes_no_copy_of_X(dtype):
    # tracemalloc sees numpy's allocations (not faiss's own, which scale with a chunk); the
    # (n,) int64 labels are 8 bytes a point, a float64 copy of X would be 8 * d
    import tracemalloc

    rng = np.random.default_rng(0)
    n, d = 1_000_000, 16
    X = rng.normal(size=(n, d)).astype(dtype)
    X[:, 0] += rng.integers(0, 5, size=n) * 8
    tracemalloc.start()
    try:
        ward = WardClustering(n_micro=100, k_range=(2, 20), curve_sample=20_000).fit(X)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert ward.n_clusters_ == 5
    # float32: not even a float32 copy (check_array, faiss and the curve use X as it is);
    # float64: the one float32 conversion for faiss (half of X), no float64 copy
    assert peak < (0.5 if dtype == np.float32 else 1.0) * X.nbytes, peak / X.nbytes
