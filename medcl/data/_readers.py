"""Readers for medical image files, behind one small interface.

Like MONAI's ``ImageReader``, every reader answers two questions: can I read this file
(:meth:`ImageReader.can_read`, by suffix), and what does it hold (:meth:`ImageReader.read`
for intensities, :meth:`ImageReader.read_labels` for masks). Both return an array and a
metadata dict. All readers return the same layout, so callers never branch on the format:

* images: ``(S, C, H, W)`` float32 in [0, 1], where ``S`` is the number of 2D slices
  (1 for an ordinary 2D image);
* labels: ``(S, H, W)`` int64, the values stored in the file (palette indices for palette
  images, no intensity scaling).

The metadata always holds ``path``, ``format``, ``is_volume`` (True for NIfTI files, multi-page
TIFF stacks and multi-frame DICOM), ``num_slices`` and ``dtype`` (the stored pixel type).

How :meth:`ImageReader.read` scales intensities to [0, 1] (folders of images go through
:meth:`ImageReader.read_values` and ``data.intensity`` instead, :mod:`medcl.data._intensity`):

* PNG, JPEG, BMP, TIFF: by the range of the stored type (``uint8 / 255``, ``uint16 / 65535``,
  booleans as 0/1); other integer and float types by min-max per image. RGBA and LA images
  lose their alpha channel; palette images are converted to RGB (for labels the palette
  indices are kept, since those are the classes).
* DICOM: decoded (YBR colour to RGB, PALETTE COLOR looked up to RGB), the Modality LUT or
  ``RescaleSlope`` and ``RescaleIntercept`` applied to grey images, then min-max per file;
  ``MONOCHROME1`` images are inverted so that bright always means high intensity. The VOI
  (display window) is applied only on request (:meth:`ImageReader.window`). Objects that
  hold no image (SEG, RTSTRUCT, SR, ...) raise :class:`~medcl.errors.NotAnImage`.
* NIfTI: a robust min-max over the whole volume, mapping the 0.5th percentile to 0 and the
  99.5th to 1 and clipping, so that a few extreme voxels (metal, air) do not squash the
  contrast of every slice. Slices are taken along ``axis`` of the stored array (2, the third
  axis, is the axial plane for volumes stored as scanners export them); the volume is not
  reoriented, so masks saved with the same array layout stay aligned. A 4D volume's fourth
  axis is read as channels (e.g. the MR sequences of a BraTS case).

pydicom and nibabel are imported only when a DICOM or NIfTI file is read.

Example::

    >>> image, meta = read_image("ISIC_0001.jpg")   # (3, H, W) float32 in [0, 1]
    >>> volume, meta = read_volume("case_01.nii.gz", axis=2)   # (S, 1, H, W)
    >>> mask = read_mask("ISIC_0001_segmentation.png")   # (H, W) int64
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from medcl.errors import MedclError, NotAnImage, UnreadableFile

__all__ = [
    "READERS",
    "SUPPORTED_SUFFIXES",
    "NON_IMAGE_MODALITIES",
    "DicomReader",
    "ImageReader",
    "NiftiReader",
    "PillowReader",
    "TiffReader",
    "apply_window",
    "dicom_non_image",
    "file_stem",
    "file_suffix",
    "read_image",
    "read_mask",
    "read_volume",
    "reader_for",
]

PathLike = str | os.PathLike


def file_suffix(path: PathLike) -> str:
    """The lower-case suffix of ``path``, treating ``.nii.gz`` as one suffix."""
    # os.path, not Path: this runs several times per file while decoding large folders
    name = os.path.basename(os.fspath(path)).lower()
    if name.endswith(".nii.gz"):
        return ".nii.gz"
    suffix = os.path.splitext(name)[1]
    return "" if suffix == "." else suffix  # as Path.suffix: "a." has none


def file_stem(path: PathLike) -> str:
    """The file name without its suffix (``case_01.nii.gz`` -> ``case_01``)."""
    name = Path(path).name
    return name[: len(name) - len(file_suffix(name))]


def _import(module: str, package: str, path: PathLike, what: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MedclError(
            f"Reading {what} file '{path}' needs the '{package}' package; "
            f"install it with `pip install {package}`."
        ) from exc


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0].strip() if str(exc).strip() else type(exc).__name__
    return text.rstrip(".")


def _minmax(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float32, copy=False)
    lo, hi = float(np.min(x)), float(np.max(x))
    if hi <= lo:
        return np.zeros_like(x, dtype=np.float32)
    return ((x - lo) / (hi - lo)).astype(np.float32, copy=False)


def _scale_by_dtype(x: np.ndarray) -> np.ndarray:
    """[0, 1] float32: uint8 / 255, uint16 / 65535, bool as 0/1, anything else min-max."""
    if x.dtype == np.bool_:
        return x.astype(np.float32)
    if x.dtype == np.uint8:
        return x.astype(np.float32) / 255.0
    if x.dtype == np.uint16:
        return x.astype(np.float32) / 65535.0
    return _minmax(x)


def _to_labels(x: np.ndarray, path: PathLike) -> np.ndarray:
    """Integer label map from stored values; floats must hold whole numbers."""
    if x.dtype == np.bool_ or np.issubdtype(x.dtype, np.integer):
        return x.astype(np.int64)
    if not np.all(np.isfinite(x)) or not np.array_equal(x, np.round(x)):
        bad = x[~np.isfinite(x) | (x != np.round(x))].ravel()[0]
        raise MedclError(
            f"Mask '{path}' holds the non-integer value {bad}; masks must be integer label maps."
        )
    return x.astype(np.int64)


def _labels_from_channels(x: np.ndarray, path: PathLike) -> np.ndarray:
    """``(S, C, H, W)`` stored values -> ``(S, H, W)``; a colour mask must be grey."""
    if x.shape[1] > 1 and not all(np.array_equal(x[:, 0], x[:, c]) for c in range(1, x.shape[1])):
        raise MedclError(
            f"Mask '{path}' is a colour image; save masks as single-channel label maps "
            "(one integer class value per pixel)."
        )
    return _to_labels(x[:, 0], path)


class ImageReader:
    """Interface of every reader: which suffixes it reads, and how.

    Subclasses set ``format`` (a human name used in messages) and ``suffixes``, and implement
    :meth:`_load`, returning stored values as ``(S, C, H, W)`` plus metadata, and
    :meth:`_scale`, mapping those values to [0, 1]. Errors from the underlying library become
    a :class:`MedclError` naming the file.
    """

    format: str = ""
    suffixes: tuple[str, ...] = ()

    def can_read(self, path: PathLike) -> bool:
        """Whether ``path`` has one of this reader's suffixes (the file is not opened)."""
        return file_suffix(path) in self.suffixes

    def read(self, path: PathLike, axis: int = 2) -> tuple[np.ndarray, dict[str, Any]]:
        """Intensities of ``path`` as ``(S, C, H, W)`` float32 in [0, 1], and metadata."""
        data, meta = self._checked_load(path, axis, labels=False, what="image")
        return self._scale(data, meta), meta

    def read_raw(self, path: PathLike, axis: int = 2) -> tuple[np.ndarray, dict[str, Any]]:
        """Stored values of ``path`` as ``(S, C, H, W)``, not scaled, and metadata.

        DICOM values are decoded to RGB (palette, YBR) and through the Modality LUT. For loaders that scale intensities themselves, e.g. after cropping a volume.
        """
        return self._checked_load(path, axis, labels=False, what="image")

    def read_values(self, path: PathLike, axis: int = 2) -> tuple[np.ndarray, dict[str, Any]]:
        """Stored values of ``path`` in their physical units, ``(S, C, H, W)``, not scaled.

        For DICOM the Modality LUT (rescale slope and intercept: Hounsfield units for CT)
        is applied, as in :meth:`read_raw`. For :class:`~medcl.data._intensity.Intensity`;
        pass the scaled result through :meth:`finish`.
        """
        data, meta = self._checked_load(path, axis, labels=False, what="image")
        return self._physical(data, meta), meta

    def finish(self, scaled: np.ndarray, meta: dict[str, Any]) -> np.ndarray:
        """What follows scaling to [0, 1] (DICOM MONOCHROME1: inverted, bright = high)."""
        return scaled

    def window(self, data: np.ndarray, meta: dict[str, Any]) -> np.ndarray:
        """``data`` (from :meth:`read_values`) in [0, 1] by the file's own display window.

        Only DICOM files have one (VOI LUT, or WindowCenter/WindowWidth); other formats
        raise a MedclError asking for ``data.intensity.window``.
        """
        raise MedclError(
            f"{self.format} file '{meta['path']}' has no window of its own; set "
            "data.intensity.window=[lo, hi], or another data.intensity.scale."
        )

    def _physical(self, data: np.ndarray, meta: dict[str, Any]) -> np.ndarray:
        return data

    def read_labels(self, path: PathLike, axis: int = 2) -> tuple[np.ndarray, dict[str, Any]]:
        """Stored label values of ``path`` as ``(S, H, W)`` int64, and metadata."""
        data, meta = self._checked_load(path, axis, labels=True, what="mask")
        return _labels_from_channels(data, path), meta

    def _checked_load(
        self, path: PathLike, axis: int, labels: bool, what: str
    ) -> tuple[np.ndarray, dict[str, Any]]:
        path = Path(path)
        if not path.exists():
            raise MedclError(f"The {what} file '{path}' does not exist; check the path.")
        try:
            data, meta = self._load(path, axis, labels)
        except MedclError:
            raise
        except Exception as exc:  # the libraries raise many types for broken files
            raise UnreadableFile(
                path,
                _reason(exc),
                f"Cannot read {what} '{path}': {_reason(exc)}. "
                f"Check that it is a valid {self.format} file.",
            ) from exc
        if data.ndim != 4 or 0 in data.shape:
            raise UnreadableFile(
                path,
                f"an array of shape {data.shape}, not an image",
                f"Cannot read {what} '{path}': it holds an array of shape {data.shape}, not an "
                f"image. Check that it is a valid {self.format} file.",
            )
        if not labels and data.dtype.kind in "fc" and not np.isfinite(data).all():
            bad = int(np.count_nonzero(~np.isfinite(data)))
            raise MedclError(
                f"Image '{path}' holds {bad} NaN or infinite pixel values (of {data.size}); "
                "replace them in the file (e.g. with 0 or the background value) or remove "
                "the file from the data."
            )
        meta = {
            "path": str(path),
            "format": self.format,
            "num_slices": int(data.shape[0]),
            "dtype": str(data.dtype),
            **meta,
        }
        meta.setdefault("is_volume", data.shape[0] > 1)
        return data, meta

    def _load(self, path: Path, axis: int, labels: bool) -> tuple[np.ndarray, dict[str, Any]]:
        raise NotImplementedError

    def _scale(self, data: np.ndarray, meta: dict[str, Any]) -> np.ndarray:
        return np.stack([_scale_by_dtype(s) for s in data]).astype(np.float32, copy=False)


