"""Loss functions: pure functions with thin ``nn.Module`` wrappers.

``cluster_contrastive_loss`` is the one contrastive loss in which labels (or a positive
relation) decide the positives: instance ids give SimCLR, pseudo-classes give UFC, partitions
of a volume give GLCL, nearby slice positions give PCL. ``moco_loss`` and ``byol_loss`` are
the momentum methods' objectives; ``vae_loss`` is the beta-VAE objective used to learn the
features that are clustered.
"""

from medcl.losses._contrastive import ClusterContrastiveLoss, cluster_contrastive_loss
from medcl.losses._momentum import byol_loss, moco_loss
from medcl.losses._vae import vae_loss

__all__ = [
    "ClusterContrastiveLoss",
    "byol_loss",
    "cluster_contrastive_loss",
    "moco_loss",
    "vae_loss",
]
