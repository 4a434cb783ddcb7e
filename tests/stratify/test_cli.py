"""A tiny end-to-end ``medcl stratify`` run through the command line, resume, assign, errors."""

import csv
import json

import numpy as np
from PIL import Image

from medcl.cli import main

TINY = [
    "data.max_train=160",
    "warmup.epochs=2",
    "warmup.batch_size=64",
    "decoder.epochs=1",
    "refine.epochs=1",
    "refine.self_label_epochs=1",
    "cluster.k_max=5",
    "model.widths=[4,8,8]",
    "model.latent_dim=8",
    "model.projector=[16,8]",
    "evaluate.probe_epochs=3",
    "evaluate.baseline_epochs=1",
    "evaluate.tsne_points=60",
]


def test_stratify_end_to_end_resume_and_assign(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["stratify", *TINY, "--out", str(out)]) == 0
    for name in (
        "config.yaml",
        "assignments.csv",
        "prototypes.npy",
        "metrics.json",
        "metrics.md",
        "report.html",
        "report.md",
        "model.pt",
        "plots/tsne.png",
    ):
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    k = metrics["k"]
    assert np.load(out / "prototypes.npy").shape == (k, 8)
    rows = list(csv.DictReader((out / "assignments.csv").open()))
    assert len(rows) == 160 + 1000 and len(rows[0]) == 3 + k
    assert {"majority mapping", "kNN (k=5)", "linear probe", "features + KMeans (baseline)"} <= set(
        metrics["rows"]
    )
    assert "data:image/png;base64," in (out / "report.html").read_text()
    assert "trained from scratch" in (out / "report.md").read_text()
    assert "majority mapping" in capsys.readouterr().out

    # a second run resumes from the checkpoints: no new training epochs are logged
    before = (out / "metrics.jsonl").read_text().count('"epoch"')
    assert main(["stratify", *TINY, "--out", str(out)]) == 0
    assert (out / "metrics.jsonl").read_text().count('"epoch"') == before

    img = tmp_path / "digit.png"
    Image.fromarray((np.random.default_rng(0).random((28, 28)) * 255).astype(np.uint8)).save(img)
    capsys.readouterr()
    assert (
        main(["stratify", "assign", "--run", str(out), str(img), "--csv", str(tmp_path / "a.csv")])
        == 0
    )
    line = capsys.readouterr().out
    assert "digit.png" in line and "cluster" in line
    assert (tmp_path / "a.csv").is_file()

    # An RGB file of the same digit is converted like folder images (luminance, whose weights
    # sum to 1), so it lands in the same stratum at the same distance.
    grey = np.asarray(Image.open(img))
    Image.fromarray(np.stack([grey] * 3, axis=-1)).save(tmp_path / "digit_rgb.png")
    assert (
        main(["stratify", "assign", "--run", str(out), str(img), str(tmp_path / "digit_rgb.png")])
        == 0
    )
    first, second = capsys.readouterr().out.strip().splitlines()
    assert first.split("\t")[1:] == second.split("\t")[1:]


def test_stratify_errors_are_one_sentence(tmp_path, capsys):
    assert main(["stratify", "warmup.epoch=3", "--out", str(tmp_path / "r")]) == 2
    assert "Unknown config key 'warmup.epoch'" in capsys.readouterr().err
    assert (
        main(
            [
                "stratify",
                "data.dataset=medmnist",
                f"data.medmnist_path={tmp_path}/x.npz",
                "--out",
                str(tmp_path / "r2"),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "x.npz' does not exist" in err and err.count("\n") == 1
    assert main(["stratify", str(tmp_path / "missing.yaml")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["stratify", "assign", "--run", str(tmp_path / "none"), "a.png"]) == 2
    assert "no trained model" in capsys.readouterr().err


def test_packaged_mnist_config_end_to_end(tmp_path, capsys):
    """The packaged config (spectral, kNN assignment, k by stability), shrunk."""
    from medcl.cluster import choose_k

    out = tmp_path / "spectral"
    argv = ["stratify", "stratify-mnist", *TINY, "evaluate.baselines=false", "--out", str(out)]
    assert main(argv) == 0
    info = json.loads((out / "cluster.json").read_text())
    assert info["method"] == "spectral" and len(info["stability"]) == len(info["k_values"])
    # the k of medcl.cluster.choose_k on the same latents, range and seed
    z = np.load(out / "train_latents.npy")  # the normalised latents the stage clustered
    best = choose_k(z, info["k_values"], method="spectral", rule="stability", seed=0).k
    assert info["k"] == best == json.loads((out / "metrics.json").read_text())["stability_k"]
    assert f"stability: {best}" in (out / "metrics.md").read_text()
    assert (out / "plots" / "elbow.png").is_file()
    train_clusters = np.load(out / "train_clusters.npy")
    rows = list(csv.DictReader((out / "assignments.csv").open()))
    train_rows = [r for r in rows if r["split"] == "train"]
    # training images keep the stratum the clustering gave them
    assert [int(r["cluster"]) for r in train_rows] == train_clusters.tolist()
    # a new image takes the stratum of its nearest training latents
    x = np.load(out / "train_latents.npy")
    assert x.shape == (160, 8)
    img = tmp_path / "digit.png"
    Image.fromarray((np.random.default_rng(1).random((28, 28)) * 255).astype(np.uint8)).save(img)
    capsys.readouterr()
    assert main(["stratify", "assign", "--run", str(out), str(img)]) == 0
    assert "digit.png" in capsys.readouterr().out
