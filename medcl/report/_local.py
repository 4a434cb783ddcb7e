"""Plots of local discrimination: cluster maps, similarity maps, prior-guided masks."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def _grey(img: np.ndarray) -> np.ndarray:
    return img.mean(axis=0) if img.ndim == 3 else img


def cluster_map_figure(images: np.ndarray, maps: np.ndarray, n_clusters: int):
    """Each image above its cluster map, one colour per cluster."""
    n = len(images)
    fig, axes = plt.subplots(2, n, figsize=(1.8 * n, 3.6), squeeze=False)
    for i in range(n):
        axes[0][i].imshow(_grey(images[i]), cmap="gray")
        axes[1][i].imshow(maps[i], cmap="tab20", vmin=0, vmax=max(n_clusters - 1, 1),
                          interpolation="nearest")  # fmt: skip
        for ax in (axes[0][i], axes[1][i]):
            ax.axis("off")
    fig.tight_layout()
    return fig


def similarity_figure(images: np.ndarray, embs: np.ndarray, queries: int = 3):
    """For each image, the similarity maps of ``queries`` fixed pixels (marked)."""
    n = len(images)
    h, w = images.shape[2:]
    points = [(h // 2, w // 2), (h // 4, w // 2), (3 * h // 4, w // 4)][:queries]
    fig, axes = plt.subplots(n, queries + 1, figsize=(1.8 * (queries + 1), 2.2 * n), squeeze=False)
    for i in range(n):
        axes[i][0].imshow(_grey(images[i]), cmap="gray")
        for j, (y, x) in enumerate(points):
            axes[i][0].plot(x, y, "o", ms=4, color=plt.cm.Set1(j))
            sim = np.einsum("dhw,d->hw", embs[i], embs[i][:, y, x])
            axes[i][j + 1].imshow(sim, cmap="viridis", vmin=-1, vmax=1)
            axes[i][j + 1].plot(x, y, "o", ms=4, color=plt.cm.Set1(j))
        for ax in axes[i]:
            ax.axis("off")
    fig.tight_layout()
    return fig


def prior_mask_figure(images, probs, pred, truth):
    """Rows: image, guided cluster's probability, predicted mask, ground truth."""
    n = len(images)
    fig, axes = plt.subplots(4, n, figsize=(1.8 * n, 7.2), squeeze=False)
    rows = [("image", None), ("cluster probability", probs), ("predicted", pred), ("truth", truth)]
    for r, (title, arr) in enumerate(rows):
        for i in range(n):
            ax = axes[r][i]
            if arr is None:
                ax.imshow(_grey(images[i]), cmap="gray")
            else:
                ax.imshow(arr[i], cmap="magma", vmin=0, vmax=1)
            ax.axis("off")
        axes[r][0].set_title(title, fontsize=8, loc="left")
    fig.tight_layout()
    return fig
