"""A tiny run of the whole pipeline from a folder of PNGs, through the command line."""

import json

import numpy as np
import torch

from medcl.cli import main
from tests.cli.conftest import TINY


def test_run_writes_results_report_and_resumes(png_folder, tiny_config, capsys):
    out = png_folder / "run"
    assert main(["run", str(tiny_config), "--out", str(out), *TINY]) == 0
    printed = capsys.readouterr().out
    assert "| random |" in printed and "| ufc |" in printed
    results = json.loads((out / "results.json").read_text())
    rows = results["rows"]
    assert {(r["method"], r["label_fraction"]) for r in rows} == {
        (m, f) for m in ("random", "simclr", "ufc") for f in (0.5, 1.0)
    }
    for r in rows:
        assert set(r) >= {"method", "label_fraction", "seed", "dice", "dice_per_class", "k"}
        assert 0 <= r["dice"] <= 1 and len(r["dice_per_class"]) == 2
    k = results["k"]
    labels = np.load(out / "cluster" / "labels.npy")
    assert 2 <= k <= 6 and len(np.unique(labels)) == k
    assert len(labels) == len(np.load(out / "features" / "embeddings.npy"))
    assert set(results["stage_seconds"]) >= {"features", "cluster", "pretrain", "finetune"}
    for name in (
        "config.yaml",
        "git_revision.txt",
        "environment.json",
        "metrics.jsonl",
        "table.md",
        "table.csv",
        "report.md",
        "report.html",
    ):
        assert (out / name).exists(), name
    env = json.loads((out / "environment.json").read_text())
    assert env["versions"]["torch"].split("+")[0] == torch.__version__.split("+")[0]
    assert env["versions"]["numpy"] == np.__version__ and env["torch_threads"] >= 1
    assert env["torch_cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 5  # self-contained plots
    # A rerun finds every cell done and recomputes nothing.
    before = (out / "metrics.jsonl").read_text()
    assert main(["run", str(tiny_config), "--out", str(out), *TINY]) == 0
    assert (out / "metrics.jsonl").read_text() == before
    assert json.loads((out / "results.json").read_text())["rows"] == rows


def test_stage_commands_share_one_run_directory(png_folder, tiny_config, capsys):
    run = str(png_folder / "staged")
    assert main(["features", str(tiny_config), "--run", run, *TINY]) == 0
    assert main(["cluster", "--run", run]) == 0
    assert main(["pretrain", "--run", run, "method=ufc", "seed=0"]) == 0
    assert main(["finetune", "--run", run, "method=ufc", "fraction=0.5", "seed=0"]) == 0
    assert main(["evaluate", "--run", run]) == 0
    out = capsys.readouterr().out
    assert "| ufc |" in out
    assert main(["finetune", "--run", run, "method=ufc", "fraction=2", "seed=0"]) == 2
