"""Contrastive methods that share one loss: the labels decide the positives."""

from __future__ import annotations

import torch
from torch import nn

from medcl.losses import cluster_contrastive_loss
from medcl.models import ProjectionHead


class ContrastiveMethod:
    """Encoder + MLP projection head trained with :func:`cluster_contrastive_loss`."""

    name = "contrastive"
    pretrains = True
    uses_pseudo_labels = False
    variant = "supcon"

    def build_head(self, in_dim: int, hidden: int = 2048, out: int = 256) -> nn.Module:
        return ProjectionHead([in_dim, hidden, out])

    def loss(
        self,
        encoder: nn.Module,
        head: nn.Module,
        views: torch.Tensor,
        labels: torch.Tensor | None,
        temperature: float,
        variant: str | None = None,
    ):
        """``views``: (B, V, C, H, W); ``labels``: (B,) pseudo-labels or None."""
        b, v = views.shape[:2]
        z = head(encoder(views.flatten(0, 1))).view(b, v, -1)
        return cluster_contrastive_loss(
            z, labels if self.uses_pseudo_labels else None, temperature, variant or self.variant
        )


class SimCLR(ContrastiveMethod):
    """SimCLR (Chen et al., ICML 2020): every image its own class; NT-Xent."""

    name = "simclr"
    variant = "supcon"  # supcon without labels is exactly NT-Xent


class UFC(ContrastiveMethod):
    """UFC (Zhang et al., BIBM 2022): images of the same pseudo-class are positives (Eq. 2)."""

    name = "ufc"
    uses_pseudo_labels = True
    variant = "ufc"
