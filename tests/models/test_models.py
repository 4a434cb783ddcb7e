import pytest
import torch

from medcl.models import (
    BetaVAE,
    ProjectionHead,
    SegmentationUNet,
    SimCLRProjectionHead,
    UNetEncoder,
)


@pytest.mark.parametrize("dims,size", [(2, (32, 16)), (3, (16, 16, 8))])
def test_encoder_features_shapes_2d_and_3d(dims, size):
    enc = UNetEncoder(1, (4, 8, 16), spatial_dims=dims)
    feats = enc.forward_features(torch.rand(2, 1, *size))
    assert [f.shape[1] for f in feats] == [4, 8, 16]
    for level, f in enumerate(feats):
        assert tuple(f.shape[2:]) == tuple(s // 2**level for s in size)
    assert enc(torch.rand(2, 1, *size)).shape == (2, 16)


def test_segmentation_unet_output_and_encoder_reuse():
    enc = UNetEncoder(3, (4, 8, 16))
    model = SegmentationUNet(enc, num_classes=5)
    assert model(torch.rand(2, 3, 24, 40)).shape == (2, 5, 24, 40)
    assert model.encoder is enc  # pretrained weights are the same tensors


def test_encoder_rejects_single_level():
    with pytest.raises(ValueError, match="at least two"):
        UNetEncoder(1, (8,))


def test_vae_api_and_modes():
    torch.manual_seed(0)
    vae = BetaVAE((32, 16), latent_dim=6, channels=(4, 8, 16))
    x = torch.rand(3, 1, 32, 16)
    mu, logvar = vae.encode(x)
    assert mu.shape == logvar.shape == (3, 6)
    vae.train()
    z = vae.reparameterize(mu, logvar)
    assert not torch.allclose(z, mu)  # sampling while training
    vae.eval()
    assert torch.equal(vae.reparameterize(mu, logvar), mu)  # the mean at evaluation
    recon = vae.decode(mu)
    assert recon.shape == x.shape and recon.min() >= 0 and recon.max() <= 1
    ae = BetaVAE((32, 16), latent_dim=6, channels=(4, 8, 16), variational=False).train()
    mu, logvar = ae.encode(x)
    assert torch.equal(logvar, torch.zeros_like(logvar))
    assert torch.equal(ae.reparameterize(mu, logvar), mu)  # a plain AE never samples


def test_vae_rejects_indivisible_size():
    with pytest.raises(ValueError, match="divisible by 4"):
        BetaVAE((30, 16), channels=(4, 8, 16))


def test_projection_head_spec():
    head = ProjectionHead([16, 32, 8])
    linears = [m for m in head.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(16, 32), (32, 8)]
    assert head(torch.rand(4, 16)).shape == (4, 8)
    paper = SimCLRProjectionHead(128)
    assert paper.out_dim == 256 and paper(torch.rand(4, 128)).shape == (4, 256)
    with pytest.raises(ValueError):
        ProjectionHead([16])
