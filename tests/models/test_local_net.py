"""The local-discrimination network's heads."""

import pytest
import torch

from medcl.models import LocalDiscriminationNet, UNetEncoder


@pytest.mark.parametrize("size", [(16, 16), (32, 16)])
def test_heads_shapes_and_normalisation(size):
    net = LocalDiscriminationNet(UNetEncoder(2, (4, 8, 16)), embed_dim=5, n_clusters=7)
    emb, assign, pooled = net(torch.rand(3, 2, *size))
    assert emb.shape == (3, 5, *size) and assign.shape == (3, 7, *size)
    assert pooled.shape == (3, 16)
    assert torch.allclose(emb.norm(dim=1), torch.ones(3, *size), atol=1e-5)
    assert torch.allclose(assign.sum(dim=1), torch.ones(3, *size), atol=1e-5)
    assert (assign >= 0).all()


def test_bad_head_sizes_raise():
    with pytest.raises(ValueError, match="n_clusters"):
        LocalDiscriminationNet(UNetEncoder(1, (4, 8)), n_clusters=1)
