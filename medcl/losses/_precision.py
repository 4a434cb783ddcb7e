"""Losses computed in float32, also inside a mixed-precision region.

Under ``torch.autocast`` (``run.precision=bf16-mixed``, the GPU default) a matrix product
runs in bfloat16, whose 8-bit mantissa rounds a cosine similarity divided by a temperature
of 0.1 to steps of about 0.03 near 1, before it enters an exponential. The contrastive,
momentum and local-discrimination losses are small next to the networks that feed them, so
they run at full precision: :func:`float32` disables autocast for the call and casts its
half-precision tensor arguments to float32 (float64 stays float64; gradients flow back
through the cast).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import torch
from torch import Tensor

F = TypeVar("F", bound=Callable[..., Any])


_LOW = (torch.float16, torch.bfloat16)


def _up(x: Any) -> Any:
    return x.float() if isinstance(x, Tensor) and x.dtype in _LOW else x


def float32(fn: F) -> F:
    """Decorator: run ``fn`` with autocast off and its half-precision tensors in float32."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        first = next((a for a in (*args, *kwargs.values()) if isinstance(a, Tensor)), None)
        device = first.device.type if first is not None else "cpu"
        with torch.autocast(device_type=device, enabled=False):
            return fn(*map(_up, args), **{k: _up(v) for k, v in kwargs.items()})

    return wrapper  # type: ignore[return-value]
