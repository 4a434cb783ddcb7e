"""Local discrimination and prior losses against hand computations."""

import math

import pytest
import torch
import torch.nn.functional as F

from medcl.losses import (
    cluster_centres,
    gaussian_kl,
    local_discrimination_loss,
    mask_statistics,
    prior_kl,
)


def _maps(e, a, h=1, w=None):
    """(N, D), (N, M) -> (1, D, 1, N), (1, M, 1, N)."""
    return e.T[None, :, None, :], a.T[None, :, None, :]


def test_centres_are_normalised_weighted_means():
    e = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    a = torch.tensor([[1.0, 0.0], [0.5, 0.5], [1.0, 0.0]])
    c = cluster_centres(e, a)
    # cluster 0: (1, 0) + 0.5 (0, 1) + (1, 0) = (2, 0.5); cluster 1: (0, 0.5)
    assert torch.allclose(c[0], F.normalize(torch.tensor([2.0, 0.5]), dim=0))
    assert torch.allclose(c[1], torch.tensor([0.0, 1.0]))


def test_terms_by_hand():
    e = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0]])  # two pure clusters at right angles
    emb, assign = _maps(e, a)
    t = 0.5
    loss, terms = local_discrimination_loss(emb, assign, t, weights={"entropy": 0.0})
    # each pixel: cos 1 to its centre, 0 to the other -> -log(e^2 / (e^2 + e^0))
    pixel = -math.log(math.exp(2) / (math.exp(2) + 1))
    assert float(terms["pixel"]) == pytest.approx(pixel, rel=1e-5)
    assert float(terms["separation"]) == pytest.approx(0.0, abs=1e-6)  # orthogonal centres
    assert float(terms["balance"]) == pytest.approx(0.0, abs=1e-6)  # half the pixels each
    assert float(terms["entropy"]) == pytest.approx(0.0, abs=1e-6)  # confident assignments
    assert float(loss) == pytest.approx(pixel, rel=1e-5)


def test_collapse_is_penalised():
    e = F.normalize(torch.randn(8, 4), dim=1)
    one = torch.zeros(8, 3)
    one[:, 0] = 1  # every pixel in cluster 0
    _, terms = local_discrimination_loss(*_maps(e, one), 0.1)
    assert float(terms["balance"]) == pytest.approx(math.log(3), rel=1e-5)  # KL(one-hot || uniform)
    uniform = torch.full((8, 3), 1 / 3)
    _, terms = local_discrimination_loss(*_maps(e, uniform), 0.1)
    assert float(terms["entropy"]) == pytest.approx(1.0, rel=1e-5)  # maximal per-pixel entropy


def test_empty_cluster_gives_no_nan():
    e = F.normalize(torch.randn(6, 4), dim=1).requires_grad_()
    a = torch.zeros(6, 4)
    a[:3, 0] = 1
    a[3:, 1] = 1  # clusters 2 and 3 are empty
    logits = a.clone().requires_grad_()
    emb, assign = _maps(e, logits)
    loss, terms = local_discrimination_loss(emb, assign, 0.1)
    loss.backward()
    assert torch.isfinite(loss) and all(math.isfinite(v) for v in terms.values())
    assert torch.isfinite(e.grad).all() and torch.isfinite(logits.grad).all()


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match="expected emb"):
        local_discrimination_loss(torch.rand(2, 3, 4), torch.rand(2, 3, 4, 4))
    with pytest.raises(ValueError, match="temperature"):
        local_discrimination_loss(torch.rand(1, 2, 2, 2), torch.rand(1, 2, 2, 2), 0.0)


def test_mask_statistics_by_hand():
    m = torch.zeros(1, 4, 4)
    m[0, 0:2, 2:4] = 1  # top-right 2x2 block
    cy, cx, area, sy, sx = mask_statistics(m)[0].tolist()
    assert cy == pytest.approx(0.25) and cx == pytest.approx(0.75)  # centres 0.125, 0.375
    assert area == pytest.approx(0.25)
    assert sy == pytest.approx(0.125, rel=1e-3) and sx == pytest.approx(0.125, rel=1e-3)


def test_gaussian_kl_by_hand():
    z = torch.zeros(2)
    one = torch.ones(2)
    assert float(gaussian_kl(z, one, z, one)) == pytest.approx(0.0)
    # 1-D: KL(N(0, 1) || N(1, 4)) = 0.5 (1/4 + 1/4 - 1 + log 4)
    got = gaussian_kl(
        torch.tensor([0.0]), torch.tensor([1.0]), torch.tensor([1.0]), torch.tensor([4.0])
    )
    assert float(got) == pytest.approx(0.5 * (0.25 + 0.25 - 1 + math.log(4)))


def test_prior_kl_is_smaller_for_masks_like_the_references():
    refs = torch.zeros(4, 8, 8)
    for i in range(4):
        refs[i, 2 + i % 2 : 6, 2:6] = 1
    stats = mask_statistics(refs)
    mean, var = stats.mean(0), stats.var(0, unbiased=False)
    like = refs.flip(0)
    unlike = torch.zeros(4, 8, 8)
    unlike[:, 6:, :] = 1  # a band at the bottom
    assert float(prior_kl(like, mean, var)) < 1e-3
    assert float(prior_kl(unlike, mean, var)) > 10