def _hwc_to_chw(x: np.ndarray) -> np.ndarray:
    """``(H, W)`` or ``(H, W, C)`` -> ``(1, C, H, W)``."""
    if x.ndim == 2:
        x = x[:, :, None]
    return np.ascontiguousarray(np.moveaxis(x, -1, 0))[None]


class PillowReader(ImageReader):
    """PNG, JPEG and BMP through Pillow (8- or 16-bit grey, RGB, RGBA, palette)."""

    format = "PNG/JPEG/BMP"
    suffixes = (".png", ".jpg", ".jpeg", ".bmp")

    def _load(self, path: Path, axis: int, labels: bool) -> tuple[np.ndarray, dict[str, Any]]:
        from PIL import Image

        with Image.open(path) as img:
            img.load()
            return _from_pillow(img, labels), {"mode": img.mode}


def _from_pillow(img: Any, labels: bool) -> np.ndarray:
    mode = img.mode
    if mode == "P" and labels:
        return _hwc_to_chw(np.asarray(img))  # palette indices are the classes
    if mode in ("P", "PA"):
        img = img.convert("RGBA" if "transparency" in img.info or mode == "PA" else "RGB")
    elif mode in ("CMYK", "YCbCr", "LAB", "HSV"):
        img = img.convert("RGB")
    elif mode.startswith("I;16"):
        return _hwc_to_chw(np.asarray(img).astype(np.uint16))
    arr = np.asarray(img)
    if img.mode in ("RGBA", "LA", "RGBa", "La"):
        arr = arr[..., :-1]  # drop alpha
    return _hwc_to_chw(arr)


