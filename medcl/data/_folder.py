"""Load a folder of image files (and optional masks) into an :class:`ImageSet`.

Rules, in the order they apply:

* **Files.** ``images`` is a folder (its direct files, sorted by name; hidden files and
  unsupported suffixes are skipped) or a single file. A 2D file gives one image (volume id
  ``''``, position NaN); a NIfTI volume, multi-page TIFF or multi-frame DICOM gives one image
  per slice, with the file stem as volume id and ``index / (n_slices - 1)`` as position (0 for a
  single slice). Image ids are file stems, or ``stem:index`` for slices.
* **DICOM series.** Single-frame DICOM images that share a Series Instance UID (and a size)
  are stacked into one volume in patient order (:func:`dicom_series`): Image Position
  (Patient) along the slice normal, else Instance Number. Its volume id is the Series
  Instance UID, its slices keep their file stems as ids, and each slice's mask is the mask
  of its file, so a series stays in one split. A series of one file is a 2D image.
* **Not images.** DICOM objects that hold no image (SEG, RTSTRUCT, RTPLAN, SR, PR, KO, ...,
  or no pixel data) are skipped whatever ``on_unreadable`` says, with one line on stderr
  naming the first three (:class:`~medcl.errors.NotAnImage`).
* **Unreadable files.** A file its reader cannot parse (:class:`~medcl.errors.UnreadableFile`)
  is left out with its image or mask when ``on_unreadable="skip"``, and one line on stderr
  names the first three (at every load: the cache keeps the list); ``"error"`` raises one
  sentence listing them all. A single file, or a folder where nothing can be read, is an
  error either way.
* **Masks.** The mask of ``ISIC_0001.jpg`` is the file in ``masks`` whose stem is
  ``ISIC_0001`` + ``mask_suffix`` (``ISIC_0001_segmentation.png``), with any supported suffix.
  Images without one are kept as unlabeled (``has_mask`` False, mask of zeros). Masks may sit
  in the images folder: then files whose stem ends with ``mask_suffix`` are not images.
  A volume's mask is a volume sliced the same way.
* **Labels.** With ``label_values`` (e.g. ``[0, 205, 420, 500]``), stored value
  ``label_values[i]`` becomes class ``i``, and any other value is an error. Without it, masks
  must already hold ``0..C-1``, except that a mask holding only 0 and 255 (a binary mask saved
  as black/white) is read as 0/1. The number of classes is ``len(label_values)``, else
  ``len(class_names)``, else the largest class found plus one (at least 2 when there are
  masks); in that last case every class up to the largest must occur somewhere, so masks
  holding raw values such as 0/500 raise an error asking for ``label_values``. With
  ``label_groups`` instead (e.g. ``{frontal: [101, 102], parietal: [201, 202]}``, an atlas's
  codes), every stored value of group ``i`` (in the order given) becomes class ``i + 1``,
  and every other value background (class 0); the classes are ``background`` and the group
  names. A value in two groups, an empty group, a group named ``background``, or
  ``label_groups`` together with ``label_values`` or ``class_names`` is an error.
* **Intensity.** Stored values (DICOM: after its Modality LUT, i.e. rescale slope and
  intercept) become [0, 1] as ``intensity`` says (:class:`~medcl.data.Intensity`; default:
  8-bit images by 255, anything else by its 0.5th-99.5th percentiles per file, a series or
  multi-frame file counting as one file); ``scale="window"`` without a ``window`` uses each
  DICOM file's own VOI window. One warning covers every image
  whose values span under 1% of its stored type's range.
* **Size and channels.** Every image is resized to ``image_size`` (bilinear with
  antialiasing, i.e. area-like when shrinking) and every mask with nearest neighbour, so a
  resized mask holds only classes that were already there. ``channels`` 1 <-> 3 converts by
  averaging with luminance weights (0.299, 0.587, 0.114) or by repeating the grey channel;
  by default the first image's channel count is used.
* **Decoding** runs in ``workers`` processes (default the CPUs, at most 8, or
  ``MEDCL_DECODE_WORKERS``; 1: no pool), with a progress bar in a terminal and, in a log
  file, a line every 30 s of a long decode.
* **Storage.** Images are kept compact (:mod:`medcl.data._stored`) and read back as the
  float32 values they were decoded to, bit for bit: ``uint8`` for 8-bit files scaled by 255 at
  ``image_size`` already (PNG, JPEG, 8-bit TIFF, DICOM or NIfTI without a rescale), ``uint16``
  for 16-bit files with ``intensity.scale=type`` at ``image_size``, ``float16`` where every
  value is one, else ``float32`` (percentile or window scaling, float NIfTI, resized images,
  RGB to grey); ``store="source"`` rounds those to the file's depth instead (``uint8`` for
  8-bit files, ``uint16`` otherwise), within half a grey level. Masks are stored as
  ``uint8`` (``int16`` beyond 255 classes) for the images that have one only; the others
  read as zeros.
* **Cache.** With ``cache_dir``, the decoded arrays are written there once as ``.npy`` files
  named by a hash of the file list (paths, sizes, modification times) and the settings, and
  later calls load them instead of decoding; arrays larger than ``mmap_threshold`` bytes are
  memory-mapped read-only. An entry of an older layout (float32 images and int64 masks for
  every image) is named in one line and rebuilt. Writes are atomic (temporary file, then ``os.replace``), and the
  entry's ``meta.json`` records the content hash of each array file: a file whose content
  changed (zeroed, cut short, edited) is noticed, reported in one line and decoded again.
* **Memory and values.** Before the images are decoded, the memory the decoded set needs is
  estimated and refused when it exceeds what the machine has; a pixel that is NaN or
  infinite is an error naming its file.

Example::

    >>> ds = load_folder("isic/images", masks="isic/masks", mask_suffix="_segmentation",
    ...                  image_size=(128, 128), cache_dir="cache")
    >>> ds.images.shape, ds.has_mask.mean()
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from medcl._load import file_digest
from medcl._memory import check_fits, image_set_bytes
from medcl.data._imageset import ImageSet
from medcl.data._intensity import (
    Intensity,
    percentile_bounds,
    sample_values,
    type_range,
    uses_little_of_its_type,
)
from medcl.data._readers import (
    SUPPORTED_SUFFIXES,
    ImageReader,
    file_stem,
    file_suffix,
    reader_for,
)
from medcl.data._stored import (
    PackedFile,
    SparseMasks,
    StoredImages,
    compact_images,
    compact_masks,
    join_packed,
    mask_dtype,
    pack_images,
    round_to_depth,
)
from medcl.errors import MedclError, NotAnImage, UnreadableFile

__all__ = ["load_folder"]

_CACHE_VERSION = 3  # 2: meta.json records the arrays' content hashes; 3: DICOM LUTs, series
# How an entry stores its arrays, recorded in its meta.json rather than its name, so that an
# entry of an older layout is found, named and rebuilt: none: float32 images and int64 masks
# for every image; 4: compact (medcl.data._stored), masks only for images that have one.
STORE_FORMAT = 4
_LUMINANCE = np.array([0.299, 0.587, 0.114], dtype=np.float32)
MMAP_THRESHOLD = 256 * 2**20


def load_folder(
    images: str | os.PathLike,
    masks: str | os.PathLike | None = None,
    mask_suffix: str = "",
    label_values: Sequence[int] | None = None,
    class_names: Sequence[str] | None = None,
    image_size: tuple[int, int] | int = (256, 256),
    channels: int | None = None,
    volume_axis: int = 2,
    cache_dir: str | os.PathLike | None = None,
    *,
    label_groups: Mapping[str, Sequence[int]] | None = None,
    intensity: Intensity | None = None,
    on_unreadable: str = "skip",
    mmap_threshold: int = MMAP_THRESHOLD,
    workers: int | None = None,
    store: str = "exact",
) -> ImageSet:
    """Decode the images (and masks) of a folder into an :class:`ImageSet`.

    Args:
        images: a folder of image files, or one file.
        masks: the folder holding the masks (or, when ``images`` is a file, its mask file).
        mask_suffix: what the mask's stem adds to its image's stem (``"_segmentation"``).
        label_values: the stored mask value of each class, background first.
        label_groups: class name -> the stored mask values that form the class; every
            other value is background (instead of ``label_values``).
        intensity: how stored values become [0, 1] (:class:`~medcl.data.Intensity`);
            default ``Intensity()``: 8-bit by 255, anything else by its 0.5-99.5th
            percentiles, per image.
        class_names: class names, background first; default ``background, class_1, ...``.
        image_size: ``(H, W)`` every image and mask is resized to (an int means square).
        channels: 1 or 3 output channels; default the first image's.
        volume_axis: the array axis NIfTI volumes are sliced along (2 = third axis, axial).
        cache_dir: folder for the decoded arrays, so reruns skip decoding.
        on_unreadable: ``skip``: leave out the files that cannot be read (with their image or
            mask) and say so in one line on stderr, at every load; ``error``: stop, listing
            them all.
        mmap_threshold: cached arrays larger than this many bytes are memory-mapped.
        workers: processes that decode the files (:func:`decode_workers`; 1: no pool).
        store: ``exact`` keeps every decoded value bit for bit (resized images as float32);
            ``source`` rounds the images no exact store holds to their file's depth
            (``uint8`` for 8-bit files, ``uint16`` otherwise): within half a grey level, and
            a quarter of the size for resized photographs.

    Returns:
        an ImageSet with ``images (N, C, H, W)`` float32 in [0, 1], ``masks (N, H, W)`` int64
        (stored compactly: :class:`~medcl.data.StoredImages`, :class:`~medcl.data.SparseMasks`),
        and ``split`` unset.
    """
    size = _check_size(image_size)
    if channels is not None and (isinstance(channels, bool) or int(channels) < 1):
        raise MedclError(f"data.channels is {channels}; use 1 (grey) or 3 (RGB).")
    values = _check_label_values(label_values, class_names)
    groups = None
    if label_groups is not None:
        groups, class_names = _check_label_groups(label_groups, label_values, class_names)
    spec = intensity or Intensity()
    if on_unreadable not in ("skip", "error"):
        raise MedclError(f"data.on_unreadable is {on_unreadable!r}; use skip or error.")
    files = _list_images(images, masks, mask_suffix)
    pairs = _pair_masks(files, images, masks, mask_suffix)

    settings = {
        "version": _CACHE_VERSION,
        "mask_suffix": mask_suffix,
        "label_values": values,
        "label_groups": sorted(groups.items()) if groups is not None else None,
        "class_names": list(class_names) if class_names is not None else None,
        "image_size": list(size),
        "channels": channels,
        "volume_axis": volume_axis,
        "on_unreadable": on_unreadable,
        "intensity": spec.settings(),
        **_store_setting(store),
    }
    imageset = decode_cached(
        lambda to_file: _decode(
            pairs,
            values,
            class_names,
            size,
            channels,
            volume_axis,
            on_unreadable,
            groups,
            spec,
            workers,
            store=store,
            to_file=to_file,
        ),
        pairs,
        settings,
        cache_dir,
        mmap_threshold,
    )
    if imageset.not_images:
        _say_not_images(imageset.not_images, len(pairs), Path(images))
    if imageset.unreadable:
        _say_unreadable(imageset.unreadable, len(pairs), Path(images))
    return imageset


def _say_not_images(skipped: list[tuple[str, str]], total: int, root: Path) -> None:
    import sys

    print(
        f"medcl: skipped {len(skipped)} of {total} files in '{root}' that hold no image: "
        f"{_unreadable_list(skipped, 3)}.",
        file=sys.stderr,
        flush=True,
    )


def _unreadable_list(skipped: list[tuple[str, str]], limit: int | None = None) -> str:
    shown = skipped if limit is None else skipped[:limit]
    text = "; ".join(f"{name} ({reason})" for name, reason in shown)
    if len(shown) < len(skipped):
        text += f"; and {len(skipped) - len(shown)} more"
    return text


def _say_unreadable(skipped: list[tuple[str, str]], total: int, root: Path) -> None:
    import sys

    print(
        f"medcl: left out {len(skipped)} of {total} files in '{root}' that cannot be read: "
        f"{_unreadable_list(skipped, 3)}; fix or remove them, or set "
        "data.on_unreadable=error to stop at them.",
        file=sys.stderr,
        flush=True,
    )


def decode_cached(
    decode: Callable[[Path | None], ImageSet],
    pairs: list[tuple[Path, Path | None]],
    settings: dict[str, Any],
    cache_dir: str | os.PathLike | None,
    mmap_threshold: int = MMAP_THRESHOLD,
) -> ImageSet:
    """``decode(to_file)``, or its result cached under ``cache_dir`` for these files and
    settings.

    Shared by every loader that reads files (:func:`load_folder`, the ISIC 2017 and MMWHS
    layouts); ``settings`` must name everything besides the files that changes the result.
    The cache holds no split, so loaders set ``split`` after this call. ``to_file`` is a
    fresh ``.npy`` path in the cache folder (None without a cache) that ``decode`` may write
    the images to as it goes (:func:`_decode`); the entry then takes that file as it is.
    """
    cache = _Cache(cache_dir, pairs, settings, mmap_threshold) if cache_dir is not None else None
    if cache is None:
        return decode(None)
    cached = cache.load()
    if cached is not None:
        return cached
    to_file = cache.scratch("images.npy")
    try:
        # read back memory-mapped: the decoded arrays are freed, as at a later load
        return cache.save(decode(to_file), written=to_file)
    finally:
        to_file.unlink(missing_ok=True)  # taken by the entry, or left by a failed decode


# ----------------------------------------------------------------------------- arguments


STORES = ("exact", "source")


def _store_setting(store: str) -> dict[str, str]:
    """The cache-key entry of ``store`` (checked): none for ``exact``, so existing caches stay
    valid. Every loader that passes ``store`` to :func:`_decode` builds its key with this."""
    if store not in STORES:
        raise MedclError(f"data.store is {store!r}; use exact or source.")
    return {} if store == "exact" else {"store": store}


def _check_size(image_size: tuple[int, int] | int) -> tuple[int, int]:
    size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    if len(size) != 2 or not all(isinstance(s, int | np.integer) and s > 0 for s in size):
        raise MedclError(
            f"data.image_size is {image_size}; use two positive integers [height, width]."
        )
    return int(size[0]), int(size[1])


def _check_label_values(
    label_values: Sequence[int] | None, class_names: Sequence[str] | None
) -> list[int] | None:
    if label_values is None:
        return None
    values = list(label_values)
    try:
        whole = all(float(v) == int(v) for v in values)
    except (TypeError, ValueError):
        whole = False
    if not values or not whole:
        raise MedclError(
            f"data.label_values is {values}; list the integer mask value of every class, "
            "background first, e.g. [0, 255]."
        )
    values = [int(v) for v in values]
    if len(set(values)) != len(values):
        raise MedclError(f"data.label_values {values} repeats a value; list each value once.")
    if class_names is not None and len(class_names) != len(values):
        raise MedclError(
            f"data.class_names has {len(class_names)} names but data.label_values has "
            f"{len(values)} values; give one name per value."
        )
    return values


def _check_label_groups(
    label_groups: Mapping[str, Sequence[int]],
    label_values: Sequence[int] | None,
    class_names: Sequence[str] | None,
) -> tuple[dict[int, int], list[str]]:
    """``{stored value: class}`` and the class names (background first) of ``label_groups``."""
    if label_values is not None or class_names is not None:
        key = "data.label_values" if label_values is not None else "data.class_names"
        raise MedclError(
            f"Set either data.label_groups or {key}, not both: the groups name the classes "
            "and list their stored values."
        )
    if not label_groups:
        raise MedclError(
            "data.label_groups is empty; map each class name to its stored mask values, "
            "e.g. {frontal: [101, 102]}."
        )
    lookup: dict[int, int] = {}
    names = ["background"]
    for name, values in label_groups.items():
        name = str(name)
        if name == "background":
            raise MedclError(
                "data.label_groups names a group 'background'; every value outside the "
                "groups is background already, so leave that group out."
            )
        if not list(values):
            raise MedclError(f"data.label_groups.{name} is empty; list its stored mask values.")
        for v in values:
            if int(v) in lookup:
                raise MedclError(
                    f"Stored value {int(v)} is in data.label_groups.{name} and "
                    f"data.label_groups.{names[lookup[int(v)]]}; put each value in one group."
                )
            lookup[int(v)] = len(names)
        names.append(name)
    return lookup, names


# ----------------------------------------------------------------------------- files


def _supported(path: Path) -> bool:
    return (
        path.is_file() and not path.name.startswith(".") and file_suffix(path) in SUPPORTED_SUFFIXES
    )


def _list_images(
    images: str | os.PathLike, masks: str | os.PathLike | None, mask_suffix: str
) -> list[Path]:
    root = Path(images)
    if not root.exists():
        raise MedclError(f"The image path '{root}' does not exist; check data.images.")
    if root.is_file():
        reader_for(root)  # raises with the supported suffixes
        return [root]
    files = sorted((p for p in root.iterdir() if _supported(p)), key=lambda p: p.name)
    if masks is not None and Path(masks).is_dir() and Path(masks).resolve() == root.resolve():
        if not mask_suffix:
            raise MedclError(
                f"data.masks is the same folder as data.images ('{root}') but "
                "data.mask_suffix is empty; set data.mask_suffix to what mask names add "
                "(e.g. '_mask')."
            )
        files = [p for p in files if not file_stem(p).endswith(mask_suffix)]
    if not files:
        raise MedclError(
            f"The folder '{root}' holds no supported image files; add files ending in "
            f"{', '.join(SUPPORTED_SUFFIXES)}."
        )
    seen: dict[str, Path] = {}
    for p in files:
        stem = file_stem(p)
        if stem in seen:
            raise MedclError(
                f"Files '{seen[stem].name}' and '{p.name}' in '{root}' have the same name "
                f"'{stem}'; rename one so every image has its own id."
            )
        seen[stem] = p
    return files


def _pair_masks(
    files: list[Path],
    images: str | os.PathLike,
    masks: str | os.PathLike | None,
    mask_suffix: str,
) -> list[tuple[Path, Path | None]]:
    if masks is None:
        return [(f, None) for f in files]
    mroot = Path(masks)
    if not mroot.exists():
        raise MedclError(f"The mask path '{mroot}' does not exist; check data.masks.")
    if mroot.is_file():
        if not Path(images).is_file():
            raise MedclError(
                f"data.masks '{mroot}' is a file but data.images '{images}' is a folder; "
                "give the folder that holds the masks."
            )
        reader_for(mroot)
        return [(files[0], mroot)]
    by_stem: dict[str, Path] = {}
    for p in sorted(mroot.iterdir(), key=lambda p: p.name):
        if _supported(p):
            by_stem.setdefault(file_stem(p), p)
    pairs = [(f, by_stem.get(file_stem(f) + mask_suffix)) for f in files]
    if not any(m is not None for _, m in pairs):
        example = file_stem(files[0]) + mask_suffix
        raise MedclError(
            f"No file in the mask folder '{mroot}' matches an image (e.g. '{example}.png' "
            f"for '{files[0].name}'); check data.masks and data.mask_suffix."
        )
    return pairs


# ----------------------------------------------------------------------------- decoding


def _patient_order(headers: list[tuple[Any, tuple[Path, Path | None]]]) -> list[int]:
    """Indices of a series' slices in patient order.

    Image Position (Patient) projected on the slice normal (the cross product of the two
    Image Orientation (Patient) directions), when every slice has both; else Instance
    Number; else the file name. Ties are broken by Instance Number, then file name.
    """

    def number(ds: Any) -> float:
        try:
            return float(ds.InstanceNumber)
        except (AttributeError, TypeError, ValueError):
            return float("inf")

    try:
        normal = np.cross(
            np.array(headers[0][0].ImageOrientationPatient[:3], dtype=np.float64),
            np.array(headers[0][0].ImageOrientationPatient[3:6], dtype=np.float64),
        )
        where = [
            float(np.dot(np.array(ds.ImagePositionPatient, dtype=np.float64), normal))
            for ds, _ in headers
        ]
    except (AttributeError, TypeError, ValueError, IndexError):
        where = [number(ds) for ds, _ in headers]
    keys = [(w, number(ds), pair[0].name) for w, (ds, pair) in zip(where, headers, strict=True)]
    return sorted(range(len(headers)), key=lambda i: keys[i])


def dicom_series(
    pairs: list[tuple[Path, Path | None]],
) -> list[tuple[str, list[tuple[Path, Path | None]]]]:
    """``pairs`` as decoding units: ``(volume id, pairs)``.

    Single-frame DICOM images of one series (Series Instance UID, and the same rows, columns
    and samples) form one unit, in patient order (:func:`_patient_order`), whose volume id
    is the Series Instance UID (with ``-ROWSxCOLUMNS`` where a series holds several sizes);
    every other file is a unit of its own with volume id ``''``. A unit sits where its
    first file (by name) was.
    """
    from medcl.data._readers import NON_IMAGE_MODALITIES, DicomReader

    keys: list[tuple[str, int, int, int] | None] = []
    headers: list[Any] = []
    for image_path, _ in pairs:
        key, ds = None, None
        if isinstance(reader_for(image_path), DicomReader):
            try:
                import pydicom

                ds = pydicom.dcmread(image_path, stop_before_pixels=True, force=True)
                uid = str(ds.get("SeriesInstanceUID", "") or "")
                single = int(ds.get("NumberOfFrames", 1) or 1) == 1
                modality = str(ds.get("Modality", "") or "").upper()
                if uid and single and modality not in NON_IMAGE_MODALITIES:
                    size = (int(ds.Rows), int(ds.Columns), int(ds.get("SamplesPerPixel", 1)))
                    key = (uid, *size)
            except Exception:  # unreadable here: its reader says why when it is decoded
                key = None
        keys.append(key)
        headers.append(ds)
    members: dict[tuple[str, int, int, int], list[int]] = {}
    for i, key in enumerate(keys):
        if key is not None:
            members.setdefault(key, []).append(i)
    sizes: dict[str, int] = {}
    for key in members:
        sizes[key[0]] = sizes.get(key[0], 0) + 1
    units: list[tuple[str, list[tuple[Path, Path | None]]]] = []
    for i, key in enumerate(keys):
        group = members.get(key) if key is not None else None
        if group is None or len(group) == 1:
            units.append(("", [pairs[i]]))
        elif group[0] == i and key is not None:
            order = _patient_order([(headers[j], pairs[j]) for j in group])
            name = key[0] if sizes[key[0]] == 1 else f"{key[0]}-{key[1]}x{key[2]}"
            units.append((name, [pairs[group[j]] for j in order]))
    return units


@dataclass
class _Unit:
    """One decoding unit (a file, or the slices of a DICOM series), decoded."""

    images: np.ndarray | None = None  # packed (see _stored), or float32 awaiting percentiles
    deferred: dict[str, Any] | None = None  # the reader's meta when data-set percentiles apply
    masks: list[np.ndarray] = field(default_factory=list)  # class maps of its masked slices
    has_mask: list[bool] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    volume_ids: list[str] = field(default_factory=list)
    positions: list[float] = field(default_factory=list)
    found: set[int] = field(default_factory=set)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    not_images: list[tuple[str, str]] = field(default_factory=list)
    little: list[tuple[str, float, float, str]] = field(default_factory=list)
    first_path: Path | None = None
    files: int = 0  # how many files it read (for the memory estimate)


@dataclass(frozen=True)
class _Recipe:
    """Everything that turns one unit's files into arrays (sent to the worker processes)."""

    label_values: list[int] | None
    class_names: Sequence[str] | None
    size: tuple[int, int]
    channels: int | None
    axis: int
    groups: dict[int, int] | None
    intensity: Intensity | None
    alone: bool  # a single file: its reader's own errors are raised
    pack: bool = True  # False: float32 as decoded, the old layout (benchmarks/bench_data.py)
    store: str = "exact"  # or "source": round what no exact store holds to the file's depth


