"""The losses of the momentum methods: MoCo's InfoNCE against a queue, BYOL's regression."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from medcl.losses._precision import float32


@float32
def moco_loss(q: Tensor, k: Tensor, queue: Tensor, temperature: float) -> Tensor:
    """InfoNCE of MoCo (He et al. 2020): ``q``, ``k`` ``(B, D)``, ``queue`` ``(K, D)``, unit rows.

    ``-mean_i log( exp(q_i.k_i / t) / (exp(q_i.k_i / t) + sum_j exp(q_i.queue_j / t)) )``,
    computed as a cross-entropy (log space) with the positive at index 0.

    Example:
        >>> q = F.normalize(torch.randn(4, 8), dim=1)
        >>> loss = moco_loss(q, q, F.normalize(torch.randn(16, 8), dim=1), 0.2)
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    pos = (q * k).sum(dim=1, keepdim=True)
    neg = q @ queue.T
    logits = torch.cat([pos, neg], dim=1) / temperature
    target = torch.zeros(len(q), dtype=torch.long, device=q.device)
    return F.cross_entropy(logits, target)


@float32
def byol_loss(p: Tensor, z: Tensor) -> Tensor:
    """BYOL (Grill et al. 2020): ``mean_i (2 - 2 cos(p_i, z_i))``; ``z`` gets no gradient.

    ``p``: ``(B, D)`` online predictions; ``z``: ``(B, D)`` target projections.
    """
    return (2 - 2 * F.cosine_similarity(p, z.detach(), dim=1)).mean()