class TiffReader(ImageReader):
    """TIFF through tifffile: 8/16-bit, RGB, multi-page stacks (read as a volume).

    Axes other than rows, columns and colour samples (pages, z, time) become slices. Files
    tifffile cannot decode (e.g. JPEG-compressed without imagecodecs) are read with Pillow.
    """

    format = "TIFF"
    suffixes = (".tif", ".tiff")

    def _load(self, path: Path, axis: int, labels: bool) -> tuple[np.ndarray, dict[str, Any]]:
        import tifffile

        try:
            with tifffile.TiffFile(path) as tif:
                series = tif.series[0]
                arr = series.asarray()
                axes = series.axes
                page = tif.pages[0]
                colormap = getattr(page, "colormap", None)
                palette = int(page.photometric) == 3 and colormap is not None
        except Exception:
            from PIL import Image

            try:
                with Image.open(path) as img:
                    img.load()
                    return _from_pillow(img, labels), {"mode": img.mode}
            except Exception:
                pass
            raise
        if palette and not labels and colormap is not None:
            # colormap is (3, 2**bits) uint16; look the indices up to get RGB
            arr = np.moveaxis(colormap[:, arr], 0, -1)
            axes = axes + "S"
        return _tiff_to_schw(arr, axes), {"axes": axes}


