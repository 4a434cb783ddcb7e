"""One process owns a run directory at a time: an OS lock on ``DIR/.medcl-lock``.

``fcntl.flock`` locks belong to an open file, so the kernel releases them when the process
ends, however it ends (``kill -9`` included): there is never a stale lock to clean up. The
file holds the owner's pid, for the message a second process gets. Commands that only read
a run (``medcl stratify assign``) take the lock shared: many readers, no writer meanwhile.

Under DDP the launcher (rank 0) takes the lock before it starts the other processes, which
re-run the same command with ``LOCAL_RANK`` (or ``RANK``) set; those share their
launcher's lock instead of taking one. Under ``torchrun`` and SLURM's ``srun`` every process
is started by the cluster launcher: global rank 0 (``RANK`` / ``SLURM_PROCID`` 0) takes the
lock and the others, on this machine or another, rely on it.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from medcl.errors import MedclError

LOCK_NAME = ".medcl-lock"

_held: dict[str, int] = {}  # real path of a locked directory -> open lock file descriptor


def _ddp_worker() -> bool:
    keys = ("LOCAL_RANK", "RANK", "SLURM_PROCID")
    return any(os.environ.get(k, "0") not in ("", "0") for k in keys)


def _holder(fd: int) -> str:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        pid = os.read(fd, 32).decode(errors="replace").strip()
    except OSError:
        pid = ""
    return f"pid {pid}" if pid.isdigit() else "pid unknown"


def lock_directory(path: str | os.PathLike, shared: bool = False) -> bool:
    """Hold the lock of run directory ``path`` until :func:`release_all` or process exit.

    Re-entrant within a process. Raises :class:`MedclError` naming the holder's pid when
    another process holds it. Returns True when this call took the lock (False: this
    process held it already, or shares its DDP launcher's).
    """
    key = os.path.realpath(path)
    if key in _held or _ddp_worker():
        return False
    lock_path = Path(path) / LOCK_NAME
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        if shared and not lock_path.exists():  # a read-only run directory: nothing to guard
            return False
        raise MedclError(
            f"Cannot create the lock file '{lock_path}': {(exc.strerror or str(exc)).lower()}; "
            "give a run directory you can write to."
        ) from None
    try:
        fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
    except OSError:
        holder = _holder(fd)
        os.close(fd)
        raise MedclError(
            f"Run directory '{path}' is in use by another medcl process ({holder}); wait for "
            "it to finish, or give another --out directory."
        ) from None
    if not shared:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    _held[key] = fd
    return True


def release_all() -> None:
    """Release every run-directory lock this process holds (the end of a command)."""
    for fd in _held.values():
        try:
            os.close(fd)  # closing the last descriptor releases the flock
        except OSError:
            pass
    _held.clear()
