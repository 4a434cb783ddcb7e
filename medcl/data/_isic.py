"""ISIC 2017 skin-lesion segmentation (challenge Part 1), read from the challenge's own folders.

Codella et al., "Skin Lesion Analysis Toward Melanoma Detection: A Challenge at the 2017
International Symposium on Biomedical Imaging (ISBI)", 2018. The data come from the ISIC
challenge site (https://challenge.isic-archive.com/data/#2017); medcl downloads nothing, it
reads a copy that is already on disk, laid out as the challenge's zip files extract::

    ROOT/ISIC-2017_Training_Data/ISIC_0000000.jpg                 2000 images
    ROOT/ISIC-2017_Training_Part1_GroundTruth/ISIC_0000000_segmentation.png
    ROOT/ISIC-2017_Validation_Data/, ROOT/ISIC-2017_Validation_Part1_GroundTruth/   150
    ROOT/ISIC-2017_Test_v2_Data/, ROOT/ISIC-2017_Test_v2_Part1_GroundTruth/         600

(the test folders are also accepted without ``_v2``). The split is the official one, taken
from the folders, never drawn at random. The data folders also hold ``ISIC_*_superpixels.png``
files and a ``*_metadata.csv``; these are not images and are skipped. Masks store 0
(background) and 255 (lesion), read as classes 0 and 1; every official image must have its
mask, so an incomplete copy is reported rather than silently shrinking a split.

Extra *unlabeled* pretraining images (the UFC paper adds the ISIC 2018 and 2020 training
images) join the train split without masks. Images are matched by their ISIC id (``ISIC_`` and
the digits that follow, e.g. ``ISIC_0000123``): an extra image whose id is already present is
dropped, whether it duplicates a training image or another extra image, or would leak a
validation or test image into pretraining (ISIC 2018's training set contains ISIC 2017's
validation and test images).

Images are resized to ``image_size`` (bilinear, antialiased; the aspect ratio is not kept,
as the challenge images vary in shape) with RGB intensities in [0, 1]; masks with nearest
neighbour.

Example::

    >>> ds = load_isic2017("/data/ISIC2017", image_size=(192, 192),
    ...                    extra_images=["/data/ISIC2018_Task1-2_Training_Input"])
    >>> [len(ds.indices(s)) for s in ("train", "val", "test")]
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from medcl.data._folder import (
    MMAP_THRESHOLD,
    _check_size,
    _decode,
    _store_setting,
    decode_cached,
)
from medcl.data._imageset import ImageSet
from medcl.data._readers import file_stem, file_suffix
from medcl.errors import MedclError

__all__ = ["ISIC2017_FOLDERS", "isic_id", "load_isic2017"]

ISIC2017_FOLDERS: dict[str, list[tuple[str, str]]] = {
    "train": [("ISIC-2017_Training_Data", "ISIC-2017_Training_Part1_GroundTruth")],
    "val": [("ISIC-2017_Validation_Data", "ISIC-2017_Validation_Part1_GroundTruth")],
    "test": [
        ("ISIC-2017_Test_v2_Data", "ISIC-2017_Test_v2_Part1_GroundTruth"),
        ("ISIC-2017_Test_Data", "ISIC-2017_Test_Part1_GroundTruth"),
    ],
}
"""Per split, the accepted (images, masks) folder names under the root, in order of preference."""

_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
_NOT_IMAGES = ("_superpixels", "_segmentation")  # stems of the challenge's other PNG files
_ISIC_ID = re.compile(r"ISIC_\d+")


def isic_id(path: str | os.PathLike) -> str:
    """The ISIC id of an image file (``.../ISIC_0000123.jpg`` -> ``ISIC_0000123``).

    Files whose name does not start with an ISIC id are identified by their stem.
    """
    stem = file_stem(path)
    match = _ISIC_ID.match(stem)
    return match.group(0) if match else stem


def load_isic2017(
    root: str | os.PathLike,
    image_size: tuple[int, int] | int = (192, 192),
    extra_images: Sequence[str | os.PathLike] = (),
    channels: int = 3,
    cache_dir: str | os.PathLike | None = None,
    *,
    mmap_threshold: int = MMAP_THRESHOLD,
    workers: int | None = None,
    store: str = "exact",
) -> ImageSet:
    """Read ISIC 2017 from its challenge folders under ``root``, with the official split.

    Args:
        root: the folder holding ``ISIC-2017_Training_Data`` and the other challenge folders.
        image_size: ``(H, W)`` every image and mask is resized to (an int means square).
        extra_images: folders of unlabeled images (ISIC 2018, 2020, ...) added to the train
            split for pretraining, deduplicated by ISIC id, without val/test images.
        channels: 3 (RGB, the default) or 1 (grey, by luminance).
        cache_dir: folder for the decoded arrays, so reruns skip decoding.
        mmap_threshold: cached arrays larger than this many bytes are memory-mapped.
        workers: processes that decode the files (default: the CPUs, at most 8; 1: no pool).
        store: ``exact`` (resized photographs kept as float32, bit for bit) or ``source``
            (rounded to 8 bits, a quarter of the size; see :func:`~medcl.data.load_folder`).

    Returns:
        an ImageSet with ``split`` set, masks 0 (background) / 1 (lesion), class names
        ``["background", "lesion"]``, and intensities in [0, 1].
    """
    size = _check_size(image_size)
    root = Path(root)
    if not root.is_dir():
        raise MedclError(
            f"The ISIC 2017 folder '{root}' does not exist; set data.root to the folder that "
            "holds ISIC-2017_Training_Data and the other challenge folders."
        )
    pairs: list[tuple[Path, Path | None]] = []
    splits: list[str] = []
    for split, candidates in ISIC2017_FOLDERS.items():
        data_dir, mask_dir = _split_folders(root, candidates)
        for image in _images_in(data_dir):
            mask = mask_dir / f"{file_stem(image)}_segmentation.png"
            if not mask.is_file():
                raise MedclError(
                    f"The image '{image}' has no mask '{mask.name}' in '{mask_dir}'; the ISIC "
                    "2017 folders look incomplete, so extract the challenge's zip files again."
                )
            pairs.append((image, mask))
            splits.append(split)
    seen = {isic_id(image) for image, _ in pairs}
    for folder in extra_images:
        for image in _images_in(Path(folder), what="data.extra_images folder"):
            key = isic_id(image)
            if key not in seen:  # a duplicate, or a val/test image that would leak
                seen.add(key)
                pairs.append((image, None))
                splits.append("train")

    settings = {
        "layout": "isic2017",
        "version": 1,
        "image_size": list(size),
        "channels": channels,
        **_store_setting(store),
    }
    imageset = decode_cached(
        lambda to_file: _decode(
            pairs,
            [0, 255],
            ["background", "lesion"],
            size,
            channels,
            2,
            workers=workers,
            store=store,
            to_file=to_file,
        ),
        pairs,
        settings,
        cache_dir,
        mmap_threshold,
    )
    imageset.split = np.array(splits, dtype=object)
    return imageset


def _split_folders(root: Path, candidates: list[tuple[str, str]]) -> tuple[Path, Path]:
    for data_name, mask_name in candidates:
        if (root / data_name).is_dir():
            if not (root / mask_name).is_dir():
                raise MedclError(
                    f"The ISIC 2017 folder '{root}' has '{data_name}' but not its masks "
                    f"'{mask_name}'; extract that zip file from the challenge site into it too."
                )
            return root / data_name, root / mask_name
    expected = ", ".join(name for c in ISIC2017_FOLDERS.values() for name in c[0])
    raise MedclError(
        f"The folder '{root}' has no '{candidates[0][0]}' folder, so it is not an ISIC 2017 "
        f"root; data.root must hold the challenge's folders {expected}."
    )


def _images_in(folder: Path, what: str = "folder") -> list[Path]:
    """The image files of ``folder``, sorted; superpixel maps, masks and CSVs are skipped."""
    if not folder.is_dir():
        raise MedclError(f"The {what} '{folder}' does not exist; check the path.")
    files = sorted(
        (
            p
            for p in folder.iterdir()
            if p.is_file()
            and not p.name.startswith(".")
            and file_suffix(p) in _IMAGE_SUFFIXES
            and not file_stem(p).endswith(_NOT_IMAGES)
        ),
        key=lambda p: p.name,
    )
    if not files:
        raise MedclError(
            f"The {what} '{folder}' holds no ISIC images (ISIC_*.jpg); check the path."
        )
    return files
