"""Projection heads built from a short spec of layer widths."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn


class ProjectionHead(nn.Module):
    """An MLP from a list of widths: Linear -> BatchNorm -> ReLU between layers, plain last.

    Example:
        >>> ProjectionHead([128, 2048, 256])  # two layers, 2048 hidden, 256 out
    """

    def __init__(self, widths: Sequence[int], batch_norm: bool = True) -> None:
        super().__init__()
        if len(widths) < 2 or min(widths) < 1:
            raise ValueError(f"widths must list at least two positive sizes, got {list(widths)}")
        layers: list[nn.Module] = []
        for i in range(len(widths) - 1):
            last = i == len(widths) - 2
            layers.append(nn.Linear(widths[i], widths[i + 1], bias=last or not batch_norm))
            if not last:
                if batch_norm:
                    layers.append(nn.BatchNorm1d(widths[i + 1]))
                layers.append(nn.ReLU(inplace=True))
        self.net = nn.Sequential(*layers)
        self.out_dim = int(widths[-1])

    def forward(self, x):
        """(B, widths[0]) -> (B, widths[-1]); normalise downstream (the losses do)."""
        return self.net(x)


class SimCLRProjectionHead(ProjectionHead):
    """SimCLR's head (Chen et al., ICML 2020) with the UFC paper's defaults: 2048 hidden, 256 out."""

    def __init__(self, in_dim: int, hidden_dim: int = 2048, out_dim: int = 256) -> None:
        super().__init__([in_dim, hidden_dim, out_dim])
