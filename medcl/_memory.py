"""How much memory a configuration needs, estimated before anything large is allocated.

A run that asks for more memory than the machine has is not told so by Python: the kernel
kills it (``data.image_size=[4096, 4096]`` on 30 images died at 23.8 GB). So the loaders
estimate the decoded arrays before decoding (:func:`check_fits`), and the stages estimate
training before the first step (:func:`unet_training_bytes`), against the memory the
machine has available now (``MemAvailable`` of ``/proc/meminfo``, else ``sysconf``).

The factors of the training estimate were measured on CPU (peak resident memory of two
optimiser steps, ``channels`` [4, 8, 16] and [16, 32, 64, 128], 128 to 512 pixels): a
pretraining step takes about 13 bytes, a fine-tuning step about 22 bytes, per byte of one
float32 feature map per level (``batch x sum_l c_l x H x W / 4^l x 4``). The estimates use
slightly lower factors, so a configuration is refused only when it clearly cannot fit.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from medcl.errors import MedclError

PRETRAIN_FACTOR = 12  # two views, forward + backward, projection head, augmentation
FINETUNE_FACTOR = 20  # encoder + decoder, forward + backward, Dice-CE on one-hot targets
FEATURES_FACTOR = 8  # the beta-VAE (measured 8.6), besides its two dense layers' weights
INFER_FACTOR = 3  # no gradients: a few maps alive at a time
TRAINED_PARAM_BYTES = 16  # float32 weight, gradient and two AdamW moments


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation now, or None if unknown."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def format_bytes(n: float) -> str:
    """``format_bytes(3.5e9)`` -> '3.5 GB'."""
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} B"


def feature_map_bytes(batch: int, widths: Sequence[int], size: tuple[int, int]) -> int:
    """Bytes of one float32 feature map per UNet level for ``batch`` images of ``size``."""
    h, w = size
    return int(4 * batch * sum(c * h * w / 4**level for level, c in enumerate(widths)))


def image_set_bytes(
    n: int, channels: int, size: tuple[int, int], itemsize: int = 4, mask_itemsize: int = 8
) -> int:
    """Bytes of ``n`` decoded images with their masks: float32 and int64 by default, the
    legacy layout; the compact cache passes its stored sizes (uint8 images, uint8 masks)."""
    return int(n * size[0] * size[1] * (itemsize * channels + mask_itemsize))


def check_fits(needed: int, what: str, advice: str) -> None:
    """Raise one sentence if ``needed`` bytes exceed the memory available now.

    >>> check_fits(10, "ten bytes", "")
    """
    free = available_memory()
    if free is not None and needed > free:
        raise MedclError(
            f"{what} needs about {format_bytes(needed)} of memory, but this machine has "
            f"{format_bytes(free)} available; {advice}."
        )
