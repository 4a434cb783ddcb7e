"""`medcl stratify` on a folder of images without any labels."""

import csv
import json

import numpy as np
import pytest
from PIL import Image

from medcl.cli import main
from medcl.errors import MedclError
from medcl.stratify_config import load_stratify_config
from tests.stratify.test_cli import TINY


def _folder(root, n=48):
    """Two kinds of 16x16 images (bright top half, bright left half), no labels."""
    rng = np.random.default_rng(0)
    root.mkdir()
    for i in range(n):
        x = rng.normal(40, 8, (16, 16))
        if i % 2:
            x[:8] += 150
        else:
            x[:, :8] += 150
        Image.fromarray(x.clip(0, 255).astype(np.uint8)).save(root / f"im{i:02d}.png")
    return root


def test_stratify_a_folder_without_labels(tmp_path, capsys):
    images = _folder(tmp_path / "images")
    out = tmp_path / "run"
    args = [
        "stratify", "data.dataset=folder", f"data.images={images}", "data.image_size=[16,16]",
        *[a for a in TINY if not a.startswith("data.max_train")], "warmup.batch_size=16",
        "--out", str(out),
    ]  # fmt: skip
    assert main(args) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["labels"] is False and metrics["rows"] == {}
    assert metrics["n_train"] == metrics["n_eval"] == 48 and metrics["eval_split"] == "train"
    assert "nmi" not in metrics["cluster"] and np.isfinite(metrics["cluster"]["silhouette"])
    rows = list(csv.DictReader((out / "assignments.csv").open()))
    assert len(rows) == 48 and {r["split"] for r in rows} == {"train"}
    assert "No labels (data.dataset=folder)" in capsys.readouterr().out
    assert (out / "plots" / "tsne.png").is_file() and (out / "report.html").is_file()
    # the trained model assigns new images like any stratify run
    capsys.readouterr()
    assert main(["stratify", "assign", "--run", str(out), str(images / "im00.png")]) == 0
    assert "cluster" in capsys.readouterr().out


def test_folder_config_is_checked():
    with pytest.raises(MedclError, match="data.dataset=folder needs data.images"):
        load_stratify_config(None, ["data.dataset=folder"])
    with pytest.raises(MedclError, match="data.images is for data.dataset=folder"):
        load_stratify_config(None, ["data.images=/x"])
