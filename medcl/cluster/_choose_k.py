"""Choosing k: curves over k and rules that read one k (and a plausible range) from them.

Every rule is a pure function ``(ks, values) -> k`` over a curve (the style of
:func:`~medcl.cluster.knee_point`, UFC's elbow, which is one of them). :func:`choose_k` is the
one entry point from points: it computes the curve the rule needs for a partition method
(``spectral``, ``ward`` or ``kmeans``, the settings of ``medcl stratify``) and returns the k
with its evidence (:class:`KChoice`).

The curves:

* **elbow** -- the mean within-cluster distance of the Ward tree cut at every k and its knee
  (:func:`~medcl.cluster.knee_point`; UFC's rule, exactly :class:`~medcl.cluster.WardClustering`'s
  ``elbow_k_``). Known to sit one below the true k on well separated blobs: the chord from a
  small k_min pulls the knee down.
* **silhouette** -- the mean cosine silhouette (Rousseeuw 1987) of the partition at every k.
  It rewards merging two close groups, so it can under-cluster (the issue: 8s and 9s in one
  cluster, k = 9 on unbalanced MNIST).
* **eigengap** -- ``lambda_{k+1} - lambda_k`` of the normalised Laplacian of the 10-nearest-
  neighbour graph, spectral clustering's own criterion (von Luxburg, "A tutorial on spectral
  clustering", Statistics and Computing 2007, section 8.3).
* **stability** -- partition ``n_resamples`` random subsamples of the points and score, for
  every pair of subsamples, how well each cluster of one is found again in the other on the
  points they share (Ben-Hur, Elisseeff, Guyon, "A stability based method for discovering
  structure in clustered data", PSB 2002; Lange, Roth, Braun, Buhmann, "Stability-based
  validation of clustering solutions", Neural Computation 2004). A global score such as the
  ARI is biased to small k (a coarse split is reproduced easily, and one cluster cut at random
  out of ten lowers the ARI by little). We score instead the *worst* cluster: the smallest,
  over the clusters of both partitions, best-match Jaccard (Hennig, "Cluster-wise assessment of
  cluster stability", CSDA 2007, who calls a cluster with Jaccard below 0.5 dissolved and
  above 0.75 valid). The rule takes the **largest** k whose every cluster is reproduced
  (median over pairs >= ``threshold``): merging two real classes is catastrophic for majority
  mapping, a spare cluster costs little, and a real cluster cut in two at random is unstable
  and so refused.

  The defaults, ``threshold=0.68`` over 16 subsamples, were chosen on validation latents
  and synthetic points (``benchmarks/k_rule_study.py``: ten warm-ups of ``medcl stratify`` on
  validation resamples of the digits, each curve drawn six ways). There the curve of a good
  k hovers at 0.7-0.85 (two close digits told apart, or a spare cluster, are found again less
  well than a clean blob), and past the last good k it falls to 0.2-0.65 (0.57 at most with
  16 or more subsamples). Hennig's 0.75 sat inside the first band: one draw of 8 subsamples
  put a good k at 0.70 and the rule fell back to a k that merged two digits. Every threshold
  from 0.56 to 0.70 gave the same worst case over all sixty curves (up to 0.71 over the
  draws of 16 or 32 subsamples). On synthetic blobs a blob cut in two at random can reach
  0.65 (``tests/cluster``). 0.68 lies between 0.65 and 0.70, and 16 subsamples (120 pairs)
  replace 8 (28 pairs): the bad draw was one of 8.
"""

from __future__ import annotations

import itertools
import numbers
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import sparse
from scipy.sparse.csgraph import laplacian as csgraph_laplacian
from scipy.sparse.linalg import eigsh
from sklearn.metrics import adjusted_rand_score

from medcl.cluster._elbow import check_curve as _check_curve
from medcl.cluster._elbow import knee_point

__all__ = [
    "CURVE_RULES",
    "K_RULES",
    "PARTITION_METHODS",
    "SPECTRAL_METHODS",
    "KChoice",
    "argmax_k",
    "choose_k",
    "eigengap_curve",
    "eigengap_k",
    "largest_above",
    "largest_near_max",
    "laplacian_spectrum",
    "partitions",
    "silhouette_curve",
    "stability_curve",
]

