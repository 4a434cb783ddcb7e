"""Images and masks kept compact, read back as the float32 and int64 arrays they stand for.

A decoded collection at ISIC size (45,141 RGB images at 192 x 192) is 20 GB as float32 with
13 GB of int64 masks, though the files hold 8-bit pixels and 2,000 masks. So the cache keeps
what the data hold, and converts per batch:

* :class:`StoredImages` holds ``(N, C, H, W)`` in the narrowest dtype that gives back today's
  float32 values *exactly* (:func:`compact_images`): ``uint8`` when every value is
  ``k / 255`` (8-bit files scaled by 255 and not resized), ``uint16`` when every value is
  ``k / 65535`` (16-bit files with ``data.intensity.scale=type``, not resized), ``float16``
  when every value is a float16, else ``float32`` (percentile or window scaling, float
  NIfTI, DICOM rescale, resized images, RGB to grey). The conversion is a table lookup
  (``table[k]`` = ``float32(k) / float32(255)``), the same on the CPU and on a GPU, so a
  batch holds the very bits the float32 path held; the choice is checked when the cache is
  written, never assumed.
* With ``store="source"`` (:func:`round_to_depth`), images that no exact store holds
  (resized, or scaled by percentiles) are rounded to the depth of their file instead:
  ``uint8`` (``round(255 x) / 255``) for 8-bit files, ``uint16`` otherwise; within half a
  grey level of the float32 values, and 4x (2x) smaller. A resized 8-bit collection such as
  ISIC's photographs then takes one byte per pixel.
* :class:`SparseMasks` holds only the rows of images that have a mask, as ``uint8`` (``int16``
  beyond 255 classes), with an index from image to row; images without one read as zeros.

Both behave as read-only arrays of their logical dtype (``shape``, ``dtype``, ``len``,
indexing, ``np.asarray``), so every reader of :class:`~medcl.data.ImageSet` works unchanged;
:meth:`StoredImages.select` and :meth:`StoredImages.tensor` let training loops keep the
compact rows and convert a batch on its device.

>>> x = np.arange(6, dtype=np.float32).reshape(1, 1, 2, 3) / np.float32(255)
>>> s = compact_images(x)
>>> s.stored_dtype, bool((s[:] == x).all()), s.dtype
('uint8', True, dtype('float32'))
"""

from __future__ import annotations

import mmap
from typing import Any

import numpy as np
import torch

__all__ = [
    "PackedFile",
    "SparseMasks",
    "StoredImages",
    "compact_images",
    "compact_masks",
    "join_packed",
    "mask_dtype",
    "pack_images",
    "release_pages",
    "round_to_depth",
]

_SCALES = {"uint8": 255, "uint16": 65535}
_CHECK_ROWS = 64  # rows converted at a time while choosing the dtype
_RELEASE_BYTES = 256 * 2**20  # read from a mapped store between releases of its pages


def _table(stored: str) -> np.ndarray | None:
    """``table[k]``: the float32 value stored integer ``k`` stands for (None: no table)."""
    scale = _SCALES.get(stored)
    if scale is None:
        return None
    return np.arange(scale + 1, dtype=np.float32) / np.float32(scale)


def _rows_index(key: Any, n: int) -> Any:
    """``key`` (int, slice, integer or bool array) as something that indexes ``range(n)``."""
    if isinstance(key, slice | int | np.integer):
        return key
    key = np.asarray(key)
    if key.dtype == np.bool_:
        return np.flatnonzero(key)
    return key.astype(np.int64, copy=False)


