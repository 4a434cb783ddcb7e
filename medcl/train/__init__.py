"""The training loop, schedules, checkpointing and device/precision setup."""

from medcl.train._device import make_fabric, set_threads
from medcl.train._loop import batches, train_loop
from medcl.train._schedule import lr_at

__all__ = ["batches", "lr_at", "make_fabric", "set_threads", "train_loop"]
