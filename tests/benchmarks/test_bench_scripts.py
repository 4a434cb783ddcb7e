"""The benchmark scripts run (tiny sizes) and report what they claim to."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))


def test_bench_step_reports_both_steps_for_each_method(tmp_path):
    import bench_step

    rows = bench_step.main(
        [
            "--size",
            "16",
            "--batch",
            "4",
            "--repeats",
            "1",
            "--threads",
            "1",
            "--methods",
            "simclr",
            "moco",
            "finetune",
            "--json",
            str(tmp_path / "r.json"),
        ]
    )
    assert [r["method"] for r in rows] == ["simclr", "moco", "finetune"]
    for r in rows:
        assert r["raw_images_per_s"] > 0 and r["full_images_per_s"] > 0
        ratio = r["raw_images_per_s"] and r["full_images_per_s"] / r["raw_images_per_s"]
        assert r["full_over_raw"] == pytest.approx(ratio, rel=0.02)
        assert r["syncs"] is None  # counted on CUDA only
    assert (tmp_path / "r.json").exists()


def test_bench_gpu_refuses_without_a_gpu_in_one_line(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present: the script would run")
    p = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_gpu.py"), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert p.returncode == 2
    assert p.stderr.count("\n") == 1 and "no CUDA device" in p.stderr
    assert "Traceback" not in p.stderr


def test_stratify_robustness_reruns_other_rules_on_the_same_latents_and_judges_the_worst(
    tmp_path,
):
    import numpy as np
    import stratify_robustness

    tiny = ["data.max_train=120", "warmup.epochs=1", "decoder.epochs=1",
            "evaluate.probe_epochs=2", "evaluate.baselines=false", "cluster.k_max=4",
            "model.widths=[4,8]", "model.latent_dim=8", "model.projector=[16,8]"]  # fmt: skip
    stratify_robustness.main(
        [
            "--out",
            str(tmp_path),
            "--rules",
            "eigengap",
            "--common",
            *tiny,
            "--variant",
            "cut",
            "data.drop={'8': 0.5}",
        ]  # fmt: skip
    )
    text = (tmp_path / "table.md").read_text()
    assert "| cut | stability | 120 / 950 (test) |" in text  # the packaged rule, 8s halved
    assert "| cut | eigengap |" in text
    # the other rule clustered the latents the packaged rule's warm-up produced
    same = np.load(tmp_path / "cut" / "embed" / "latents.npy")
    assert np.array_equal(np.load(tmp_path / "cut@eigengap" / "embed" / "latents.npy"), same)
    # random-feature scores are far below the goals: the verdict must say so
    assert "NOT met" in text and "every variant) met" not in text
    row = {"variant": "v", "n_train": 1, "n_eval": 1, "eval_split": "test", "k": 10,
           "linear probe": 0.9, "wall_s": 60.0, "k_rule": "stability"}  # fmt: skip
    good = [{**row, "majority mapping": 0.96, "kNN": 0.98}]
    assert stratify_robustness.table(good).rstrip().endswith(" met")
    worst = good + [{**row, "majority mapping": 0.96, "kNN": 0.965}]
    assert "NOT met" in stratify_robustness.table(worst)