def _tiff_to_schw(arr: np.ndarray, axes: str) -> np.ndarray:
    if "Y" not in axes or "X" not in axes:
        raise ValueError(f"unsupported TIFF axes '{axes}'")
    if "S" not in axes:
        arr, axes = arr[..., None], axes + "S"
    order = [i for i, a in enumerate(axes) if a not in "YXS"]
    order += [axes.index("S"), axes.index("Y"), axes.index("X")]
    arr = np.transpose(arr, order)
    return np.ascontiguousarray(arr.reshape(-1, *arr.shape[-3:]))


NON_IMAGE_MODALITIES = frozenset(
    {"SEG", "RTSTRUCT", "RTPLAN", "RTDOSE", "RTRECORD", "SR", "PR", "KO", "REG", "FID", "RWV"}
    | {"AU", "ECG", "HD", "DOC", "PLAN", "ASMT", "RESP", "EPS", "BI", "SMR", "M3D"}
)
"""DICOM modalities that hold no image to learn from: segmentations, RT objects, structured
reports, presentation states, key-object selections, registrations, waveforms, documents."""

_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
DICOM_EXTRA = 'pip install "medcl[dicom]"'


def dicom_non_image(ds: Any) -> str | None:
    """Why the DICOM dataset ``ds`` holds no image (e.g. ``"a DICOM SEG object"``), or None."""
    modality = str(ds.get("Modality", "") or "").upper()
    if modality in NON_IMAGE_MODALITIES:
        return f"a DICOM {modality} object"
    if not any(k in ds for k in _PIXEL_KEYWORDS):
        return (
            f"a DICOM {modality} object without pixel data"
            if modality
            else ("a DICOM object without pixel data")
        )
    return None


