"""Networks: UNet encoder/decoder, beta-VAE, projection heads."""

from medcl.models._heads import ProjectionHead, SimCLRProjectionHead
from medcl.models._unet import SegmentationUNet, UNetDecoder, UNetEncoder
from medcl.models._vae import BetaVAE

__all__ = [
    "BetaVAE",
    "ProjectionHead",
    "SegmentationUNet",
    "SimCLRProjectionHead",
    "UNetDecoder",
    "UNetEncoder",
]
