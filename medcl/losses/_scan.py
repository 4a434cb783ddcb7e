"""SCAN's two objectives (Van Gansbeke et al. 2020, "SCAN: Learning to classify images
without labels"): neighbour consistency with an entropy term, then self-labelling."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def scan_loss(
    anchor_logits: torch.Tensor, neighbour_logits: torch.Tensor, entropy_weight: float = 5.0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``-mean log <p(a), p(n)> - entropy_weight * H(mean p(a))``: an image and one of its
    nearest neighbours should fall in the same cluster, confidently, and the clusters should
    all be used (the entropy of the batch's mean assignment).

    Returns ``(total, consistency, entropy)``.

    Example:
        >>> a = torch.tensor([[9.0, 0.0], [0.0, 9.0]])
        >>> total, consistency, entropy = scan_loss(a, a.clone(), entropy_weight=1.0)
        >>> round(float(consistency), 4), round(float(entropy), 4)  # entropy of [0.5, 0.5]
        (0.0002, 0.6931)
    """
    p_a = F.softmax(anchor_logits, dim=1)
    p_n = F.softmax(neighbour_logits, dim=1)
    similarity = (p_a * p_n).sum(1).clamp_min(1e-7)
    consistency = -similarity.log().mean()
    mean_p = p_a.mean(0).clamp_min(1e-7)
    entropy = -(mean_p * mean_p.log()).sum()
    return consistency - entropy_weight * entropy, consistency, entropy


def self_label_loss(
    weak_logits: torch.Tensor,
    strong_logits: torch.Tensor,
    threshold: float = 0.99,
    balance: bool = True,
) -> tuple[torch.Tensor, int]:
    """Cross-entropy of the augmented view against the clean view's cluster, for the images
    whose clean-view probability exceeds ``threshold`` (SCAN's self-labelling step); with
    ``balance`` each cluster's weight is inverse to its share of the confident images in the
    batch. Returns ``(loss, number of confident images)``; the loss is 0 when none is.

    Example:
        >>> weak = torch.tensor([[9.0, 0.0], [0.0, 0.1]])  # only the first is confident
        >>> loss, n = self_label_loss(weak, torch.tensor([[0.0, 0.0], [5.0, 0.0]]))
        >>> n, round(float(loss), 4)  # log 2: the strong view is undecided
        (1, 0.6931)
    """
    with torch.no_grad():
        prob, target = F.softmax(weak_logits, dim=1).max(1)
        keep = prob > threshold
    n = int(keep.sum())
    if n == 0:
        return strong_logits.sum() * 0.0, 0
    target = target[keep]
    weight = None
    if balance:
        counts = torch.bincount(target, minlength=weak_logits.shape[1]).float()
        weight = torch.where(counts > 0, 1.0 / counts.clamp_min(1.0), torch.zeros_like(counts))
        weight = weight / weight.sum()
    return F.cross_entropy(strong_logits[keep], target, weight=weight), n
