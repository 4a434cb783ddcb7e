"""``kill -9`` in every stage, then the same command again: it finishes with the same bits.

Each case kills a real ``medcl`` process with SIGKILL just before one of its writes takes
its final name (``tests/faults/_killer.py``), reruns the command, and compares everything
it computed with an uninterrupted run: the Dice of every cell, the embeddings, the
pseudo-labels and every trained tensor, bit for bit. Nothing is lost either: the resumed
run finds no damaged file. Slow (two processes per case, each importing torch).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.faults.conftest import PIPELINE, STRATIFY

pytestmark = pytest.mark.slow

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
BENCH = [*PIPELINE, "run.methods=[random,simclr]", "run.seeds=[0,1]"]
PRIOR = [*PIPELINE, "prior.epochs=6", "prior.batch_size=8", "prior.references=3",
         "pretrain.ld_clusters=4", "pretrain.ld_embed_dim=8"]  # fmt: skip


def medcl(*args: str, kill: tuple[str, int] | None = None) -> subprocess.CompletedProcess:
    prefix = ["-m", "medcl"] if kill is None else ["-m", "tests.faults._killer", *map(str, kill)]
    return subprocess.run(
        [sys.executable, *prefix, *args], capture_output=True, text=True, env=ENV, timeout=600
    )


def command(kind: str, cfg: Path, out: Path) -> list[str]:
    if kind == "run":
        return ["run", str(cfg), "--out", str(out), *PIPELINE]
    if kind == "benchmark":
        return ["benchmark", str(cfg), "--out", str(out), *BENCH]
    if kind == "segment-prior":
        return ["segment-prior", str(cfg), "--out", str(out), *PRIOR]
    return ["stratify", *STRATIFY, "--out", str(out)]


def fingerprint_of_results(kind: str, out: Path) -> dict:
    """Everything a run computed, as exact values (no timings)."""
    got: dict = {}
    if kind in ("run", "benchmark"):
        rows = json.loads((out / "results.json").read_text())["rows"]
        got["rows"] = sorted(
            (r["method"], r["label_fraction"], r["seed"], r["dice"], tuple(r["dice_per_class"]))
            for r in rows
        )
    if kind == "segment-prior":
        res = json.loads((out / "results.json").read_text())
        got["dice"] = res["dice"]
        got["loss"] = res["loss"]
    if kind == "stratify":
        got["metrics"] = json.loads((out / "metrics.json").read_text())["rows"]
        got["assignments"] = (out / "assignments.csv").read_text()
    for p in sorted(out.rglob("*.npy")):
        if "cache" not in p.parts:
            got[str(p.relative_to(out))] = np.load(p).tobytes()
    for p in sorted(out.rglob("*.pt")):
        if p.name != "checkpoint.pt":
            state = torch.load(p, weights_only=True)
            got[str(p.relative_to(out))] = {k: v.numpy().tobytes() for k, v in state.items()}
    return got


_REFERENCE: dict[str, dict] = {}


def reference(kind: str, cfg: Path, tmp_path_factory) -> dict:
    if kind not in _REFERENCE:
        out = tmp_path_factory.mktemp(f"ref-{kind}") / "run"
        proc = medcl(*command(kind, cfg, out))
        assert proc.returncode == 0, proc.stderr[-3000:]
        _REFERENCE[kind] = fingerprint_of_results(kind, out)
    return _REFERENCE[kind]


KILLS = [
    ("run", "*/cache/*.images.npy", 1),  # the images decoded to disk, renamed into the entry
    ("run", "*/cache/*.meta.json", 1),
    ("run", "*/features/checkpoint.pt", 1),
    ("run", "*/features/done.json", 1),
    ("run", "*/cluster/labels.npy", 1),
    ("run", "*/cluster/summary.json", 1),
    ("run", "*/pretrain/ufc/seed0/checkpoint.pt", 1),
    ("run", "*/pretrain/ufc/seed0/encoder.pt", 1),
    ("run", "*/pretrain/ufc/seed0/done.json", 1),
    ("run", "*/finetune/random/labels1/seed0/best.pt", 1),
    ("run", "*/finetune/ufc/labels1/seed0/checkpoint.pt", 1),
    ("run", "*/finetune/ufc/labels1/seed0/done.json", 1),
    ("run", "*/finetune/ufc/labels1/seed0/examples.npz", 1),
    ("run", "*/finetune/ufc/labels1/seed0/result.json", 1),
    ("run", "*/results.json", 1),
    ("run", "*/report.html", 1),
    ("benchmark", "*/pretrain/simclr/seed1/checkpoint.pt", 1),
    ("benchmark", "*/finetune/simclr/labels1/seed0/done.json", 1),
    ("segment-prior", "*/checkpoint.pt", 1),
    ("segment-prior", "*/masks/test_masks.npy", 1),
    ("stratify", "*/warmup/checkpoint.pt", 1),
    ("stratify", "*/decoder/checkpoint.pt", 1),
    ("stratify", "*/embed/done.json", 1),
    ("stratify", "*/cluster/done.json", 1),
    ("stratify", "*/model.json", 1),
    ("stratify", "*/metrics.json", 1),
]


@pytest.mark.parametrize("kind,pattern,n", KILLS, ids=[f"{k}:{p[2:]}" for k, p, _ in KILLS])
def test_killed_then_resumed_equals_uninterrupted(kind, pattern, n, data_root, tmp_path,
                                                  tmp_path_factory):  # fmt: skip
    cfg = data_root / "cfg.yaml"
    out = tmp_path / "run"
    killed = medcl(*command(kind, cfg, out), kill=(pattern, n))
    assert killed.returncode == -9, killed.stderr[-3000:]  # it did die at that write
    resumed = medcl(*command(kind, cfg, out))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Traceback" not in resumed.stderr
    assert " is damaged (" not in resumed.stderr  # a kill never leaves a damaged file
    assert not list(out.rglob(".*.tmp")) and not list(out.rglob("*.tmp"))
    assert fingerprint_of_results(kind, out) == reference(kind, cfg, tmp_path_factory)
