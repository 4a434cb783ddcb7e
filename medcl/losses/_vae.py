"""The beta-VAE objective (Higgins et al., "beta-VAE: Learning Basic Visual Concepts with a
Constrained Variational Framework", ICLR 2017)."""

from __future__ import annotations

import math
import numbers

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["vae_loss"]

RECON_LOSSES = ("mse", "bce")


def vae_loss(
    recon: Tensor,
    x: Tensor,
    mu: Tensor,
    logvar: Tensor,
    beta: float = 1.0,
    recon_loss: str = "mse",
) -> tuple[Tensor, Tensor, Tensor]:
    r"""beta-VAE loss: reconstruction plus ``beta`` times ``KL(N(mu, sigma^2) || N(0, I))``.

    Both terms are *summed* over every non-batch dimension (pixels, channels, latent units)
    and *averaged* over the batch, i.e. the per-image negative ELBO, so ``beta = 1`` is the
    plain VAE and the balance between the terms does not depend on the image size by
    accident. The KL term has the closed form
    ``-0.5 * sum(1 + logvar - mu^2 - exp(logvar))``.

    ``beta = 0`` is a plain autoencoder: the KL term is still computed and returned for
    logging, but it is not added to ``total`` (so an infinite KL cannot turn it into NaN).

    Args:
        recon: ``(b, ...)`` decoder output, same shape as ``x``. For ``recon_loss="bce"`` these
            are *logits* (no sigmoid), so the loss is computed stably in log space.
        x: ``(b, ...)`` target images; in ``[0, 1]`` for ``"bce"``.
        mu: ``(b, ...)`` posterior means (e.g. ``(b, latent_dim)``).
        logvar: posterior log-variances, same shape as ``mu``.
        beta: non-negative weight of the KL term.
        recon_loss: ``"mse"`` (squared error) or ``"bce"`` (Bernoulli likelihood from logits).

    Returns:
        ``(total, recon_term, kl_term)``, three scalars, with
        ``total = recon_term + beta * kl_term`` (``recon_term`` alone when ``beta == 0``).

    Example:
        >>> x = torch.rand(4, 1, 8, 8)
        >>> total, rec, kl = vae_loss(torch.rand(4, 1, 8, 8), x, torch.zeros(4, 16),
        ...                           torch.zeros(4, 16), beta=4.0)
    """
    if isinstance(beta, bool) or not isinstance(beta, numbers.Real):
        raise ValueError(f"beta must be a non-negative number, got {beta!r}")
    if not (math.isfinite(beta) and beta >= 0):
        raise ValueError(f"beta must be a non-negative finite number, got {beta!r}")
    if recon_loss not in RECON_LOSSES:
        raise ValueError(f"recon_loss must be one of {RECON_LOSSES}, got {recon_loss!r}")
    if recon.shape != x.shape:
        raise ValueError(
            f"recon has shape {tuple(recon.shape)} but x has shape {tuple(x.shape)}; "
            "they must match"
        )
    if mu.shape != logvar.shape:
        raise ValueError(
            f"mu has shape {tuple(mu.shape)} but logvar has shape {tuple(logvar.shape)}; "
            "they must match"
        )
    if x.dim() == 0 or mu.dim() == 0 or mu.shape[0] != x.shape[0]:
        raise ValueError(
            f"mu of shape {tuple(mu.shape)} and x of shape {tuple(x.shape)} must share "
            "a leading batch dimension"
        )

    batch = x.shape[0]
    if recon_loss == "mse":
        rec = F.mse_loss(recon, x, reduction="sum") / batch
    else:
        rec = F.binary_cross_entropy_with_logits(recon, x, reduction="sum") / batch
    kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp()) / batch
    total = rec + beta * kl if beta > 0 else rec
    return total, rec, kl