def _frame_item(ds: Any, sequence: str, frame: int) -> Any:
    """The first item of functional group ``sequence`` for ``frame`` (enhanced multi-frame
    objects), per frame first, then shared; ``ds`` itself when neither has it."""
    for groups, index in (
        ("PerFrameFunctionalGroupsSequence", frame),
        ("SharedFunctionalGroupsSequence", 0),
    ):
        seq = ds.get(groups)
        if seq is not None and len(seq) > index and seq[index].get(sequence):
            return seq[index].get(sequence)[0]
    return ds


def _modality_lut(arr: np.ndarray, ds: Any) -> np.ndarray:
    """Stored values -> physical values (Hounsfield units for CT), one frame at a time.

    The Modality LUT Sequence, else Rescale Slope and Intercept, of each frame (enhanced
    objects: its Pixel Value Transformation); stored values unchanged (and their type kept,
    for ``data.intensity.scale=type``) when there is none or it is the identity.
    """
    from pydicom.pixels import apply_modality_lut

    out = []
    changed = False
    for f in range(arr.shape[0]):
        item = _frame_item(ds, "PixelValueTransformationSequence", f)
        if item.get("ModalityLUTSequence"):
            frame = apply_modality_lut(arr[f], item)
            changed = True
        else:
            slope = float(item.get("RescaleSlope", 1) or 1)
            intercept = float(item.get("RescaleIntercept", 0) or 0)
            frame = arr[f]
            if slope != 1 or intercept != 0:
                frame = arr[f].astype(np.float64) * slope + intercept
                changed = True
        out.append(frame)
    if not changed:
        return arr
    return np.stack([np.asarray(f, dtype=np.float32) for f in out])


def _first(value: Any) -> float:
    """The first of a multi-valued DICOM number (WindowCenter may list several windows)."""
    if isinstance(value, str | bytes) or not hasattr(value, "__len__"):
        return float(value)
    return float(value[0])


def _voi_of(item: Any) -> dict[str, Any] | None:
    """The VOI (display window) of a dataset or frame item: a LUT, or a window, or None."""
    seq = item.get("VOILUTSequence")
    if seq:
        lut = seq[0]
        first, bits = int(lut.LUTDescriptor[1]), int(lut.LUTDescriptor[2])
        from pydicom.pixels import apply_voi

        # apply_voi decodes the LUT data for us: look every entry up once
        n = int(lut.LUTDescriptor[0]) or 65536
        table = apply_voi(np.arange(first, first + n, dtype=np.int64), item)
        return {"lut": np.asarray(table, dtype=np.float64), "first": first, "bits": bits}
    if item.get("WindowCenter") is not None and item.get("WindowWidth") is not None:
        function = str(item.get("VOILUTFunction", "LINEAR") or "LINEAR").upper()
        return {
            "center": _first(item.WindowCenter),
            "width": _first(item.WindowWidth),
            "function": function,
        }
    return None


def apply_window(x: np.ndarray, voi: dict[str, Any]) -> np.ndarray:
    """Physical values -> [0, 1] float32 through a DICOM VOI (PS3.3 C.11.2.1.2).

    ``voi`` holds a ``lut`` (``first`` stored value it maps, output ``bits``), or a window
    ``center`` and ``width`` with its ``function``: LINEAR (the standard's default, whose
    window runs from ``c - 0.5 - (w - 1) / 2`` to ``c - 0.5 + (w - 1) / 2``), LINEAR_EXACT
    (``c - w / 2`` to ``c + w / 2``) or SIGMOID.
    """
    x = np.asarray(x, dtype=np.float64)
    if "lut" in voi:
        lut = voi["lut"]
        idx = np.clip(np.round(x).astype(np.int64) - voi["first"], 0, len(lut) - 1)
        return (lut[idx] / (2 ** voi["bits"] - 1)).clip(0, 1).astype(np.float32)
    c, w, function = voi["center"], voi["width"], voi["function"]
    if function == "SIGMOID":
        y = 1.0 / (1.0 + np.exp(np.clip(-4.0 * (x - c) / max(w, 1e-12), -700, 700)))
    elif function == "LINEAR_EXACT":
        y = (x - c) / max(w, 1e-12) + 0.5
    elif w <= 1:  # LINEAR with width 1: a threshold
        y = (x > c - 0.5).astype(np.float64)
    else:
        y = (x - (c - 0.5)) / (w - 1) + 0.5
    return np.clip(y, 0.0, 1.0).astype(np.float32)


