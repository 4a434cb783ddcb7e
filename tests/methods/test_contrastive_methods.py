"""SimCLR, UFC, GLCL and PCL: the same loss, with positives chosen by each method."""

import pytest
import torch

from medcl.losses import cluster_contrastive_loss
from medcl.methods import Batch, build_method, partition_index, positional_positives
from medcl.models import UNetEncoder


def _model(name, **kw):
    torch.manual_seed(0)
    return build_method(name, UNetEncoder(1, (4, 8)), proj_hidden=16, proj_out=8, **kw).eval()


def test_simclr_is_ntxent_and_ignores_labels_and_positions():
    model = _model("simclr", temperature=0.1)
    views = torch.rand(4, 2, 1, 16, 16)
    z = model.project(views)
    expected = cluster_contrastive_loss(z, None, 0.1, "supcon")
    got = model(Batch(views, torch.zeros(4, dtype=torch.long), torch.zeros(4)))
    assert torch.allclose(got, expected)


def test_ufc_uses_pseudo_labels_and_its_variant():
    views = torch.rand(4, 2, 1, 16, 16)
    ufc = _model("ufc", temperature=0.1)
    a = ufc(Batch(views, torch.tensor([0, 0, 1, 1])))
    b = ufc(Batch(views, torch.tensor([0, 1, 2, 3])))
    assert not torch.allclose(a, b)
    z = ufc.project(views)
    assert torch.allclose(a, cluster_contrastive_loss(z, torch.tensor([0, 0, 1, 1]), 0.1, "ufc"))
    sup = _model("ufc", temperature=0.1, variant="supcon")
    expected = cluster_contrastive_loss(z, torch.tensor([0, 0, 1, 1]), 0.1, "supcon")
    assert torch.allclose(sup(Batch(views, torch.tensor([0, 0, 1, 1]))), expected)


def test_glcl_partitions_by_hand():
    pos = torch.tensor([0.0, 0.24, 0.25, 0.49, 0.5, 0.74, 0.75, 1.0])
    assert partition_index(pos, 4).tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    assert partition_index(pos, 1).tolist() == [0] * 8
    assert partition_index(torch.tensor([0.1, 0.4, 0.7, 0.99]), 3).tolist() == [0, 1, 2, 2]


def test_glcl_loss_is_supcon_over_partitions():
    views = torch.rand(4, 2, 1, 16, 16)
    pos = torch.tensor([0.1, 0.2, 0.6, 0.9])
    model = _model("glcl", temperature=0.2, partitions=2)
    z = model.project(views)
    expected = cluster_contrastive_loss(z, torch.tensor([0, 0, 1, 1]), 0.2, "supcon")
    assert torch.allclose(model(Batch(views, positions=pos)), expected)


def test_pcl_positive_mask_by_hand():
    pos = torch.tensor([0.0, 0.05, 0.12, 0.5, 0.58])
    mask = positional_positives(pos, 0.1)
    expected = torch.tensor(
        [
            [1, 1, 0, 0, 0],
            [1, 1, 1, 0, 0],  # 0.07 apart from 0.12
            [0, 1, 1, 0, 0],
            [0, 0, 0, 1, 1],
            [0, 0, 0, 1, 1],
        ],
        dtype=torch.bool,
    )
    assert torch.equal(mask, expected)


def test_pcl_loss_is_supcon_over_the_positional_relation():
    views = torch.rand(3, 2, 1, 16, 16)
    pos = torch.tensor([0.0, 0.05, 0.12])
    model = _model("pcl", temperature=0.2, threshold=0.1)
    with torch.no_grad():
        z = model.project(views)
    # By hand: rows of image 0 have positives {own other view, image 1's two views}, etc.
    zn = torch.nn.functional.normalize(z.reshape(6, -1), dim=1)
    sim = zn @ zn.T / 0.2
    img = torch.arange(6) // 2
    rel = positional_positives(pos, 0.1)
    total = 0.0
    for i in range(6):
        others = [k for k in range(6) if k != i]
        denom = torch.logsumexp(sim[i, others], 0)
        pos_j = [j for j in others if rel[img[i], img[j]]]
        total += sum(float(sim[i, j] - denom) for j in pos_j) / len(pos_j)
    with torch.no_grad():
        got = float(model(Batch(views, positions=pos)))
    assert got == pytest.approx(-total / 6, rel=1e-5)


def test_loss_refuses_an_asymmetric_positive_matrix():
    rel = torch.tensor([[True, True], [False, True]])
    with pytest.raises(ValueError, match="symmetric"):
        cluster_contrastive_loss(torch.randn(2, 2, 4), positives=rel)
    with pytest.raises(ValueError, match="not both"):
        cluster_contrastive_loss(torch.randn(2, 2, 4), torch.tensor([0, 1]), positives=rel)


def test_positives_matrix_from_labels_equals_labels():
    z = torch.randn(5, 2, 8)
    labels = torch.tensor([0, 1, 0, 2, 1])
    rel = labels[:, None] == labels[None, :]
    for variant in ("ufc", "supcon"):
        a = cluster_contrastive_loss(z, labels, 0.3, variant)
        b = cluster_contrastive_loss(z, None, 0.3, variant, positives=rel)
        assert torch.allclose(a, b)
