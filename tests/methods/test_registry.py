"""Contract tests over every registered pretraining method."""

import pytest
import torch

from medcl.methods import METHODS, Batch, build_method
from medcl.models import UNetEncoder

PRETRAINING = sorted(n for n, m in METHODS.items() if m.pretrains)
SETTINGS = dict(
    temperature=0.5, proj_hidden=16, proj_out=8, momentum=0.9, queue_size=6, partitions=3
)


def _batch(seed=0, b=6):
    g = torch.Generator().manual_seed(seed)
    return Batch(
        views=torch.rand(b, 2, 1, 16, 16, generator=g),
        labels=torch.tensor([0, 0, 1, 1, 2, 2])[:b],
        positions=torch.linspace(0, 1, b),
    )


def _method(name, seed=0):
    torch.manual_seed(seed)
    return build_method(name, UNetEncoder(1, (4, 8)), **SETTINGS)


@pytest.mark.parametrize("name", sorted(METHODS))
def test_method_attributes(name):
    method = METHODS[name]
    assert method.name == name
    for flag in ("pretrains", "uses_pseudo_labels", "needs_volumes"):
        assert isinstance(getattr(method, flag), bool)


@pytest.mark.parametrize("name", PRETRAINING)
def test_method_learns_on_a_tiny_batch(name):
    model = _method(name)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    losses = []
    for step in range(1, 13):
        loss = model(_batch())
        assert loss.dim() == 0 and torch.isfinite(loss)
        opt.zero_grad()
        loss.backward()
        opt.step()
        model.after_step(step, 12)
        losses.append(float(loss.detach()))
    # From step 2 on: MoCo's first loss is against a random queue, before any real key.
    assert min(losses[-3:]) < losses[1]
    grads = [p.grad for p in model.encoder.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("name", PRETRAINING)
def test_state_dict_holds_everything_a_resume_needs(name):
    a = _method(name, seed=0)
    a(_batch(1))  # MoCo fills part of its queue here
    a.after_step(1, 10)  # momentum/EMA networks move away from their initial copy
    b = _method(name, seed=1)
    b.load_state_dict(a.state_dict())
    torch.manual_seed(5)
    la = a(_batch(2))
    torch.manual_seed(5)
    lb = b(_batch(2))
    assert torch.allclose(la, lb)


def test_build_method_passes_only_accepted_settings():
    m = build_method("pcl", UNetEncoder(1, (4, 8)), threshold=0.3, queue_size=5, proj_out=8)
    assert m.threshold == 0.3 and m.head.out_dim == 8
    moco = build_method("moco", UNetEncoder(1, (4, 8)), queue_size=5, threshold=0.3)
    assert moco.queue.shape[0] == 5
    with pytest.raises(ValueError, match="does not pretrain"):
        build_method("random", UNetEncoder(1, (4, 8)))