def _flatten(text: str) -> str:
    """pydicom's multi-line message as one line, every line kept."""
    lines = [line.strip().rstrip(".:") for line in text.strip().splitlines() if line.strip()]
    return "; ".join(lines)


def _missing_decoder(ds: Any, path: Path, exc: BaseException) -> UnreadableFile | None:
    """The error for a compressed file whose decoder plugins are not installed, else None."""
    from pydicom.pixels import get_decoder

    uid = ds.file_meta.get("TransferSyntaxUID")
    if uid is None or not uid.is_compressed:
        return None
    try:
        decoder = get_decoder(uid)
    except NotImplementedError:
        return None  # a transfer syntax pydicom does not know at all
    if decoder.is_available:
        return None  # a decoder ran and failed: the data itself is damaged
    plugins = "; ".join(decoder.missing_dependencies) or "none known"
    reason = (
        f"its transfer syntax {uid.name} ({uid}) needs a decoder that is not installed "
        f"(plugins: {plugins}); install the decoders with `{DICOM_EXTRA}`"
    )
    return UnreadableFile(
        path,
        reason,
        f"Cannot read image '{path}': its transfer syntax {uid.name} ({uid}) needs a decoder "
        f"that is not installed (pydicom: {_flatten(str(exc))}); install the decoders with "
        f"`{DICOM_EXTRA}`.",
    )


