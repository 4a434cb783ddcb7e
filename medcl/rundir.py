"""The run directory: resolved config, git revision, metrics log and atomic artefacts.

Every stage reads its inputs from and writes its outputs to one folder, so any stage can be
rerun, resumed or swapped. Files are written to a temporary name in the same folder and
moved into place with ``os.replace``, so an interrupted run (a kill, a full disk) never
leaves a half-written file under its final name. One process owns a run directory at a
time (:meth:`RunDir.lock`).
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from medcl._lock import lock_directory
from medcl.errors import MedclError


def say(message: str) -> None:
    """One progress line on stderr: readable in a terminal and in a CI log alike."""
    print(f"medcl: {message}", file=sys.stderr, flush=True)


_NOT_WRITABLE = {errno.EROFS, errno.EACCES, errno.EPERM}
_FULL = {errno.ENOSPC, errno.EDQUOT}


def write_error(path: str | os.PathLike, exc: BaseException) -> MedclError:
    """One sentence for a failed write of ``path``: a full disk, a read-only folder, ...

    ``torch.save`` reports a full disk as a ``RuntimeError`` without an errno, so the free
    space of the folder is looked at too.
    """
    code = getattr(exc, "errno", None)
    folder = Path(path).parent
    if code not in _FULL and code not in _NOT_WRITABLE:
        try:
            st = os.statvfs(folder)
            if st.f_bavail * st.f_frsize < 1 << 20:
                code = errno.ENOSPC
        except OSError:
            pass
    if code in _FULL:
        return MedclError(
            f"Cannot write '{path}': no space left on the device; free some space (or give "
            "--out a folder on another disk) and run the same command again to resume."
        )
    if code in _NOT_WRITABLE:
        return MedclError(
            f"Cannot write '{path}': {os.strerror(code or errno.EACCES).lower()}; give --out a "
            "folder you can write to."
        )
    reason = getattr(exc, "strerror", None) or str(exc).strip().splitlines()[0] or type(exc)
    return MedclError(f"Cannot write '{path}': {reason}.")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def usual_mode(tmp: str) -> None:
    """Give a ``mkstemp`` file (0600) the mode ``open()`` would have: 0666 less the umask."""
    os.chmod(tmp, 0o666 & ~_umask())


@contextmanager
def _replacing(path: Path, suffix: str = ".tmp") -> Iterator[str]:
    """Yield a temporary file name beside ``path``; move it onto ``path`` only on success."""
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
        os.close(fd)
        usual_mode(tmp)  # a run's report and tables stay readable by whoever could read the folder
        yield tmp
        os.replace(tmp, path)
    except (OSError, RuntimeError) as exc:  # RuntimeError: torch.save's failed write
        raise write_error(path, exc) from exc
    finally:
        if tmp is not None and os.path.exists(tmp):
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


def atomic_savez(path: Path, **arrays: Any) -> None:
    """``np.savez_compressed`` to ``path`` (which should end in ``.npz``), atomically."""
    with _replacing(path, suffix=".npz") as tmp:  # np.savez appends .npz to other names
        np.savez_compressed(tmp, **arrays)


# the distributions whose versions can move a run's numbers (environment.json)
_DISTRIBUTIONS = (
    "torch",
    "numpy",
    "scipy",
    "scikit-learn",
    "faiss-cpu",
    "faiss-gpu",
    "kornia",
    "monai",
    "lightning-fabric",
    "nibabel",
    "pydicom",
    "pillow",
    "matplotlib",
)


def environment() -> dict:
    """What ran: Python, the platform and CPU, the versions of the numeric libraries, torch's
    threads and SIMD level, so that two runs that differ can be told apart by
    environment as well as by ``git_revision.txt`` (a reinstall alone moved the stratify
    warm-up's numbers)."""
    import platform
    from importlib import metadata

    versions = {}
    for name in _DISTRIBUTIONS:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    cpu = platform.processor() or None
    try:  # Linux: the model name (platform.processor() is often empty there)
        with open("/proc/cpuinfo") as f:
            cpu = next(
                (ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu
            )
    except OSError:
        pass
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": cpu,
        # the SIMD kernels torch dispatches to (AVX2, AVX512, ...): another CPU can change
        # the order of floating-point sums and so a run's numbers
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.version.cuda,
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "versions": versions,
    }


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


# What a run directory holds that says "this part is finished" or "resume from here":
# removed by --fresh, so that nothing computed before is reused. Other files are simply
# overwritten when their stage runs again.
RECORD_NAMES = ("done.json", "result.json", "best.json", "best.pt", "checkpoint.pt")
RECORD_FILES = ("cluster/summary.json", "stage_seconds.json")
# The temporary names of _replacing (".NAME.XXXXXXXX.tmp") and of the image cache.
_TEMPORARY = re.compile(r"^\..+\.[A-Za-z0-9_]{8}\.(tmp|npy|npz)$")
_CACHE_TEMPORARY = re.compile(r"^medcl-[0-9a-f]{24}\..+[A-Za-z0-9_]{8}\.tmp$")


class RunDir:
    """A run directory. ``RunDir(path).file("cluster", "labels.npy")`` -> Path."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if self.path.exists() and not self.path.is_dir():
            raise MedclError(
                f"The run directory '{self.path}' is a file, not a folder; give --out (or "
                "--run) a folder, new or from an earlier run."
            )
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise MedclError(
                f"Cannot create the run directory '{self.path}': "
                f"{(exc.strerror or str(exc)).lower()}; give --out a folder you can write to."
            ) from None

    def lock(self, shared: bool = False) -> None:
        """Own this directory until the process exits (``shared``: read it, with others).

        An OS file lock (``flock``), so the kernel releases it when the process dies, even
        by ``kill -9``; a second writer gets one sentence naming the holder's pid. The
        processes of one DDP run share their launcher's lock.
        """
        if lock_directory(self.path, shared) and not shared:
            self.remove_temporaries()  # left by a killed process: nobody else writes here

    def remove_temporaries(self) -> int:
        """Remove the temporary files a killed process left (only the lock holder may)."""
        removed = 0
        for root, _, files in os.walk(self.path):
            for name in files:
                if _TEMPORARY.match(name) or _CACHE_TEMPORARY.match(name):
                    try:
                        os.unlink(os.path.join(root, name))
                        removed += 1
                    except OSError:
                        pass
        return removed

    def clear_records(self) -> int:
        """Remove every finished-stage record and checkpoint (``--fresh``); returns the count."""
        removed = 0
        for root, dirs, files in os.walk(self.path):
            dirs[:] = [d for d in dirs if d != "cache"]
            for name in files:
                rel = os.path.relpath(os.path.join(root, name), self.path)
                if name in RECORD_NAMES or rel in RECORD_FILES:
                    os.unlink(os.path.join(root, name))
                    removed += 1
        cache = self.path / "cache"
        if cache.is_dir():
            shutil.rmtree(cache)
            removed += 1
        return removed

    def retract(self, *names: str) -> None:
        """Remove summaries that the end of this run writes again (``results.json``, the
        report), so that an interrupted run never leaves ones that disagree with its config."""
        for name in names:
            p = self.path / name
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)

    def file(self, *parts: str) -> Path:
        p = self.path.joinpath(*parts)
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise write_error(p, exc) from exc
        return p

    def save_config(self, cfg_dict: dict) -> None:
        atomic_write_text(self.file("config.yaml"), yaml.safe_dump(cfg_dict, sort_keys=False))
        atomic_write_text(self.file("git_revision.txt"), git_revision() + "\n")
        atomic_write_text(self.file("environment.json"), json.dumps(environment(), indent=1))

    def load_config_dict(self) -> dict | None:
        """The saved ``config.yaml`` as a dict, None if there is none; damaged: an error."""
        p = self.path / "config.yaml"
        if not p.exists():
            return None
        try:
            tree = yaml.safe_load(p.read_text())
        except (OSError, ValueError, yaml.YAMLError):
            tree = None
        if not isinstance(tree, dict):
            raise MedclError(
                f"The saved config '{p}' is damaged (not a YAML mapping); give the config file "
                f"again, e.g. `medcl features my.yaml --run {self.path}`."
            )
        return tree

    def log(self, **record: Any) -> None:
        """Append one JSON line to ``metrics.jsonl`` (stage, step, loss, ...)."""
        record = {"time": round(time.time(), 3), **record}
        path = self.file("metrics.jsonl")
        try:
            with open(path, "a") as fh:
                fh.write(json.dumps(record) + "\n")
        except OSError as exc:
            raise write_error(path, exc) from exc

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
        """The JSON file ``name``, or None if it does not exist (or cannot be parsed)."""
        p = self.path / name
        if not p.exists():
            return None
        try:
            return json.loads(p.read_text())
        except (OSError, ValueError):  # UnicodeDecodeError and JSONDecodeError too
            return None
