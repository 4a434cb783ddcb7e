"""The micro-clustering k-means: chunked faiss assignment against one search over all points."""

import numpy as np
import pytest

from medcl.cluster import _kmeans
from medcl.cluster._kmeans import kmeans, nearest_centre

faiss = pytest.importorskip("faiss")


@pytest.mark.parametrize("d", [3, 32, 128])
@pytest.mark.parametrize("n", [500, 3 * 4096 + 17, 70_001])
def test_nearest_centre_chunked_equals_one_search(n, d):
    # d = 3 and n = 70,001 cross faiss's BLAS threshold (n * d >= 128,000): a chunk of 4096
    # rows would take the direct path and round differently, so chunks must be raised
    rng = np.random.default_rng(d)
    index = faiss.IndexFlatL2(d)
    index.add(rng.normal(size=(300, d)).astype(np.float32))
    x = rng.normal(size=(n, d)).astype(np.float32)
    one = index.search(x, 1)[1].ravel()
    for chunk in (1, 4096, 8192, 12_288, None, 10**9):
        got = nearest_centre(index, x, chunk)
        assert got.dtype == np.int64 and got.shape == (n,)
        np.testing.assert_array_equal(got, one)


def test_kmeans_chunked_equals_one_shot(monkeypatch):
    # duplicated points leave clusters empty, so the in-place relabelling runs over chunks too
    rng = np.random.default_rng(0)
    X = np.repeat(rng.normal(size=(700, 24)).astype(np.float32), 40, axis=0)
    monkeypatch.setattr(_kmeans, "_ASSIGN_CHUNK", 10**9)
    one = kmeans(X, 800, n_iter=5, max_points_per_centroid=64)
    monkeypatch.setattr(_kmeans, "_ASSIGN_CHUNK", 4096)
    chunked = kmeans(X, 800, n_iter=5, max_points_per_centroid=64)
    assert len(one[1]) < 800  # some clusters were empty and dropped
    for a, b in zip(one, chunked, strict=True):
        np.testing.assert_array_equal(a, b)
    labels = chunked[0]
    assert labels.min() == 0 and labels.max() == len(chunked[1]) - 1
    np.testing.assert_array_equal(np.bincount(labels), chunked[2])
