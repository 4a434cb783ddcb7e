"""`medcl segment-prior`: a tiny prior-guided run end to end, and its errors."""

import json

import numpy as np
import pytest
import torch

from medcl.cli import main
from medcl.methods import Batch, build_method
from medcl.models import UNetEncoder
from tests.cli.conftest import TINY

SMALL = [*TINY, "prior.epochs=3", "prior.batch_size=8", "prior.references=3",
         "pretrain.ld_clusters=4", "pretrain.ld_embed_dim=8"]  # fmt: skip


def test_tiny_prior_guided_run(tiny_config, tmp_path, capsys):
    out = tmp_path / "sp"
    assert main(["segment-prior", str(tiny_config), "--out", str(out), *SMALL,
                 "prior.structure=[2]"]) == 0  # fmt: skip
    results = json.loads((out / "results.json").read_text())
    assert len(results["references"]) == 3
    test_ids = (out / "masks" / "test_ids.txt").read_text().split()
    assert not set(results["references"]) & set(test_ids)  # no test mask guides the prior
    masks = np.load(out / "masks" / "test_masks.npy")
    assert masks.shape == (len(test_ids), 32, 32) and masks.dtype == bool
    assert set(results["dice"]) == {
        "prior-guided LD", "2-means intensity threshold", "mean of the reference masks",
    }  # fmt: skip
    assert all(0 <= d <= 1 for d in results["dice"].values())
    assert len(results["loss"]) == 3 and all(np.isfinite(results["loss"]))
    for png in ("prior_masks", "cluster_maps", "similarity"):
        assert (out / "plots" / f"{png}.png").stat().st_size > 0
    assert set(results["val_dice"]) == set(results["dice"])
    assert "Dice % of the structure" in capsys.readouterr().out


def test_unknown_structure_class_is_one_sentence(tiny_config, tmp_path, capsys):
    argv = ["segment-prior", str(tiny_config), "--out", str(tmp_path / "sp"), *SMALL,
            "prior.structure=[5]"]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err == (
        "medcl: error: prior.structure=[5] names class 5, but the data set's foreground "
        "classes are 1..2 (square, disc)."
    )


def test_the_prior_term_pulls_the_guided_cluster_towards_the_references():
    torch.manual_seed(0)
    ld = build_method("ld", UNetEncoder(1, (4, 8)), proj_hidden=16, proj_out=8, n_clusters=3,
                      embed_dim=4)  # fmt: skip
    x = torch.rand(6, 1, 16, 16)
    batch = Batch(torch.stack([x, x.flip(-1)], dim=1))
    with torch.no_grad():
        base = float(ld(batch))
    prior = torch.tensor([0.5, 0.5, 0.2, 0.1, 0.1]), torch.full((5,), 1e-3)
    ld.set_prior(*prior, cluster=1, weight=1.0)
    with torch.no_grad():
        guided = float(ld(batch))
    assert guided - base == pytest.approx(ld.last_terms["prior"], rel=1e-4)
    start = ld.last_terms["prior"]
    opt = torch.optim.Adam([p for p in ld.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(15):
        loss = ld(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert ld.last_terms["prior"] < start / 2  # cluster 1's masks moved towards the prior


def test_too_many_references_and_a_missing_cluster_are_one_sentence(tiny_config, tmp_path, capsys):
    base = ["segment-prior", str(tiny_config), "--out", str(tmp_path / "sp"), *SMALL]
    assert main([*base, "prior.references=500"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("medcl: error: prior.references=500 but only ")
    assert "lower prior.references" in err
    assert main([*base, "prior.cluster=4"]) == 2  # the head has pretrain.ld_clusters=4
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err == (
        "medcl: error: prior.cluster=4 but the clustering head has pretrain.ld_clusters=4 "
        "clusters; choose prior.cluster < 4."
    )
