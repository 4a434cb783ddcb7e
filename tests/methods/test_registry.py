"""Contract tests over every registered pretraining method."""

import pytest
import torch

from medcl.losses import cluster_contrastive_loss
from medcl.methods import METHODS
from medcl.models import UNetEncoder


@pytest.mark.parametrize("name", sorted(METHODS))
def test_method_contract(name):
    method = METHODS[name]
    assert method.name == name
    assert isinstance(method.pretrains, bool) and isinstance(method.uses_pseudo_labels, bool)
    if not method.pretrains:
        return
    torch.manual_seed(0)
    enc = UNetEncoder(1, (4, 8))
    head = method.build_head(enc.out_dim, 16, 8)
    views = torch.rand(6, 2, 1, 16, 16)
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    params = list(enc.parameters()) + list(head.parameters())
    opt = torch.optim.SGD(params, lr=0.05)
    losses = []
    for _ in range(8):
        loss = method.loss(enc, head, views, labels, 0.5)
        assert torch.isfinite(loss)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0]  # it learns on a fixed tiny batch


def test_simclr_is_ntxent_and_ignores_pseudo_labels():
    torch.manual_seed(0)
    enc = UNetEncoder(1, (4, 8)).eval()
    head = METHODS["simclr"].build_head(enc.out_dim, 16, 8).eval()
    views = torch.rand(4, 2, 1, 16, 16)
    z = head(enc(views.flatten(0, 1))).view(4, 2, -1)
    expected = cluster_contrastive_loss(z, None, 0.1, "supcon")
    got = METHODS["simclr"].loss(enc, head, views, torch.zeros(4, dtype=torch.long), 0.1)
    assert torch.allclose(got, expected)


def test_ufc_uses_pseudo_labels():
    torch.manual_seed(0)
    enc = UNetEncoder(1, (4, 8)).eval()
    head = METHODS["ufc"].build_head(enc.out_dim, 16, 8).eval()
    views = torch.rand(4, 2, 1, 16, 16)
    a = METHODS["ufc"].loss(enc, head, views, torch.tensor([0, 0, 1, 1]), 0.1)
    b = METHODS["ufc"].loss(enc, head, views, torch.tensor([0, 1, 2, 3]), 0.1)
    assert not torch.allclose(a, b)
