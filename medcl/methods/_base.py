"""What every pretraining method shares: the batch it sees and the module contract."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor, nn


@dataclass
class Batch:
    """One pretraining batch.

    ``views``: ``(B, V, C, H, W)`` augmented views of ``B`` images; ``labels``: ``(B,)``
    pseudo-classes (UFC) or None; ``positions``: ``(B,)`` relative slice positions in their
    volumes, in [0, 1] (GLCL, PCL) or None; ``images``: ``(B, C, H, W)`` the un-augmented
    images, for methods that make views of their own (GLCL's local loss) or None;
    ``extra_views``: views a method drew from them in :meth:`PretrainMethod.prepare`, or None.
    """

    views: Tensor
    labels: Tensor | None = None
    positions: Tensor | None = None
    images: Tensor | None = None
    extra_views: Tensor | None = None


def _no_gather(t: Tensor) -> Tensor:
    return t


class PretrainMethod(nn.Module):
    """An encoder plus what a method trains around it; ``forward(batch)`` is the loss.

    The shared training loop calls ``forward`` through Fabric (so DDP syncs gradients), then
    ``after_step(step, total)`` after each optimiser step (momentum encoders, EMA targets).
    Under DDP the stage sets ``gather`` to an all-gather *with gradients*, so that losses
    over pairs (negatives, pseudo-class positives) see the global batch; alone it is the
    identity. Class attributes tell the stage what the method needs.
    """

    name: ClassVar[str] = "method"
    pretrains: ClassVar[bool] = True
    uses_pseudo_labels: ClassVar[bool] = False
    needs_volumes: ClassVar[bool] = False

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder
        self.out_dim = int(encoder.out_dim)  # type: ignore[arg-type]
        self.gather: Callable[[Tensor], Tensor] = _no_gather

    def prepare(self, batch: Batch) -> Batch:
        """``batch`` with the method's own random views added, before the step; as it is.

        The stage calls it where the batch is assembled (maybe on a worker thread, see
        ``run.prefetch``), so that ``forward`` draws no random numbers.
        """
        return batch

    def forward(self, batch: Batch) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def after_step(self, step: int, total: int) -> None:
        """Called after optimiser step ``step`` (1-based) of ``total``; nothing by default."""


@torch.no_grad()
def momentum_update(target: nn.Module, online: nn.Module, momentum: float) -> None:
    """``target = momentum * target + (1 - momentum) * online``, parameter by parameter.

    MoCo's key encoder (He et al. 2020) and BYOL's target network (Grill et al. 2020).
    Buffers (normalisation statistics) are copied from ``online``.
    """
    for t, o in zip(target.parameters(), online.parameters(), strict=True):
        t.mul_(momentum).add_(o.detach(), alpha=1.0 - momentum)
    for tb, ob in zip(target.buffers(), online.buffers(), strict=True):
        tb.copy_(ob)


def frozen_copy(module: nn.Module) -> nn.Module:
    """A deep copy of ``module`` that no optimiser will touch."""
    twin = copy.deepcopy(module)
    for p in twin.parameters():
        p.requires_grad_(False)
    return twin
