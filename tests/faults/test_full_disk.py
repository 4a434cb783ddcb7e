"""A disk that fills up mid-run: one sentence, nothing that looks complete, then it resumes.

The run directory is a small tmpfs, mounted in a private mount namespace (``unshare -rm``),
so no privileges are needed where user namespaces are allowed; the test is skipped where
they are not. After the failed run, every file left must be whole: each JSON parses, each
record's checksum and the content hashes of the files it vouches for hold, each array and
checkpoint loads, no temporary file remains, and a ``results.json`` exists only if it holds
the results of every cell (the disk may fill up while the report is written). Then the
tmpfs is enlarged and the same command finishes with the Dice of an uninterrupted run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.faults.conftest import PIPELINE

pytestmark = pytest.mark.slow

CHECK = r"""
import json, sys, zipfile
from pathlib import Path
import numpy as np, torch
from medcl._load import file_digest
from medcl.stages._done import _digest
run = Path(sys.argv[1])
bad = []
for p in sorted(run.rglob("*")):
    if not p.is_file() or p.name == ".medcl-lock":
        continue
    if p.name.endswith(".tmp") or p.name.startswith("."):
        bad.append(f"temporary {p}")
    elif p.suffix == ".json":
        doc = json.loads(p.read_text())
        rec = doc.get("record") if isinstance(doc, dict) else None
        if rec is not None:
            body = {k: v for k, v in doc.items() if k != "record"}
            if rec["checksum"] != _digest({**body, "record": {k: v for k, v in rec.items() if k != "checksum"}}):
                bad.append(f"checksum {p}")
            for name, digest in rec["outputs"].items():
                if file_digest(run / name) != digest:
                    bad.append(f"output {name} of {p}")
    elif p.suffix == ".npy":
        np.load(p)
    elif p.suffix == ".npz":
        dict(np.load(p))
    elif p.suffix == ".pt":
        torch.load(p, weights_only=True)
if (run / "results.json").exists():  # written after every cell: it must hold all of them
    rows = json.loads((run / "results.json").read_text())["rows"]
    cells = sorted(run.glob("finetune/*/*/*/result.json"))
    if len(rows) != 2 or sorted(r["dice"] for r in rows) != sorted(
        json.loads(c.read_text())["dice"] for c in cells
    ):
        bad.append("results.json that is not the cells' results")
print("\n".join(bad) or "ok")
"""


def _namespace_ok() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(
        ["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=1m tmpfs /mnt 2>/dev/null || "
         "mount -t tmpfs -o size=1m tmpfs /tmp"], capture_output=True,
    )  # fmt: skip
    return probe.returncode == 0


# early, mid-run, and at the last writes: the finished run takes about 1,100 kB (du), so
# 1000k fills while report.html is written (1100k no longer filled at all since the compact cache)
@pytest.mark.parametrize("size", ["256k", "640k", "1000k"])
def test_full_disk_leaves_nothing_that_looks_complete(size, data_root, tmp_path):
    if not _namespace_ok():
        pytest.skip("mounting a tmpfs is not allowed here")
    mnt = tmp_path / "disk"
    mnt.mkdir()
    (tmp_path / "check.py").write_text(CHECK)
    run = mnt / "run"
    medcl = (
        f"{sys.executable} -m medcl run {data_root / 'cfg.yaml'} --out {run} {' '.join(PIPELINE)}"
    )
    t = tmp_path
    script = f"""
        mount -t tmpfs -o size={size} tmpfs {mnt} || exit 99
        {medcl} > {t}/full.out 2> {t}/full.err; echo $? > {t}/full.rc
        {sys.executable} {t}/check.py {run} > {t}/check.out 2>&1; echo $? > {t}/check.rc
        mount -o remount,size=64m {mnt}
        {medcl} > {t}/resume.out 2> {t}/resume.err; echo $? > {t}/resume.rc
        cp {run}/results.json {t}/results.json
        mount -o remount,ro {mnt}
        {medcl} > {t}/ro.out 2> {t}/ro.err; echo $? > {t}/ro.rc
    """
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE",
           "PYTHONPATH": str(Path(__file__).resolve().parents[2])}  # fmt: skip
    proc = subprocess.run(["unshare", "-rm", "sh", "-c", script], env=env, timeout=900)
    assert proc.returncode != 99
    err = (t / "full.err").read_text()
    assert (t / "full.rc").read_text().strip() == "2", err[-3000:]
    last = err.strip().splitlines()[-1]
    assert "Traceback" not in err and last.startswith("medcl: error: Cannot write '")
    assert "no space left on the device" in last
    assert (t / "check.rc").read_text().strip() == "0", (t / "check.out").read_text()
    assert (t / "check.out").read_text().strip() == "ok", (t / "check.out").read_text()
    assert (t / "resume.rc").read_text().strip() == "0", (t / "resume.err").read_text()[-3000:]
    assert " is damaged (" not in (t / "resume.err").read_text()
    rows = json.loads((t / "results.json").read_text())["rows"]
    assert sorted(r["method"] for r in rows) == ["random", "ufc"]
    assert all(0 <= r["dice"] <= 1 for r in rows)
    # the finished run directory, now read-only: one sentence, no traceback
    ro = (t / "ro.err").read_text()
    assert (t / "ro.rc").read_text().strip() == "2" and "Traceback" not in ro
    assert "read-only file system" in ro.strip().splitlines()[-1]


@pytest.mark.parametrize("size", ["640k"])
def test_full_disk_resume_equals_uninterrupted(size, data_root, finished_run, tmp_path):
    """The resumed run's Dice equal those of a run that never hit the full disk."""
    if not _namespace_ok():
        pytest.skip("mounting a tmpfs is not allowed here")
    mnt = tmp_path / "disk"
    mnt.mkdir()
    run = mnt / "run"
    medcl = (
        f"{sys.executable} -m medcl run {data_root / 'cfg.yaml'} --out {run} {' '.join(PIPELINE)}"
    )
    script = f"""
        mount -t tmpfs -o size={size} tmpfs {mnt} || exit 99
        {medcl} > /dev/null 2>&1
        mount -o remount,size=64m {mnt}
        {medcl} > /dev/null 2> {tmp_path}/resume.err || exit 98
        cp {run}/results.json {tmp_path}/results.json
    """
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE",
           "PYTHONPATH": str(Path(__file__).resolve().parents[2])}  # fmt: skip
    proc = subprocess.run(["unshare", "-rm", "sh", "-c", script], env=env, timeout=900)
    assert proc.returncode == 0, (tmp_path / "resume.err").read_text()[-3000:]

    def dice(path: Path) -> list:
        rows = json.loads(path.read_text())["rows"]
        return sorted((r["method"], r["dice"], tuple(r["dice_per_class"])) for r in rows)

    assert dice(tmp_path / "results.json") == dice(finished_run / "results.json")
