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


def warmup_cosine_lr(
    step: int,
    total_steps: int,
    start_lr: float,
    peak_lr: float,
    final_lr: float,
    warmup_steps: int = 0,
) -> float:
    """Linear warm-up from ``start_lr`` to ``peak_lr``, then cosine annealing to ``final_lr``.

    Step ``0`` has ``start_lr``, step ``warmup_steps`` has ``peak_lr``, step ``total_steps``
    has ``final_lr`` (Ferrante et al.: 0.01 -> 0.25 over 10 epochs, then down to 0.05).

    >>> [round(warmup_cosine_lr(s, 20, 0.01, 0.25, 0.05, 10), 3) for s in (0, 5, 10, 20)]
    [0.01, 0.13, 0.25, 0.05]
    """
    if step < warmup_steps:
        return start_lr + (peak_lr - start_lr) * step / warmup_steps
    span = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    return final_lr + 0.5 * (peak_lr - final_lr) * (1 + math.cos(math.pi * progress))
