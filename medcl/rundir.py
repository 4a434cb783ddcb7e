"""The run directory: resolved config, git revision, metrics log and atomic artefacts.

Every stage reads its inputs from and writes its outputs to one folder, so any stage can be
rerun, resumed or swapped. Files are written to a temporary name in the same folder and
moved into place with ``os.replace``, so an interrupted run never leaves a half-written file.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml


@contextmanager
def _replacing(path: Path, suffix: str = ".tmp") -> Iterator[str]:
    """Yield a temporary file name beside ``path``; move it onto ``path`` only on success."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    with _replacing(path) as tmp, open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def atomic_torch_save(obj: Any, path: Path) -> None:
    with _replacing(path) as tmp:
        torch.save(obj, tmp)


def atomic_save_npy(path: Path, array: np.ndarray) -> None:
    with _replacing(path, suffix=".npy") as tmp:  # np.save appends .npy to other names
        np.save(tmp, array)


def git_revision() -> str:
    """The medcl source revision (with '+dirty' for local changes), or 'unknown'."""
    here = Path(__file__).resolve().parent
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5
        )
        if rev.returncode != 0:
            return "unknown"
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
        return rev.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


class RunDir:
    """A run directory. ``RunDir(path).file("cluster", "labels.npy")`` -> Path."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)

    def file(self, *parts: str) -> Path:
        p = self.path.joinpath(*parts)
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def save_config(self, cfg_dict: dict) -> None:
        atomic_write_text(self.file("config.yaml"), yaml.safe_dump(cfg_dict, sort_keys=False))
        atomic_write_text(self.file("git_revision.txt"), git_revision() + "\n")

    def load_config_dict(self) -> dict | None:
        p = self.path / "config.yaml"
        return yaml.safe_load(p.read_text()) if p.exists() else None

    def log(self, **record: Any) -> None:
        """Append one JSON line to ``metrics.jsonl`` (stage, step, loss, ...)."""
        record = {"time": round(time.time(), 3), **record}
        with open(self.file("metrics.jsonl"), "a") as fh:
            fh.write(json.dumps(record) + "\n")

    def read_metrics(self) -> list[dict]:
        p = self.path / "metrics.jsonl"
        if not p.exists():
            return []
        out = []
        for line in p.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line cut by an interruption
        return out

    def write_json(self, name: str, obj: Any) -> None:
        atomic_write_text(self.file(name), json.dumps(obj, indent=2) + "\n")

    def read_json(self, name: str) -> Any:
        p = self.path / name
        return json.loads(p.read_text()) if p.exists() else None