class _Rows:
    """Shared machinery: a stored array, an optional selection of its rows, numpy-like reads."""

    raw: np.ndarray
    index: np.ndarray | None

    def __len__(self) -> int:
        return len(self.raw) if self.index is None else len(self.index)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def shape(self) -> tuple[int, ...]:
        raise NotImplementedError

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def nbytes_stored(self) -> int:
        return int(self.raw.nbytes)

    def _split(self, key: Any) -> tuple[Any, tuple]:
        if isinstance(key, tuple):
            return (key[0] if key else slice(None)), key[1:]
        return key, ()

    def _positions(self, first: Any) -> Any:
        """Rows of ``raw`` that ``first`` names (an int, a slice or an array of ints)."""
        first = _rows_index(first, len(self))
        if self.index is None:
            return first
        return self.index[first]

    def __getattr__(self, name: str) -> Any:
        """Any other ndarray attribute (``min``, ``mean``, ``astype``, ...) of the whole
        logical array: convenient for small sets, a full read for large ones."""
        if name.startswith("_") or name in ("raw", "index", "rows"):
            raise AttributeError(name)
        return getattr(np.asarray(self), name)

    def _note_read(self, nbytes: int) -> None:
        """Release the mapped pages every so often: a pass over a mapped store (an epoch, a
        fingerprint) would otherwise keep all of it resident, counted as this process's."""
        self._read = getattr(self, "_read", 0) + nbytes
        if self._read > _RELEASE_BYTES and isinstance(self.raw, np.memmap):
            self._read = 0
            self.release()

    def release(self) -> None:
        """Drop the pages a memory-mapped store has read from this process's resident set.

        They stay in the page cache, so reading them again is cheap; called after a pass
        over every row (fingerprints, checks) so that it does not count as held memory.
        """
        release_pages(self.raw)


def release_pages(array: np.ndarray) -> None:
    """``madvise(DONTNEED)`` on the mapping behind a read-only ``np.memmap`` (else nothing)."""
    base = getattr(array, "_mmap", None)
    while base is None and isinstance(getattr(array, "base", None), np.ndarray):
        array = array.base  # type: ignore[assignment]
        base = getattr(array, "_mmap", None)
    if isinstance(base, mmap.mmap) and hasattr(base, "madvise"):
        try:
            base.madvise(mmap.MADV_DONTNEED)
        except (OSError, ValueError):
            pass


class StoredImages(_Rows):
    """``(N, C, H, W)`` float32 images kept as ``raw`` (uint8, uint16, float16 or float32).

    Indexing returns float32 numpy arrays equal, bit for bit, to the images before they
    were stored; :meth:`select` picks rows without reading them.
    """

    def __init__(self, raw: np.ndarray, index: np.ndarray | None = None) -> None:
        if raw.ndim != 4:
            raise ValueError(f"images must be (N, C, H, W), got shape {raw.shape}")
        if str(raw.dtype) not in ("uint8", "uint16", "float16", "float32"):
            raise ValueError(
                f"stored images must be uint8, uint16, float16 or float32, not {raw.dtype}"
            )
        self.raw = raw
        self.index = None if index is None else np.asarray(index, dtype=np.int64)
        self._lookup = _table(str(raw.dtype))
        self._device_tables: dict[torch.device, torch.Tensor] = {}
        self._read = 0  # bytes read since the mapped pages were last released

    dtype = np.dtype(np.float32)
    itemsize = 4

    @property
    def stored_dtype(self) -> str:
        return str(self.raw.dtype)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self), *self.raw.shape[1:])

    def _convert(self, part: np.ndarray) -> np.ndarray:
        if self._lookup is not None:
            return np.take(self._lookup, part)
        return np.asarray(part, dtype=np.float32)

    def __getitem__(self, key: Any) -> np.ndarray:
        first, rest = self._split(key)
        part = np.asarray(self.raw[self._positions(first)])
        self._note_read(part.nbytes)
        out = self._convert(part)
        return out[(slice(None),) * (out.ndim - 3) + rest] if rest else out

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self[:]
        return out if dtype is None else out.astype(dtype, copy=False)

    def select(self, idx: np.ndarray) -> StoredImages:
        """The rows ``idx``, still stored (nothing is read)."""
        return StoredImages(self.raw, np.asarray(self._positions(np.asarray(idx)), np.int64))

    def tensor(self, idx: Any, device: torch.device | str) -> torch.Tensor:
        """Rows ``idx`` as a float32 tensor on ``device``: moved stored, converted there."""
        part = np.ascontiguousarray(self.raw[self._positions(idx)])
        self._note_read(part.nbytes)
        if self._lookup is None:
            return torch.from_numpy(part).to(device).float()
        device = torch.device(device)
        table = self._device_tables.get(device)
        if table is None:
            table = self._device_tables[device] = torch.from_numpy(self._lookup).to(device)
        # int32 indices: uint16 has no torch indexing, and int32 halves the transfer of int64
        t = torch.from_numpy(part.astype(np.int32) if part.dtype == np.uint16 else part)
        return table[t.to(device).long()]


