"""The contrastive autoencoder of Ferrante et al. and its prototype-conditioned decoder.

Ferrante, Boccato, Duggento, Spasov, Toschi, "Contrastive learning for unsupervised medical
image clustering and reconstruction". An encoder ``e`` (three stride-2 convolutions with GELU,
2x2 average pooling, a linear layer to the latent ``h``), a projector ``p`` (an MLP where the
NT-Xent similarity is computed) and a decoder ``d`` symmetric to ``e`` are trained together;
the latent space is then clustered and the centroids become prototypes, which condition a
second decoder.

Why the conditional decoder does not ignore its condition: the soft assignment
``a = softmax(cos(h, P) / T)`` is a function of ``h``, so a decoder fed ``[h, a]`` can
reconstruct from ``h`` alone and learn to ignore ``a`` (the failure of the public code near
the paper). :class:`ConditionalDecoder` is therefore fed the *residual* ``r = h - a @ P`` (what
is left of the latent once the assigned prototype mix is taken away) together with ``a``,
both concatenated at its input and through FiLM (a per-channel scale and shift computed from
``a``) after every upsampling layer. The stratum can only come back through ``a``: decoding
``(r = 0, a = one_hot(j))`` gives the typical image of stratum ``j``, and decoding a residual
of any image with ``a = one_hot(j)`` samples an image of stratum ``j`` in that image's style.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from medcl.models._heads import ProjectionHead

__all__ = [
    "ConditionalDecoder",
    "ContrastiveAutoencoder",
    "ConvDecoder",
    "ConvEncoder",
    "soft_assign",
]


def _conv_size(n: int) -> int:
    return (n + 2 - 4) // 2 + 1  # kernel 4, stride 2, padding 1


class ConvEncoder(nn.Module):
    """Three (or ``len(widths)``) conv layers (kernel 4, stride 2) + GELU, 2x2 avg-pool, linear.

    Args:
        in_channels: image channels.
        image_size: ``(H, W)`` of the input.
        widths: output channels of the conv layers.
        latent_dim: size of the latent ``h``.
        norm: ``"none"`` (the paper) or ``"batch"``: BatchNorm between each conv and its GELU.

    Example:
        >>> ConvEncoder(1, (28, 28))(torch.rand(4, 1, 28, 28)).shape
        torch.Size([4, 128])
    """

    def __init__(
        self,
        in_channels: int = 1,
        image_size: tuple[int, int] = (28, 28),
        widths: Sequence[int] = (32, 64, 128),
        latent_dim: int = 128,
        norm: str = "none",
    ) -> None:
        super().__init__()
        if norm not in ("none", "batch"):
            raise ValueError(f"norm must be 'none' or 'batch', got {norm!r}")
        if len(widths) < 1 or min(widths) < 1 or latent_dim < 1:
            raise ValueError(f"widths and latent_dim must be positive, got {widths}, {latent_dim}")
        sizes = [tuple(image_size)]
        layers: list[nn.Module] = []
        c = in_channels
        for w in widths:
            # (conv, activation) pairs; with norm the activation is BatchNorm + GELU, so the
            # state-dict keys of norm="none" stay those of the paper's encoder
            act = nn.Sequential(nn.BatchNorm2d(w), nn.GELU()) if norm == "batch" else nn.GELU()
            layers += [nn.Conv2d(c, w, 4, stride=2, padding=1, bias=norm == "none"), act]
            c = w
            sizes.append(tuple(_conv_size(s) for s in sizes[-1]))
        if min(sizes[-1]) < 1:
            raise ValueError(f"image_size {image_size} is too small for {len(widths)} conv layers")
        self.features = nn.Sequential(*layers)
        self.pool = nn.AvgPool2d(2, ceil_mode=True)  # ceil: a 3x3 map pools to 2x2, not 1x1
        pooled = tuple(-(-s // 2) for s in sizes[-1])
        self.fc = nn.Linear(c * pooled[0] * pooled[1], latent_dim)
        self.sizes: list[tuple[int, int]] = sizes  # type: ignore[assignment]
        self.widths = list(widths)
        self.in_channels = in_channels
        self.latent_dim = latent_dim

    def forward_features(self, x: Tensor) -> list[Tensor]:
        """``(B, C, H, W)`` -> the feature map after every conv layer."""
        out = []
        for i in range(0, len(self.features), 2):
            x = self.features[i + 1](self.features[i](x))
            out.append(x)
        return out

    def forward(self, x: Tensor) -> Tensor:
        """``(B, C, H, W)`` -> latent ``h`` of shape ``(B, latent_dim)``."""
        return self.fc(self.pool(self.features(x)).flatten(1))


class ConvDecoder(nn.Module):
    """The encoder mirrored: linear, reshape, transposed convs (kernel 4, stride 2) + GELU.

    ``in_dim`` is the size of the vector decoded (``latent_dim``, more for a conditional
    decoder). Output sizes follow the encoder's exactly (output padding per layer), and a
    sigmoid keeps images in [0, 1].
    """

    def __init__(self, encoder: ConvEncoder, in_dim: int | None = None) -> None:
        super().__init__()
        widths = encoder.widths
        self.start = (widths[-1], *encoder.sizes[-1])
        self.fc = nn.Linear(
            in_dim or encoder.latent_dim, widths[-1] * encoder.sizes[-1][0] * encoder.sizes[-1][1]
        )
        ups = []
        outs = [*widths[::-1][1:], encoder.in_channels]
        c = widths[-1]
        for i, w in enumerate(outs):
            src, dst = encoder.sizes[-1 - i], encoder.sizes[-2 - i]
            pad = (dst[0] - 2 * src[0], dst[1] - 2 * src[1])  # (s - 1) * 2 - 2 + 4 = 2s
            ups.append(nn.ConvTranspose2d(c, w, 4, stride=2, padding=1, output_padding=pad))
            c = w
        self.ups = nn.ModuleList(ups)

    def hidden_channels(self) -> list[int]:
        """Channels after each upsampling layer but the last (where FiLM can act)."""
        return [int(u.out_channels) for u in self.ups[:-1]]  # type: ignore[union-attr,arg-type]

    def forward(self, z: Tensor, film: list[tuple[Tensor, Tensor]] | None = None) -> Tensor:
        """``(B, in_dim)`` -> images ``(B, C, H, W)`` in [0, 1]; ``film``: (scale, shift) per layer."""
        x = F.gelu(self.fc(z)).view(-1, *self.start)
        for i, up in enumerate(self.ups):
            x = up(x)
            if i < len(self.ups) - 1:
                if film is not None:
                    gamma, beta = film[i]
                    x = x * (1 + gamma[:, :, None, None]) + beta[:, :, None, None]
                x = F.gelu(x)
        return torch.sigmoid(x)


def soft_assign(h: Tensor, prototypes: Tensor, temperature: float = 0.1) -> Tensor:
    """``a = softmax(cos(h, prototypes) / temperature)``: ``(B, d), (k, d) -> (B, k)``.

    Example:
        >>> soft_assign(torch.tensor([[1.0, 0.0]]), torch.eye(2), 1.0)  # softmax([1, 0])
        tensor([[0.7311, 0.2689]])
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    cos = F.normalize(h, dim=-1) @ F.normalize(prototypes, dim=-1).T
    return torch.softmax(cos / temperature, dim=-1)