PARTITION_METHODS = ("spectral", "ward", "kmeans", "merge")
# the methods that cut the graph Laplacian's eigenvectors: k <= n - 1, one less than the rest
SPECTRAL_METHODS = ("spectral", "merge")
_N_NEIGHBORS = 10  # medcl stratify's spectral graph
_FINE_K = 30  # "merge": the spectral partition that is merged down (more than k_max = 20)


# --------------------------------------------------------------------------- rules over curves


def argmax_k(ks, values) -> int:
    """The k with the largest value (the smallest such k on a tie).

    Example:
        >>> argmax_k([2, 3, 4], [0.1, 0.5, 0.2])
        3
    """
    ks, values = _check_curve(ks, values)
    return int(ks[int(np.argmax(values))])


def largest_near_max(ks, values, tol: float = 0.02) -> int:
    """The largest k whose value is within ``tol`` of the curve's maximum.

    A tolerant argmax that settles near-ties towards more clusters, for curves (the
    silhouette) where a spare cluster costs less than a merged pair.

    Example:
        >>> largest_near_max([2, 3, 4, 5], [0.30, 0.50, 0.49, 0.2], tol=0.02)
        4
    """
    if not isinstance(tol, numbers.Real) or not tol >= 0:
        raise ValueError(f"tol must be a non-negative number, got {tol!r}")
    ks, values = _check_curve(ks, values)
    return int(ks[values >= values.max() - tol].max())


def largest_above(ks, values, threshold: float = 0.68) -> int:
    """The largest k whose value reaches ``threshold``; the argmax if none does.

    Example:
        >>> largest_above([2, 3, 4, 5], [0.9, 0.8, 0.95, 0.4], threshold=0.75)
        4
    """
    if not isinstance(threshold, numbers.Real) or not np.isfinite(threshold):
        raise ValueError(f"threshold must be a finite number, got {threshold!r}")
    ks, values = _check_curve(ks, values)
    ok = values >= threshold
    return int(ks[ok].max()) if ok.any() else argmax_k(ks, values)


def eigengap_k(ks, gaps) -> int:
    """The k with the largest eigengap (:func:`eigengap_curve`); von Luxburg 2007, 8.3."""
    return argmax_k(ks, gaps)


# The rules as functions over one curve, by the name of the curve they read: what UFC's
# cluster stage (``CURVE_RULES["elbow"](ks, ward.curve_)``) and medcl stratify share.
CURVE_RULES: dict[str, Callable[..., int]] = {
    "elbow": knee_point,
    "silhouette": argmax_k,
    "silhouette_tol": largest_near_max,
    "eigengap": eigengap_k,
    "stability": largest_above,
}


# --------------------------------------------------------------------------- partitions


def _check_points(X) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[0] < 3 or not np.isfinite(X).all():
        raise ValueError(f"X must be a finite (n, d) array with n >= 3, got shape {X.shape}")
    return X


def _check_ks(ks, n: int) -> list[int]:
    out = [int(k) for k in ks]
    if (
        not out
        or any(isinstance(k, bool) or not isinstance(k, numbers.Integral) for k in ks)
        or min(out) < 2
        or max(out) > n - 1
        or len(set(out)) != len(out)
    ):
        raise ValueError(f"ks must be distinct ints in 2..{n - 1} (n - 1), got {list(ks)}")
    return sorted(out)


def _check_method(method: str) -> None:
    if method not in PARTITION_METHODS:
        raise ValueError(f"method must be one of {PARTITION_METHODS}, got {method!r}")


def _affinity(X: np.ndarray, n_neighbors: int) -> sparse.csr_matrix:
    """Symmetrised k-nearest-neighbour connectivity, as scikit-learn's SpectralClustering."""
    from sklearn.neighbors import kneighbors_graph

    a = kneighbors_graph(X, n_neighbors=min(n_neighbors, len(X) - 1), include_self=True)
    return sparse.csr_matrix(0.5 * (a + a.T))


