"""Local discrimination (Chen et al., "Unsupervised local discrimination for medical images").

Pixel embeddings on the unit sphere are grouped by a clustering head. With ``e`` the
``(N, D)`` unit embeddings of the batch's pixels and ``a`` their ``(N, M)`` soft assignments:

* centres ``c_m = normalise(sum_n a_nm e_n)`` (:func:`cluster_centres`);
* each pixel is pulled to its centres and pushed from the others by a cross-entropy whose
  target is its own assignment: ``-mean_n sum_m a_nm log softmax_m(e_n . c_m / t)``
  (:func:`local_discrimination_loss`, term ``pixel``);
* the centres of clusters that hold pixels are pushed apart: the mean cosine between
  distinct centres, weighted by the clusters' masses (term ``separation``);
* collapse onto one cluster is prevented by ``KL(mean assignment || uniform)``
  (term ``balance``), and per-pixel indecision by the mean assignment entropy (term
  ``entropy``).

The prior-guided part compares statistics of one cluster's soft masks (location, area,
spread: :func:`mask_statistics`) with those of reference masks through the KL divergence
of two diagonal Gaussians (:func:`gaussian_kl`, :func:`prior_kl`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from medcl.losses._precision import float32

__all__ = [
    "cluster_centres",
    "gaussian_kl",
    "local_discrimination_loss",
    "mask_statistics",
    "prior_kl",
]


def _pixels(emb: Tensor, assign: Tensor) -> tuple[Tensor, Tensor]:
    """``(B, D, H, W)``, ``(B, M, H, W)`` -> ``(N, D)``, ``(N, M)`` with ``N = B H W``."""
    if emb.dim() != 4 or assign.dim() != 4 or emb.shape[0] != assign.shape[0]:
        raise ValueError(
            f"expected emb (B, D, H, W) and assign (B, M, H, W), got {tuple(emb.shape)} and "
            f"{tuple(assign.shape)}"
        )
    if emb.shape[2:] != assign.shape[2:]:
        raise ValueError(f"emb and assign sizes differ: {emb.shape[2:]} vs {assign.shape[2:]}")
    e = emb.permute(0, 2, 3, 1).reshape(-1, emb.shape[1])
    a = assign.permute(0, 2, 3, 1).reshape(-1, assign.shape[1])
    return e, a


def cluster_centres(e: Tensor, a: Tensor) -> Tensor:
    """``(M, D)`` unit centres ``normalise(sum_n a_nm e_n)``; an empty cluster's centre is 0."""
    return F.normalize(a.T @ e, dim=1, eps=1e-8)


@float32
def local_discrimination_loss(
    emb: Tensor,
    assign: Tensor,
    temperature: float = 0.1,
    weights: dict[str, float] | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """The weighted sum of the four terms above, and each term's value.

    Args:
        emb: ``(B, D, H, W)`` pixel embeddings, L2-normalised along ``D``.
        assign: ``(B, M, H, W)`` soft assignments (softmax along ``M``).
        temperature: divides the pixel-to-centre cosines.
        weights: per-term weights; defaults ``pixel 1, separation 1, balance 1, entropy 0.1``.

    Returns:
        ``(loss, terms)``: a scalar tensor and the unweighted terms as detached 0-d tensors.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    w = {"pixel": 1.0, "separation": 1.0, "balance": 1.0, "entropy": 0.1} | (weights or {})
    e, a = _pixels(emb, assign)
    m = a.shape[1]
    centres = cluster_centres(e, a)
    logp = F.log_softmax(e @ centres.T / temperature, dim=1)
    pixel = -(a * logp).sum(dim=1).mean()

    mass = a.mean(dim=0)  # (M,), sums to 1
    cos = centres @ centres.T
    pair = mass[:, None] * mass[None, :] * (1 - torch.eye(m, device=a.device, dtype=a.dtype))
    separation = (pair * cos).sum() / pair.sum().clamp_min(1e-12)
    balance = (mass * (mass.clamp_min(1e-12) * m).log()).sum()
    entropy = -(a * a.clamp_min(1e-12).log()).sum(dim=1).mean() / math.log(max(m, 2))
    terms = {"pixel": pixel, "separation": separation, "balance": balance, "entropy": entropy}
    loss: Tensor = sum(w[k] * v for k, v in terms.items())  # type: ignore[assignment]
    # detached 0-d tensors, not floats: float() here would wait for the device every step
    return loss, {k: v.detach() for k, v in terms.items()}


def mask_statistics(masks: Tensor, eps: float = 1e-6) -> Tensor:
    """Location, area and spread of soft masks: ``(B, H, W)`` in [0, 1] -> ``(B, 5)``.

    Columns: centroid row and column (in [0, 1] of the image height and width), area (the
    fraction of the image covered), and the standard deviations of row and column about the
    centroid (in the same units). Differentiable in the mask values.
    """
    if masks.dim() != 3:
        raise ValueError(f"masks must be (B, H, W), got shape {tuple(masks.shape)}")
    _, h, w = masks.shape
    ys = (torch.arange(h, device=masks.device, dtype=masks.dtype) + 0.5) / h
    xs = (torch.arange(w, device=masks.device, dtype=masks.dtype) + 0.5) / w
    total = masks.sum(dim=(1, 2))
    area = total / (h * w)
    norm = total.clamp_min(eps)
    py = masks.sum(dim=2) / norm[:, None]  # (B, H) row profile
    px = masks.sum(dim=1) / norm[:, None]
    cy, cx = (py * ys).sum(1), (px * xs).sum(1)
    sy = ((py * (ys[None] - cy[:, None]) ** 2).sum(1) + eps).sqrt()
    sx = ((px * (xs[None] - cx[:, None]) ** 2).sum(1) + eps).sqrt()
    return torch.stack([cy, cx, area, sy, sx], dim=1)


def gaussian_kl(mu_p: Tensor, var_p: Tensor, mu_q: Tensor, var_q: Tensor) -> Tensor:
    """``KL(N(mu_p, diag var_p) || N(mu_q, diag var_q))``, summed over dimensions."""
    return 0.5 * ((var_p / var_q) + (mu_q - mu_p) ** 2 / var_q - 1 + (var_q / var_p).log()).sum()


def prior_kl(
    soft_masks: Tensor, prior_mean: Tensor, prior_var: Tensor, floor: float = 1e-4
) -> Tensor:
    """KL between the prior's statistics and those of one cluster's soft masks in a batch.

    ``soft_masks`` ``(B, H, W)``: the guided cluster's assignment maps; ``prior_mean``,
    ``prior_var`` ``(5,)``: mean and variance of :func:`mask_statistics` over the reference
    masks. The batch's statistics are summarised by their mean and variance (floored at
    ``floor``, as are the prior's, so a single image or identical references stay finite),
    and ``KL(prior || batch)`` is returned.
    """
    stats = mask_statistics(soft_masks)
    mu_q = stats.mean(dim=0)
    var_q = stats.var(dim=0, unbiased=False) + floor
    return gaussian_kl(prior_mean, prior_var + floor, mu_q, var_q)