class DicomReader(ImageReader):
    """DICOM through pydicom: one file is one image, a multi-frame file one volume.

    What a file's values go through, in order (PS3.3 C.11): the decoder (compressed
    transfer syntaxes need the ``medcl[dicom]`` extra; YBR colour is converted to RGB);
    PALETTE COLOR indices looked up to RGB (8-bit); for grey images the Modality LUT or
    Rescale Slope and Intercept, per frame (:meth:`read_values`, Hounsfield units for CT).
    The VOI LUT or window (WindowCenter/WindowWidth) is applied only when asked,
    by :meth:`window` (``data.intensity.scale=window`` without a window); MONOCHROME1 is
    inverted last (:meth:`finish`). Objects that hold no image (SEG, RTSTRUCT, SR, ...,
    or no pixel data) raise :class:`~medcl.errors.NotAnImage`. Masks (:meth:`read_labels`)
    are the stored values, with no LUT applied.
    """

    format = "DICOM"
    suffixes = (".dcm", ".dicom")

    def _load(self, path: Path, axis: int, labels: bool) -> tuple[np.ndarray, dict[str, Any]]:
        pydicom = _import("pydicom", "pydicom", path, "DICOM")
        try:
            ds = pydicom.dcmread(path)
        except pydicom.errors.InvalidDicomError as exc:
            # files written without the 128-byte preamble and 'DICM' prefix are still common
            ds = pydicom.dcmread(path, force=True)
            if "PixelData" not in ds:
                raise ValueError("it has no DICOM header and no pixel data") from exc
            if "TransferSyntaxUID" not in ds.file_meta:
                ds.file_meta.TransferSyntaxUID = pydicom.uid.ImplicitVRLittleEndian
        why = dicom_non_image(ds)
        if why is not None:
            raise NotAnImage(
                path,
                f"{why}, not an image",
                f"'{path}' is {why}, not an image; medcl reads DICOM images, so leave it out "
                "of the data.",
            )
        from pydicom.pixels import apply_color_lut, convert_color_space, get_decoder

        try:
            decoder = get_decoder(ds.file_meta.TransferSyntaxUID)
            # as_rgb: YBR_FULL / YBR_FULL_422 become RGB, in whichever step the decoder allows
            options: Any = {"as_rgb": not labels}
            arr, changes = decoder.as_array(ds, **options)
        except Exception as exc:
            missing = _missing_decoder(ds, path, exc)
            if missing is not None:
                raise missing from exc
            raise
        photometric = str(
            changes.get("photometric_interpretation", ds.get("PhotometricInterpretation", ""))
        )
        frames = int(ds.get("NumberOfFrames", 1) or 1)
        samples = int(ds.get("SamplesPerPixel", 1) or 1)
        if frames == 1:
            arr = arr[None]
        if samples == 1:
            arr = arr[..., None]
        meta: dict[str, Any] = {
            "is_volume": frames > 1,
            "photometric": photometric,
            "stored_photometric": str(ds.get("PhotometricInterpretation", "")),
            "rescale_slope": float(ds.get("RescaleSlope", 1) or 1),
            "rescale_intercept": float(ds.get("RescaleIntercept", 0) or 0),
            "modality": str(ds.get("Modality", "")),
            "transfer_syntax": str(ds.file_meta.get("TransferSyntaxUID", "")),
        }
        if not labels:
            if photometric == "PALETTE COLOR":
                rgb = apply_color_lut(arr[..., 0], ds)
                if rgb.dtype != np.uint8:  # 16-bit palette entries: 8-bit colour is plenty
                    rgb = np.round(rgb.astype(np.float32) / 257.0).astype(np.uint8)
                arr, photometric = rgb[..., :3], "RGB"
            elif photometric.startswith("YBR"):  # a decoder that could not convert
                arr = convert_color_space(arr, photometric, "RGB", per_frame=True)
                photometric = "RGB"
            meta["photometric"] = photometric
            if arr.shape[-1] == 1:
                arr = _modality_lut(arr[..., 0], ds)[..., None]
                items = [_frame_item(ds, "FrameVOILUTSequence", f) for f in range(frames)]
                vois = {id(item): _voi_of(item) for item in items}  # a shared one once
                meta["voi"] = [vois[id(item)] for item in items]
        arr = np.ascontiguousarray(np.moveaxis(arr, -1, 1))  # (F, C, H, W)
        return arr, meta

    def _scale(self, data: np.ndarray, meta: dict[str, Any]) -> np.ndarray:
        return self.finish(_minmax(data), meta)

    def window(self, data: np.ndarray, meta: dict[str, Any]) -> np.ndarray:
        vois = meta.get("voi")
        if data.shape[1] != 1:  # colour has no VOI: by its type's range, as saved
            return _scale_by_dtype(data)
        if not vois or any(v is None for v in vois):
            raise MedclError(
                f"DICOM file '{meta['path']}' has no window of its own (no VOI LUT, "
                "WindowCenter or WindowWidth); set data.intensity.window=[lo, hi], or "
                "another data.intensity.scale."
            )
        if len(vois) == 1 and data.shape[0] > 1:
            vois = vois * data.shape[0]
        return np.stack([apply_window(s, v) for s, v in zip(data, vois, strict=True)])

    def finish(self, scaled: np.ndarray, meta: dict[str, Any]) -> np.ndarray:
        if meta["photometric"] == "MONOCHROME1":
            return 1.0 - scaled
        return scaled