def laplacian_spectrum(
    X, n_eigen: int, *, n_neighbors: int = _N_NEIGHBORS, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Smallest eigenvalues of the normalised graph Laplacian and the spectral embedding.

    The graph is the symmetrised ``n_neighbors``-nearest-neighbour connectivity (self
    included) of scikit-learn's ``SpectralClustering(affinity="nearest_neighbors")``; the
    eigenproblem is solved as in its ``spectral_embedding`` (ARPACK, shift-invert near 0,
    seeded start vector), so the first k columns of the embedding are what spectral
    clustering with k clusters discretises.

    Args:
        X: ``(n, d)`` points.
        n_eigen: number of eigenpairs, ``< n``.

    Returns:
        ``eigenvalues`` ``(n_eigen,)`` ascending, in [0, 2]; ``embedding`` ``(n, n_eigen)``
        (eigenvectors of ``L_sym`` times ``D^-1/2``).
    """
    X = _check_points(X)
    if not 1 <= n_eigen < len(X):
        raise ValueError(f"n_eigen must lie in 1..{len(X) - 1}, got {n_eigen}")
    lap, dd = csgraph_laplacian(_affinity(X, n_neighbors), normed=True, return_diag=True)
    lap = sparse.csr_matrix(lap)
    lap.setdiag(1.0)
    v0 = np.random.default_rng(seed).uniform(-1, 1, lap.shape[0])
    vals, vecs = eigsh(lap, k=n_eigen, sigma=-1e-5, which="LM", tol=0, v0=v0)
    order = np.argsort(vals)
    return np.clip(vals[order], 0.0, 2.0), vecs[:, order] / dd[:, None]


def _spectral_partitions(
    X: np.ndarray, ks: list[int], seed: int, n_neighbors: int
) -> tuple[dict[int, np.ndarray], np.ndarray]:
    from sklearn.cluster._spectral import cluster_qr

    vals, emb = laplacian_spectrum(
        X, min(max(ks) + 1, len(X) - 1), n_neighbors=n_neighbors, seed=seed
    )
    return {k: np.asarray(cluster_qr(emb[:, :k]), dtype=np.int64) for k in ks}, vals


def _merge_partitions(X: np.ndarray, ks: list[int], seed: int) -> dict[int, np.ndarray]:
    from medcl.cluster._merge import graph_merges, merged_labels

    fine_k = max(min(_FINE_K, len(X) - 2), ks[-1])
    fine = _spectral_partitions(X, [fine_k], seed, _N_NEIGHBORS)[0][fine_k]
    _, fine = np.unique(fine, return_inverse=True)  # cluster_qr can leave a group empty
    fine = fine.ravel()
    merges = graph_merges(_affinity(X, _N_NEIGHBORS), fine)
    return {k: merged_labels(fine, merges, min(k, len(merges) + 1)) for k in ks}


def partitions(
    X, ks: Sequence[int], method: str = "spectral", *, seed: int = 0
) -> dict[int, np.ndarray]:
    """Labels of ``X`` in k groups for every k in ``ks``, by ``method``.

    ``spectral``: scikit-learn's spectral clustering of the 10-nearest-neighbour graph with
    ``cluster_qr`` discretisation (Damle, Minden, Ying 2019), from one eigendecomposition for
    all k; ``ward``: one Ward tree (:class:`~medcl.cluster.WardClustering`) cut at every k;
    ``kmeans``: :class:`~medcl.cluster.KMeansClustering` per k (``n_init=5``); ``merge``:
    the spectral partition into 30 groups (or ``max(ks)`` if larger) merged two at a time
    along the same graph, the pair whose edges between them are the largest share of the
    smaller one's first (:func:`~medcl.cluster.graph_merges`), so every k is a coarsening of
    one fine partition. These are the partitions of ``medcl stratify``'s ``cluster.method``.

    Args:
        X: ``(n, d)`` points (``medcl stratify`` passes L2-normalised latents).
        ks: distinct k values in ``2..n-1``.

    Returns:
        ``{k: (n,) int64 labels}``.
    """
    X = _check_points(X)
    _check_method(method)
    ks = _check_ks(ks, len(X))
    if method == "spectral":
        return _spectral_partitions(X, ks, seed, _N_NEIGHBORS)[0]
    if method == "merge":
        return _merge_partitions(X, ks, seed)
    if method == "ward":
        from medcl.cluster._ward import WardClustering

        ward = WardClustering(n_clusters=ks[0], random_state=seed).fit(X)
        return {k: ward.labels_for(k) for k in ks}
    from medcl.cluster._kmeans import KMeansClustering

    return {k: KMeansClustering(k, random_state=seed, n_init=5).fit(X).labels_ for k in ks}


# --------------------------------------------------------------------------- curves


def silhouette_curve(
    X,
    labels: Mapping[int, np.ndarray],
    *,
    metric: str = "cosine",
    max_points: int = 5000,
    seed: int = 0,
) -> np.ndarray:
    """Mean silhouette (Rousseeuw 1987) of each partition in ``labels``, in sorted-k order.

    Above ``max_points`` points it is estimated on a seeded sample of that size. A partition
    with a single group, or with every point alone, scores -1.

    Args:
        X: ``(n, d)`` points; labels: ``{k: (n,) labels}`` (e.g. from :func:`partitions`).
    """
    from sklearn.metrics import silhouette_score

    X = np.asarray(X)
    sample = max_points if len(X) > max_points else None
    out = []
    for k in sorted(labels):
        lab = np.asarray(labels[k])
        if lab.shape != (len(X),):
            raise ValueError(f"labels[{k}] must have shape ({len(X)},), got {lab.shape}")
        ok = 1 < len(np.unique(lab)) < len(X)
        out.append(
            float(silhouette_score(X, lab, metric=metric, sample_size=sample, random_state=seed))
            if ok
            else -1.0
        )
    return np.array(out)


def eigengap_curve(eigenvalues, ks: Sequence[int]) -> np.ndarray:
    """``lambda_{k+1} - lambda_k`` for every k in ``ks`` (eigenvalues ascending, 1-based).

    A graph with k well separated groups has k eigenvalues near 0 and a jump after them
    (von Luxburg 2007, section 8.3).

    Example:
        >>> eigengap_curve([0.0, 0.0, 0.0, 0.9, 1.0], [2, 3, 4]).round(2).tolist()
        [0.0, 0.9, 0.1]
    """
    lam = np.asarray(eigenvalues, dtype=np.float64)
    ks = [int(k) for k in ks]
    if not ks or min(ks) < 1 or max(ks) >= len(lam):
        raise ValueError(f"ks must lie in 1..{len(lam) - 1} for {len(lam)} eigenvalues, got {ks}")
    return np.array([lam[k] - lam[k - 1] for k in ks])


def _best_match_jaccard(a: np.ndarray, b: np.ndarray):
    """Every cluster's best-match Jaccard in the other partition, and the clusters' sizes:
    ``(jaccard_a, sizes_a, jaccard_b, sizes_b)``."""
    _, ia = np.unique(a, return_inverse=True)
    _, ib = np.unique(b, return_inverse=True)
    table = sparse.coo_matrix(
        (np.ones(len(ia)), (ia.ravel(), ib.ravel())), shape=(ia.max() + 1, ib.max() + 1)
    ).toarray()
    na, nb = table.sum(1), table.sum(0)
    jac = table / (na[:, None] + nb[None, :] - table)
    return jac.max(1), na, jac.max(0), nb


def _worst_cluster_jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Smallest best-match Jaccard over the clusters of both partitions ``a`` and ``b``."""
    ja, _, jb, _ = _best_match_jaccard(a, b)
    return float(min(ja.min(), jb.min()))


def _mean_cluster_jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Best-match Jaccard of the clusters of ``a`` and of ``b``, each partition's averaged
    with its clusters' sizes as weights, then the two averaged: how much of the data sits in
    clusters that are found again, graded."""
    ja, na, jb, nb = _best_match_jaccard(a, b)
    return float(0.5 * (ja @ na / na.sum() + jb @ nb / nb.sum()))


_SCORES: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "worst_jaccard": _worst_cluster_jaccard,
    "mean_jaccard": _mean_cluster_jaccard,
    "ari": adjusted_rand_score,
}


def subsamples(n: int, n_resamples: int, fraction: float, seed: int) -> list[np.ndarray]:
    """The sorted index sets of :func:`stability_curve`'s subsamples: ``n_resamples`` draws of
    ``round(fraction * n)`` of ``n`` points without replacement (``numpy`` generator
    ``seed``); draw ``i`` is partitioned with seed ``seed + i``."""
    rng = np.random.default_rng(seed)
    m = int(round(fraction * n))
    return [np.sort(rng.choice(n, size=m, replace=False)) for _ in range(n_resamples)]


def stability_curve(
    X,
    ks: Sequence[int],
    method: str = "spectral",
    *,
    n_resamples: int = 16,
    fraction: float = 0.8,
    score: str = "worst_jaccard",
    seed: int = 0,
) -> np.ndarray:
    """Agreement of the partitions of random subsamples, for every k (sorted).

    ``n_resamples`` subsamples of ``fraction * n`` points (without replacement, seeded) are
    each partitioned by ``method`` for every k; each of the ``n_resamples * (n_resamples - 1)
    / 2`` pairs is scored on the points the two share, and the curve is the median over pairs.
    ``score="worst_jaccard"`` (default) is the smallest best-match Jaccard over the clusters
    of the two partitions (Hennig 2007): 1 when every cluster is found again, near 0.5 when
    one cluster is cut at random. ``score="ari"`` is the adjusted Rand index (Ben-Hur et al.
    2002) and ``score="mean_jaccard"`` the clusters' best-match Jaccard averaged by size,
    both kept for comparison: a cluster cut at random out of ten lowers them by little, so a
    threshold on them passes one cluster too many (``benchmarks/choose_k_study.py``).

    Args:
        X: ``(n, d)`` points; ks: distinct k values in ``2..fraction*n - 1``.

    Returns:
        ``(len(ks),)`` float64 in [0, 1] (ARI can be below 0).
    """
    X = _check_points(X)
    _check_method(method)
    if not isinstance(n_resamples, numbers.Integral) or n_resamples < 2:
        raise ValueError(f"n_resamples must be an int >= 2, got {n_resamples!r}")
    if not isinstance(fraction, numbers.Real) or not 0.1 <= fraction < 1:
        raise ValueError(f"fraction must lie in [0.1, 1), got {fraction!r}")
    if score not in _SCORES:
        raise ValueError(f"score must be one of {tuple(_SCORES)}, got {score!r}")
    n = len(X)
    ks = _check_ks(ks, int(round(fraction * n)))
    subsets = subsamples(n, n_resamples, fraction, seed)
    fits = []
    for i, idx in enumerate(subsets):
        full = np.full((len(ks), n), -1, dtype=np.int64)
        for j, lab in enumerate(partitions(X[idx], ks, method, seed=seed + i).values()):
            full[j, idx] = lab
        fits.append(full)
    scores = np.empty((len(ks), n_resamples * (n_resamples - 1) // 2))
    for p, (i, j) in enumerate(itertools.combinations(range(n_resamples), 2)):
        shared = np.intersect1d(subsets[i], subsets[j], assume_unique=True)
        for q in range(len(ks)):
            scores[q, p] = _SCORES[score](fits[i][q, shared], fits[j][q, shared])
    return np.median(scores, axis=1)


# --------------------------------------------------------------------------- the entry point


def _eigengaps(X: np.ndarray, ks: list[int], seed: int) -> tuple[np.ndarray, np.ndarray]:
    if ks[-1] + 1 > len(X) - 1:
        raise ValueError(f"the eigengap needs k <= n - 2 = {len(X) - 2}, got k = {ks[-1]}")
    vals, _ = laplacian_spectrum(X, ks[-1] + 1, seed=seed)
    return eigengap_curve(vals, ks), vals


@dataclass(frozen=True)
class KChoice:
    """A chosen k and its evidence.

    Attributes:
        k: the chosen number of clusters.
        rule: the rule that chose it.
        k_values: the k searched, ascending.
        curves: ``{name: values}`` every curve computed, each over ``k_values``, the rule's
            first (``stability`` adds the ``eigengap`` as a second line of evidence;
            ``eigengap`` adds the ``eigenvalues`` themselves, ``lambda_1..lambda_{k_max+1}``).
        plausible: the k the evidence does not rule out (for ``stability``, every k whose
            worst cluster reaches the threshold; for the others, ``[k]``).
        confident: ``False`` when the rule found no k it trusts (``stability``: no k reaches
            the threshold, e.g. data without cluster structure); the k is then the best
            available, not a claim.
    """

    k: int
    rule: str
    k_values: list[int]
    curves: dict[str, list[float]] = field(default_factory=dict)
    plausible: list[int] = field(default_factory=list)
    confident: bool = True


K_RULES = ("stability", "silhouette", "silhouette_tol", "eigengap", "elbow")  # choose_k's rules


def choose_k(
    X,
    ks: Sequence[int] = range(2, 21),
    *,
    method: str = "spectral",
    rule: str = "stability",
    seed: int = 0,
    threshold: float = 0.68,
    tol: float = 0.02,
    n_resamples: int = 16,
    fraction: float = 0.8,
    score: str = "worst_jaccard",
) -> KChoice:
    """Choose the number of clusters of ``X`` for partition ``method`` by ``rule``.

    Rules (see the module docstring for why):

    * ``stability`` (recommended): the largest k whose worst cluster is reproduced on
      ``n_resamples`` random subsamples of ``fraction`` of the points, median best-match
      Jaccard >= ``threshold`` (:func:`stability_curve` with ``score``,
      :func:`largest_above`).
    * ``silhouette``: the argmax of the cosine silhouette of ``method``'s partitions
      (``medcl stratify``'s ``cluster.k_rule=silhouette``); ``silhouette_tol``: the largest k
      within ``tol`` of that maximum (:func:`largest_near_max`).
    * ``eigengap``: the largest gap of the normalised Laplacian's spectrum (any ``method``;
      the graph is spectral clustering's).
    * ``elbow``: UFC's rule, the knee of the Ward tree's within-cluster distance curve
      (:class:`~medcl.cluster.WardClustering`'s ``elbow_k_`` for ``k_range=(min(ks),
      max(ks))``; ``method`` is not used).

    Args:
        X: ``(n, d)`` points, e.g. L2-normalised latents.
        ks: distinct k values to search, in ``2..n-1`` (``2..fraction*n-1`` for stability).
        method: ``spectral``, ``ward`` or ``kmeans``.
        rule: one of :data:`K_RULES`.
        seed: seeds every random step; the result is a function of ``(X, arguments)``.

    Returns:
        :class:`KChoice`.

    Example:
        >>> from sklearn.datasets import make_blobs
        >>> X, _ = make_blobs(300, centers=4, random_state=0, cluster_std=0.5)
        >>> choose_k(X, range(2, 9), method="spectral").k
        4
    """
    X = _check_points(X)
    _check_method(method)
    if rule not in K_RULES:
        raise ValueError(f"rule must be one of {K_RULES}, got {rule!r}")
    ks = _check_ks(ks, len(X))
    if rule == "elbow":
        from medcl.cluster._ward import WardClustering

        ward = WardClustering(k_range=(ks[0], ks[-1]), random_state=seed).fit(X)
        assert ward.k_values_ is not None and ward.curve_ is not None
        ks = [int(k) for k in ward.k_values_]
        k = CURVE_RULES["elbow"](ks, ward.curve_)
        return KChoice(k, rule, ks, {"elbow": [float(v) for v in ward.curve_]}, [k])
    if rule == "stability":
        curve = stability_curve(
            X, ks, method, n_resamples=n_resamples, fraction=fraction, score=score, seed=seed
        )
        ok = curve >= threshold
        k = CURVE_RULES["stability"](ks, curve, threshold)
        plausible = [k_ for k_, good in zip(ks, ok, strict=True) if good]
        # the eigengap as a second, cheap line of evidence for the report (not used for k)
        curves = {"stability": curve.tolist(), "eigengap": _eigengaps(X, ks, seed)[0].tolist()}
        return KChoice(k, rule, ks, curves, plausible or [k], bool(ok.any()))
    if rule == "eigengap":
        gaps, vals = _eigengaps(X, ks, seed)
        k = CURVE_RULES["eigengap"](ks, gaps)
        return KChoice(k, rule, ks, {"eigengap": gaps.tolist(), "eigenvalues": vals.tolist()}, [k])
    sil = silhouette_curve(X, partitions(X, ks, method, seed=seed), seed=seed)
    k = CURVE_RULES[rule](ks, sil) if rule == "silhouette" else largest_near_max(ks, sil, tol)
    return KChoice(k, rule, ks, {"silhouette": sil.tolist()}, [k])
