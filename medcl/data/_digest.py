"""Content fingerprints of the images a stage reads, so a rerun notices when they change.

A split's fingerprint hashes everything a stage can read about its images: the pixels,
masks, whether each mask exists, ids, volume ids, slice positions and class names. It is
computed from the decoded arrays, so it is the same whichever way the images were loaded
(decoded from files, read from the cache, built in) and changes when one pixel does.
"""

from __future__ import annotations

import hashlib

import numpy as np

from medcl.data._imageset import ImageSet
from medcl.data._stored import SparseMasks, StoredImages

__all__ = ["chunk_of", "split_fingerprint"]

_CHUNK_BYTES = 32 * 2**20  # hashed at a time: a large or memory-mapped set is never copied


def chunk_of(array: np.ndarray | StoredImages | SparseMasks, budget: int = _CHUNK_BYTES) -> int:
    """How many rows of ``array`` fit in ``budget`` bytes (at least one)."""
    row = array.itemsize * int(np.prod(array.shape[1:], dtype=np.int64))
    return max(1, budget // max(1, row))


def split_fingerprint(data: ImageSet, split: str) -> str:
    """A 128-bit hash (hex) of the images of ``split`` ('train', 'val', 'test') and their masks.

    Memoised on ``data`` for the split's current membership.

    >>> import numpy as np
    >>> z = np.zeros((2, 1, 2, 2), np.float32)
    >>> def make(images):
    ...     ds = ImageSet(images, np.zeros((2, 2, 2), np.int64), np.ones(2, bool),
    ...                   np.array(["a", "b"], object), np.array(["", ""], object),
    ...                   np.full(2, np.nan), ["background", "x"])
    ...     ds.split[:] = "train"
    ...     return ds
    >>> one = z.copy(); one[1, 0, 0, 0] = 1
    >>> split_fingerprint(make(z), "train") == split_fingerprint(make(z.copy()), "train")
    True
    >>> split_fingerprint(make(z), "train") == split_fingerprint(make(one), "train")
    False
    """
    idx = data.indices(split)
    key = (split, hashlib.blake2b(idx.tobytes(), digest_size=16).hexdigest())
    memo = data.__dict__.setdefault("_fingerprints", {})
    if key in memo:
        return memo[key]
    h = hashlib.blake2b(digest_size=16)
    h.update(repr((data.images.shape[1:], str(data.images.dtype), list(data.class_names))).encode())
    h.update("\0".join(str(i) for i in data.ids[idx]).encode())
    h.update("\0".join(str(v) for v in data.volume_ids[idx]).encode())
    h.update(np.ascontiguousarray(data.positions[idx], dtype=np.float64).tobytes())
    h.update(np.ascontiguousarray(data.has_mask[idx], dtype=bool).tobytes())
    step = chunk_of(data.images)
    for start in range(0, len(idx), step):
        part = idx[start : start + step]
        h.update(np.ascontiguousarray(data.images[part]).tobytes())
        h.update(np.ascontiguousarray(data.masks[part]).tobytes())
    for array in (data.images, data.masks):
        if isinstance(array, StoredImages | SparseMasks):
            array.release()  # a pass over a mapped store need not stay resident
    memo[key] = h.hexdigest()
    return memo[key]
