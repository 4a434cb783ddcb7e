"""The training loop, schedules, checkpointing and device/precision setup."""

from medcl.train._device import close_distributed, make_fabric, set_threads, single_device
from medcl.train._lars import LARS, lars_param_groups
from medcl.train._loop import batches, train_loop
from medcl.train._schedule import lr_at, warmup_cosine_lr

__all__ = [
    "LARS",
    "batches",
    "close_distributed",
    "lars_param_groups",
    "lr_at",
    "make_fabric",
    "set_threads",
    "single_device",
    "train_loop",
    "warmup_cosine_lr",
]
