"""Value tests of the stratify parts: LARS, schedule, soft assignment, prototypes, mapping, loaders."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from medcl.data import load_medmnist, load_mnist5k
from medcl.errors import MedclError
from medcl.evaluate import classification_scores, knn_predict, majority_mapping
from medcl.models import ConditionalDecoder, ContrastiveAutoencoder, ConvEncoder, soft_assign
from medcl.stages.stratify import residual_and_assignment, update_prototypes
from medcl.stratify_config import StratifyClusterConfig, load_stratify_config
from medcl.train import LARS, lars_param_groups, warmup_cosine_lr


def test_lars_one_step_matches_hand_computation():
    lin = nn.Linear(2, 1)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[3.0, 4.0]]))  # ||w|| = 5
        lin.bias.copy_(torch.tensor([1.0]))
    lin.weight.grad = torch.tensor([[0.6, 0.8]])
    lin.bias.grad = torch.tensor([0.5])
    lr, wd, eta = 0.1, 0.1, 0.01
    opt = LARS(lars_param_groups(lin, wd), lr=lr, momentum=0.9, weight_decay=wd, eta=eta)
    opt.step()
    # weight: g = [0.6, 0.8] + 0.1 * [3, 4] = [0.9, 1.2], ||g|| = 1.5, q = 0.01 * 5 / 1.5
    q = eta * 5 / 1.5
    expected_w = [3 - lr * q * 0.9, 4 - lr * q * 1.2]
    assert lin.weight.detach().tolist()[0] == pytest.approx(expected_w, rel=1e-6)
    # bias: excluded, plain SGD without decay: 1 - 0.1 * 0.5
    assert lin.bias.item() == pytest.approx(0.95)
    # second step: momentum buffer v = 0.9 v + g'
    lin.weight.grad = torch.tensor([[0.0, 0.0]])
    lin.bias.grad = torch.tensor([0.0])
    w_before = lin.weight.detach().clone()
    opt.step()
    v_bias = 0.9 * 0.5
    assert lin.bias.item() == pytest.approx(0.95 - lr * v_bias)
    g2 = wd * w_before  # only weight decay left
    q2 = eta * w_before.norm() / g2.norm()
    v_w = 0.9 * q * torch.tensor([[0.9, 1.2]]) + q2 * g2
    assert torch.allclose(lin.weight.detach(), w_before - lr * v_w, atol=1e-7)


def test_lars_groups_and_bad_args():
    groups = lars_param_groups(nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4)), 1e-6)
    assert [len(g["params"]) for g in groups] == [1, 3]
    assert groups[1]["lars_exclude"] and groups[1]["weight_decay"] == 0
    with pytest.raises(ValueError, match="lr"):
        LARS(nn.Linear(1, 1).parameters(), lr=-1)


def test_warmup_cosine_schedule_values():
    assert warmup_cosine_lr(0, 100, 0.01, 0.25, 0.05, 10) == pytest.approx(0.01)
    assert warmup_cosine_lr(5, 100, 0.01, 0.25, 0.05, 10) == pytest.approx(0.13)
    assert warmup_cosine_lr(10, 100, 0.01, 0.25, 0.05, 10) == pytest.approx(0.25)
    assert warmup_cosine_lr(55, 100, 0.01, 0.25, 0.05, 10) == pytest.approx(0.15)
    assert warmup_cosine_lr(100, 100, 0.01, 0.25, 0.05, 10) == pytest.approx(0.05)


def test_soft_assignment_values():
    h = torch.tensor([[2.0, 0.0], [1.0, 1.0]])
    protos = torch.tensor([[1.0, 0.0], [0.0, 3.0]])
    a = soft_assign(h, protos, temperature=0.5)
    c = 1 / math.sqrt(2)
    e = torch.exp(torch.tensor([[1.0, 0.0], [c, c]]) / 0.5)
    assert torch.allclose(a, e / e.sum(1, keepdim=True), atol=1e-6)
    assert torch.allclose(a[1], torch.tensor([0.5, 0.5]))
    with pytest.raises(ValueError):
        soft_assign(h, protos, 0.0)


def test_residual_is_latent_minus_assigned_prototype_mix():
    protos = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    h = torch.tensor([[3.0, 0.0]])
    cfg = StratifyClusterConfig(normalize=True, temperature=0.1)
    r, a = residual_and_assignment(h, protos, cfg)
    assert torch.allclose(r, torch.tensor([[1.0, 0.0]]) - a @ protos)
    assert a[0, 0] > 0.99


def test_prototype_update_hard_and_soft():
    h = np.array([[0.0, 0.0], [2.0, 0.0], [0.0, 4.0]])
    hard = update_prototypes(h, np.eye(2)[[0, 0, 1]])
    assert hard.tolist() == [[1.0, 0.0], [0.0, 4.0]]
    soft = update_prototypes(h, np.array([[1.0, 0.0], [0.5, 0.5], [0.0, 1.0]]))
    assert soft[0] == pytest.approx([1 / 1.5, 0.0])  # (1 * [0, 0] + 0.5 * [2, 0]) / 1.5
    assert soft[1] == pytest.approx([1 / 1.5, 4 / 1.5])
    assert update_prototypes(h, np.zeros((3, 1))).tolist() == [[0.0, 0.0]]


def test_majority_mapping_hand_built():
    clusters = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2, 3])
    labels = np.array([5, 5, 1, 2, 2, 1, 0, 0, 1, 7])
    mapping = majority_mapping(clusters, labels, n_clusters=5)
    # cluster 2 is a 2-2 tie between labels 0 and 1 -> smallest; cluster 4 is empty -> the
    # most frequent label overall (1, 2, 5 and ... : label 1 occurs 3 times)
    assert mapping.tolist() == [5, 2, 0, 7, 1]
    pred = mapping[np.array([0, 1, 2, 3])]
    s = classification_scores(np.array([5, 2, 1, 7]), pred)
    assert s["accuracy"] == pytest.approx(0.75)


def test_knn_predict_cosine():
    bank = np.array([[1.0, 0.0], [10.0, 1.0], [0.0, 1.0], [0.1, 5.0]])
    assert knn_predict(bank, [0, 0, 1, 1], [[3.0, 0.1], [0.0, 0.2]], k=1).tolist() == [0, 1]


def test_encoder_batch_norm_option():
    """norm="batch" puts a BatchNorm between each conv and its GELU (and drops the conv bias
    it would cancel); norm="none" keeps the paper's layers and state-dict keys."""
    plain = ConvEncoder(1, (28, 28), (8, 16, 16), 16)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in plain.modules())
    assert "features.0.bias" in plain.state_dict() and "features.1.0.weight" not in (
        plain.state_dict()
    )
    bn = ConvEncoder(1, (28, 28), (8, 16, 16), 16, norm="batch")
    norms = [m for m in bn.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert [m.num_features for m in norms] == [8, 16, 16]
    assert all(bn.features[i].bias is None for i in range(0, len(bn.features), 2))
    # in training mode every conv output is normalised per channel over the batch
    bn.train()
    maps = bn.forward_features(torch.rand(6, 1, 28, 28))
    first = bn.features[1][0](bn.features[0](torch.rand(6, 1, 28, 28)))
    assert first.mean((0, 2, 3)).abs().max() < 1e-5
    assert [tuple(m.shape[1:]) for m in maps] == [(8, 14, 14), (16, 7, 7), (16, 3, 3)]
    assert bn(torch.rand(6, 1, 28, 28)).shape == (6, 16)
    with pytest.raises(ValueError, match="norm must be"):
        ConvEncoder(1, (28, 28), norm="group")


def test_conditional_decoder_uses_its_condition():
    torch.manual_seed(0)
    enc = ConvEncoder(1, (28, 28), (8, 16, 16), 16)
    for mode in ("film", "concat"):
        dec = ConditionalDecoder(enc, n_prototypes=4, conditioning=mode)
        r = torch.randn(1, 16).repeat(4, 1)  # the same latent residual ...
        out = dec(r, torch.eye(4))  # ... with four different assignments
        assert out.shape == (4, 1, 28, 28)
        diffs = (out[:, None] - out[None]).abs().flatten(2).mean(-1)
        assert (diffs + torch.eye(4)).min() > 1e-4
    # FiLM also acts inside the decoder, not only at its input
    assert len(ConditionalDecoder(enc, 4, "film").film) == 2


def test_conditional_decoder_learns_to_need_the_assignment():
    """Trained on images whose class lives only in ``a``, it must use ``a`` to reconstruct."""
    torch.manual_seed(0)
    enc = ConvEncoder(1, (8, 8), (4, 4, 4), 4)
    dec = ConditionalDecoder(enc, 2, "film")
    targets = torch.stack([torch.zeros(1, 8, 8), torch.ones(1, 8, 8)])
    opt = torch.optim.Adam(dec.parameters(), lr=1e-2)
    r = torch.zeros(2, 4)
    a = torch.eye(2)
    for _ in range(150):
        loss = ((dec(r, a) - targets) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        right = ((dec(r, a) - targets) ** 2).mean()
        swapped = ((dec(r, a.flip(0)) - targets) ** 2).mean()
    assert right < 0.02 < 0.5 < swapped


def test_contrastive_autoencoder_shapes_2d_rgb():
    m = ContrastiveAutoencoder(3, (32, 24), (8, 8, 8), 16, (32, 32, 8))
    h, z, x = m(torch.rand(2, 3, 32, 24))
    assert (h.shape, z.shape, x.shape) == ((2, 16), (2, 8), (2, 3, 32, 24))
    assert 0 <= x.min() and x.max() <= 1


def test_mnist5k_split_is_fixed_and_stratified():
    ds = load_mnist5k(val_fraction=0.1)
    assert ds.data.images.shape == (5000, 1, 28, 28) and ds.data.images.max() <= 1
    for split, n in (("train", 3600), ("val", 400), ("test", 1000)):
        idx = ds.data.indices(split)
        assert len(idx) == n
        assert np.bincount(ds.labels[idx], minlength=10).tolist() == [n // 10] * 10
    again = load_mnist5k(val_fraction=0.0)
    assert (again.data.split == "test").tolist() == (ds.data.split == "test").tolist()


def test_medmnist_loader_on_fixture(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", 6), ("val", 2), ("test", 3)):
        arrays[f"{split}_images"] = rng.integers(0, 256, (n, 8, 8, 3), dtype=np.uint8)
        arrays[f"{split}_labels"] = rng.integers(0, 3, (n, 1))
    path = tmp_path / "dermamnist.npz"
    np.savez(path, **arrays)
    ds = load_medmnist(path)
    assert ds.data.images.shape == (11, 3, 8, 8)
    assert ds.data.images[0, 1, 2, 3] == pytest.approx(arrays["train_images"][0, 2, 3, 1] / 255)
    assert (
        ds.labels.tolist()
        == np.concatenate([arrays[f"{s}_labels"][:, 0] for s in ("train", "val", "test")]).tolist()
    )
    assert [int((ds.data.split == s).sum()) for s in ("train", "val", "test")] == [6, 2, 3]
    grey = {k: (v[..., 0] if k.endswith("images") else v) for k, v in arrays.items()}
    np.savez(tmp_path / "grey.npz", **grey)
    assert load_medmnist(tmp_path / "grey.npz").data.images.shape == (11, 1, 8, 8)


def test_medmnist_missing_file_and_keys(tmp_path):
    with pytest.raises(MedclError, match=r"does not exist.*data\.medmnist_path"):
        load_medmnist(tmp_path / "nope.npz")
    np.savez(tmp_path / "bad.npz", train_images=np.zeros((1, 4, 4), np.uint8))
    with pytest.raises(MedclError, match="lacks the keys"):
        load_medmnist(tmp_path / "bad.npz")


def test_config_errors():
    with pytest.raises(MedclError, match="Unknown config key 'warmup.epoch'"):
        load_stratify_config(overrides=["warmup.epoch=3"])
    with pytest.raises(MedclError, match="medmnist_path"):
        load_stratify_config(overrides=["data.dataset=medmnist"])


@pytest.mark.parametrize("method", ["kmeans", "ward", "spectral", "merge"])
def test_cluster_latents_finds_blobs_with_either_method(method):
    from sklearn.metrics import adjusted_rand_score

    from medcl.stages.stratify import cluster_latents
    from medcl.stratify_config import load_stratify_config

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(4, 8)) * 10
    truth = np.repeat(np.arange(4), 50)
    z = centres[truth] + rng.normal(size=(200, 8))
    cfg = load_stratify_config(None, [f"cluster.method={method}", "cluster.k_max=10"])
    labels, k, elbow = cluster_latents(z, cfg)
    assert k == 4 and elbow["elbow_k"] == 4 and len(elbow["curve"]) == 9
    assert adjusted_rand_score(truth, labels) == pytest.approx(1.0)
    fixed = load_stratify_config(None, [f"cluster.method={method}", "cluster.k=6"])
    assert cluster_latents(z, fixed)[1] == 6
    sil = load_stratify_config(
        None, [f"cluster.method={method}", "cluster.k_max=10", "cluster.k_rule=silhouette"]
    )
    labels, k, info = cluster_latents(z, sil)
    assert k == 4 and info["silhouette_k"] == 4 and len(info["silhouette"]) == 9
    assert adjusted_rand_score(truth, labels) == pytest.approx(1.0)


def test_silhouette_rule_finds_ten_groups_where_the_elbow_says_nine():
    """Ten well separated Gaussian blobs: the knee of the within-cluster distance curve over
    k = 2..20 lies at 9 (the chord from k = 2 pulls it below the true number, as on the MNIST
    latents), while the silhouette peaks at 10 and recovers the blobs."""
    from sklearn.metrics import adjusted_rand_score

    from medcl.stages.stratify import cluster_latents
    from medcl.stratify_config import load_stratify_config

    rng = np.random.default_rng(0)
    truth = np.repeat(np.arange(10), 40)
    z = (rng.normal(size=(10, 8)) * 6.0)[truth] + rng.normal(size=(400, 8))
    results = {}
    for rule in ("elbow", "silhouette"):
        cfg = load_stratify_config(
            None, ["cluster.method=ward", "cluster.normalize=false", f"cluster.k_rule={rule}"]
        )
        results[rule] = cluster_latents(z, cfg)
    assert results["elbow"][1] == 9
    assert results["silhouette"][1] == 10
    assert adjusted_rand_score(truth, results["silhouette"][0]) == pytest.approx(1.0)


def _rings(n=300, seed=0):
    """Two concentric circles in 2-D: groups that no partition into convex cells separates."""
    rng = np.random.default_rng(seed)
    truth = np.repeat([0, 1], n // 2)
    angle = rng.uniform(0, 2 * np.pi, n)
    radius = np.where(truth == 0, 1.0, 3.0) + rng.normal(0, 0.08, n)
    return np.stack([radius * np.cos(angle), radius * np.sin(angle)], 1), truth


def test_spectral_follows_curved_groups_where_ward_cuts_across():
    from sklearn.metrics import adjusted_rand_score

    from medcl.stages.stratify import cluster_latents
    from medcl.stratify_config import load_stratify_config

    z, truth = _rings()
    ari = {}
    for method in ("ward", "spectral"):
        cfg = load_stratify_config(None, [f"cluster.method={method}", "cluster.k=2"])
        ari[method] = adjusted_rand_score(truth, cluster_latents(z, cfg)[0])
    assert ari["spectral"] == pytest.approx(1.0)
    assert ari["ward"] < 0.5


def test_knn_assignment_follows_the_neighbours_not_the_prototype():
    from medcl.stages.stratify import assign_latents, update_prototypes
    from medcl.stratify_config import load_stratify_config

    z, truth = _rings()
    lift = lambda a: np.concatenate([a, np.full((len(a), 1), 5.0)], 1)  # noqa: E731
    z = lift(z)  # off the origin, so that cosine neighbours are neighbours on the rings
    protos = update_prototypes(z, np.eye(2)[truth])  # both ring centroids sit on the axis
    query = lift(np.array([[3.0, 0.05], [0.0, -1.02]]))  # on the outer and on the inner ring
    knn = load_stratify_config(None, ["cluster.assign=knn"])
    clusters, dist = assign_latents(query, protos, z, truth, knn)
    assert clusters.tolist() == [1, 0]
    assert dist.shape == (2, 2)
    proto = load_stratify_config(None, ["cluster.assign=prototype"])
    assert assign_latents(query, protos, z, truth, proto)[0].tolist() != [1, 0]


def test_stability_rule_in_stratify_separates_the_close_pair_the_silhouette_merges(capsys):
    """``cluster.k_rule=stability`` reaches :func:`medcl.cluster.choose_k` through the
    clustering stage with stratify's own partitions, and records its evidence; on ten blobs
    with one close pair the silhouette takes 9, stability 10."""
    import sys
    from pathlib import Path

    from sklearn.metrics import adjusted_rand_score

    from medcl.stages.stratify import cluster_latents
    from medcl.stratify_config import load_stratify_config

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "cluster"))
    from test_choose_k import SCENARIOS

    z, truth = SCENARIOS["close pair"]()
    out = {}
    for rule in ("silhouette", "stability"):
        cfg = load_stratify_config(None, ["cluster.method=spectral", f"cluster.k_rule={rule}"])
        out[rule] = cluster_latents(z, cfg)
    assert out["silhouette"][1] == 9
    labels, k, info = out["stability"]
    assert k == 10 and info["stability_k"] == 10 and info["stability_confident"]
    assert 10 in info["stability_plausible"] and len(info["stability"]) == 19
    assert adjusted_rand_score(truth, labels) > 0.98


def test_stability_settings_of_the_config_reach_choose_k():
    """``cluster.stability_threshold`` and ``cluster.stability_resamples`` are what the
    clustering stage passes to :func:`medcl.cluster.choose_k`: the stage's curve and k are
    choose_k's with those settings, and differ from the defaults' curve."""
    import sys
    from pathlib import Path

    from medcl.cluster import choose_k
    from medcl.stages.stratify import cluster_latents
    from medcl.stratify_config import load_stratify_config

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "cluster"))
    from test_choose_k import SCENARIOS

    z, _ = SCENARIOS["sizes 4x"]()
    overrides = ["cluster.method=spectral", "cluster.k_rule=stability", "cluster.k_max=12"]
    cfg = load_stratify_config(
        None, [*overrides, "cluster.stability_threshold=0.99", "cluster.stability_resamples=4"]
    )
    _, k, info = cluster_latents(z, cfg)
    ks = info["k_values"]
    ref = choose_k(z, ks, method="spectral", seed=0, threshold=0.99, n_resamples=4)
    assert k == ref.k and info["stability"] == ref.curves["stability"]
    assert info["stability_plausible"] == ref.plausible
    assert info["stability_threshold"] == 0.99  # the line the report's k panel draws
    default = choose_k(z, ks, method="spectral", seed=0)
    assert info["stability"] != default.curves["stability"]  # 4 subsamples, not 16


def test_k_panel_draws_the_runs_own_stability_threshold():
    """The report's stability panel marks the threshold the run used (recorded in
    cluster.json), and 0.75 for a run directory from before it was recorded."""
    from medcl.report._stratify import elbow_plot

    ks = [2, 3, 4]
    info = {"k_values": ks, "curve": [3.0, 2.0, 1.5], "elbow_k": 3}
    info |= {"stability": [0.9, 0.8, 0.3], "stability_k": 3}

    def line_at(info):
        fig = elbow_plot(info)
        flat = [ln for ln in fig.axes[1].lines if len(set(ln.get_ydata())) == 1]
        return {float(ln.get_ydata()[0]) for ln in flat}

    assert line_at({**info, "stability_threshold": 0.68}) == {0.68}
    assert line_at(info) == {0.75}
