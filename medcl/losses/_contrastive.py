"""One contrastive loss in which labels decide the positives.

Instance ids (or ``labels=None``) give SimCLR's NT-Xent, pseudo-class ids from clustering give
the cluster-guided loss of UFC (Zhang et al., "Unsupervised Feature Clustering Improves
Contrastive Representation Learning for Medical Image Segmentation", IEEE BIBM 2022), and any
other grouping (slice positions, volume ids) gives its own positives without a new loss.
"""

from __future__ import annotations

import math
import numbers

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from medcl.losses._precision import float32

__all__ = ["ClusterContrastiveLoss", "cluster_contrastive_loss"]

VARIANTS = ("ufc", "supcon")


def _check_hparams(temperature: float, variant: str) -> None:
    if isinstance(temperature, bool) or not isinstance(temperature, numbers.Real):
        raise ValueError(f"temperature must be a positive number, got {temperature!r}")
    if not (math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature must be a positive finite number, got {temperature!r}")
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")


@float32
def cluster_contrastive_loss(
    features: Tensor,
    labels: Tensor | None = None,
    temperature: float = 0.1,
    variant: str = "ufc",
    positives: Tensor | None = None,
    *,
    check_symmetric: bool = True,
) -> Tensor:
    r"""Contrastive loss whose positives are the features of images sharing a label.

    ``features`` of shape ``(b, v, d)`` (``b`` images, ``v`` views each, ``d`` dimensions) are
    L2-normalised along ``d`` inside this function, then flattened image-major to ``N = b * v``
    rows: row ``n`` is view ``n % v`` of image ``n // v``, and its label is ``labels[n // v]``.
    With cosine similarities ``s_ij = f_i . f_j / temperature``, the positives ``P(i)`` of
    row ``i`` are all *other* rows whose image has the same label (its own other views
    included, itself excluded); its negatives ``N(i)`` are all rows ``k != i`` not in ``P(i)``.

    ``variant="ufc"`` is Eq. 2 of Zhang et al. (BIBM 2022), taken literally: the ``1/|P(i)|``
    multiplies the log of a ratio of sums (it is *not* a mean of per-positive log terms), and
    the denominator holds negatives only::

        term_i = (logsumexp_{j in P(i)} s_ij - logsumexp_{k in N(i)} s_ik) / |P(i)|
        loss   = -mean_i term_i

    ``variant="supcon"`` is the supervised contrastive loss ``L^sup_out`` of Khosla et al.
    (NeurIPS 2020), whose denominator holds every other row::

        term_i = mean_{j in P(i)} (s_ij - logsumexp_{k != i} s_ik)
        loss   = -mean_i term_i

    Instead of ``labels``, ``positives`` may give the image-level relation directly: a
    ``(b, b)`` boolean matrix, ``positives[i, j]`` true when images ``i`` and ``j`` are
    positives of each other (it must be symmetric; the diagonal is taken as true). This covers
    relations that are not a partition, such as "slices less than 0.1 apart in their volume"
    (PCL, Zeng et al. 2021). ``labels`` is the special case ``labels[i] == labels[j]``.

    ``labels=None`` means every image is its own class (instance discrimination), so ``P(i)``
    is the other views of the same image. Then ``"supcon"`` is exactly SimCLR's NT-Xent
    (Chen et al. 2020; with two views, a cross-entropy over the ``2b - 1`` other rows whose
    target is the other view), and ``"ufc"`` is the same loss with the positive removed from
    the denominator (the "decoupled" form of Yeh et al., ECCV 2022), with the other views'
    similarities pooled by a logsumexp when ``v > 2``.

    Degenerate anchors are defined rather than left to produce NaN:

    * a row with no positive (only possible with ``v == 1`` and a label no other image has)
      is left out of the mean, for both variants;
    * a row with no negative (every image has its label) makes the ``"ufc"`` denominator an
      empty sum (the log of 0), so that row is left out of the mean as well; for
      ``"supcon"`` it is well defined (a log-softmax over the positives only) and is kept;
    * the mean is over the rows that remain; if none remains, the result is ``0``, still
      with a ``grad_fn`` connected to ``features`` (zero gradient) and no NaN anywhere.
      Rows are left out by a zero weight, not by indexing, so that the loss never waits for
      the device.

    Args:
        features: ``(b, v, d)`` float tensor of projected features, any device and dtype;
            the loss is computed in float32, autocast or not (:mod:`medcl.losses._precision`).
        labels: ``(b,)`` integer tensor of class or pseudo-class ids, or ``None`` for
            instance discrimination.
        positives: ``(b, b)`` boolean matrix of image-level positives, instead of ``labels``.
        temperature: positive temperature ``t`` dividing the cosine similarities.
        variant: ``"ufc"`` (Eq. 2 of UFC) or ``"supcon"`` (SupCon / NT-Xent).
        check_symmetric: check that ``positives`` is symmetric. The check reads a value off
            the device, which makes the host wait for it in every step: callers whose
            matrix is symmetric by construction (PCL's) pass ``False``.

    Returns:
        Scalar tensor, the loss averaged over the non-degenerate rows.

    Example:
        >>> feats = torch.randn(8, 2, 128)  # 8 images, 2 augmented views each
        >>> pseudo = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
        >>> loss = cluster_contrastive_loss(feats, pseudo, temperature=0.1, variant="ufc")
    """
    _check_hparams(temperature, variant)
    if features.dim() != 3:
        raise ValueError(
            f"features must be 3-D (batch, views, dim), got shape {tuple(features.shape)}"
        )
    b, v, d = features.shape
    if labels is not None and positives is not None:
        raise ValueError("give labels or positives, not both")
    if positives is not None:
        if positives.shape != (b, b) or positives.dtype != torch.bool:
            raise ValueError(
                f"positives must be a ({b}, {b}) boolean matrix to match features of shape "
                f"{tuple(features.shape)}, got {positives.dtype} of shape {tuple(positives.shape)}"
            )
        if check_symmetric and not bool((positives == positives.T).all()):
            raise ValueError("positives must be symmetric: i is a positive of j iff j is of i")
        image_same = positives.to(features.device) | torch.eye(
            b, dtype=torch.bool, device=features.device
        )
    else:
        if labels is not None:
            if labels.dim() != 1 or labels.shape[0] != b:
                raise ValueError(
                    f"labels must have shape ({b},) to match features of shape "
                    f"{tuple(features.shape)}, got shape {tuple(labels.shape)}"
                )
            image_labels = labels.to(features.device)
        else:
            image_labels = torch.arange(b, device=features.device)
        image_same = image_labels[:, None] == image_labels[None, :]

    n = b * v
    z = F.normalize(features.reshape(n, d), dim=-1)
    sim = z @ z.T / temperature
    same = image_same.repeat_interleave(v, dim=0).repeat_interleave(v, dim=1)
    eye = torch.eye(n, dtype=torch.bool, device=features.device)
    pos = same & ~eye
    neg = ~same
    n_pos = pos.sum(dim=1)

    # Degenerate rows are left out by weight, not by indexing (a data-dependent shape would
    # wait for the device every step). Each degenerate row has its masks widened to its own
    # diagonal *before* any logsumexp, so that no row is all -inf: its value would be -inf
    # and its gradient NaN, which a zero weight cannot undo.
    keep = n_pos > 0
    if variant == "ufc":
        keep = keep & neg.any(dim=1)
    void = eye & ~keep[:, None]
    pos, neg = pos | void, neg | void
    n_pos = n_pos.clamp_min(1).to(sim.dtype)
    neg_inf = float("-inf")
    if variant == "ufc":
        log_pos = torch.logsumexp(sim.masked_fill(~pos, neg_inf), dim=1)
        log_neg = torch.logsumexp(sim.masked_fill(~neg, neg_inf), dim=1)
        term = (log_pos - log_neg) / n_pos
    else:
        log_denom = torch.logsumexp(sim.masked_fill(eye & ~void, neg_inf), dim=1, keepdim=True)
        log_prob = sim - log_denom
        term = torch.where(pos, log_prob, torch.zeros_like(log_prob)).sum(dim=1) / n_pos
    # the mean over kept rows; with none kept, 0 with a zero gradient into ``features``
    kept = keep.to(sim.dtype)
    return -(term * kept).sum() / kept.sum().clamp_min(1)


class ClusterContrastiveLoss(nn.Module):
    """Module form of :func:`cluster_contrastive_loss`; see it for the definition.

    Args:
        temperature: positive temperature dividing the cosine similarities.
        variant: ``"ufc"`` (Eq. 2 of Zhang et al., BIBM 2022) or ``"supcon"`` (Khosla et al.
            2020; NT-Xent when ``labels`` is ``None``).

    Example:
        >>> criterion = ClusterContrastiveLoss(temperature=0.1, variant="ufc")
        >>> loss = criterion(torch.randn(8, 2, 128), torch.tensor([0, 0, 1, 1, 2, 2, 3, 3]))
    """

    def __init__(self, temperature: float = 0.1, variant: str = "ufc") -> None:
        super().__init__()
        _check_hparams(temperature, variant)
        self.temperature = temperature
        self.variant = variant

    def forward(
        self, features: Tensor, labels: Tensor | None = None, positives: Tensor | None = None
    ) -> Tensor:
        """Loss of ``features`` ``(b, v, d)`` given ``labels`` ``(b,)``, ``positives``
        ``(b, b)`` or neither; a scalar."""
        return cluster_contrastive_loss(
            features, labels, self.temperature, self.variant, positives=positives
        )

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}, variant={self.variant!r}"
