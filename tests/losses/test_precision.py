"""The losses run in float32 inside a bf16 autocast region (the GPU default precision)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from medcl.losses import byol_loss, cluster_contrastive_loss, local_discrimination_loss, moco_loss


def _cases():
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(16, 2, 64, generator=g)
    labels = torch.randint(0, 4, (16,), generator=g)
    q = F.normalize(torch.randn(16, 32, generator=g), dim=1)
    k = F.normalize(torch.randn(16, 32, generator=g), dim=1)
    queue = F.normalize(torch.randn(64, 32, generator=g), dim=1)
    emb = F.normalize(torch.randn(2, 8, 6, 6, generator=g), dim=1)
    assign = torch.softmax(torch.randn(2, 5, 6, 6, generator=g), dim=1)
    return {
        "ufc": (lambda: cluster_contrastive_loss(feats, labels, 0.1, "ufc")),
        "simclr": (lambda: cluster_contrastive_loss(feats, None, 0.1, "supcon")),
        "moco": (lambda: moco_loss(q, k, queue, 0.2)),
        "byol": (lambda: byol_loss(q, k)),
        "ld": (lambda: local_discrimination_loss(emb, assign, 0.1)[0]),
    }


@pytest.mark.parametrize("name", list(_cases()))
def test_loss_under_bf16_autocast_equals_the_float32_loss(name):
    fn = _cases()[name]
    reference = fn()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = fn()
    assert mixed.dtype == torch.float32
    assert float(mixed) == pytest.approx(float(reference), rel=1e-6, abs=1e-6)


def test_bf16_matmul_would_round_the_similarities():
    """Why the losses opt out: the same logits in bf16 autocast are visibly rounded."""
    z = F.normalize(torch.randn(64, 128, generator=torch.Generator().manual_seed(1)), dim=1)
    exact = z @ z.T / 0.1
    with torch.autocast("cpu", dtype=torch.bfloat16):
        rounded = z @ z.T / 0.1
    assert rounded.dtype == torch.bfloat16
    assert float((rounded.float() - exact).abs().max()) > 1e-2


def test_gradients_reach_bf16_inputs():
    feats = torch.randn(8, 2, 16, dtype=torch.bfloat16, requires_grad=True)
    loss = cluster_contrastive_loss(feats, torch.tensor([0, 0, 1, 1, 2, 2, 3, 3]))
    loss.backward()
    assert loss.dtype == torch.float32
    assert feats.grad is not None and feats.grad.dtype == torch.bfloat16
    assert torch.isfinite(feats.grad.float()).all()
