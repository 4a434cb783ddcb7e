"""Pretraining methods, registered by name in the plain dict ``METHODS``.

A method says which model parts it trains, which loss, and whether it needs pseudo-labels.
The training loop, encoder, augmentations and fine-tuning are shared, so comparisons
isolate the pretraining.
"""

from medcl.methods._contrastive import UFC, ContrastiveMethod, SimCLR
from medcl.methods._random import RandomInit

METHODS = {"random": RandomInit(), "simclr": SimCLR(), "ufc": UFC()}

__all__ = ["METHODS", "ContrastiveMethod", "RandomInit", "SimCLR", "UFC"]