def decode_workers(requested: int | None = None) -> int:
    """Processes that decode files: ``requested``, else ``MEDCL_DECODE_WORKERS``, else the CPUs
    this process may use, at most 8 (decoding is I/O and zlib bound; more rarely pay)."""
    if requested is None:
        env = os.environ.get("MEDCL_DECODE_WORKERS", "")
        if env.strip():
            try:
                requested = int(env)
            except ValueError:
                raise MedclError(
                    f"MEDCL_DECODE_WORKERS is {env!r}; use a whole number of processes (1: none)."
                ) from None
    if requested is None:
        try:
            cpus = len(os.sched_getaffinity(0))
        except (AttributeError, OSError):
            cpus = os.cpu_count() or 1
        requested = min(8, cpus)
    if requested < 1:
        raise MedclError(f"data.workers is {requested}; use 1 (no pool) or more processes.")
    return int(requested)


def _decode_unit(recipe: _Recipe, series: str, unit: list[tuple[Path, Path | None]]) -> _Unit:
    """Read, scale, convert, resize and pack one unit (in a worker process, or here)."""
    out = _Unit()
    intensity, size, axis = recipe.intensity, recipe.size, recipe.axis
    parts: list[tuple[np.ndarray, dict[str, Any], Path, Path | None, np.ndarray | None]] = []
    for image_path, mask_path in unit:
        reader = reader_for(image_path)
        try:
            if intensity is None:
                data, meta = reader.read(image_path, axis)
            else:
                data, meta = reader.read_values(image_path, axis)
        except NotAnImage as exc:
            if recipe.alone:
                raise
            out.not_images.append((Path(exc.path).name, exc.reason))
            continue
        except UnreadableFile as exc:
            if recipe.alone:
                raise  # one file: its reader's own sentence says it best
            out.skipped.append((Path(exc.path).name, exc.reason))
            continue
        labels = None
        if mask_path is not None:
            try:
                labels, _ = reader_for(mask_path).read_labels(mask_path, axis)
            except UnreadableFile as exc:
                if recipe.alone:
                    raise
                out.skipped.append((Path(exc.path).name, exc.reason))
                continue
        parts.append((data, meta, image_path, mask_path, labels))
    if not parts:
        return out
    image_path = parts[0][2]
    out.first_path, out.files = image_path, len(parts)
    reader = reader_for(image_path)
    if series and len(parts) > 1:  # the slices of one series, in patient order
        data = np.concatenate(
            [np.asarray(p[0], dtype=np.result_type(*[q[0] for q in parts])) for p in parts]
        )
        meta = {**parts[0][1], "is_volume": True, "num_slices": len(parts)}
        meta["voi"] = [v for p in parts for v in (p[1].get("voi") or [None])]
    else:
        data, meta = parts[0][0], parts[0][1]
        series = ""  # a file alone, or the one readable slice of a series: as it is
    channels = recipe.channels if recipe.channels is not None else int(data.shape[1])
    direct = recipe.pack and _stored_as_read(data, reader, intensity, channels, size)
    if intensity is not None:
        span = uses_little_of_its_type(data)
        if span is not None:
            out.little.append((image_path.name, *span, str(data.dtype)))
        if direct:
            pass  # k / 255 is what scaling would give: kept as k, never made float
        elif intensity.file_window:
            data = reader.finish(reader.window(data, meta), meta)
        elif intensity.per_dataset(data.dtype):
            out.deferred = meta
            data = data.astype(np.float32)
        else:
            data = reader.finish(intensity.apply(data, intensity.bounds(data)), meta)
    if direct and data.shape[1] != channels:
        data = np.repeat(data, channels, axis=1)  # grey to RGB, as _convert_channels does
    else:
        data = _convert_channels(data, channels, image_path)
    n = data.shape[0]
    start = 0
    for part_data, part_meta, part_path, mask_path, labels in parts:
        count = part_data.shape[0] if series else n
        if mask_path is not None and labels is not None:
            _check_mask_shape(
                labels,
                data[start : start + count],
                mask_path,
                part_path,
                part_meta["is_volume"],
            )
            labels, classes = _remap(
                labels, recipe.label_values, recipe.class_names, mask_path, recipe.groups
            )
            out.found.update(classes)
            resized = _resize_masks(labels, size)
            out.masks.append(resized.astype(mask_dtype(resized), copy=False))
        out.has_mask += [mask_path is not None] * count
        if series:
            out.ids.append(file_stem(part_path))
        start += count
        if not series:
            break
    if direct:
        out.images = np.ascontiguousarray(data)
    else:
        resized = _resize_images(data, size, clip=out.deferred is None)
        packed = out.deferred is None and recipe.pack
        out.images = _packed(resized, recipe.store, meta) if packed else resized
    stem = file_stem(image_path)
    if series:
        out.volume_ids += [series] * n
        out.positions += [i / (n - 1) if n > 1 else 0.0 for i in range(n)]
    elif meta["is_volume"]:
        out.ids += [f"{stem}:{i}" for i in range(n)]
        out.volume_ids += [stem] * n
        out.positions += [i / (n - 1) if n > 1 else 0.0 for i in range(n)]
    else:
        out.ids.append(stem)
        out.volume_ids.append("")
        out.positions.append(float("nan"))
    return out


