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
