"""The local-discrimination network: a UNet with per-pixel embedding and clustering heads."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from medcl.models._unet import UNetDecoder, UNetEncoder


class LocalDiscriminationNet(nn.Module):
    """UNet encoder + decoder, then two 1x1-convolution heads at full resolution.

    Chen et al., "Unsupervised local discrimination for medical images": the embedding head
    gives an L2-normalised ``embed_dim``-vector per pixel, the clustering head a softmax over
    ``n_clusters`` per pixel.

    Args:
        encoder: the (shared) UNet encoder.
        embed_dim: per-pixel embedding size.
        n_clusters: M, the number of clusters of the clustering head.
        num_res_units, norm: the decoder's blocks, as for segmentation.

    Example:
        >>> net = LocalDiscriminationNet(UNetEncoder(1, (8, 16)), embed_dim=4, n_clusters=3)
        >>> emb, assign, pooled = net(torch.rand(2, 1, 16, 16))
        >>> emb.shape, assign.shape, pooled.shape
        (torch.Size([2, 4, 16, 16]), torch.Size([2, 3, 16, 16]), torch.Size([2, 16]))
    """

    def __init__(
        self,
        encoder: UNetEncoder,
        embed_dim: int = 32,
        n_clusters: int = 16,
        num_res_units: int = 0,
        norm: str = "instance",
    ) -> None:
        super().__init__()
        if embed_dim < 1 or n_clusters < 2:
            raise ValueError(
                f"need embed_dim >= 1 and n_clusters >= 2, got {embed_dim}, {n_clusters}"
            )
        width = encoder.channels[0]
        self.encoder = encoder
        self.decoder = UNetDecoder(
            encoder.channels, width, encoder.spatial_dims, norm, num_res_units
        )
        conv = nn.Conv2d if encoder.spatial_dims == 2 else nn.Conv3d
        self.embed_head = conv(width, embed_dim, kernel_size=1)
        self.cluster_head = conv(width, n_clusters, kernel_size=1)
        self.n_clusters = n_clusters

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(B, C, H, W)`` -> unit embeddings ``(B, D, H, W)``, assignments ``(B, M, H, W)``
        and the encoder's pooled deepest features ``(B, channels[-1])``."""
        feats = self.encoder.forward_features(x)
        h = F.relu(self.decoder(feats))
        emb = F.normalize(self.embed_head(h), dim=1)
        assign = self.cluster_head(h).softmax(dim=1)
        return emb, assign, feats[-1].flatten(2).mean(-1)
