"""Loading what a run directory holds, without ever running code from it.

Every ``torch.load`` in medcl goes through :func:`load_torch`, with ``weights_only=True``:
tensors, numbers, strings, lists and dicts only, so a checkpoint carrying a pickled callable
is refused instead of executed. Checkpoints therefore hold plain values: RNG states as
tensors or dicts of ints, histories as lists of floats. :func:`file_digest` gives the
content hash that records and the image cache store to notice a file changed under them.
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from typing import Any

import numpy as np

from medcl.errors import DamagedFile, UnsafeFile


def load_torch(path: str | os.PathLike) -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU.

    Raises :class:`~medcl.errors.UnsafeFile` for a file holding Python objects other than
    tensors and plain values (loading them could run code), and
    :class:`~medcl.errors.DamagedFile` for one that is missing, cut short or not a torch file.
    """
    import torch

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise DamagedFile(path, "missing")
    unsafe: list[str] = []
    archive = zipfile.is_zipfile(path)  # what torch.save writes
    if archive:
        try:
            unsafe = list(torch.serialization.get_unsafe_globals_in_checkpoint(path))
        except Exception:  # a damaged archive: torch.load below says so
            unsafe = []
    if unsafe:
        raise _unsafe(path, unsafe)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises RuntimeError, UnpicklingError, EOFError, ...
        text = str(exc)
        if "GLOBAL" in text and ("Unsupported" in text or "blocked" in text):
            raise _unsafe(path, [_global_name(text)]) from None
        what = "cut short or corrupted" if archive else "zeroed, cut short or not a torch file"
        raise DamagedFile(path, what) from None


def _global_name(text: str) -> str:
    words = text.split("GLOBAL", 1)[1].split()
    return words[0] if words else "a Python object"


def _unsafe(path: str, names: list[str]) -> UnsafeFile:
    shown = ", ".join(sorted(set(names))[:3])
    return UnsafeFile(
        f"Checkpoint '{path}' holds Python objects ({shown}) that could run code when loaded, "
        "so medcl refuses to load it; delete it unless you know where it came from."
    )


def file_digest(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """A 128-bit BLAKE2 hash of the file's bytes, as hex."""
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def load_npy(path: str | os.PathLike, mmap: bool = False) -> np.ndarray:
    """``np.load`` of an ``.npy`` file (no pickles); :class:`DamagedFile` if it cannot be read."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise DamagedFile(path, "missing")
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (OSError, ValueError, EOFError):
        raise DamagedFile(path, "zeroed, cut short or not an .npy array") from None


def refuse_unsafe_files(folder: str | os.PathLike) -> None:
    """Raise :class:`~medcl.errors.UnsafeFile` for the first ``.pt`` file under ``folder``
    that holds Python objects other than tensors and plain values.

    Run when a command opens a run directory, so that such a file stops the command before
    any stage runs, not when a stage first reaches it. Only the pickle's list of globals is
    read (nothing is unpickled), so this is fast.
    """
    import torch

    for root, _, files in os.walk(os.fspath(folder)):
        for name in sorted(files):
            path = os.path.join(root, name)
            if not name.endswith(".pt") or not zipfile.is_zipfile(path):
                continue
            try:
                unsafe = list(torch.serialization.get_unsafe_globals_in_checkpoint(path))
            except Exception:  # damaged: the stage that reads it recomputes it
                continue
            if unsafe:
                raise _unsafe(path, unsafe)
