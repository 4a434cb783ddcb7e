"""Methods that share one contrastive loss and differ only in who the positives are.

SimCLR: the other view of the same image. UFC: images of the same pseudo-class. GLCL: slices
from the same partition of their volumes. PCL: slices whose relative positions are close.
One loss (:func:`medcl.losses.cluster_contrastive_loss`) serves all four.
"""

from __future__ import annotations

from typing import ClassVar

from torch import Tensor, nn

from medcl.losses import cluster_contrastive_loss
from medcl.methods._base import Batch, PretrainMethod
from medcl.models import ProjectionHead


class ContrastiveMethod(PretrainMethod):
    """Encoder + MLP projection head trained with :func:`cluster_contrastive_loss`.

    Args:
        encoder: the UNet encoder (``out_dim`` attribute, ``(N, C, H, W) -> (N, out_dim)``).
        temperature: divides the cosine similarities.
        proj_hidden, proj_out: the projection head's widths (UFC paper: 2048 -> 256).
        head_batch_norm: BatchNorm between the head's layers (SimCLR's head has it).
    """

    name: ClassVar[str] = "contrastive"
    variant: str = "supcon"

    def __init__(
        self,
        encoder: nn.Module,
        temperature: float = 0.1,
        proj_hidden: int = 2048,
        proj_out: int = 256,
        head_batch_norm: bool = True,
    ) -> None:
        super().__init__(encoder)
        self.head = ProjectionHead([self.out_dim, proj_hidden, proj_out], head_batch_norm)
        self.temperature = temperature

    def project(self, views: Tensor) -> Tensor:
        """``(B, V, C, H, W)`` -> ``(B, V, proj_out)``."""
        b, v = views.shape[:2]
        return self.head(self.encoder(views.flatten(0, 1))).view(b, v, -1)

    def positives(self, batch: Batch) -> tuple[Tensor | None, Tensor | None]:
        """``(labels, positives)`` for the loss; both None means instance discrimination."""
        return None, None

    def forward(self, batch: Batch) -> Tensor:
        z = self.gather(self.project(batch.views))
        labels, pos = self.positives(batch)
        return cluster_contrastive_loss(z, labels, self.temperature, self.variant, positives=pos)


class SimCLR(ContrastiveMethod):
    """SimCLR (Chen et al., ICML 2020): every image its own class; NT-Xent."""

    name = "simclr"
    variant = "supcon"  # supcon without labels is exactly NT-Xent


class UFC(ContrastiveMethod):
    """UFC (Zhang et al., BIBM 2022): images of the same pseudo-class are positives (Eq. 2)."""

    name = "ufc"
    uses_pseudo_labels = True

    def __init__(self, encoder: nn.Module, variant: str = "ufc", **kwargs) -> None:
        """``variant``: ``"ufc"`` (Eq. 2) or ``"supcon"`` with the pseudo-labels."""
        super().__init__(encoder, **kwargs)
        self.variant = variant

    def positives(self, batch: Batch) -> tuple[Tensor | None, Tensor | None]:
        if batch.labels is None:
            raise ValueError("UFC needs pseudo-labels in batch.labels")
        return self.gather(batch.labels), None


def partition_index(positions: Tensor, partitions: int) -> Tensor:
    """Which of ``partitions`` equal parts of its volume each slice falls in (0-based).

    A relative position ``p`` in [0, 1] lies in partition ``min(floor(p * S), S - 1)``.
    """
    return (positions * partitions).floor().clamp_(0, partitions - 1).long()


class GLCL(ContrastiveMethod):
    """The global strategy G_D of Chaitanya et al. (NeurIPS 2020).

    Each volume is split into ``partitions`` equal parts along the slice axis; slices from
    the same partition index, in any volume, are positives (with the other view of the same
    slice), every other slice is a negative. Implemented: this global, encoder-level loss
    with uniformly sampled batches. Not implemented: their local, decoder-level loss and
    their batch sampling of one slice per partition per volume.
    """

    name = "glcl"
    needs_volumes = True
    variant = "supcon"

    def __init__(self, encoder: nn.Module, partitions: int = 4, **kwargs) -> None:
        super().__init__(encoder, **kwargs)
        if partitions < 1:
            raise ValueError(f"partitions must be >= 1, got {partitions}")
        self.partitions = partitions

    def positives(self, batch: Batch) -> tuple[Tensor | None, Tensor | None]:
        if batch.positions is None:
            raise ValueError("GLCL needs slice positions in batch.positions")
        return self.gather(partition_index(batch.positions, self.partitions)), None


def positional_positives(positions: Tensor, threshold: float) -> Tensor:
    """``(B, B)`` boolean: slices whose relative positions differ by less than ``threshold``."""
    return (positions[:, None] - positions[None, :]).abs() < threshold


class PCL(ContrastiveMethod):
    """Positional contrastive learning (Zeng et al., MICCAI 2021).

    Slices whose relative positions in their volumes differ by less than ``threshold`` are
    positives, whichever volume they come from; the loss is SupCon over that relation.
    """

    name = "pcl"
    needs_volumes = True
    variant = "supcon"

    def __init__(self, encoder: nn.Module, threshold: float = 0.1, **kwargs) -> None:
        super().__init__(encoder, **kwargs)
        if not 0 < threshold <= 1:
            raise ValueError(f"threshold must be in (0, 1], got {threshold}")
        self.threshold = threshold

    def positives(self, batch: Batch) -> tuple[Tensor | None, Tensor | None]:
        if batch.positions is None:
            raise ValueError("PCL needs slice positions in batch.positions")
        positions = self.gather(batch.positions.float())
        return None, positional_positives(positions, self.threshold)
