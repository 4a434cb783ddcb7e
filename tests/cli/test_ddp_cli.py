"""`run.devices=2`: the command starts two processes (DDP over gloo on CPU) and finishes."""

import json
import os
import subprocess
import sys

from tests.cli.conftest import TINY


def test_two_process_run_from_the_command_line(tiny_config, tmp_path):
    out = tmp_path / "ddp"
    argv = [sys.executable, "-m", "medcl", "run", str(tiny_config), "--out", str(out), *TINY,
            "run.methods=[random,ufc]", "run.label_fractions=[1.0]", "run.device=cpu",
            "run.devices=2"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "MEMBER: 2/2" in proc.stderr  # two processes took part
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert sorted(r["method"] for r in rows) == ["random", "ufc"]
    assert proc.stdout.count("Test Dice %") == 1  # printed by rank 0 only
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    pre = [r for r in lines if r.get("stage") == "pretrain"]
    assert [r["epoch"] for r in pre] == [0, 1]  # logged once, not once per process