def _packed(images: np.ndarray, store: str, meta: dict[str, Any]) -> np.ndarray:
    """``images`` as stored: exactly (``store="exact"``), or at the file's depth (``source``)."""
    if store == "source":
        # the reader's "dtype": the file's stored type, before any scaling
        return round_to_depth(images, "uint8" if meta.get("dtype") == "uint8" else "uint16")
    return pack_images(images)


def _stored_as_read(
    data: np.ndarray,
    reader: ImageReader,
    intensity: Intensity | None,
    channels: int,
    size: tuple[int, int],
) -> bool:
    """Whether ``data`` (uint8) is its own compact store: scaled by 255, nothing else.

    Then the float32 image would be ``float32(k) / float32(255)`` (``Intensity.apply`` with
    bounds (0, 255): subtracting 0 and clipping change nothing), exactly what the uint8 store
    reads back as, so the float32 image is never made. Not for readers that change scaled
    values (DICOM MONOCHROME1 inverts), resized images, or RGB to grey.
    """
    return (
        intensity is not None
        and data.dtype == np.uint8
        and not intensity.file_window
        and intensity.by_type(data.dtype)
        and intensity.bounds(data[:0]) == (0.0, 255.0)
        and type(reader).finish is ImageReader.finish
        and tuple(data.shape[2:]) == tuple(size)
        and (data.shape[1] == channels or (data.shape[1] == 1 and channels == 3))
    )


