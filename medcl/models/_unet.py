"""UNet encoder and decoder from MONAI's building blocks.

Built like MONAI's ``UNet`` (residual units, strided convolutions down, transposed
convolutions up), which is several times faster on CPU than ``BasicUNet`` at equal widths,
but split so that the encoder can be pretrained on its own and then fine-tuned under a
freshly initialised decoder.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.networks.blocks import Convolution, ResidualUnit
from torch import nn


def _block(dims, c_in, c_out, stride, norm, res_units):
    if res_units > 0:
        return ResidualUnit(
            dims, c_in, c_out, strides=stride, subunits=res_units, norm=norm, act="PRELU"
        )
    return Convolution(dims, c_in, c_out, strides=stride, norm=norm, act="PRELU")


class UNetEncoder(nn.Module):
    """The contracting half of a UNet.

    Level 0 keeps the input resolution; each further level halves it with a strided
    convolution, so inputs must be divisible by ``2 ** (len(channels) - 1)``.

    Args:
        in_channels: image channels.
        channels: feature widths per level, e.g. ``(16, 32, 64, 128)``.
        spatial_dims: 2 for images, 3 for volumes.
        norm: MONAI norm name ('instance' is batch-size independent, 'batch').
        num_res_units: residual sub-units per block (0 = plain convolutions).
        standardize: first standardise each input image and channel (zero mean, unit
            variance; the ISIC protocol), so augmentations can keep working on [0, 1].

    Example:
        >>> enc = UNetEncoder(1, (16, 32, 64))
        >>> [f.shape[1] for f in enc.forward_features(torch.rand(2, 1, 32, 32))]
        [16, 32, 64]
        >>> enc(torch.rand(2, 1, 32, 32)).shape
        torch.Size([2, 64])
    """

    def __init__(
        self,
        in_channels: int = 1,
        channels: Sequence[int] = (16, 32, 64, 128),
        spatial_dims: int = 2,
        norm: str = "instance",
        num_res_units: int = 1,
        standardize: bool = False,
    ) -> None:
        super().__init__()
        if len(channels) < 2:
            raise ValueError(f"channels needs at least two levels, got {list(channels)}")
        self.standardize = standardize
        self.in_channels = in_channels
        self.channels = tuple(int(c) for c in channels)
        self.spatial_dims = spatial_dims
        self.norm = norm
        self.num_res_units = num_res_units
        widths = (in_channels, *self.channels)
        self.levels = nn.ModuleList(
            _block(spatial_dims, widths[i], widths[i + 1], 1 if i == 0 else 2, norm, num_res_units)
            for i in range(len(self.channels))
        )
        self.out_dim = self.channels[-1]

    @property
    def downsampling(self) -> int:
        return 2 ** (len(self.channels) - 1)

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """(B, C, *spatial) -> feature maps of every level, finest first."""
        if self.standardize:  # after augmentation, which works on [0, 1] intensities
            x = standardize_images(x)
        feats = []
        for level in self.levels:
            x = level(x)
            feats.append(x)
        return feats

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, *spatial) -> globally average-pooled deepest features (B, channels[-1])."""
        return self.forward_features(x)[-1].flatten(2).mean(-1)


def standardize_images(x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Zero mean and unit variance per image and channel: ``(B, C, *spatial)`` in and out.

    Per image, so no statistic crosses between images (or from test images into training);
    a constant channel becomes zeros.
    """
    dims = tuple(range(2, x.dim()))
    mean = x.mean(dim=dims, keepdim=True)
    std = x.std(dim=dims, keepdim=True, unbiased=False)
    return (x - mean) / std.clamp_min(eps)


class UNetDecoder(nn.Module):
    """The expanding half: transposed convolutions up, skip concatenation, residual units.

    Args:
        channels: the encoder's widths (finest first).
        out_channels: number of output classes (logits).
    """

    def __init__(
        self,
        channels: Sequence[int],
        out_channels: int,
        spatial_dims: int = 2,
        norm: str = "instance",
        num_res_units: int = 1,
    ) -> None:
        super().__init__()
        ch = tuple(channels)
        self.ups = nn.ModuleList()
        self.fuse = nn.ModuleList()
        for i in range(len(ch) - 1, 0, -1):
            self.ups.append(
                Convolution(
                    spatial_dims,
                    ch[i],
                    ch[i - 1],
                    strides=2,
                    is_transposed=True,
                    norm=norm,
                    act="PRELU",
                )
            )
            self.fuse.append(_block(spatial_dims, 2 * ch[i - 1], ch[i - 1], 1, norm, num_res_units))
        conv = nn.Conv2d if spatial_dims == 2 else nn.Conv3d
        self.head = conv(ch[0], out_channels, kernel_size=1)

    def forward_features(self, feats: list[torch.Tensor]) -> torch.Tensor:
        """The encoder's feature maps -> full-resolution features ``(B, channels[0], ...)``."""
        x = feats[-1]
        for up, fuse, skip in zip(self.ups, self.fuse, reversed(feats[:-1]), strict=True):
            x = fuse(torch.cat([up(x), skip], dim=1))
        return x

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        return self.head(self.forward_features(feats))


class SegmentationUNet(nn.Module):
    """An encoder (possibly pretrained) under a decoder that outputs class logits."""

    def __init__(
        self, encoder: UNetEncoder, num_classes: int, num_res_units: int = 1, norm: str = "instance"
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.decoder = UNetDecoder(
            encoder.channels, num_classes, encoder.spatial_dims, norm, num_res_units
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> logits (B, num_classes, H, W)."""
        return self.decoder(self.encoder.forward_features(x))