class SparseMasks(_Rows):
    """``(N, H, W)`` int64 class maps of which only the images with a mask are stored.

    ``raw`` is ``(M, H, W)`` uint8 or int16 and ``rows[i]`` the row of image ``i`` in it,
    -1 for an image without a mask (read as zeros).
    """

    dtype = np.dtype(np.int64)
    itemsize = 8

    def __init__(self, raw: np.ndarray, rows: np.ndarray, index: np.ndarray | None = None) -> None:
        if raw.ndim != 3:
            raise ValueError(f"stored masks must be (M, H, W), got shape {raw.shape}")
        self.raw = raw
        self.rows = np.asarray(rows, dtype=np.int64)
        self.index = None if index is None else np.asarray(index, dtype=np.int64)

    @property
    def shape(self) -> tuple[int, ...]:
        n = len(self.rows) if self.index is None else len(self.index)
        return (n, *self.raw.shape[1:])

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key: Any) -> np.ndarray:
        first, rest = self._split(key)
        first = _rows_index(first, len(self))
        images = first if self.index is None else self.index[first]
        rows = self.rows[images]
        if np.ndim(rows) == 0:
            r = int(rows)
            out = np.zeros(self.raw.shape[1:], np.int64) if r < 0 else self.raw[r].astype(np.int64)
        else:
            rows = np.asarray(rows)
            out = np.zeros((len(rows), *self.raw.shape[1:]), dtype=np.int64)
            have = rows >= 0
            if have.any():
                out[have] = np.asarray(self.raw[rows[have]]).astype(np.int64)
        return out[(slice(None),) * (out.ndim - 2) + rest] if rest else out

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self[:]
        return out if dtype is None else out.astype(dtype, copy=False)

    def select(self, idx: np.ndarray) -> SparseMasks:
        """The rows ``idx``, still stored (nothing is read)."""
        idx = _rows_index(np.asarray(idx), len(self))
        return SparseMasks(self.raw, self.rows, idx if self.index is None else self.index[idx])


def pack_images(images: np.ndarray) -> np.ndarray:
    """``images`` (float32) as the narrowest array that gives them back exactly."""
    for stored in ("uint8", "uint16", "float16"):
        packed = _pack(images, stored)
        if packed is not None:
            return packed
    return images


def round_to_depth(images: np.ndarray, stored: str) -> np.ndarray:
    """``images`` (float32 in [0, 1]) rounded to ``stored`` (``uint8`` or ``uint16``) levels.

    Lossy, by at most half a level; the store :func:`pack_images` gives when it is exact.

    >>> x = np.array([0.0, 0.5, 1.0], np.float32).reshape(1, 1, 1, 3)
    >>> round_to_depth(x, "uint8").ravel().tolist()
    [0, 128, 255]
    """
    for narrower in ("uint8", "uint16")[: ("uint8", "uint16").index(stored) + 1]:
        exact = _pack(images, narrower)
        if exact is not None:
            return exact  # exact already, and no wider
    scale = np.float32(_SCALES[stored])
    out = np.empty(images.shape, dtype=stored)
    for s in range(0, len(images), _CHECK_ROWS):
        x = np.clip(images[s : s + _CHECK_ROWS], 0, 1)
        out[s : s + _CHECK_ROWS] = np.rint(x * scale)
    return out


