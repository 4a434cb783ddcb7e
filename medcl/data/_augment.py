"""Batched, on-device augmentations (kornia) for contrastive views and fine-tuning."""

from __future__ import annotations

import kornia.augmentation as K
import torch
from torch import nn


class TwoViews(nn.Module):
    """Two independently augmented views of each image, for contrastive pretraining.

    Spatial changes (random resized crop, horizontal flip, small rotation) followed by
    appearance changes (brightness, contrast, gamma, Gaussian blur, Gaussian noise), drawn
    independently per image and per view, on whatever device the batch lives on.

    Args:
        image_size: ``(H, W)`` of the output views.
        crop_scale: area range of the random resized crop.
        rotation: maximum rotation in degrees.
        strength: scales the appearance changes (0 disables them, 1 is the default).

    Example:
        >>> views = TwoViews((96, 40))(torch.rand(8, 1, 96, 40))  # (8, 2, 1, 96, 40)
    """

    def __init__(
        self,
        image_size: tuple[int, int],
        crop_scale: tuple[float, float] = (0.4, 1.0),
        rotation: float = 10.0,
        strength: float = 1.0,
    ) -> None:
        super().__init__()
        if strength < 0:
            raise ValueError(f"strength must be >= 0, got {strength}")
        s = strength
        h, w = image_size
        ratio = (0.75 * w / h, 1.333 * w / h)
        # nn.Sequential, not K.AugmentationSequential: the same draws and the same output bit
        # for bit (tests/data/test_augment_container.py), without the container's bookkeeping of
        # transform matrices (1.15x faster at 64 x 64 on a CPU: benchmarks/bench_views.py)
        self.aug = nn.Sequential(
            K.RandomResizedCrop((h, w), scale=crop_scale, ratio=ratio),
            K.RandomHorizontalFlip(),
            K.RandomRotation(rotation, p=0.5),
            K.RandomBrightness((1 - 0.2 * s, 1 + 0.2 * s), p=0.8),
            K.RandomContrast((1 - 0.4 * s, 1 + 0.4 * s), p=0.8),
            K.RandomGamma((1 - 0.3 * s, 1 + 0.3 * s), p=0.5),
            K.RandomGaussianBlur((5, 5), (0.1, 1.0 + s), p=0.5),
            K.RandomGaussianNoise(std=0.03 * s, p=0.5),
        )

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: (B, C, H, W) in [0, 1] -> (B, 2, C, H, W)."""
        return torch.stack([self.aug(x), self.aug(x)], dim=1)


class PairedAugment(nn.Module):
    """The same random spatial transform on an image and its mask, for fine-tuning.

    Masks are resampled with nearest neighbour so they stay integer class maps; appearance
    changes (brightness, contrast, noise) touch only the image.
    """

    def __init__(self, image_size: tuple[int, int], rotation: float = 10.0) -> None:
        super().__init__()
        h, w = image_size
        self.spatial = K.AugmentationSequential(
            K.RandomResizedCrop((h, w), scale=(0.6, 1.0), ratio=(0.8 * w / h, 1.25 * w / h), p=0.5),
            K.RandomHorizontalFlip(),
            K.RandomRotation(rotation, p=0.5),
            data_keys=["input", "mask"],
        )
        self.appearance = K.AugmentationSequential(
            K.RandomBrightness((0.8, 1.2), p=0.5),
            K.RandomContrast((0.8, 1.2), p=0.5),
            K.RandomGaussianNoise(std=0.02, p=0.3),
        )

    @torch.no_grad()
    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x``: (B, C, H, W), ``mask``: (B, H, W) int -> augmented (x, mask)."""
        x, m = self.spatial(x, mask.unsqueeze(1).float())
        return self.appearance(x), m.squeeze(1).round().long()
