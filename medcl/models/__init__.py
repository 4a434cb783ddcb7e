"""Networks: UNet encoder/decoder, beta-VAE, projection heads, local-discrimination heads."""

from medcl.models._contrastive_ae import (
    ConditionalDecoder,
    ContrastiveAutoencoder,
    ConvDecoder,
    ConvEncoder,
    soft_assign,
)
from medcl.models._heads import ProjectionHead, SimCLRProjectionHead
from medcl.models._local import LocalDiscriminationNet
from medcl.models._unet import SegmentationUNet, UNetDecoder, UNetEncoder, standardize_images
from medcl.models._vae import BetaVAE

__all__ = [
    "BetaVAE",
    "ConditionalDecoder",
    "ContrastiveAutoencoder",
    "LocalDiscriminationNet",
    "ConvDecoder",
    "ConvEncoder",
    "ProjectionHead",
    "SegmentationUNet",
    "SimCLRProjectionHead",
    "UNetDecoder",
    "UNetEncoder",
    "soft_assign",
    "standardize_images",
]