def join_packed(parts: list[Any]) -> np.ndarray:
    """Packed parts of one collection in one array: their common dtype, else float32.

    Consumes ``parts``: each is dropped from the list once it is copied, so that joining a
    collection holds it about once, not twice (``np.concatenate`` holds every part and the
    result at the same time: 10 GB for ISIC's 5 GB of uint8 images).

    >>> parts = [np.zeros((2, 1, 1, 1), np.uint8), np.ones((1, 1, 1, 1), np.uint8)]
    >>> join_packed(parts).ravel().tolist(), parts
    ([0, 0, 1], [None, None])
    """
    same = len({p.dtype for p in parts}) == 1
    if len(parts) == 1:
        only, parts[0] = parts[0], None
        return only
    dtype = parts[0].dtype if same else np.dtype(np.float32)
    out = np.empty((sum(len(p) for p in parts), *parts[0].shape[1:]), dtype)
    at = freed = 0
    for i, part in enumerate(parts):
        parts[i] = None  # freed once copied (the caller holds no other reference)
        out[at : at + len(part)] = part if same else StoredImages(part)[:]
        at += len(part)
        freed += part.nbytes
        del part
        if freed > _RELEASE_BYTES:
            freed = 0
            _return_freed_memory()
    _return_freed_memory()
    return out


class PackedFile:
    """Packed image parts appended to one ``.npy`` file as they are decoded, in order.

    Decoding into a cache then holds one file's pixels at a time instead of the collection:
    each part is written at the end of the file, and :meth:`finish` writes the header, whose
    shape is known only then, over the bytes kept free for it at the start. The file is a
    plain ``.npy`` (format 1.0), read back memory-mapped. Every part must share the first
    one's dtype and ``(C, H, W)``: :meth:`add` refuses one that does not, and
    :meth:`take_back` returns what was written so far as one in-memory array, so that the
    caller can go on in memory (a collection of mixed depths is joined as float32).

    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "x.npy"
    >>> f = PackedFile(path)
    >>> f.add(np.zeros((2, 1, 1, 2), np.uint8)), f.add(np.ones((1, 1, 1, 2), np.uint8))
    (True, True)
    >>> f.add(np.ones((1, 1, 1, 2), np.float32))
    False
    >>> f.finish()[:, 0, 0].tolist()
    [[0, 0], [0, 0], [1, 1]]
    """

    HEADER_BYTES = 256  # magic, version, length and the padded dict: room for any 4-d shape

    def __init__(self, path: Any) -> None:
        from pathlib import Path

        self.path = Path(path)
        self._file: Any = open(self.path, "wb")  # noqa: SIM115 (closed by finish/take_back)
        self._file.write(bytes(self.HEADER_BYTES))
        self.dtype: np.dtype | None = None
        self.tail: tuple[int, ...] = ()
        self.rows = 0

    def add(self, part: np.ndarray) -> bool:
        """Append ``part`` (``(n, C, H, W)``); False, writing nothing, if it cannot follow."""
        if self.dtype is None:
            self.dtype, self.tail = part.dtype, tuple(part.shape[1:])
        elif part.dtype != self.dtype or tuple(part.shape[1:]) != self.tail:
            return False
        try:
            self._file.write(np.ascontiguousarray(part).data)
        except OSError as exc:  # a full disk: one sentence naming the file, not a traceback
            from medcl.rundir import write_error

            raise write_error(self.path, exc) from exc
        self.rows += len(part)
        return True

    def _header(self) -> bytes:
        assert self.dtype is not None
        d = {
            "descr": np.lib.format.dtype_to_descr(self.dtype),
            "fortran_order": False,
            "shape": (self.rows, *self.tail),
        }
        text = repr(d).encode("latin1")
        room = self.HEADER_BYTES - 10 - 1  # magic + version + length, and the final newline
        if len(text) > room:
            raise ValueError(f"a .npy header of {len(text)} bytes does not fit in {room}")
        body = text.ljust(room) + b"\n"
        return b"\x93NUMPY\x01\x00" + len(body).to_bytes(2, "little") + body

    def finish(self) -> np.ndarray:
        """The whole collection, memory-mapped from the finished file."""
        assert self.dtype is not None, "nothing was added"
        self._file.seek(0)
        self._file.write(self._header())
        self._file.close()
        return np.load(self.path, mmap_mode="r")

    def take_back(self) -> list[np.ndarray]:
        """What was written, as one in-memory array in a list (empty if nothing was); the
        file is removed."""
        self._file.close()
        out: list[np.ndarray] = []
        if self.rows:
            assert self.dtype is not None
            flat = np.fromfile(self.path, dtype=self.dtype, offset=self.HEADER_BYTES)
            out.append(flat.reshape(self.rows, *self.tail))
        self.path.unlink(missing_ok=True)
        return out


