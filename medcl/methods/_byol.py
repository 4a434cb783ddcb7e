"""BYOL (Grill et al., NeurIPS 2020): predict an EMA target's projection, no negatives."""

from __future__ import annotations

import math
from typing import ClassVar

import torch
from torch import Tensor, nn

from medcl.losses import byol_loss
from medcl.methods._base import Batch, PretrainMethod, frozen_copy, momentum_update
from medcl.models import ProjectionHead


def byol_momentum(step: int, total: int, base: float = 0.996) -> float:
    """BYOL's target momentum ``1 - (1 - base) (cos(pi step / total) + 1) / 2``: base -> 1."""
    if total <= 0:
        return 1.0
    return 1.0 - (1.0 - base) * (math.cos(math.pi * min(step, total) / total) + 1.0) / 2.0


class BYOL(PretrainMethod):
    """BYOL: an online encoder + projector + predictor regresses the target's projection.

    Both views go through both networks; the loss is symmetric,
    ``byol_loss(p1, z2') + byol_loss(p2, z1')`` where primes mark the target network. The
    target is an EMA of the online encoder and projector whose momentum rises from ``base_momentum``
    to 1 on a cosine schedule (:func:`byol_momentum`), applied in :meth:`after_step`.

    Args:
        encoder: the UNet encoder.
        proj_hidden, proj_out: projector and predictor widths (BYOL: 4096 -> 256).
        base_momentum: the target momentum at step 0 (0.996).
    """

    name: ClassVar[str] = "byol"

    def __init__(
        self,
        encoder: nn.Module,
        proj_hidden: int = 4096,
        proj_out: int = 256,
        base_momentum: float = 0.996,
        head_batch_norm: bool = True,
    ) -> None:
        super().__init__(encoder)
        if not 0 <= base_momentum <= 1:
            raise ValueError(f"base_momentum must be in [0, 1], got {base_momentum}")
        self.projector = ProjectionHead([self.out_dim, proj_hidden, proj_out], head_batch_norm)
        self.predictor = ProjectionHead([proj_out, proj_hidden, proj_out], head_batch_norm)
        self.target_encoder = frozen_copy(encoder)
        self.target_projector = frozen_copy(self.projector)
        self.base_momentum = base_momentum

    def forward(self, batch: Batch) -> Tensor:
        b = batch.views.shape[0]
        x = batch.views[:, :2].transpose(0, 1).flatten(0, 1)  # view 1 of all, then view 2
        p1, p2 = self.predictor(self.projector(self.encoder(x))).split(b)
        with torch.no_grad():
            z1, z2 = self.target_projector(self.target_encoder(x)).split(b)
        return byol_loss(p1, z2) + byol_loss(p2, z1)

    def after_step(self, step: int, total: int) -> None:
        m = byol_momentum(step, total, self.base_momentum)
        momentum_update(self.target_encoder, self.encoder, m)
        momentum_update(self.target_projector, self.projector, m)
