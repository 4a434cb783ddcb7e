"""LARS: SGD with momentum and a layer-wise trust ratio (You, Gitman, Ginsburg 2017).

For every parameter tensor ``w`` with gradient ``g`` (one "layer"), in the form used by
SimCLR and BYOL::

    g <- g + weight_decay * w                                  (unless excluded)
    q  = eta * ||w|| / ||g||   if ||w|| > 0 and ||g|| > 0 else 1 (unless excluded: q = 1)
    v <- momentum * v + q * g
    w <- w - lr * v

Biases and normalisation weights (every tensor with ``ndim <= 1``) are *excluded*: no weight
decay and no trust ratio, as in SimCLR. :func:`lars_param_groups` builds the two groups.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

__all__ = ["LARS", "lars_param_groups"]


def lars_param_groups(module: nn.Module, weight_decay: float) -> list[dict]:
    """Two parameter groups: weights (decayed, adapted) and biases/norm weights (excluded)."""
    adapted: list[nn.Parameter] = []
    excluded: list[nn.Parameter] = []
    for p in module.parameters():
        if p.requires_grad:
            (excluded if p.ndim <= 1 else adapted).append(p)
    return [
        {"params": adapted, "weight_decay": weight_decay, "lars_exclude": False},
        {"params": excluded, "weight_decay": 0.0, "lars_exclude": True},
    ]


class LARS(torch.optim.Optimizer):
    """Layer-wise Adaptive Rate Scaling on top of SGD with momentum.

    Args:
        params: parameters or groups (a group may set ``lars_exclude=True``; see
            :func:`lars_param_groups`).
        lr: learning rate.
        momentum: heavy-ball momentum.
        weight_decay: L2 weight decay added to the gradient of non-excluded tensors.
        eta: trust coefficient.

    Example:
        >>> model = nn.Linear(4, 2)
        >>> opt = LARS(lars_param_groups(model, 1e-6), lr=0.1)
    """

    def __init__(
        self,
        params: Iterable,
        lr: float = 0.1,
        momentum: float = 0.9,
        weight_decay: float = 1e-6,
        eta: float = 0.001,
    ) -> None:
        for name, v in (
            ("lr", lr),
            ("momentum", momentum),
            ("weight_decay", weight_decay),
            ("eta", eta),
        ):
            if not v >= 0:
                raise ValueError(f"{name} must be >= 0, got {v}")
        defaults = {
            "lr": lr,
            "momentum": momentum,
            "weight_decay": weight_decay,
            "eta": eta,
            "lars_exclude": False,
        }
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                if not group["lars_exclude"]:
                    if group["weight_decay"]:
                        g = g.add(p, alpha=group["weight_decay"])
                    w_norm, g_norm = torch.linalg.vector_norm(p), torch.linalg.vector_norm(g)
                    ok = (w_norm > 0) & (g_norm > 0)
                    q = torch.where(ok, group["eta"] * w_norm / g_norm.clamp_min(1e-30), 1.0)
                    g = g * q
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.clone(g).detach()
                else:
                    state["momentum_buffer"].mul_(group["momentum"]).add_(g)
                p.add_(state["momentum_buffer"], alpha=-group["lr"])
        return loss