def _return_freed_memory() -> None:
    """Hand freed heap pages back to the system (glibc ``malloc_trim``; elsewhere nothing).

    Decoded files arrive as many small arrays, which the C heap keeps after they are freed
    unless asked: joining ISIC's 5 GB of images otherwise peaked at 10 GB.
    """
    global _TRIM
    if _TRIM is None:
        import ctypes
        import ctypes.util

        try:
            _TRIM = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
        except (OSError, AttributeError, TypeError):
            _TRIM = False
    if _TRIM:
        _TRIM(0)


_TRIM: Any = None


def compact_images(images: np.ndarray | StoredImages) -> StoredImages:
    """``images`` (float32) in the narrowest dtype that gives them back exactly.

    Tries uint8 (``k / 255``), uint16 (``k / 65535``), then float16, a few rows at a time,
    and keeps float32 when none holds every value; see the module docstring.
    """
    if isinstance(images, StoredImages):
        if images.index is None:
            return images
        return StoredImages(np.ascontiguousarray(images.raw[images.index]))
    images = np.asarray(images)
    if images.dtype != np.float32:
        return StoredImages(np.ascontiguousarray(images, dtype=np.float32))
    return StoredImages(pack_images(images))


def _pack(images: np.ndarray, stored: str) -> np.ndarray | None:
    out = np.empty(images.shape, dtype=stored)
    table = _table(stored)
    for s in range(0, len(images), _CHECK_ROWS):
        x = images[s : s + _CHECK_ROWS]
        if table is not None:
            scale = _SCALES[stored]
            if not (np.all(x >= 0) and np.all(x <= 1)):
                return None
            k = np.rint(x * np.float32(scale)).astype(stored)
            back = np.take(table, k)
        else:
            with np.errstate(over="ignore"):
                k = x.astype(np.float16)
            back = k.astype(np.float32)
        # bitwise: -0.0 is not 0.0 for the fingerprints, and NaN never passes
        if not np.array_equal(back.view(np.uint32), x.view(np.uint32)):
            return None
        out[s : s + _CHECK_ROWS] = k
    return out


def compact_masks(masks: np.ndarray | SparseMasks, has_mask: np.ndarray) -> SparseMasks:
    """The rows of images with a mask (or a non-zero row), as uint8 (int16 beyond 255)."""
    if isinstance(masks, SparseMasks) and masks.index is None:
        return masks
    masks = np.asarray(masks)
    keep = np.asarray(has_mask, dtype=bool) | np.any(masks != 0, axis=(1, 2))
    raw = masks[keep]
    rows = np.full(len(keep), -1, dtype=np.int64)
    rows[keep] = np.arange(int(keep.sum()))
    return SparseMasks(np.ascontiguousarray(raw, dtype=mask_dtype(raw)), rows)


def mask_dtype(labels: np.ndarray) -> np.dtype:
    """uint8 for class ids 0..255, int16 up to 32767, else int64 (kept as they are)."""
    if labels.size == 0:
        return np.dtype(np.uint8)
    lo, hi = int(labels.min()), int(labels.max())
    if lo >= 0 and hi <= 255:
        return np.dtype(np.uint8)
    if lo >= -(2**15) and hi < 2**15:
        return np.dtype(np.int16)
    return np.dtype(np.int64)
