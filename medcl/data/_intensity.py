"""Intensity standardisation: zero mean and unit variance per image and channel."""

from __future__ import annotations

import numpy as np

__all__ = ["standardize"]


def standardize(images: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Subtract each image's per-channel mean and divide by its per-channel standard deviation.

    Per image, not per data set, so the result does not depend on which other images were
    loaded (extra pretraining folders, a different split) and no statistic crosses from test
    images into training. Constant channels become zeros rather than NaN.

    Args:
        images: ``(N, C, H, W)`` float array (e.g. in [0, 1] as the loaders return it).
        eps: floor of the standard deviation.

    Returns:
        a new ``(N, C, H, W)`` float32 array.

    Example:
        >>> x = standardize(np.random.rand(4, 3, 8, 8))
        >>> bool(np.allclose(x.mean(axis=(2, 3)), 0, atol=1e-5))
        True
    """
    x = np.asarray(images, dtype=np.float32)
    mean = x.mean(axis=(2, 3), keepdims=True)
    std = x.std(axis=(2, 3), keepdims=True)
    return ((x - mean) / np.maximum(std, eps)).astype(np.float32, copy=False)
