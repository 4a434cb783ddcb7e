"""Loss functions: pure functions with thin ``nn.Module`` wrappers.

``cluster_contrastive_loss`` is the one contrastive loss in which labels (or a positive
relation) decide the positives: instance ids give SimCLR, pseudo-classes give UFC, partitions
of a volume give GLCL, nearby slice positions give PCL. ``moco_loss`` and ``byol_loss`` are
the momentum methods' objectives; ``local_discrimination_loss`` and ``prior_kl`` serve local
discrimination; ``vae_loss`` is the beta-VAE objective used to learn the features that are
clustered; ``scan_loss`` and ``self_label_loss`` are SCAN's two steps, studied as a way to
refine the stratification's clusters (``benchmarks/scan_refine_study.py``).
"""

from medcl.losses._contrastive import ClusterContrastiveLoss, cluster_contrastive_loss
from medcl.losses._local import (
    cluster_centres,
    gaussian_kl,
    local_discrimination_loss,
    mask_statistics,
    prior_kl,
)
from medcl.losses._momentum import byol_loss, moco_loss
from medcl.losses._scan import scan_loss, self_label_loss
from medcl.losses._vae import vae_loss

__all__ = [
    "ClusterContrastiveLoss",
    "byol_loss",
    "cluster_centres",
    "cluster_contrastive_loss",
    "gaussian_kl",
    "local_discrimination_loss",
    "mask_statistics",
    "moco_loss",
    "prior_kl",
    "scan_loss",
    "self_label_loss",
    "vae_loss",
]
