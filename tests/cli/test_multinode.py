"""`run.num_nodes=2`: two "machines" started by torchrun, as on a cluster, on this one host.

Each torchrun launcher stands for one node (``--nnodes 2 --node-rank R``, one process each);
they meet over TCP at 127.0.0.1 and pretrain with DDP over gloo, exactly the path a
two-machine job takes except for the network between them.
"""

import json
import os
import socket
import subprocess
import sys

import pytest

from medcl.errors import MedclError
from medcl.stages.pipeline import check_launcher
from tests.cli.conftest import TINY


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_nodes_launched_by_torchrun(tiny_config, tmp_path):
    out, port = tmp_path / "nodes", _free_port()
    medcl = ["-m", "medcl", "run", str(tiny_config), "--out", str(out), *TINY,
             "run.methods=[random,ufc]", "run.label_fractions=[1.0]", "run.device=cpu",
             "run.devices=1", "run.num_nodes=2"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def node(rank: int) -> list[str]:
        return [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2",
                "--nproc-per-node", "1", "--node-rank", str(rank), "--master-addr",
                "127.0.0.1", "--master-port", str(port), *medcl]  # fmt: skip

    pipe = subprocess.PIPE
    procs = [
        subprocess.Popen(node(r), stdout=pipe, stderr=pipe, text=True, env=env) for r in (0, 1)
    ]
    results = [p.communicate(timeout=300) for p in procs]
    for p, (_, err) in zip(procs, results, strict=True):
        assert p.returncode == 0, err[-2000:]
    err0 = results[0][1] + results[1][1]
    assert "MEMBER: 1/2" in err0 and "MEMBER: 2/2" in err0  # one process on each "node"
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert sorted(r["method"] for r in rows) == ["random", "ufc"]
    stdout = results[0][0] + results[1][0]
    assert stdout.count("Test Dice %") == 1  # printed by global rank 0 only
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    pre = [r for r in lines if r.get("stage") == "pretrain"]
    assert [r["epoch"] for r in pre] == [0, 1]  # logged once, not once per node


def test_a_launcher_that_started_other_processes_is_refused(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    check_launcher(1, 2)
    check_launcher(2, 1)
    with pytest.raises(MedclError, match=r"started 2 processes .* 1 x 1 = 1; set run.devices"):
        check_launcher(1, 1)
    monkeypatch.delenv("WORLD_SIZE")
    check_launcher(1, 1)  # no launcher: nothing to check
