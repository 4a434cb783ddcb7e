import math

import pytest
import torch
import torch.nn.functional as F

from medcl.losses import ClusterContrastiveLoss, cluster_contrastive_loss

# ---------------------------------------------------------------- naive reference (double loops)


def _naive(features, labels, temperature, variant):
    """Eq. 2 of UFC / SupCon L^sup_out with Python loops, in float64, same exclusion rules."""
    b, v, _ = features.shape
    rows = [features[i // v, i % v].double() for i in range(b * v)]
    rows = [r / r.norm() for r in rows]
    lab = (
        [i // v for i in range(b * v)]
        if labels is None
        else [int(labels[i // v]) for i in range(b * v)]
    )
    n = b * v

    def s(i, j):
        return float(rows[i] @ rows[j]) / temperature

    terms = []
    for i in range(n):
        pos = [j for j in range(n) if j != i and lab[j] == lab[i]]
        neg = [k for k in range(n) if k != i and lab[k] != lab[i]]
        if not pos:
            continue
        if variant == "ufc":
            if not neg:
                continue
            num = sum(math.exp(s(i, j)) for j in pos)
            den = sum(math.exp(s(i, k)) for k in neg)
            terms.append(math.log(num / den) / len(pos))
        else:
            den = sum(math.exp(s(i, k)) for k in range(n) if k != i)
            terms.append(sum(s(i, j) - math.log(den) for j in pos) / len(pos))
    if not terms:
        return 0.0
    return -sum(terms) / len(terms)


LABEL_PATTERNS = [
    None,
    [0, 1, 2, 3, 4, 5],
    [0, 0, 1, 1, 2, 2],
    [3, 3, 3, 7, 7, 1],
    [0, 0, 0, 0, 0, 1],
    [5, 5, 5, 5, 5, 5],
]


@pytest.mark.parametrize("variant", ["ufc", "supcon"])
@pytest.mark.parametrize("views", [1, 2, 3])
@pytest.mark.parametrize("labels", LABEL_PATTERNS)
def test_matches_naive_loop(variant, views, labels):
    gen = torch.Generator().manual_seed(len(str(labels)) * 10 + views)
    features = torch.randn(6, views, 5, generator=gen, dtype=torch.float64)
    lab = None if labels is None else torch.tensor(labels)
    got = cluster_contrastive_loss(features, lab, temperature=0.3, variant=variant)
    want = _naive(features, lab, 0.3, variant)
    assert torch.isfinite(got)
    assert got.item() == pytest.approx(want, abs=1e-5, rel=1e-5)


def test_matches_naive_loop_float32_small_temperature():
    gen = torch.Generator().manual_seed(0)
    features = torch.randn(5, 2, 8, generator=gen)
    labels = torch.tensor([0, 1, 0, 2, 1])
    for variant in ("ufc", "supcon"):
        got = cluster_contrastive_loss(features, labels, temperature=0.07, variant=variant)
        assert got.dtype == torch.float32
        assert got.item() == pytest.approx(_naive(features, labels, 0.07, variant), abs=1e-4)


# ---------------------------------------------------------------- hand-computed values

# Four unit vectors on the axes; features are not unit length to check the normalisation.
_AXES = torch.tensor([[2.0, 0.0], [0.0, 3.0], [-0.5, 0.0], [0.0, -1.0]])


def test_hand_value_two_images_two_views():
    # image 0 = rows (1,0),(0,1); image 1 = rows (-1,0),(0,-1); t = 1.
    # Each row: positive similarity 0, the two others 0 and -1 (symmetric for every row).
    features = _AXES.reshape(2, 2, 2)
    ufc = cluster_contrastive_loss(features, None, temperature=1.0, variant="ufc")
    supcon = cluster_contrastive_loss(features, None, temperature=1.0, variant="supcon")
    assert ufc.item() == pytest.approx(-(0 - math.log(math.exp(0) + math.exp(-1))), abs=1e-6)
    assert supcon.item() == pytest.approx(-(0 - math.log(2 * math.exp(0) + math.exp(-1))), abs=1e-6)


def test_hand_value_ufc_scale_sits_outside_log_and_lonely_anchor_dropped():
    # v = 1, labels [0, 0, 0, 1]: rows 0-2 have two positives and one negative (row 3);
    # row 3 has no positive and is excluded. Similarities (t = 1): s01=0, s02=-1, s03=0,
    # s12=0, s13=-1, s23=0.
    features = _AXES.reshape(4, 1, 2)
    labels = torch.tensor([0, 0, 0, 1])
    e = math.exp
    t0 = (math.log(e(0) + e(-1)) - 0) / 2
    t1 = (math.log(e(0) + e(0)) - (-1)) / 2
    t2 = (math.log(e(-1) + e(0)) - 0) / 2
    want = -(t0 + t1 + t2) / 3
    got = cluster_contrastive_loss(features, labels, temperature=1.0, variant="ufc")
    assert got.item() == pytest.approx(want, abs=1e-6)
    # A mean of per-positive logs would differ, so this pins the literal reading of Eq. 2.
    per_positive = -((0 - 0 + (-1) - 0) / 2 + (0 + 1 + 0 + 1) / 2 + (-1 - 0 + 0 - 0) / 2) / 3
    assert abs(got.item() - per_positive) > 1e-3


def test_temperature_scales_similarities():
    features = _AXES.reshape(2, 2, 2)
    got = cluster_contrastive_loss(features, None, temperature=0.5, variant="ufc")
    assert got.item() == pytest.approx(math.log(1 + math.exp(-2)), abs=1e-6)


# ---------------------------------------------------------------- reference and invariances


def _nt_xent(z1, z2, temperature):
    """SimCLR's NT-Xent as usually written: view-major stacking, masked diagonal, CE."""
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    n = z.shape[0]
    sim = z @ z.T / temperature
    sim = sim.masked_fill(torch.eye(n, dtype=torch.bool), float("-inf"))
    target = (torch.arange(n) + n // 2) % n
    return F.cross_entropy(sim, target)


@pytest.mark.parametrize("temperature", [0.1, 0.5, 1.0])
def test_supcon_without_labels_is_nt_xent(temperature):
    gen = torch.Generator().manual_seed(1)
    features = torch.randn(7, 2, 16, generator=gen, dtype=torch.float64)
    got = cluster_contrastive_loss(features, None, temperature, variant="supcon")
    want = _nt_xent(features[:, 0], features[:, 1], temperature)
    torch.testing.assert_close(got, want)
    # Instance ids as labels are the same thing as labels=None.
    ids = torch.arange(7) * 3 + 1
    torch.testing.assert_close(cluster_contrastive_loss(features, ids, temperature, "supcon"), want)


@pytest.mark.parametrize("variant", ["ufc", "supcon"])
def test_invariant_to_batch_permutation(variant):
    gen = torch.Generator().manual_seed(2)
    features = torch.randn(8, 3, 6, generator=gen, dtype=torch.float64)
    labels = torch.tensor([0, 2, 1, 0, 2, 2, 3, 1])
    perm = torch.randperm(8, generator=gen)
    a = cluster_contrastive_loss(features, labels, 0.2, variant)
    b = cluster_contrastive_loss(features[perm], labels[perm], 0.2, variant)
    torch.testing.assert_close(a, b)
    # Relabelling the classes changes nothing either.
    c = cluster_contrastive_loss(features, labels * 10 + 5, 0.2, variant)
    torch.testing.assert_close(a, c)


@pytest.mark.parametrize("variant", ["ufc", "supcon"])
def test_distinct_labels_equal_no_labels(variant):
    gen = torch.Generator().manual_seed(3)
    features = torch.randn(6, 2, 4, generator=gen)
    distinct = torch.tensor([9, 4, 0, 7, 1, 3])
    torch.testing.assert_close(
        cluster_contrastive_loss(features, distinct, 0.1, variant),
        cluster_contrastive_loss(features, None, 0.1, variant),
    )


def test_scale_of_features_does_not_matter():
    gen = torch.Generator().manual_seed(4)
    features = torch.randn(4, 2, 3, generator=gen)
    labels = torch.tensor([0, 1, 1, 0])
    torch.testing.assert_close(
        cluster_contrastive_loss(features, labels), cluster_contrastive_loss(features * 7.5, labels)
    )


# ---------------------------------------------------------------- degenerate anchors


def _loss_and_grad(features, labels, variant):
    features = features.clone().requires_grad_(True)
    loss = cluster_contrastive_loss(features, labels, 0.1, variant)
    loss.backward()
    return loss, features.grad


def test_all_same_label_ufc_is_zero_connected_to_graph():
    features = torch.randn(4, 2, 5)
    loss, grad = _loss_and_grad(features, torch.zeros(4, dtype=torch.long), "ufc")
    assert loss.grad_fn is not None
    assert loss.item() == 0.0
    assert torch.isfinite(grad).all() and (grad == 0).all()


def test_all_same_label_supcon_is_log_softmax_over_positives():
    gen = torch.Generator().manual_seed(5)
    features = torch.randn(4, 2, 5, generator=gen, dtype=torch.float64)
    labels = torch.ones(4, dtype=torch.long)
    loss, grad = _loss_and_grad(features, labels, "supcon")
    assert torch.isfinite(loss) and loss.item() > 0
    assert torch.isfinite(grad).all()
    assert loss.item() == pytest.approx(_naive(features, labels, 0.1, "supcon"), abs=1e-6)


@pytest.mark.parametrize("variant", ["ufc", "supcon"])
def test_single_view_unique_labels_is_zero_connected_to_graph(variant):
    for labels in (None, torch.arange(5)):
        loss, grad = _loss_and_grad(torch.randn(5, 1, 3), labels, variant)
        assert loss.grad_fn is not None
        assert loss.item() == 0.0
        assert torch.isfinite(grad).all()


@pytest.mark.parametrize("variant", ["ufc", "supcon"])
def test_lonely_anchor_is_dropped_not_nan(variant):
    gen = torch.Generator().manual_seed(6)
    features = torch.randn(5, 1, 4, generator=gen, dtype=torch.float64)
    labels = torch.tensor([0, 0, 1, 1, 2])  # image 4 has no positive
    loss, grad = _loss_and_grad(features, labels, variant)
    assert torch.isfinite(grad).all()
    assert loss.item() == pytest.approx(_naive(features, labels, 0.1, variant), abs=1e-6)
    # Image 4 is dropped as an anchor but still serves as a negative of the others.
    assert grad[4].abs().sum() > 0


def test_single_image_single_view():
    loss, grad = _loss_and_grad(torch.randn(1, 1, 3), None, "ufc")
    assert loss.item() == 0.0 and torch.isfinite(grad).all()


# ---------------------------------------------------------------- gradients and training


@pytest.mark.parametrize("variant", ["ufc", "supcon"])
def test_gradients_finite_and_loss_decreases(variant):
    gen = torch.Generator().manual_seed(7)
    features = torch.randn(8, 2, 16, generator=gen).requires_grad_(True)
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    optimiser = torch.optim.SGD([features], lr=0.5)
    losses = []
    for _ in range(15):
        optimiser.zero_grad()
        loss = cluster_contrastive_loss(features, labels, temperature=0.2, variant=variant)
        loss.backward()
        assert torch.isfinite(features.grad).all()
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.1


def test_works_in_float64_and_keeps_dtype():
    features = torch.randn(3, 2, 4, dtype=torch.float64)
    loss = cluster_contrastive_loss(features, torch.tensor([0, 1, 0]), variant="supcon")
    assert loss.dtype == torch.float64 and loss.dim() == 0


# ---------------------------------------------------------------- module wrapper and errors


def test_module_matches_function():
    gen = torch.Generator().manual_seed(8)
    features = torch.randn(4, 2, 6, generator=gen)
    labels = torch.tensor([1, 0, 1, 0])
    for variant in ("ufc", "supcon"):
        criterion = ClusterContrastiveLoss(temperature=0.3, variant=variant)
        assert "variant" in repr(criterion)
        torch.testing.assert_close(
            criterion(features, labels), cluster_contrastive_loss(features, labels, 0.3, variant)
        )
    torch.testing.assert_close(
        ClusterContrastiveLoss()(features), cluster_contrastive_loss(features, None, 0.1, "ufc")
    )


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"temperature": 0.0}, "temperature"),
        ({"temperature": -0.1}, "temperature"),
        ({"temperature": float("nan")}, "temperature"),
        ({"temperature": float("inf")}, "temperature"),
        ({"temperature": "0.1"}, "temperature"),
        ({"variant": "simclr"}, "simclr"),
    ],
)
def test_bad_hyperparameters_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ClusterContrastiveLoss(**kwargs)
    with pytest.raises(ValueError, match=match):
        cluster_contrastive_loss(torch.randn(2, 2, 3), None, **kwargs)


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match=r"\(4, 3\)"):
        cluster_contrastive_loss(torch.randn(4, 3))
    with pytest.raises(ValueError, match=r"\(3,\)"):
        cluster_contrastive_loss(torch.randn(4, 2, 3), torch.arange(3))
    with pytest.raises(ValueError, match="labels"):
        cluster_contrastive_loss(torch.randn(4, 2, 3), torch.zeros(4, 1, dtype=torch.long))
