"""SCAN's losses: neighbour consistency with its entropy term, and self-labelling."""

import math

import pytest
import torch
import torch.nn.functional as F

from medcl.losses import scan_loss, self_label_loss


def test_scan_consistency_is_low_when_neighbours_agree_and_high_when_they_do_not():
    a = torch.tensor([[8.0, 0, 0], [0, 8.0, 0]])
    agree = scan_loss(a, a.clone())[1]
    disagree = scan_loss(a, a[[1, 0]])[1]
    assert float(agree) < 0.01 and float(disagree) > 5.0


def test_scan_entropy_is_that_of_the_mean_assignment():
    k = 4
    spread = torch.eye(k) * 20  # every cluster used once: log k
    collapsed = torch.zeros(k, k)
    collapsed[:, 0] = 20  # all in one cluster: 0
    assert float(scan_loss(spread, spread)[2]) == pytest.approx(math.log(k), abs=1e-4)
    assert float(scan_loss(collapsed, collapsed)[2]) == pytest.approx(0.0, abs=1e-4)
    total, consistency, entropy = scan_loss(spread, spread, entropy_weight=2.0)
    assert float(total) == pytest.approx(float(consistency - 2.0 * entropy))


def test_a_gradient_step_on_scan_loss_makes_neighbours_agree():
    torch.manual_seed(0)
    head = torch.nn.Linear(2, 3)
    x = torch.randn(16, 2)
    neighbour = x + 0.01 * torch.randn(16, 2)
    opt = torch.optim.SGD(head.parameters(), lr=0.5)
    with torch.no_grad():
        before = float(scan_loss(head(x), head(neighbour))[1])
    for _ in range(50):
        loss = scan_loss(head(x), head(neighbour), entropy_weight=1.0)[0]
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        assert float(scan_loss(head(x), head(neighbour))[1]) < before / 2


def test_self_label_keeps_only_confident_images_and_balances_clusters():
    weak = torch.tensor([[9.0, 0], [9.0, 0], [9.0, 0], [0, 9.0], [0.2, 0]])  # the last is unsure
    strong = torch.tensor([[1.0, 0], [0, 1.0], [2.0, 0], [0, 3.0], [0, 9.0]], requires_grad=True)
    loss, n = self_label_loss(weak, strong, threshold=0.99)
    assert n == 4
    each = F.cross_entropy(strong[:4], torch.tensor([0, 0, 0, 1]), reduction="none")
    per_cluster = (each[:3].mean() + each[3]) / 2  # each cluster counts once, not per image
    assert loss.item() == pytest.approx(per_cluster.item(), rel=1e-5)
    plain, _ = self_label_loss(weak, strong, threshold=0.99, balance=False)
    assert plain.item() == pytest.approx(each.mean().item(), rel=1e-5)


def test_self_label_without_confident_images_is_zero_and_still_differentiable():
    strong = torch.zeros(3, 2, requires_grad=True)
    loss, n = self_label_loss(torch.zeros(3, 2), strong)
    assert n == 0 and loss.item() == 0.0
    loss.backward()
    assert strong.grad is not None and float(strong.grad.abs().sum()) == 0.0
