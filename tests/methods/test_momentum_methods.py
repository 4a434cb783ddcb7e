"""MoCo v2 and BYOL: losses, queue and momentum updates against hand computations."""

import math

import pytest
import torch
import torch.nn.functional as F

from medcl.losses import byol_loss, moco_loss
from medcl.methods import Batch, build_method, byol_momentum, momentum_update
from medcl.models import UNetEncoder


def test_momentum_update_by_hand():
    target, online = torch.nn.Linear(2, 1), torch.nn.Linear(2, 1)
    with torch.no_grad():
        target.weight.copy_(torch.tensor([[1.0, 2.0]]))
        target.bias.fill_(0.0)
        online.weight.copy_(torch.tensor([[3.0, -2.0]]))
        online.bias.fill_(10.0)
    momentum_update(target, online, 0.9)
    # 0.9 * [1, 2] + 0.1 * [3, -2] = [1.2, 1.6]; 0.9 * 0 + 0.1 * 10 = 1
    assert torch.allclose(target.weight, torch.tensor([[1.2, 1.6]]))
    assert torch.allclose(target.bias, torch.tensor([1.0]))
    assert torch.allclose(online.weight, torch.tensor([[3.0, -2.0]]))  # online untouched


def test_byol_momentum_schedule():
    assert byol_momentum(0, 100, 0.996) == pytest.approx(0.996)
    assert byol_momentum(50, 100, 0.996) == pytest.approx(1 - 0.004 * 0.5)
    assert byol_momentum(100, 100, 0.996) == pytest.approx(1.0)
    assert byol_momentum(25, 100, 0.99) == pytest.approx(1 - 0.01 * (math.cos(math.pi / 4) + 1) / 2)


def test_moco_loss_by_hand():
    q = F.normalize(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), dim=1)
    k = F.normalize(torch.tensor([[1.0, 1.0], [0.0, 1.0]]), dim=1)
    queue = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, -1.0]])
    t = 0.5
    s = 1 / math.sqrt(2)
    # row 0: pos = q0.k0 = s; negatives q0.queue = [1, -1, 0]
    r0 = -(s / t) + math.log(math.exp(s / t) + math.exp(1 / t) + math.exp(-1 / t) + 1)
    # row 1: pos = 1; negatives [0, 0, -1]
    r1 = -(1 / t) + math.log(math.exp(1 / t) + 1 + 1 + math.exp(-1 / t))
    assert float(moco_loss(q, k, queue, t)) == pytest.approx((r0 + r1) / 2, rel=1e-6)


def _moco(**kw):
    torch.manual_seed(0)
    settings = dict(proj_hidden=16, proj_out=4, queue_size=5, momentum=0.99) | kw
    return build_method("moco", UNetEncoder(1, (4, 8)), **settings)


def test_moco_queue_is_a_ring_buffer():
    moco = _moco()
    keys = F.normalize(torch.arange(12.0).view(3, 4) + 1, dim=1)
    before = moco.queue.clone()
    moco.enqueue(keys)
    assert torch.allclose(moco.queue[:3], keys) and torch.allclose(moco.queue[3:], before[3:])
    more = F.normalize(-torch.arange(12.0).view(3, 4) - 1, dim=1)
    moco.enqueue(more)  # wraps around: slots 3, 4, then 0
    assert torch.allclose(moco.queue[3:], more[:2]) and torch.allclose(moco.queue[0], more[2])
    assert int(moco.queue_ptr) == 1


def test_moco_forward_enqueues_the_keys_it_computed():
    moco = _moco(queue_size=8)
    views = torch.rand(3, 2, 1, 16, 16)
    with torch.no_grad():
        k = F.normalize(moco.key_head(moco.key_encoder(views[:, 1])), dim=1)
    moco(Batch(views))
    assert torch.allclose(moco.queue[:3], k, atol=1e-6)


def test_moco_after_step_moves_only_the_key_networks():
    moco = _moco(momentum=0.75)
    with torch.no_grad():
        for p in moco.encoder.parameters():
            p.add_(1.0)
    q_before = [p.clone() for p in moco.encoder.parameters()]
    k_before = [p.clone() for p in moco.key_encoder.parameters()]
    moco.after_step(1, 10)
    for q, k0, k1 in zip(q_before, k_before, moco.key_encoder.parameters(), strict=True):
        assert torch.allclose(k1, 0.75 * k0 + 0.25 * q)
    assert all(torch.equal(a, b) for a, b in zip(q_before, moco.encoder.parameters(), strict=True))
    assert not any(p.requires_grad for p in moco.key_encoder.parameters())


def test_byol_loss_by_hand():
    p = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    z = torch.tensor([[0.0, 2.0], [2.0, 2.0]])
    # cos = 0 and 1: (2 - 0 + 2 - 2) / 2 = 1
    assert float(byol_loss(p, z)) == pytest.approx(1.0)


def test_byol_is_symmetric_and_target_gets_no_gradient():
    torch.manual_seed(0)
    byol = build_method("byol", UNetEncoder(1, (4, 8)), proj_hidden=16, proj_out=4)
    views = torch.rand(4, 2, 1, 16, 16)
    torch.manual_seed(1)
    a = byol(Batch(views))
    torch.manual_seed(1)
    b = byol(Batch(views.flip(1)))  # swap the two views
    assert torch.allclose(a, b, atol=1e-6)
    a.backward()
    assert all(p.grad is None for p in byol.target_encoder.parameters())
    assert any(p.grad is not None for p in byol.predictor.parameters())


def test_byol_after_step_follows_the_cosine_schedule():
    torch.manual_seed(0)
    byol = build_method(
        "byol", UNetEncoder(1, (4, 8)), proj_hidden=16, proj_out=4, base_momentum=0.9
    )
    with torch.no_grad():
        for p in byol.encoder.parameters():
            p.add_(1.0)
    online = [p.clone() for p in byol.encoder.parameters()]
    target = [p.clone() for p in byol.target_encoder.parameters()]
    byol.after_step(5, 10)  # halfway: m = 1 - 0.1 * 0.5 = 0.95
    for o, t0, t1 in zip(online, target, byol.target_encoder.parameters(), strict=True):
        assert torch.allclose(t1, 0.95 * t0 + 0.05 * o)
