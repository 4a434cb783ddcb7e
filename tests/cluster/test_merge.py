"""Over-cluster, then merge along the neighbourhood graph (cluster.method=merge)."""

import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from medcl.cluster import LINKS, choose_k, graph_merges, merged_labels, partitions
from medcl.cluster._choose_k import _affinity

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_choose_k import KS, SCENARIOS, sphere_blobs, sphere_rings  # noqa: E402


def _chain(n_groups, per_group):
    """Points on a path, ``per_group`` to a group, each point joined to the next, so
    neighbouring groups share one edge."""
    n = n_groups * per_group
    A = np.zeros((n, n))
    for i in range(n - 1):
        A[i, i + 1] = A[i + 1, i] = 1.0
    return A, np.repeat(np.arange(n_groups), per_group)


def test_merges_by_hand():
    # three groups on a path a-b-b-c: a and b share an edge, b and c none
    A = np.array([[0, 1, 0, 0], [1, 0, 1, 0], [0, 1, 0, 0], [0, 0, 0, 0.0]])
    assert graph_merges(A, np.array([0, 1, 1, 2])) == [(0, 1), (0, 2)]
    assert merged_labels(np.array([0, 1, 1, 2]), [(0, 1), (0, 2)], 3).tolist() == [0, 1, 1, 2]
    assert merged_labels(np.array([2, 1, 1, 0]), [(0, 1), (0, 2)], 2).tolist() == [0, 1, 1, 1]
    assert merged_labels(np.array([0, 1, 1, 2]), [(0, 1), (0, 2)], 1).tolist() == [0] * 4


def test_the_strongest_tie_merges_first_whatever_the_sizes():
    """A fragment hangs from a large group by most of its edges and touches a small one by a
    few: 'smaller' merges it into the large group first; 'expected' (PAGA) would rather join
    two small groups, which is why it is not the default."""
    rng = np.random.default_rng(0)
    big, frag, small = 200, 10, 20
    labels = np.repeat([0, 1, 2], [big, frag, small])
    n = len(labels)
    A = np.zeros((n, n))

    def join(a, b, count):
        for _ in range(count):
            i, j = rng.choice(a), rng.choice(b)
            A[i, j] = A[j, i] = 1.0

    g = [np.flatnonzero(labels == c) for c in range(3)]
    join(g[0], g[0], 2000)
    join(g[1], g[1], 20)
    join(g[2], g[2], 60)
    join(g[0], g[1], 15)  # the fragment's main tie
    join(g[1], g[2], 4)
    assert graph_merges(A, labels, link="smaller")[0] == (0, 1)
    assert graph_merges(A, labels, link="expected")[0] == (1, 2)


def test_unconnected_groups_merge_smallest_first():
    labels = np.array([0] * 5 + [1] * 3 + [2] * 2)
    assert graph_merges(np.zeros((10, 10)), labels) == [(1, 2), (0, 1)]


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_merge_and_stability_find_the_true_k(name):
    """The synthetic cases of choose_k (unequal sizes and spreads, cut classes, a close pair,
    MNIST-like): the merged partitions, with the packaged stability rule, find k = 10 and the
    classes. The close pair is the exception in quality: one of the 30 fine groups straddles
    the two close blobs (98.2% of the points sit in a pure fine group), and merging cannot
    undo a straddling group, so at k = 10 the ARI is 0.90 where spectral's is 0.996."""
    x, truth = SCENARIOS[name]()
    c = choose_k(x, KS, method="merge", rule="stability", seed=0)
    assert c.k == 10 and c.confident
    ari = adjusted_rand_score(truth, partitions(x, [10], "merge")[10])
    spectral = adjusted_rand_score(truth, partitions(x, [10], "spectral")[10])
    if name == "close pair":
        assert 0.85 < ari < spectral - 0.05
    else:
        assert ari > 0.95


def test_curved_groups_are_found_as_with_spectral():
    x, truth = sphere_rings()
    assert adjusted_rand_score(truth, partitions(x, [4], "merge")[4]) == pytest.approx(1.0)


def test_partitions_are_nested_and_one_k_matches_all_ks():
    """Every k is a coarsening of the next finer one (one fine partition merged down), and
    asking for one k gives what asking for all gives (the stage asks for one, the stability
    rule for all)."""
    x, _ = SCENARIOS["sizes 4x"]()
    ps = partitions(x, list(KS), "merge")
    for k in list(KS)[:-1]:
        coarse, fine = ps[k], ps[k + 1]
        assert len(np.unique(coarse)) == k
        for g in np.unique(fine):  # each finer group lies in one coarser group
            assert len(np.unique(coarse[fine == g])) == 1
    assert np.array_equal(partitions(x, [12], "merge")[12], ps[12])


def test_a_close_pair_is_the_last_pair_of_blobs_merged():
    """Ten blobs, two of them close (0.5 rad apart, each of spread 0.5: no fine group of the
    30 straddles them): merging down reaches the ten blobs, and the one merge from 10 to 9
    joins the close pair."""
    x, truth = sphere_blobs([100] * 10, seed=4, close=0.5, spreads=0.5)
    p = partitions(x, [9, 10], "merge")
    assert adjusted_rand_score(truth, p[10]) > 0.98
    joined = [sorted(set(truth[p[9] == g].tolist())) for g in np.unique(p[9])]
    assert [0, 1] in joined  # the close pair (blobs 0 and 1) is the pair merged at 9


def test_bad_arguments_name_the_value():
    A, labels = _chain(3, 4)
    with pytest.raises(ValueError, match="link must be one of"):
        graph_merges(A, labels, link="average")
    with pytest.raises(ValueError, match="non-empty groups"):
        graph_merges(A, np.where(labels == 1, 2, labels))
    with pytest.raises(ValueError, match=r"A must be \(12, 12\)"):
        graph_merges(A[:5, :5], labels)
    with pytest.raises(ValueError, match="k must lie in 1..3"):
        merged_labels(labels, graph_merges(A, labels), 4)
    assert LINKS == ("smaller", "expected")


def test_affinity_graph_of_the_stage_is_accepted():
    x, truth = SCENARIOS["equal"]()
    merges = graph_merges(_affinity(x, 10), truth)
    assert len(merges) == 9 and len({g for pair in merges for g in pair}) == 10
