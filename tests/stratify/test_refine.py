"""The refinement stage (``refine``, SCAN on the warm-up's encoder): off (``refine.epochs=0``)
it runs nothing and the records are those of before it existed; on, every later stage uses
the refined encoder, and the warm-up is left as it was."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from medcl.cli import main
from medcl.config import packaged_config
from medcl.stages.stratify._shared import latent_space
from medcl.stages.stratify.clustering import cluster_latents
from medcl.stages.stratify.refine import head_k, nearest_neighbours
from medcl.stratify_config import load_stratify_config
from tests.stratify.test_stages import BASE

OFF = [*BASE, "refine.epochs=0"]
ON = [*BASE, "refine.epochs=2", "refine.self_label_epochs=1", "refine.batch_size=32"]


def _encoder_weights(state: dict) -> dict:
    return {k[len("encoder.") :]: v for k, v in state.items() if k.startswith("encoder.")}


def test_off_it_runs_nothing_and_no_record_names_its_keys(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["stratify", *OFF, "--out", str(out)]) == 0
    assert not (out / "refine").exists()
    for record in out.glob("*/done.json"):
        text = record.read_text()
        assert "refine." not in text and "stratify refinement" not in text, record
    capsys.readouterr()
    assert main(["stratify", *OFF, "refine.entropy_weight=1", "--out", str(out)]) == 0
    assert ": rerun," not in capsys.readouterr().err  # its settings do nothing while off


def test_on_every_later_stage_uses_the_refined_encoder(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["stratify", *OFF, "--out", str(out)]) == 0
    warm = torch.load(out / "warmup" / "model.pt")
    before = np.load(out / "embed" / "latents.npy")
    capsys.readouterr()

    assert main(["stratify", *ON, "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "warm-up: rerun" not in err and "stratify embeddings: rerun" in err
    assert "refinement: the encoder refined by SCAN" in err
    done = json.loads((out / "refine" / "done.json").read_text())
    assert len(done["loss_by_step"]["scan"]) == 2 and len(done["loss_by_step"]["self_label"]) == 1
    assert 2 <= done["head_k"] <= 5 and np.isfinite(done["loss"]).all()
    assert not list((out / "refine").glob("checkpoint*"))  # removed once the record says done
    refined = torch.load(out / "refine" / "encoder.pt")
    assert all(torch.equal(warm[k], v) for k, v in torch.load(out / "warmup" / "model.pt").items())
    assert any(not torch.equal(refined[k], v) for k, v in _encoder_weights(warm).items())
    # the model `stratify assign` loads carries the refined encoder
    exported = _encoder_weights(torch.load(out / "model.pt"))
    assert exported.keys() == refined.keys()
    assert all(torch.equal(exported[k], refined[k]) for k in refined)
    after = np.load(out / "embed" / "latents.npy")
    assert after.shape == before.shape and not np.allclose(after, before)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["seconds"]["refine"] == done["seconds"]
    assert "![Training](plots/training.png)" in (out / "report.md").read_text()

    capsys.readouterr()  # a refinement setting reruns the refinement, not the warm-up
    assert main(["stratify", *ON, "refine.entropy_weight=2", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "stratify refinement: rerun, refine.entropy_weight changed from 5.0 to 2.0" in err
    assert "warm-up: rerun" not in err and "stratify embeddings: rerun" in err
    capsys.readouterr()
    assert main(["stratify", *ON, "refine.entropy_weight=2", "--out", str(out)]) == 0
    assert ": rerun," not in capsys.readouterr().err
    # a fixed k or another k rule reruns the clustering only, as without the refinement
    for change in ("cluster.k=3", "cluster.k_rule=silhouette"):
        assert main(["stratify", *ON, "refine.entropy_weight=2", change, "--out", str(out)]) == 0
        err = capsys.readouterr().err
        assert "stratify clustering: rerun" in err and "refinement: rerun" not in err, change
        assert "embeddings: rerun" not in err


def test_the_stage_alone_needs_a_finished_warmup(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["stratify", *ON, "--out", str(out), "--stage", "refine"]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert "--stage warmup" in last and last.endswith("first."), last


@pytest.mark.parametrize(
    ("key", "value"),
    [("refine.epochs", "-1"), ("refine.threshold", "1"), ("refine.entropy_weight", "-1"),
     ("refine.neighbours", "0"), ("refine.lr", "0")],
)  # fmt: skip
def test_a_bad_setting_is_one_sentence_and_exit_2(tmp_path, capsys, key, value):
    assert main(["stratify", *ON, f"{key}={value}", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and key in err[0], err
    assert not (tmp_path / "r").exists()


def test_neighbours_are_the_nearest_others_by_cosine():
    z = np.array([[1.0, 0.0], [10.0, 1.0], [0.0, 1.0], [0.1, 3.0]])  # length does not count
    assert nearest_neighbours(z, 1)[:, 0].tolist() == [1, 0, 3, 2]


def test_the_heads_k_is_its_own_rule_whatever_the_clusterings_k_and_rule():
    rng = np.random.default_rng(0)
    blobs = np.concatenate([rng.normal(c, 0.05, (40, 3)) for c in np.eye(3) * 5])
    cfg = load_stratify_config(packaged_config("stratify-mnist"), ["cluster.k_max=6"])
    k = cluster_latents(latent_space(blobs, True), cfg)[1]  # what the clustering stage picks
    assert head_k(cfg, blobs) == k and 2 <= k <= 6
    other = ["cluster.k_max=6", "cluster.k=7", "cluster.k_rule=elbow"]
    fixed = load_stratify_config(packaged_config("stratify-mnist"), other)
    assert head_k(fixed, blobs) == k and fixed.cluster.k == 7  # the config is left as it was
    by_elbow = load_stratify_config(
        packaged_config("stratify-mnist"), [*other, "refine.k_rule=elbow"]
    )
    by_elbow.cluster.k = None
    assert (
        head_k(by_elbow, blobs)
        == cluster_latents(latent_space(blobs, True), by_elbow)[2]["elbow_k"]
    )


def test_the_reports_training_panels_follow_the_records():
    from medcl.report._stratify import training_curves

    assert training_curves({}) is None and training_curves({"warmup": {"loss": []}}) is None
    fig = training_curves(
        {"warmup": {"loss": [2.0, 1.0]}, "refine": {"loss_by_step": {"scan": [-1.0, -2.0],
         "self_label": [0.1]}}, "decoder": {"loss": [0.3]}}
    )  # fmt: skip
    titles = [a.get_title() for a in fig.axes if a.get_title()]
    assert titles == ["warm-up", "refinement", "decoder"]
    assert len(fig.axes) == 4  # the self-labelling step on its own loss axis
