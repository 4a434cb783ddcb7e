"""Pure learning-rate schedules."""

from __future__ import annotations

import math


def lr_at(
    step: int, total_steps: int, base_lr: float, warmup_steps: int = 0, final_lr: float = 0.0
) -> float:
    """Linear warm-up to ``base_lr`` over ``warmup_steps``, then cosine decay to ``final_lr``.

    >>> lr_at(0, 100, 1.0, 10), lr_at(10, 100, 1.0, 10), round(lr_at(100, 100, 1.0, 10), 6)
    (0.1, 1.0, 0.0)
    """
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    span = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    return final_lr + 0.5 * (base_lr - final_lr) * (1 + math.cos(math.pi * progress))
