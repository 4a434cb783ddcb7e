"""Methods that share one contrastive loss and differ only in who the positives are.

SimCLR: the other view of the same image. UFC: images of the same pseudo-class. GLCL: slices
from the same partition of their volumes. PCL: slices whose relative positions are close.
One loss (:func:`medcl.losses.cluster_contrastive_loss`) serves all four.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import torch
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
        """``(labels, positives)`` for the loss; both None means instance discrimination.

        A ``positives`` matrix must be symmetric (the loss does not check it here).
        """
        return None, None

    def forward(self, batch: Batch) -> Tensor:
        z = self.gather(self.project(batch.views))
        labels, pos = self.positives(batch)
        # a positives matrix from positives() is symmetric by construction: not checked,
        # which would wait for the device every step
        return cluster_contrastive_loss(
            z, labels, self.temperature, self.variant, positives=pos, check_symmetric=False
        )


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
    """Global (and optionally local) contrastive learning of Chaitanya et al. (NeurIPS 2020).

    Global strategy G_D: each volume is split into ``partitions`` equal parts along the slice
    axis; slices from the same partition index, in any volume, are positives (with the other
    view of the same slice), every other slice is a negative; SupCon on the encoder's pooled
    features, batches sampled uniformly.

    Local option (``local_weight > 0``): a UNet decoder is trained beside the encoder. Two
    views of each image that differ in intensity only (so that pixels correspond) go through
    encoder and decoder; the full-resolution decoder features, through a 1x1 projection, are
    averaged over a ``local_regions`` x ``local_regions`` grid, and each region of one view has
    the same region of the other view as its positive and every other region in the batch as
    a negative (NT-Xent). The loss is ``global + local_weight * local``, trained jointly
    (the paper trains the decoder in a second stage with the encoder frozen); the pretrained
    decoder is transferred to fine-tuning along with the encoder.

    Not implemented: the paper's batch sampling of one slice per partition per volume.
    """

    name = "glcl"
    needs_volumes = True
    variant = "supcon"

    def __init__(
        self,
        encoder: nn.Module,
        partitions: int = 4,
        local_weight: float = 0.0,
        local_regions: int = 3,
        num_res_units: int = 0,
        norm: str = "instance",
        **kwargs,
    ) -> None:
        super().__init__(encoder, **kwargs)
        if partitions < 1:
            raise ValueError(f"partitions must be >= 1, got {partitions}")
        if local_weight < 0 or local_regions < 1:
            raise ValueError(
                f"need local_weight >= 0 and local_regions >= 1, got {local_weight}, {local_regions}"
            )
        self.partitions = partitions
        self.local_weight = local_weight
        self.local_regions = local_regions
        if local_weight > 0:
            from medcl.models import UNetDecoder

            ch: tuple[int, ...] = tuple(encoder.channels)  # type: ignore[arg-type]
            self.decoder = UNetDecoder(ch, 1, 2, norm, num_res_units)  # head unused here
            self.local_head = nn.Conv2d(ch[0], ch[0], kernel_size=1)

    def positives(self, batch: Batch) -> tuple[Tensor | None, Tensor | None]:
        if batch.positions is None:
            raise ValueError("GLCL needs slice positions in batch.positions")
        return self.gather(partition_index(batch.positions, self.partitions)), None

    @torch.no_grad()
    def prepare(self, batch: Batch) -> Batch:
        """Adds the local loss's two intensity-only views of the un-augmented images."""
        if self.local_weight <= 0 or batch.extra_views is not None:
            return batch
        if batch.images is None:
            raise ValueError("GLCL's local loss needs the un-augmented images in batch.images")
        images = batch.images
        extra = torch.stack([intensity_jitter(images), intensity_jitter(images)], 1)
        return dataclasses.replace(batch, extra_views=extra)

    def forward(self, batch: Batch) -> Tensor:
        loss = super().forward(batch)
        if self.local_weight > 0:
            views = self.prepare(batch).extra_views  # the stage's, or drawn here if called alone
            assert views is not None
            loss = loss + self.local_weight * self.local_loss(views)
        return loss

    def local_loss(self, views: Tensor) -> Tensor:
        """NT-Xent between grid regions of two intensity-only views ``(B, 2, C, H, W)``."""
        b = views.shape[0]
        x = views.flatten(0, 1)
        feats = self.encoder.forward_features(x)  # type: ignore[operator]
        f = self.local_head(self.decoder.forward_features(feats))
        r = self.local_regions
        pooled = torch.nn.functional.adaptive_avg_pool2d(f, r)  # (2B, D, r, r)
        regions = pooled.view(b, 2, f.shape[1], r * r).permute(0, 3, 1, 2)  # (B, r*r, 2, D)
        z = self.gather(regions.reshape(b * r * r, 2, -1))
        return cluster_contrastive_loss(z, None, self.temperature, "supcon")


@torch.no_grad()
def intensity_jitter(x: Tensor, strength: float = 0.3) -> Tensor:
    """Random contrast and brightness per image, no spatial change: ``a * x + c``.

    ``a`` is uniform in [1 - strength, 1 + strength] and ``c`` in [-strength/2, strength/2].
    """
    shape = (x.shape[0],) + (1,) * (x.dim() - 1)
    a = 1 + strength * (2 * torch.rand(shape, device=x.device, dtype=x.dtype) - 1)
    c = strength * (torch.rand(shape, device=x.device, dtype=x.dtype) - 0.5)
    return a * x + c


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