class ConditionalDecoder(nn.Module):
    """A decoder of ``(residual, assignment)``: see the module docstring for why residual.

    Args:
        encoder: the encoder whose shapes it mirrors.
        n_prototypes: ``k``, the length of the assignment vector ``a``.
        conditioning: ``"film"`` (concatenation at the input *and* FiLM after every hidden
            layer, the default) or ``"concat"`` (concatenation at the input only).

    Example:
        >>> enc = ConvEncoder(1, (28, 28))
        >>> dec = ConditionalDecoder(enc, n_prototypes=10)
        >>> dec(torch.zeros(2, 128), torch.eye(10)[:2]).shape
        torch.Size([2, 1, 28, 28])
    """

    def __init__(self, encoder: ConvEncoder, n_prototypes: int, conditioning: str = "film") -> None:
        super().__init__()
        if conditioning not in ("film", "concat"):
            raise ValueError(f"conditioning must be 'film' or 'concat', got {conditioning!r}")
        if n_prototypes < 1:
            raise ValueError(f"n_prototypes must be >= 1, got {n_prototypes}")
        self.n_prototypes = n_prototypes
        self.conditioning = conditioning
        self.decoder = ConvDecoder(encoder, encoder.latent_dim + n_prototypes)
        self.film = nn.ModuleList(
            [nn.Linear(n_prototypes, 2 * c) for c in self.decoder.hidden_channels()]
            if conditioning == "film"
            else []
        )

    def forward(self, residual: Tensor, assignment: Tensor) -> Tensor:
        """``residual`` ``(B, latent_dim)``, ``assignment`` ``(B, k)`` -> ``(B, C, H, W)``."""
        film = [tuple(f(assignment).chunk(2, dim=-1)) for f in self.film] or None
        return self.decoder(torch.cat([residual, assignment], dim=-1), film)  # type: ignore[arg-type]


class ContrastiveAutoencoder(nn.Module):
    """Encoder ``e``, projector ``p`` (``ProjectionHead``) and decoder ``d`` of Ferrante et al.

    Args:
        in_channels, image_size, widths, latent_dim, norm: as for :class:`ConvEncoder`.
        projector: widths of the projector after the latent, e.g. ``(512, 512, 128)`` for a
            3-layer MLP ``latent_dim -> 512 -> 512 -> 128``.

    Example:
        >>> m = ContrastiveAutoencoder()
        >>> h, z, x_hat = m(torch.rand(4, 1, 28, 28))
        >>> h.shape, z.shape, x_hat.shape
        (torch.Size([4, 128]), torch.Size([4, 128]), torch.Size([4, 1, 28, 28]))
    """

    def __init__(
        self,
        in_channels: int = 1,
        image_size: tuple[int, int] = (28, 28),
        widths: Sequence[int] = (32, 64, 128),
        latent_dim: int = 128,
        projector: Sequence[int] = (512, 512, 128),
        norm: str = "none",
    ) -> None:
        super().__init__()
        self.encoder = ConvEncoder(in_channels, image_size, widths, latent_dim, norm)
        self.projector = ProjectionHead([latent_dim, *projector])
        self.decoder = ConvDecoder(self.encoder)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``x`` ``(B, C, H, W)`` -> ``(h, p(h), d(h))``."""
        h = self.encoder(x)
        return h, self.projector(h), self.decoder(h)