POOL_MIN_FILES = 64  # fewer decoding units are decoded in this process

_RECIPE: _Recipe | None = None  # a worker process's recipe, set once by _start_worker


def _start_worker(recipe: _Recipe) -> None:
    global _RECIPE
    _RECIPE = recipe
    torch.set_num_threads(1)  # one process per core already


def _decode_in_worker(job: tuple[str, list[tuple[Path, Path | None]]]) -> _Unit:
    assert _RECIPE is not None
    return _decode_unit(_RECIPE, *job)


class _Progress:
    """A bar in a terminal; elsewhere (a log file) a line every 30 s, and at the end if any."""

    def __init__(self, total: int, every: float = 30.0) -> None:
        import time

        self.bar = tqdm(total=total, desc="Decoding images", unit="file", disable=None)
        self.quiet = bool(getattr(self.bar, "disable", False)) and total > 1
        self.total, self.done, self.every = total, 0, every
        self.clock = time.perf_counter
        self.start = self.last = self.clock()
        self.said = False

    def update(self, n: int = 1) -> None:
        self.done += n
        self.bar.update(n)
        now = self.clock()
        # a short decode says nothing; a long one a line every 30 s and one at its end
        due = now - self.last >= self.every or (self.done == self.total and self.said)
        if self.quiet and due:
            self.said = True
            self.last = now
            rate = self.done / max(now - self.start, 1e-9)
            import sys

            print(
                f"medcl: decoding images: {self.done}/{self.total} files, {rate:.0f} files/s, "
                f"{now - self.start:.0f} s",
                file=sys.stderr,
                flush=True,
            )

    def close(self) -> None:
        self.bar.close()


