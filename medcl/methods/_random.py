"""Random initialisation: the baseline that skips pretraining."""

from __future__ import annotations


class RandomInit:
    """No pretraining: fine-tuning starts from a randomly initialised encoder."""

    name = "random"
    pretrains = False
    uses_pseudo_labels = False
    needs_volumes = False
