"""GLCL's local, decoder-level loss and the transfer of its pretrained decoder."""

import pytest
import torch

import medcl.methods._contrastive as contrastive
from medcl.losses import cluster_contrastive_loss
from medcl.methods import Batch, build_method, intensity_jitter
from medcl.models import UNetEncoder


def _glcl(**kw):
    torch.manual_seed(0)
    settings = dict(proj_hidden=16, proj_out=8, local_weight=1.0, local_regions=2) | kw
    return build_method("glcl", UNetEncoder(1, (4, 8)), **settings)


def test_intensity_jitter_is_per_image_affine_and_keeps_pixels_in_place():
    x = torch.rand(3, 1, 8, 8)
    y = intensity_jitter(x, strength=0.3)
    for i in range(3):
        a, c = torch.linalg.lstsq(
            torch.stack([x[i].flatten(), torch.ones(64)], 1), y[i].flatten()[:, None]
        ).solution.flatten()
        assert torch.allclose(y[i], a * x[i] + c, atol=1e-5)
        assert 0.7 - 1e-6 <= float(a) <= 1.3 + 1e-6 and abs(float(c)) <= 0.15 + 1e-6


def test_local_loss_pairs_the_same_region_of_the_two_views():
    model = _glcl(temperature=0.5).eval()
    x = torch.rand(2, 1, 16, 16)
    with torch.no_grad():
        got = model.local_loss(torch.stack([x, x], 1))  # identical views
        f = model.local_head(model.decoder.forward_features(model.encoder.forward_features(x)))
        # by hand: 2 x 2 grid of 8 x 8 blocks, image-major, row-major regions
        regions = torch.stack(
            [
                f[b, :, i : i + 8, j : j + 8].mean((1, 2))
                for b in range(2)
                for i in (0, 8)
                for j in (0, 8)
            ]
        )
        z = torch.stack([regions, regions], 1)  # each region's positive: itself in view 2
        expected = cluster_contrastive_loss(z, None, 0.5, "supcon")
    assert float(got) == pytest.approx(float(expected), rel=1e-5)


def test_local_option_adds_the_weighted_local_loss_and_learns():
    model = _glcl(local_weight=0.5)
    views, x = torch.rand(4, 2, 1, 16, 16), torch.rand(4, 1, 16, 16)
    batch = Batch(views, positions=torch.tensor([0.1, 0.3, 0.6, 0.9]), images=x)
    torch.manual_seed(1)
    total = model(batch)
    torch.manual_seed(1)
    prepared = model.prepare(batch)  # the views forward draws when the stage has not
    assert prepared.extra_views.shape == (4, 2, 1, 16, 16)
    assert model.prepare(prepared) is prepared  # drawn once
    local = model.local_loss(prepared.extra_views)
    glob = contrastive.ContrastiveMethod.forward(model, batch)
    assert float(total.detach()) == pytest.approx(float((glob + 0.5 * local).detach()), rel=1e-4)
    with pytest.raises(ValueError, match="un-augmented images"):
        model(Batch(views, positions=batch.positions))
    with pytest.raises(ValueError, match="un-augmented images"):
        model.prepare(Batch(views, positions=batch.positions))
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    losses = []
    for _ in range(10):
        torch.manual_seed(2)
        loss = model.local_loss(model.prepare(batch).extra_views)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0]
    assert not hasattr(_glcl(local_weight=0.0), "decoder")
