"""Files a run writes get the usual mode (0666 less the umask), not mkstemp's 0600."""

from __future__ import annotations

import os
import stat

import numpy as np

from medcl.rundir import atomic_save_npy, atomic_torch_save, atomic_write_text


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_atomic_writes_respect_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a.json", "{}")
        atomic_save_npy(tmp_path / "b.npy", np.zeros(3))
        atomic_torch_save({"x": 1}, tmp_path / "c.pt")
        assert {_mode(tmp_path / n) for n in ("a.json", "b.npy", "c.pt")} == {0o644}
        os.umask(0o077)
        atomic_write_text(tmp_path / "d.json", "{}")
        assert _mode(tmp_path / "d.json") == 0o600
    finally:
        os.umask(old)
