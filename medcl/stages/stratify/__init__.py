"""``medcl stratify``: unsupervised stratification with a contrastive autoencoder.

Ferrante, Boccato, Duggento, Spasov, Toschi, "Contrastive learning for unsupervised medical
image clustering and reconstruction". Seven stages exchange files through the run directory,
each with its ``done.json`` record (what it read, what it wrote), each runnable alone with
``medcl stratify --stage NAME`` (``refine``, SCAN on the warm-up's encoder, runs only with
``refine.epochs`` > 0):

============  ===========================================  ==================================
stage         reads                                        writes
============  ===========================================  ==================================
``warmup``    training images                              ``warmup/model.pt``
``refine``    ``warmup/model.pt``, training images         ``refine/encoder.pt``
``embed``     ``warmup/model.pt`` (+ refined), every image ``embed/latents.npy``
``cluster``   ``embed/latents.npy``                        ``prototypes.npy``, ``cluster.json``
``decoder``   ``warmup/model.pt``, ``prototypes.npy``      ``decoder.pt``, ``model.pt/.json``
``evaluate``  latents, prototypes, models, labels          ``assignments.csv``, ``metrics.*``
``report``    ``metrics.json``, ``evaluate/``, ``plots``   ``report.md``, ``report.html``
============  ===========================================  ==================================

:func:`assign` (``medcl stratify assign``) gives new image files their strata.
"""

from medcl.stages.stratify._shared import latent_space, load_stratify_data
from medcl.stages.stratify.assign_images import assign
from medcl.stages.stratify.clustering import (
    K_RULES,
    cluster_latents,
    k_by_rule,
    update_prototypes,
)
from medcl.stages.stratify.decoder import residual_and_assignment
from medcl.stages.stratify.evaluate import PAPER_MNIST, assign_latents
from medcl.stages.stratify.pipeline import STAGES, run_stratify
from medcl.stratify_config import StratifyConfig, load_stratify_config

__all__ = [
    "K_RULES",
    "PAPER_MNIST",
    "STAGES",
    "StratifyConfig",
    "assign",
    "assign_latents",
    "k_by_rule",
    "cluster_latents",
    "latent_space",
    "load_stratify_config",
    "load_stratify_data",
    "residual_and_assignment",
    "run_stratify",
    "update_prototypes",
]
