"""Loss functions: pure functions with thin ``nn.Module`` wrappers.

``cluster_contrastive_loss`` is the one contrastive loss in which labels decide the
positives (instance ids give SimCLR, pseudo-classes give UFC); ``vae_loss`` is the
beta-VAE objective used to learn the features that are clustered.
"""

from medcl.losses._contrastive import ClusterContrastiveLoss, cluster_contrastive_loss
from medcl.losses._vae import vae_loss

__all__ = ["ClusterContrastiveLoss", "cluster_contrastive_loss", "vae_loss"]
