"""One process per run directory: a second one is refused, a dead one never blocks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from medcl._lock import LOCK_NAME, lock_directory, release_all
from medcl.errors import MedclError

HOLD = (
    "import sys, time; from medcl._lock import lock_directory; "
    "lock_directory(sys.argv[1]); print('held', flush=True); time.sleep(120)"
)


def _holder(path: Path) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(path)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_process_is_refused_and_a_killed_one_releases(tmp_path):
    holder = _holder(tmp_path)
    try:
        assert (tmp_path / LOCK_NAME).read_text().strip() == str(holder.pid)
        with pytest.raises(
            MedclError, match=f"in use by another medcl process \\(pid {holder.pid}\\)"
        ):
            lock_directory(tmp_path)
        with pytest.raises(MedclError):
            lock_directory(tmp_path, shared=True)  # a reader waits for the writer too
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    lock_directory(tmp_path)  # the kernel released the dead holder's lock: no stale lock
    assert (tmp_path / LOCK_NAME).read_text().strip() == str(os.getpid())
    release_all()


def test_readers_share_and_ddp_ranks_share_their_launchers_lock(tmp_path, monkeypatch):
    lock_directory(tmp_path, shared=True)
    reader = subprocess.run(
        [sys.executable, "-c", "import sys; from medcl._lock import lock_directory; "
         "lock_directory(sys.argv[1], shared=True)", str(tmp_path)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert reader.returncode == 0, reader.stderr
    release_all()
    holder = _holder(tmp_path)
    try:
        monkeypatch.setenv("LOCAL_RANK", "1")  # a DDP process started by the launcher
        lock_directory(tmp_path)
    finally:
        holder.kill()
        holder.wait()
        release_all()


@pytest.mark.slow
def test_two_medcl_runs_on_one_directory(data_root, tmp_path):
    from tests.faults.conftest import PIPELINE

    out = tmp_path / "run"
    argv = [sys.executable, "-m", "medcl", "run", str(data_root / "cfg.yaml"), "--out", str(out),
            *PIPELINE]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    first = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    deadline = time.time() + 120
    while not (out / LOCK_NAME).exists() or not (out / LOCK_NAME).read_text().strip():
        assert time.time() < deadline and first.poll() is None
        time.sleep(0.05)
    second = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300)
    _, err = first.communicate(timeout=300)
    assert first.returncode == 0, err[-2000:]
    assert second.returncode == 2 and "Traceback" not in second.stderr
    assert second.stderr.strip().splitlines()[-1] == (
        f"medcl: error: Run directory '{out}' is in use by another medcl process "
        f"(pid {first.pid}); wait for it to finish, or give another --out directory."
    )
    assert "Test Dice" not in second.stdout