class NiftiReader(ImageReader):
    """NIfTI (``.nii``, ``.nii.gz``) through nibabel, sliced along ``axis``."""

    format = "NIfTI"
    suffixes = (".nii", ".nii.gz")

    def _load(self, path: Path, axis: int, labels: bool) -> tuple[np.ndarray, dict[str, Any]]:
        nib = _import("nibabel", "nibabel", path, "NIfTI")
        img = nib.load(str(path))
        arr = np.asanyarray(img.dataobj)
        if arr.ndim == 2:
            arr = arr[:, :, None]
        if arr.ndim == 3:
            arr = arr[..., None]
        if arr.ndim != 4:
            raise ValueError(f"expected a 3D or 4D volume, got {arr.ndim} dimensions")
        if axis not in (0, 1, 2):
            raise MedclError(
                f"Volume axis {axis} is not 0, 1 or 2; set data.volume_axis to one of them "
                "(2 slices the third axis, usually axial)."
            )
        spatial = [a for a in range(3) if a != axis]
        arr = np.transpose(arr, (axis, 3, *spatial))  # (S, C, H, W)
        zooms = tuple(float(z) for z in img.header.get_zooms()[:3])
        meta = {"is_volume": True, "axis": axis, "spacing": zooms, "affine": img.affine}
        return np.ascontiguousarray(arr), meta

    def _scale(self, data: np.ndarray, meta: dict[str, Any]) -> np.ndarray:
        return robust_minmax(data)


def robust_minmax(x: np.ndarray, low: float = 0.5, high: float = 99.5) -> np.ndarray:
    """Map the ``low``-th percentile of ``x`` to 0 and the ``high``-th to 1, clipping.

    Falls back to plain min-max when the percentiles coincide (e.g. a mostly empty volume).
    """
    x = x.astype(np.float32, copy=False)
    lo, hi = (float(v) for v in np.percentile(x, [low, high]))
    if hi <= lo:
        return _minmax(x)
    return np.clip((x - lo) / (hi - lo), 0.0, 1.0).astype(np.float32, copy=False)


READERS: dict[str, ImageReader] = {
    "pillow": PillowReader(),
    "tiff": TiffReader(),
    "dicom": DicomReader(),
    "nifti": NiftiReader(),
}
"""Every reader by name; :func:`reader_for` picks one by suffix."""

SUPPORTED_SUFFIXES: tuple[str, ...] = tuple(s for r in READERS.values() for s in r.suffixes)


def reader_for(path: PathLike) -> ImageReader:
    """The reader for ``path``'s suffix, or a MedclError listing the supported ones."""
    for reader in READERS.values():
        if reader.can_read(path):
            return reader
    raise MedclError(
        f"Cannot read '{path}': its suffix is not supported; use one of "
        f"{', '.join(SUPPORTED_SUFFIXES)}."
    )


def read_volume(path: PathLike, axis: int = 2) -> tuple[np.ndarray, dict[str, Any]]:
    """Read any supported file as ``(S, C, H, W)`` float32 slices in [0, 1], with metadata.

    A 2D image gives ``S == 1``; NIfTI volumes are sliced along ``axis``.
    """
    return reader_for(path).read(path, axis)


def read_image(path: PathLike) -> tuple[np.ndarray, dict[str, Any]]:
    """Read a 2D image as ``(C, H, W)`` float32 in [0, 1], with metadata.

    Files holding several slices (NIfTI volumes, TIFF stacks) raise a MedclError pointing to
    :func:`read_volume`.
    """
    data, meta = read_volume(path)
    if data.shape[0] != 1:
        raise MedclError(
            f"Image '{path}' holds {data.shape[0]} slices, not one 2D image; "
            "read it with read_volume instead."
        )
    return data[0], meta


def read_mask(path: PathLike, axis: int = 2) -> np.ndarray:
    """Read a mask's stored label values as int64.

    Returns ``(H, W)`` for 2D files and ``(S, H, W)`` for volumes (NIfTI, TIFF stacks,
    multi-frame DICOM), sliced along ``axis`` like :func:`read_volume`. Values are not
    remapped; palette images give their palette indices.
    """
    labels, meta = reader_for(path).read_labels(path, axis)
    return labels if meta["is_volume"] else labels[0]
