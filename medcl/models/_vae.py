"""Beta-VAE (Higgins et al., ICLR 2017) used as the feature extractor of UFC stage 1."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.networks.blocks import Convolution
from torch import nn

from medcl.models._unet import UNetEncoder


class BetaVAE(nn.Module):
    """A convolutional (beta-)VAE on 2D images.

    The encoder is a :class:`UNetEncoder` whose deepest map is flattened into the posterior
    mean and log-variance; the decoder mirrors it with transposed convolutions and ends in a
    sigmoid (images are in [0, 1]). ``variational=False`` gives a plain autoencoder
    (``encode`` returns a zero log-variance and ``reparameterize`` is the identity).

    Args:
        image_size: ``(H, W)``, divisible by ``2 ** (len(channels) - 1)``.
        in_channels: image channels.
        latent_dim: size of the embedding (posterior mean).
        channels: encoder widths per level.
        variational: VAE (True) or plain autoencoder (False).

    Example:
        >>> vae = BetaVAE((32, 32), latent_dim=16, channels=(8, 16, 32))
        >>> mu, logvar = vae.encode(torch.rand(4, 1, 32, 32))
        >>> vae.decode(vae.reparameterize(mu, logvar)).shape
        torch.Size([4, 1, 32, 32])
    """

    def __init__(
        self,
        image_size: tuple[int, int],
        in_channels: int = 1,
        latent_dim: int = 128,
        channels: Sequence[int] = (16, 32, 64, 128),
        variational: bool = True,
    ) -> None:
        super().__init__()
        self.encoder = UNetEncoder(in_channels, channels, norm="batch", num_res_units=0)
        f = self.encoder.downsampling
        if image_size[0] % f or image_size[1] % f:
            raise ValueError(f"image_size {tuple(image_size)} must be divisible by {f}")
        self.variational = variational
        self.latent_dim = latent_dim
        self.bottom = (channels[-1], image_size[0] // f, image_size[1] // f)
        flat = channels[-1] * self.bottom[1] * self.bottom[2]
        self.to_stats = nn.Linear(flat, 2 * latent_dim)
        self.from_latent = nn.Linear(latent_dim, flat)
        ups = []
        for i in range(len(channels) - 1, 0, -1):
            ups.append(
                Convolution(
                    2,
                    channels[i],
                    channels[i - 1],
                    strides=2,
                    is_transposed=True,
                    norm="batch",
                    act="PRELU",
                )
            )
        self.up = nn.Sequential(*ups)
        self.out = nn.Conv2d(channels[0], in_channels, kernel_size=3, padding=1)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, C, H, W) -> posterior mean and log-variance, each (B, latent_dim)."""
        stats = self.to_stats(self.encoder.forward_features(x)[-1].flatten(1))
        mu, logvar = stats.chunk(2, dim=1)
        if not self.variational:
            logvar = torch.zeros_like(logvar)
        return mu, logvar.clamp(-10, 10)

    def reparameterize(self, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """Sample z = mu + sigma * eps while training; the mean at eval or for a plain AE."""
        if not (self.training and self.variational):
            return mu
        return mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """(B, latent_dim) -> reconstructed images (B, C, H, W) in [0, 1]."""
        x = self.from_latent(z).view(-1, *self.bottom)
        return torch.sigmoid(self.out(self.up(x)))

    def forward(self, x: torch.Tensor):
        """Returns ``(reconstruction, mu, logvar)``."""
        mu, logvar = self.encode(x)
        return self.decode(self.reparameterize(mu, logvar)), mu, logvar