def _units_decoded(
    recipe: _Recipe, units: list[tuple[str, list[tuple[Path, Path | None]]]], workers: int
):
    """The decoded units in order: here while the channel count is unknown, then in parallel."""
    progress = _Progress(len(units))
    try:
        i = 0
        while i < len(units) and (recipe.channels is None or workers == 1):
            unit = _decode_unit(recipe, *units[i])
            i += 1
            progress.update()
            if unit.images is not None and recipe.channels is None:
                # every later image is converted to the first one's channel count
                recipe = replace(recipe, channels=int(unit.images.shape[1]))
            yield unit
        if i == len(units):
            return
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        rest = units[i:]
        chunk = max(1, min(64, len(rest) // (workers * 8)))
        # Not fork: a process whose torch has run OpenMP threads (a resize) can hang when
        # forked. A fork server that has imported this module (torch, no threads run yet)
        # starts workers fast; elsewhere spawn, which imports it in each worker.
        context: Any
        if "forkserver" in mp.get_all_start_methods():
            context = mp.get_context("forkserver")
            context.set_forkserver_preload([__name__])
        else:
            context = mp.get_context("spawn")
        with ProcessPoolExecutor(
            max_workers=workers, mp_context=context, initializer=_start_worker, initargs=(recipe,)
        ) as pool:
            for unit in pool.map(_decode_in_worker, rest, chunksize=chunk):
                progress.update()
                yield unit
    finally:
        progress.close()


def _decode(
    pairs: list[tuple[Path, Path | None]],
    label_values: list[int] | None,
    class_names: Sequence[str] | None,
    size: tuple[int, int],
    channels: int | None,
    axis: int,
    on_unreadable: str = "error",
    groups: dict[int, int] | None = None,
    intensity: Intensity | None = None,
    workers: int | None = None,
    pack: bool = True,
    store: str = "exact",
    to_file: Path | None = None,
) -> ImageSet:
    """Decode ``pairs``; ``intensity`` None: each reader's own scaling (the ISIC layout).

    The images come back compact (:mod:`medcl.data._stored`): each file is packed as soon as
    it is decoded, so decoding never holds the collection as float32 unless its values need
    it. ``workers`` processes decode the files (default :func:`decode_workers`; 1: no pool).
    ``to_file`` (a ``.npy`` path, given by :func:`decode_cached`): each packed file is
    written there as it arrives (:class:`~medcl.data._stored.PackedFile`), and the images
    come back memory-mapped from it, so decoding holds one file's pixels, not the collection.
    Images scaled by data-set percentiles, or of mixed depths, are held in memory as before.
    """
    images: list[np.ndarray] = []
    deferred: list[tuple[int, ImageReader, dict]] = []  # scaled by data-set percentiles
    little: list[tuple[str, float, float, str]] = []  # images using <1% of their type's range
    masks: list[np.ndarray] = []
    has_mask: list[bool] = []
    ids: list[str] = []
    volume_ids: list[str] = []
    positions: list[float] = []
    found: set[int] = set()  # classes seen in the masks
    skipped: list[tuple[str, str]] = []  # (file name, reason) of the files that cannot be read
    not_images: list[tuple[str, str]] = []  # (file name, what it is) of DICOM non-images
    units = dicom_series(pairs)
    recipe = _Recipe(
        label_values,
        class_names,
        size,
        channels,
        axis,
        groups,
        intensity,
        len(pairs) == 1,
        pack,
        store,
    )
    few = len(units) < POOL_MIN_FILES  # starting processes would cost more than it saves
    n_workers = 1 if few else min(decode_workers(workers), len(units))
    stream = PackedFile(to_file) if to_file is not None and pack else None
    held = 0 if stream is not None else 2  # copies of the set in memory: the parts and the join
    # Before any file is decoded: a file is resized at the target size in float32 before it
    # is packed, in each worker at once, and the set cannot take less than one 8-bit channel
    # per image; the exact check follows once the first file says its depth and channels.
    check_fits(
        held * image_set_bytes(len(pairs), 1, size, 1, 0)
        + n_workers * image_set_bytes(1, 4, size, 4, 8),
        f"Decoding {len(pairs)} image files at data.image_size={list(size)}",
        "lower data.image_size, or use fewer images",
    )
    first = True
    try:
        for unit in _units_decoded(recipe, units, n_workers):
            skipped += unit.skipped
            not_images += unit.not_images
            little += unit.little
            if unit.images is None:
                continue
            if first:  # the decoded set (and its concatenation), before they are allocated
                first = False
                total = len(pairs) * max(1, unit.images.shape[0] // unit.files)  # per file
                c, itemsize = int(unit.images.shape[1]), unit.images.itemsize
                check_fits(
                    held * image_set_bytes(total, c, size, itemsize, 0)
                    + 2 * image_set_bytes(total, 0, size, 0, 1),  # masks: at most one each
                    f"Decoding {total} images at data.image_size={list(size)}",
                    "lower data.image_size, or use fewer images",
                )
            if stream is not None and (unit.deferred is not None or not stream.add(unit.images)):
                # scaled at the end, or of another depth: the rest is joined in memory
                images, stream = stream.take_back(), None
            if stream is None:
                if unit.deferred is not None:
                    assert unit.first_path is not None
                    deferred.append((len(images), reader_for(unit.first_path), unit.deferred))
                images.append(unit.images)
            masks += unit.masks
            has_mask += unit.has_mask
            ids += unit.ids
            volume_ids += unit.volume_ids
            positions += unit.positions
            found |= unit.found
        if stream is not None and stream.rows == 0:  # nothing decoded: no file left behind
            stream.take_back()
            stream = None
        if not_images and not images and stream is None and not skipped:
            raise MedclError(
                f"None of the {len(pairs)} files in '{pairs[0][0].parent}' holds an image: "
                f"{_unreadable_list(not_images, 5)}; give data.images a folder of images."
            )
        if skipped and (on_unreadable == "error" or not (images or stream is not None)):
            raise MedclError(_unreadable_message(skipped, len(pairs), pairs[0][0].parent))
    except BaseException:
        if stream is not None:
            stream.take_back()  # closes and removes the partial file
        raise
    if deferred:
        assert intensity is not None
        values = np.concatenate([sample_values(images[i]) for i, _, _ in deferred])
        bounds = percentile_bounds(values, intensity.percentiles)
        for i, reader, meta in deferred:
            images[i] = reader.finish(intensity.apply(images[i], bounds), meta)
            images[i] = _packed(images[i], store, meta) if pack else images[i]
    if little and intensity is not None:
        _say_little(little, len(pairs), intensity)
    flags = np.array(has_mask, dtype=bool)
    rows = np.full(len(flags), -1, dtype=np.int64)
    rows[flags] = np.arange(int(flags.sum()))
    h, w = size
    if masks:
        kinds = {m.dtype for m in masks}
        stored = np.concatenate(masks if len(kinds) == 1 else [m.astype(np.int64) for m in masks])
        stored = stored.astype(mask_dtype(stored), copy=False)
    else:
        stored = np.zeros((0, h, w), dtype=np.uint8)
    return ImageSet(
        images=StoredImages(stream.finish() if stream is not None else join_packed(images)),
        masks=SparseMasks(stored, rows),
        has_mask=flags,
        ids=np.array(ids, dtype=object),
        volume_ids=np.array(volume_ids, dtype=object),
        positions=np.array(positions, dtype=np.float64),
        class_names=_class_names(label_values, class_names, found, pairs),
        unreadable=skipped,
        not_images=not_images,
    )


def _say_little(little: list[tuple[str, float, float, str]], total: int, spec: Intensity) -> None:
    """One warning for every image whose values span under 1% of its stored type's range."""
    import sys

    name, lo, hi, dtype = little[0]
    rng = type_range(np.dtype(dtype))
    assert rng is not None
    if spec.by_type(np.dtype(dtype)):
        tail = (
            "scaled by that range they are nearly uniform; set data.intensity.scale=percentile "
            "to scale each by its own values, or data.intensity.window=[lo, hi]"
        )
    else:
        tail = f"they are scaled by their own values (data.intensity.scale={spec.scale})"
    print(
        f"medcl: warning: {len(little)} of {total} images use under 1% of their type's range "
        f"(e.g. '{name}': values {lo:g}-{hi:g} of {dtype}'s {rng[0]:g}-{rng[1]:g}); {tail}.",
        file=sys.stderr,
        flush=True,
    )


def _unreadable_message(skipped: list[tuple[str, str]], total: int, folder: Path) -> str:
    if len(skipped) == total:
        return (
            f"None of the {total} files in '{folder}' can be read: "
            f"{_unreadable_list(skipped, 5)}; check that data.images holds image files."
        )
    return (
        f"{len(skipped)} of the {total} files in '{folder}' cannot be read: "
        f"{_unreadable_list(skipped)}; fix or remove them, or set data.on_unreadable=skip to "
        "leave them out."
    )


def conform_image(
    image: np.ndarray, channels: int, image_size: tuple[int, int], path: str | Path = "?"
) -> np.ndarray:
    """One ``(C, H, W)`` image as a folder load would give it: ``channels`` channels (grey to
    RGB by repetition, RGB to grey by luminance) and ``image_size``, resized bilinearly with
    antialiasing; returns ``(1, channels, *image_size)`` float32. ``path`` names the file in
    the error raised when its channels cannot be converted.

    >>> conform_image(np.ones((3, 4, 4), np.float32), 1, (2, 2)).shape
    (1, 1, 2, 2)
    """
    return _resize_images(_convert_channels(image[None], channels, Path(path)), image_size)


def _convert_channels(data: np.ndarray, channels: int, path: Path) -> np.ndarray:
    have = data.shape[1]
    if have == channels:
        return data
    if have == 1 and channels == 3:
        return np.repeat(data, 3, axis=1)
    if have == 3 and channels == 1:
        return np.einsum("schw,c->shw", data, _LUMINANCE)[:, None].astype(np.float32)
    raise MedclError(
        f"Image '{path}' has {have} channels and cannot be converted to {channels}; convert "
        f"the file (or, loading a folder, set data.channels to {have})."
    )


def _check_mask_shape(
    labels: np.ndarray, data: np.ndarray, mask_path: Path, image_path: Path, volume: bool
) -> None:
    mask_shape, image_shape = labels.shape, (data.shape[0], *data.shape[2:])
    if mask_shape == image_shape:
        return
    if not volume and mask_shape[0] == 1 and image_shape[0] == 1:
        mask_shape, image_shape = mask_shape[1:], image_shape[1:]
    raise MedclError(
        f"Mask '{mask_path}' is {'x'.join(map(str, mask_shape))} but its image '{image_path}' "
        f"is {'x'.join(map(str, image_shape))}; masks must have the same size as their image."
    )


def _remap(
    labels: np.ndarray,
    label_values: list[int] | None,
    class_names: Sequence[str] | None,
    path: Path,
    groups: dict[int, int] | None = None,
) -> tuple[np.ndarray, set[int]]:
    """Stored values -> classes ``0..C-1``; also returns the classes present."""
    found, inverse = np.unique(labels, return_inverse=True)
    if groups is not None:  # any value outside the groups is background
        table = np.array([groups.get(int(v), 0) for v in found], dtype=np.int64)
        return table[inverse].reshape(labels.shape), set(table.tolist())
    if label_values is not None:
        lookup = {v: i for i, v in enumerate(label_values)}
        bad = [int(v) for v in found if int(v) not in lookup]
        if bad:
            raise MedclError(
                f"Mask '{path}' holds the values {bad}, which are not in data.label_values "
                f"{label_values}; add them to data.label_values or fix the mask."
            )
        table = np.array([lookup[int(v)] for v in found], dtype=np.int64)
        return table[inverse].reshape(labels.shape), set(table.tolist())
    if set(found.tolist()) <= {0, 255}:
        # a binary mask saved as black/white
        return (labels == 255).astype(np.int64), {int(v > 0) for v in found}
    limit = len(class_names) if class_names is not None else None
    bad = [int(v) for v in found if v < 0 or (limit is not None and v >= limit)]
    if bad:
        allowed = f"0..{limit - 1}" if limit is not None else "0 or more"
        raise MedclError(
            f"Mask '{path}' holds the values {bad}, outside the classes {allowed}; declare the "
            "stored value of every class in data.label_values."
        )
    return labels.astype(np.int64), {int(v) for v in found}


def _class_names(
    label_values: list[int] | None,
    class_names: Sequence[str] | None,
    found: set[int],
    pairs: list[tuple[Path, Path | None]],
) -> list[str]:
    if class_names is not None:
        return [str(c) for c in class_names]
    if label_values is not None:
        n = len(label_values)
    elif found:
        n = max(max(found) + 1, 2)
        if len(found | {0}) < max(found) + 1:
            # e.g. 0/500 masks would otherwise give 501 classes
            folder = next(m for _, m in pairs if m is not None).parent
            raise MedclError(
                f"The masks in '{folder}' hold the values {sorted(found)}, not the classes "
                f"0..{max(found)}; list the stored value of every class in data.label_values "
                f"(e.g. {sorted(found)}), or name all classes in data.class_names."
            )
    else:
        n = 1
    return ["background"] + [f"class_{i}" for i in range(1, n)]


def _resize_images(data: np.ndarray, size: tuple[int, int], clip: bool = True) -> np.ndarray:
    """Bilinear with antialiasing; ``clip=False`` for stored values not yet scaled."""
    if data.shape[2:] == size:
        return np.ascontiguousarray(data, dtype=np.float32)
    out = F.interpolate(
        torch.from_numpy(np.ascontiguousarray(data, dtype=np.float32)),
        size=size,
        mode="bilinear",
        align_corners=False,
        antialias=True,
    )
    return (out.clamp_(0.0, 1.0) if clip else out).numpy()


def _resize_masks(labels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    if labels.shape[1:] == size:
        return labels.astype(np.int64, copy=False)
    # class ids are small after remapping, so float32 holds them exactly
    t = torch.from_numpy(labels.astype(np.float32))[:, None]
    out = F.interpolate(t, size=size, mode="nearest-exact")
    return out[:, 0].round().to(torch.int64).numpy()


# ----------------------------------------------------------------------------- cache


def _say_damaged(path: Path, reason: str) -> None:
    import sys

    print(
        f"medcl: cache file {path} is damaged ({reason}); decoding the images again",
        file=sys.stderr,
        flush=True,
    )


def _say_old_format(prefix: Path, meta: dict[str, Any]) -> None:
    import sys

    layout = f"format {meta['format']}" if "format" in meta else "float32 images, int64 masks"
    print(
        f"medcl: cache {prefix}.* is in an older layout ({layout}); rebuilding it in the "
        f"compact layout (format {STORE_FORMAT}), once",
        file=sys.stderr,
        flush=True,
    )


class _Cache:
    """Decoded arrays on disk, named by a hash of the inputs and settings."""

    def __init__(
        self,
        cache_dir: str | os.PathLike,
        pairs: list[tuple[Path, Path | None]],
        settings: dict[str, Any],
        mmap_threshold: int,
    ) -> None:
        self.dir = Path(cache_dir)
        self.mmap_threshold = mmap_threshold
        files: list[list[object] | None] = []
        for image, mask in pairs:
            for p in (image, mask):
                if p is None:
                    files.append(None)
                else:
                    st = p.stat()
                    files.append([str(p.resolve()), st.st_size, st.st_mtime_ns])
        blob = json.dumps({"files": files, "settings": settings}, sort_keys=True)
        key = hashlib.sha256(blob.encode()).hexdigest()[:24]
        self.prefix = self.dir / f"medcl-{key}"

    def _path(self, part: str) -> Path:
        return Path(f"{self.prefix}.{part}")

    def load(self) -> ImageSet | None:
        meta_path = self._path("meta.json")
        if not meta_path.exists():
            return None
        try:
            meta = json.loads(meta_path.read_text())
            if "digests" not in meta:
                _say_damaged(meta_path, "written by an older medcl, without content hashes")
                return None
            if meta.get("format") != STORE_FORMAT:
                _say_old_format(self.prefix, meta)
                return None
            for name, digest in meta["digests"].items():
                if file_digest(self._path(name)) != digest:
                    _say_damaged(self._path(name), "its content changed since it was cached")
                    return None
            return self._open(meta)
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            _say_damaged(meta_path, type(exc).__name__)  # a damaged entry is decoded again
            return None

    def _open(self, meta: dict[str, Any]) -> ImageSet:
        """The entry's arrays (memory-mapped above the threshold) with its metadata."""
        images = self._load_array(self._path("images.npy"))
        masks = self._load_array(self._path("masks.npy"))
        if str(images.dtype) != meta["images_dtype"] or str(masks.dtype) != meta["masks_dtype"]:
            raise ValueError("the arrays' dtypes differ from meta.json's")
        return ImageSet(
            images=StoredImages(images),
            masks=SparseMasks(masks, np.array(meta["mask_rows"], dtype=np.int64)),
            has_mask=np.array(meta["has_mask"], dtype=bool),
            ids=np.array(meta["ids"], dtype=object),
            volume_ids=np.array(meta["volume_ids"], dtype=object),
            positions=np.array(
                [np.nan if p is None else p for p in meta["positions"]], dtype=np.float64
            ),
            class_names=list(meta["class_names"]),
            group_ids=np.array(meta.get("group_ids", []), dtype=object),
            instances=(
                self._load_array(self._path("instances.npy")) if meta.get("instances") else None
            ),
            reference_labels={
                k: np.array(v, dtype=object) for k, v in meta.get("reference_labels", {}).items()
            },
            unreadable=[(str(n), str(r)) for n, r in meta.get("unreadable", [])],
            not_images=[(str(n), str(r)) for n, r in meta.get("not_images", [])],
        )

    def _load_array(self, path: Path) -> np.ndarray:
        if path.stat().st_size > self.mmap_threshold:
            return np.load(path, mmap_mode="r")
        return np.load(path)

    def scratch(self, part: str) -> Path:
        """A new file name in the cache folder (made if needed) for ``part`` while it is
        written; :meth:`save` with ``written`` takes it into the entry."""
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # the folder itself cannot be made: before any decoding
            from medcl.rundir import write_error

            raise write_error(exc.filename or self.dir, exc) from exc
        fd, name = tempfile.mkstemp(
            dir=self.dir, prefix=f"{self.prefix.name}.{part}.", suffix=".tmp"
        )
        os.close(fd)
        return Path(name)

    def save(self, imageset: ImageSet, written: Path | None = None) -> ImageSet:
        """Write ``imageset`` compactly; returns it as read back from the entry (mapped).

        ``written``: the file (:meth:`scratch`) the decoding wrote the images to; when they
        are that file, it is renamed into the entry instead of copied.
        """
        images = compact_images(imageset.images)
        masks = compact_masks(imageset.masks, imageset.has_mask)
        raw_file = getattr(images.raw, "filename", None)
        on_disk = written is not None and raw_file is not None and Path(raw_file) == written
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            if on_disk:
                from medcl.rundir import usual_mode

                assert written is not None
                usual_mode(str(written))
                os.replace(written, self._path("images.npy"))
            else:
                self._write(self._path("images.npy"), lambda f: np.save(f, images.raw))
            self._write(self._path("masks.npy"), lambda f: np.save(f, masks.raw))
            if imageset.instances is not None:
                instances = imageset.instances
                self._write(self._path("instances.npy"), lambda f: np.save(f, instances))
            parts = ["images.npy", "masks.npy"]
            if imageset.instances is not None:
                parts.append("instances.npy")
            meta = {
                "format": STORE_FORMAT,
                "images_dtype": str(images.raw.dtype),
                "masks_dtype": str(masks.raw.dtype),
                "mask_rows": masks.rows.tolist(),
                "digests": {name: file_digest(self._path(name)) for name in parts},
                "has_mask": imageset.has_mask.tolist(),
                "ids": [str(i) for i in imageset.ids],
                "volume_ids": [str(v) for v in imageset.volume_ids],
                "positions": [None if np.isnan(p) else float(p) for p in imageset.positions],
                "class_names": list(imageset.class_names),
                "group_ids": [str(g) for g in imageset.group_ids],
                "instances": imageset.instances is not None,
                "reference_labels": {
                    k: [str(x) for x in v] for k, v in imageset.reference_labels.items()
                },
                "unreadable": [list(item) for item in imageset.unreadable],
                "not_images": [list(item) for item in imageset.not_images],
            }
            # written last: its presence marks a complete cache entry
            self._write(self._path("meta.json"), lambda f: f.write(json.dumps(meta).encode()))
        except OSError as exc:  # the folder itself cannot be made
            from medcl.rundir import write_error

            raise write_error(exc.filename or self.dir, exc) from exc
        try:
            return self._open(meta)
        except (OSError, ValueError):  # written, but not readable back: keep what we have
            return imageset

    def _write(self, path: Path, write: Any) -> None:
        fd, tmp = tempfile.mkstemp(dir=self.dir, prefix=path.name, suffix=".tmp")
        try:
            from medcl.rundir import usual_mode

            usual_mode(tmp)
            with os.fdopen(fd, "wb") as f:
                write(f)
            os.replace(tmp, path)
        except BaseException as exc:
            Path(tmp).unlink(missing_ok=True)
            if isinstance(exc, OSError):
                from medcl.rundir import write_error

                raise write_error(path, exc) from exc
            raise
