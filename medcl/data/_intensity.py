"""How stored pixel values become intensities in [0, 1] (``data.intensity``).

A 16-bit microscopy image whose values span 0-235, divided by 65535, holds intensities of
0-0.0036: nearly black, and fine-tuned Dice drops. So, by default (``scale="auto"``):

* 8-bit and boolean images are scaled by their type's range (``/ 255``), as saved;
* everything else (16-bit and other integer images, float images, DICOM after its rescale
  slope and intercept, NIfTI volumes) by its own values: the ``percentiles`` (0.5th and
  99.5th) map to 0 and 1, and values beyond are clipped, so a few extreme pixels do not
  squash the contrast.

``per="image"`` takes the percentiles of each file (a volume counts as one file: all its
slices share them); ``per="dataset"`` of all files together (a sample of up to
``SAMPLE_PER_FILE`` values from each, after resizing), which keeps brightness differences
between images. The other scales: ``"type"`` divides integer images by their type's range
(uint8 0-255, uint16 0-65535, int16 -32768-32767; float images, which have no such
range, by their min and max); ``"percentile"`` uses percentiles for 8-bit images too;
``"window"`` maps a fixed ``window = (lo, hi)`` of stored values to [0, 1], clipping, e.g.
``(-1000, 400)`` Hounsfield units for CT (DICOM rescale slope and intercept applied first);
``"window"`` without ``window`` uses each DICOM file's own display window (its VOI LUT, or
WindowCenter/WindowWidth with its VOI LUT Function; :meth:`DicomReader.window`), and is an
error for files that have none. ``"auto"`` does not apply the file's window: windows are
chosen for viewing, differ between files and vendors, and a narrow one clips tissue that the
percentiles keep.

Example::

    >>> spec = Intensity()                          # auto
    >>> x = np.array([[0, 100], [200, 235]], np.uint16)
    >>> float(spec.apply(x, spec.bounds(x)).max())
    1.0
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["SAMPLE_PER_FILE", "SCALES", "Intensity", "type_range", "uses_little_of_its_type"]

SCALES = ("auto", "type", "percentile", "window")
SAMPLE_PER_FILE = 100_000  # values per file for data-set percentiles
LITTLE = 0.01  # an image whose values span under 1% of its type's range is warned about


def type_range(dtype: np.dtype) -> tuple[float, float] | None:
    """``(min, max)`` of an integer or boolean type; None for floats."""
    dtype = np.dtype(dtype)
    if dtype == np.bool_:
        return 0.0, 1.0
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return float(info.min), float(info.max)
    return None


def uses_little_of_its_type(x: np.ndarray) -> tuple[float, float] | None:
    """``(min, max)`` of ``x`` when they differ but span under 1% of its type's range, else None."""
    rng = type_range(x.dtype)
    if rng is None or x.dtype == np.bool_ or x.size == 0:
        return None
    lo, hi = float(np.min(x)), float(np.max(x))
    # a constant image has no contrast under any scaling: not what this warning is about
    return (lo, hi) if 0 < hi - lo < LITTLE * (rng[1] - rng[0]) else None


@dataclass(frozen=True)
class Intensity:
    """The ``data.intensity`` settings, as plain values (see the module docstring)."""

    scale: str = "auto"
    percentiles: tuple[float, float] = (0.5, 99.5)
    per: str = "image"
    window: tuple[float, float] | None = None

    def by_type(self, dtype: np.dtype) -> bool:
        """Whether images of ``dtype`` are scaled by their type's range."""
        dtype = np.dtype(dtype)
        if self.scale == "type":
            return type_range(dtype) is not None
        return self.scale == "auto" and (dtype == np.uint8 or dtype == np.bool_)

    @property
    def file_window(self) -> bool:
        """Whether each file's own window (DICOM VOI) maps its values to [0, 1]."""
        return self.scale == "window" and self.window is None

    def per_dataset(self, dtype: np.dtype) -> bool:
        """Whether images of ``dtype`` need the percentiles of the whole data set."""
        uses_percentiles = self.scale == "percentile" or (
            self.scale == "auto" and not self.by_type(dtype)
        )
        return uses_percentiles and self.per == "dataset"

    def bounds(self, x: np.ndarray) -> tuple[float, float]:
        """The stored values that map to 0 and 1 for the image (or volume) ``x`` alone."""
        if self.scale == "window":
            # without a window, the loader asks the reader for the file's own (DICOM VOI)
            assert self.window is not None, "scale=window without window: use reader.window"
            return float(self.window[0]), float(self.window[1])
        if self.by_type(x.dtype):
            rng = type_range(x.dtype)
            assert rng is not None
            return rng
        if self.scale == "type":  # floats: no type range
            return float(np.min(x)), float(np.max(x))
        return percentile_bounds(x, self.percentiles)

    def apply(self, x: np.ndarray, bounds: tuple[float, float]) -> np.ndarray:
        """``x`` mapped to [0, 1] float32 by ``bounds``, clipped; constant images become 0."""
        lo, hi = bounds
        out = x.astype(np.float32)
        if hi <= lo:
            return np.zeros_like(out)
        out -= np.float32(lo)
        out /= np.float32(hi - lo)
        return np.clip(out, 0.0, 1.0, out=out)

    def settings(self) -> dict:
        """For the cache key."""
        return asdict(self)


def percentile_bounds(x: np.ndarray, percentiles: tuple[float, float]) -> tuple[float, float]:
    """The two percentiles of ``x``; its min and max when they coincide (a mostly flat image)."""
    lo, hi = (float(v) for v in np.percentile(x, list(percentiles)))
    if hi <= lo:
        lo, hi = float(np.min(x)), float(np.max(x))
    return lo, hi


def sample_values(x: np.ndarray, n: int = SAMPLE_PER_FILE) -> np.ndarray:
    """Up to ``n`` values of ``x``, evenly strided (deterministic), as float32."""
    flat = x.reshape(-1)
    step = max(1, len(flat) // n)
    return np.asarray(flat[::step][:n], dtype=np.float32)
