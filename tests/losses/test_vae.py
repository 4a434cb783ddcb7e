import math

import pytest
import torch

from medcl.losses import vae_loss


def test_kl_of_standard_normal_is_zero():
    x = torch.rand(3, 1, 4, 4)
    _, _, kl = vae_loss(x, x, torch.zeros(3, 8), torch.zeros(3, 8))
    assert kl.item() == 0.0


def test_hand_values():
    # Row 0: mu = (1, 2), logvar = (0, log 2); row 1 is the standard normal (KL 0).
    mu = torch.tensor([[1.0, 2.0], [0.0, 0.0]])
    logvar = torch.tensor([[0.0, math.log(2.0)], [0.0, 0.0]])
    kl_row0 = -0.5 * ((1 + 0 - 1 - 1) + (1 + math.log(2) - 4 - 2))
    x = torch.zeros(2, 1, 2, 2)
    recon = torch.zeros(2, 1, 2, 2)
    recon[0, 0, 0, 0] = 1.0
    recon[1, 0, 1, 1] = -2.0
    rec_want = (1.0**2 + 2.0**2) / 2  # summed over pixels, averaged over the batch of 2
    total, rec, kl = vae_loss(recon, x, mu, logvar, beta=4.0)
    assert kl.item() == pytest.approx(kl_row0 / 2, abs=1e-6)
    assert rec.item() == pytest.approx(rec_want, abs=1e-6)
    assert total.item() == pytest.approx(rec_want + 4.0 * kl_row0 / 2, abs=1e-5)


def test_beta_zero_is_plain_autoencoder():
    gen = torch.Generator().manual_seed(0)
    recon, x = torch.rand(2, 3, 4, generator=gen), torch.rand(2, 3, 4, generator=gen)
    mu, logvar = torch.randn(2, 5, generator=gen), torch.randn(2, 5, generator=gen)
    total, rec, kl = vae_loss(recon, x, mu, logvar, beta=0.0)
    assert total.item() == rec.item()
    assert kl.item() > 0  # still reported
    # An infinite KL does not leak into the total as NaN.
    total, _, kl = vae_loss(recon, x, mu, torch.full((2, 5), 1e4), beta=0)
    assert math.isinf(kl.item()) and math.isfinite(total.item())


def test_bce_from_logits():
    gen = torch.Generator().manual_seed(1)
    logits, x = torch.randn(3, 1, 5, 5, generator=gen), torch.rand(3, 1, 5, 5, generator=gen)
    _, rec, _ = vae_loss(logits, x, torch.zeros(3, 2), torch.zeros(3, 2), recon_loss="bce")
    p = torch.sigmoid(logits)
    want = -(x * p.log() + (1 - x) * (1 - p).log()).sum() / 3
    torch.testing.assert_close(rec, want)


def test_gradients_flow():
    mu = torch.randn(4, 3, requires_grad=True)
    logvar = torch.randn(4, 3, requires_grad=True)
    recon = torch.rand(4, 6, requires_grad=True)
    total, _, _ = vae_loss(recon, torch.rand(4, 6), mu, logvar, beta=2.0)
    total.backward()
    for t in (mu, logvar, recon):
        assert torch.isfinite(t.grad).all() and t.grad.abs().sum() > 0
    # dKL/dmu = mu / batch
    torch.testing.assert_close(mu.grad, 2.0 * mu.detach() / 4)


@pytest.mark.parametrize("beta", [-1.0, float("nan"), float("inf"), "1"])
def test_bad_beta_raises(beta):
    x = torch.rand(2, 3)
    with pytest.raises(ValueError, match="beta"):
        vae_loss(x, x, torch.zeros(2, 2), torch.zeros(2, 2), beta=beta)


def test_bad_arguments_raise():
    x = torch.rand(2, 3)
    z = torch.zeros(2, 2)
    with pytest.raises(ValueError, match="l1"):
        vae_loss(x, x, z, z, recon_loss="l1")
    with pytest.raises(ValueError, match="recon"):
        vae_loss(torch.rand(2, 4), x, z, z)
    with pytest.raises(ValueError, match="logvar"):
        vae_loss(x, x, z, torch.zeros(2, 3))
    with pytest.raises(ValueError, match="batch"):
        vae_loss(x, x, torch.zeros(3, 2), torch.zeros(3, 2))
