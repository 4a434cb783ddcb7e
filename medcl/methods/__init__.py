"""Pretraining methods, registered by name in the plain dict ``METHODS``.

Each entry is a class: a :class:`PretrainMethod` (an ``nn.Module`` whose ``forward(batch)``
is the loss) or :class:`RandomInit` (nothing to pretrain). Class attributes say what a method
needs (``uses_pseudo_labels``, ``needs_volumes``). The training loop, encoder, augmentations
and fine-tuning are shared, so comparisons isolate the pretraining.
"""

from __future__ import annotations

import inspect
from typing import Any

from torch import nn

from medcl.methods._base import Batch, PretrainMethod, frozen_copy, momentum_update
from medcl.methods._byol import BYOL, byol_momentum
from medcl.methods._contrastive import (
    GLCL,
    PCL,
    UFC,
    ContrastiveMethod,
    SimCLR,
    intensity_jitter,
    partition_index,
    positional_positives,
)
from medcl.methods._local import LD
from medcl.methods._moco import MoCo
from medcl.methods._random import RandomInit

METHODS: dict[str, Any] = {
    "random": RandomInit,
    "simclr": SimCLR,
    "moco": MoCo,
    "byol": BYOL,
    "glcl": GLCL,
    "pcl": PCL,
    "ufc": UFC,
    "ld": LD,
}


def _accepted(cls: Any) -> set[str]:
    names: set[str] = set()
    for klass in cls.__mro__:
        if klass is PretrainMethod or klass is nn.Module:
            break
        if "__init__" in vars(klass):
            params = inspect.signature(klass.__init__).parameters  # type: ignore[misc]
            names |= {p for p in params if p not in ("self", "encoder", "kwargs")}
    return names


def build_method(name: str, encoder: nn.Module, **settings) -> PretrainMethod:
    """``METHODS[name]`` around ``encoder``, given the settings its constructor accepts.

    ``settings`` may hold every method's hyperparameters (``temperature``, ``momentum``,
    ``threshold``, ...); each method takes the ones its ``__init__`` (or a parent's) names.
    """
    cls = METHODS[name]
    if not cls.pretrains:
        raise ValueError(f"method {name!r} does not pretrain")
    wanted = _accepted(cls)
    return cls(encoder, **{k: v for k, v in settings.items() if k in wanted})


__all__ = [
    "BYOL",
    "GLCL",
    "LD",
    "METHODS",
    "PCL",
    "UFC",
    "Batch",
    "ContrastiveMethod",
    "MoCo",
    "PretrainMethod",
    "RandomInit",
    "SimCLR",
    "build_method",
    "byol_momentum",
    "frozen_copy",
    "intensity_jitter",
    "momentum_update",
    "partition_index",
    "positional_positives",
]
