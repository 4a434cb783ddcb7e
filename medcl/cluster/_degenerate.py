"""When a clustering is too fine to serve as pseudo-classes, and the largest k that is not.

Pseudo-classes give each image positives: the other images of its class. A cluster of one
image gives none (its image is then a SimCLR anchor), and clusters averaging only a few
images make the cluster-guided loss close to SimCLR's while still calling it UFC. The elbow
of a small data set can choose such a k (41 tiles, k = 13, eight clusters of one), so
:func:`degeneracy` names the problem and :func:`largest_sound_k` finds the largest k of a
nested family of cuts (a Ward tree) that avoids it.

Example:
    >>> degeneracy([10, 9, 1, 1, 1], n_images=22)
    '3 of the 5 clusters hold a single image'
    >>> degeneracy([6, 6, 6, 6], n_images=24) is None
    True
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

__all__ = ["MAX_SINGLETON_SHARE", "MIN_MEAN_SIZE", "degeneracy", "largest_sound_k"]

MAX_SINGLETON_SHARE = 0.25  # of the clusters; at least two singletons count as many
MIN_MEAN_SIZE = 4  # images per cluster on average: k at most a quarter of the images


def degeneracy(sizes: Sequence[int], n_images: int) -> str | None:
    """What makes clusters of these ``sizes`` poor pseudo-classes, in a few words; None if fine.

    Two rules: more than ``MAX_SINGLETON_SHARE`` of the clusters (and at least two) hold a
    single image, or ``k`` exceeds ``n_images / MIN_MEAN_SIZE``.
    """
    k = len(sizes)
    singles = int(sum(1 for s in sizes if s == 1))
    problems = []
    if singles >= 2 and singles > MAX_SINGLETON_SHARE * k:
        problems.append(f"{singles} of the {k} clusters hold a single image")
    if k > n_images / MIN_MEAN_SIZE:
        problems.append(
            f"k = {k} is more than a quarter of the {n_images} images (fewer than "
            f"{MIN_MEAN_SIZE} per cluster on average)"
        )
    return "; ".join(problems) or None


def largest_sound_k(labels_for: Callable[[int], np.ndarray], k: int, k_min: int) -> int | None:
    """The largest ``k' <= k`` (down to ``k_min``) whose cut :func:`degeneracy` accepts.

    ``labels_for(k)`` gives the labels of the cut into ``k`` clusters. None when every
    candidate is degenerate.
    """
    for candidate in range(k, k_min - 1, -1):
        labels = np.asarray(labels_for(candidate))
        sizes = np.bincount(np.unique(labels, return_inverse=True)[1])
        if degeneracy(sizes.tolist(), len(labels)) is None:
            return candidate
    return None
