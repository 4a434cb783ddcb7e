"""MMWHS CT (whole-heart segmentation, 20 labelled volumes), read from the release's folder.

Zhuang et al., "Evaluation of algorithms for Multi-Modality Whole Heart Segmentation: An
open-access grand challenge", Medical Image Analysis 58, 2019 (the MICCAI 2017 MM-WHS
challenge). medcl downloads nothing: ``root`` is the release's ``ct_train`` folder, holding
``ct_train_1001_image.nii.gz`` with ``ct_train_1001_label.nii.gz`` beside it, and so on.

What the loader does, following the protocol of the contrastive baselines the UFC paper
compares with (Chaitanya et al. 2020; Zeng et al. 2021):

* **Labels.** The stored values 205, 420, 500, 550, 600, 820 and 850 become classes 1..7
  (:data:`MMWHS_CLASSES`); 0 is background, and any other value is an error naming the file.
* **Region of interest.** Each volume is cropped to the bounding box of its labelled
  foreground, grown by ``margin`` voxels on every side, with the in-plane box then widened
  to a square where the volume allows, so that resizing keeps the heart's proportions. The
  crop uses the label, as the protocol does; it therefore needs every volume's label, and
  it also drops the slices above and below the heart.
* **Slices.** Axial slices (``volume_axis`` 2 of the stored array) are resized to
  ``image_size`` (bilinear with antialiasing; masks nearest neighbour). Each slice keeps its
  volume id (``ct_train_1001``), an id with its slice index in the file
  (``ct_train_1001:123``), and its relative position in the cropped volume (0 at the first
  slice of the crop, 1 at the last), which positional methods use.
* **Intensities.** Scaled to [0, 1] per volume from the stored values (Hounsfield units):
  the 0.5th percentile of the cropped volume maps to 0 and the 99.5th to 1, with clipping,
  so a few extreme voxels (calcification, contrast agent, metal) do not squash the contrast
  of the soft tissue, and the air around the body, cropped away, does not set the scale.

Example::

    >>> ds = load_mmwhs("/data/MMWHS/ct_train", image_size=(256, 256))
    >>> ds.class_names[1], len(set(ds.volume_ids))
    ('LV myocardium', 20)
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
from tqdm import tqdm

from medcl.data._folder import (
    MMAP_THRESHOLD,
    _check_mask_shape,
    _check_size,
    _remap,
    _resize_images,
    _resize_masks,
    decode_cached,
)
from medcl.data._imageset import ImageSet
from medcl.data._readers import reader_for, robust_minmax
from medcl.errors import MedclError

__all__ = ["MMWHS_CLASSES", "load_mmwhs", "roi_box"]

MMWHS_CLASSES: dict[int, str] = {
    205: "LV myocardium",
    420: "left atrium",
    500: "LV blood cavity",
    550: "right atrium",
    600: "RV blood cavity",
    820: "ascending aorta",
    850: "pulmonary artery",
}
"""Stored label value -> structure; class ``i`` (1..7) is the ``i``-th entry."""

_LABEL_VALUES = [0, *MMWHS_CLASSES]
_CLASS_NAMES = ["background", *MMWHS_CLASSES.values()]
_IMAGE = re.compile(r"^(ct_train_\d+)_image\.nii(\.gz)?$")


def load_mmwhs(
    root: str | os.PathLike,
    image_size: tuple[int, int] | int = (256, 256),
    margin: int = 10,
    volume_axis: int = 2,
    cache_dir: str | os.PathLike | None = None,
    *,
    mmap_threshold: int = MMAP_THRESHOLD,
) -> ImageSet:
    """Read the MMWHS CT training volumes in ``root`` as ROI-cropped, resized slices.

    Args:
        root: the release's ``ct_train`` folder (``ct_train_10XX_image.nii.gz`` and
            ``ct_train_10XX_label.nii.gz``).
        image_size: ``(H, W)`` of every slice (an int means square).
        margin: voxels added on every side of the foreground's bounding box.
        volume_axis: the stored array axis slices are taken along (2: axial).
        cache_dir: folder for the decoded arrays, so reruns skip decoding.
        mmap_threshold: cached arrays larger than this many bytes are memory-mapped.

    Returns:
        an ImageSet of ``(N, 1, H, W)`` slices in [0, 1], masks in 0..7, volume ids and
        positions set, ``split`` unset (use :func:`~medcl.data.kfold_splits`).
    """
    size = _check_size(image_size)
    if margin < 0:
        raise MedclError(f"The ROI margin is {margin}; use 0 or more voxels.")
    root = Path(root)
    if not root.is_dir():
        raise MedclError(
            f"The MMWHS folder '{root}' does not exist; set data.root to the release's ct_train "
            "folder."
        )
    pairs: list[tuple[Path, Path | None]] = []
    for image in sorted(root.iterdir(), key=lambda p: p.name):
        if _IMAGE.match(image.name):
            label = image.with_name(image.name.replace("_image.nii", "_label.nii"))
            if not label.is_file():
                raise MedclError(
                    f"The volume '{image}' has no label file '{label.name}' beside it; the "
                    "region-of-interest crop needs the label of every volume."
                )
            pairs.append((image, label))
    if not pairs:
        raise MedclError(
            f"The folder '{root}' holds no MMWHS CT volumes; data.root must be the release's "
            "ct_train folder, with files ct_train_1001_image.nii.gz and "
            "ct_train_1001_label.nii.gz."
        )
    settings = {
        "layout": "mmwhs",
        "version": 1,
        "image_size": list(size),
        "margin": margin,
        "volume_axis": volume_axis,
    }
    return decode_cached(
        lambda to_file: _decode_volumes(pairs, size, margin, volume_axis),
        pairs,
        settings,
        cache_dir,
        mmap_threshold,
    )


def roi_box(labels: np.ndarray, margin: int) -> tuple[slice, slice, slice]:
    """The crop of a ``(S, H, W)`` label volume around its foreground (labels > 0).

    The bounding box of the foreground, grown by ``margin`` on every side and clipped to the
    volume; the ``H`` and ``W`` sides are then widened to the longer of the two (centred,
    shifted to stay inside the volume, and clipped where the volume is narrower).

    >>> lab = np.zeros((10, 40, 40), int); lab[4:6, 10:20, 10:30] = 1
    >>> roi_box(lab, 2)
    (slice(2, 8, None), slice(3, 27, None), slice(8, 32, None))
    """
    fg = np.argwhere(labels > 0)
    if len(fg) == 0:
        raise ValueError("the label volume has no foreground")
    lo = np.maximum(fg.min(axis=0) - margin, 0)
    hi = np.minimum(fg.max(axis=0) + 1 + margin, labels.shape)
    side = int(max(hi[1] - lo[1], hi[2] - lo[2]))
    for axis in (1, 2):
        width = min(side, labels.shape[axis])
        start = int(lo[axis]) - (width - int(hi[axis] - lo[axis])) // 2
        start = min(max(start, 0), labels.shape[axis] - width)
        lo[axis], hi[axis] = start, start + width
    return (
        slice(int(lo[0]), int(hi[0])),
        slice(int(lo[1]), int(hi[1])),
        slice(int(lo[2]), int(hi[2])),
    )


def _decode_volumes(
    pairs: list[tuple[Path, Path | None]], size: tuple[int, int], margin: int, axis: int
) -> ImageSet:
    images, masks, ids, volume_ids, positions = [], [], [], [], []
    for image_path, label_path in tqdm(pairs, desc="Decoding volumes", unit="file", disable=None):
        assert label_path is not None
        data, _ = reader_for(image_path).read_raw(image_path, axis)  # (S, 1, H, W), stored HU
        labels, _ = reader_for(label_path).read_labels(label_path, axis)  # (S, H, W)
        _check_mask_shape(labels, data, label_path, image_path, True)
        unknown = sorted(set(np.unique(labels).tolist()) - set(_LABEL_VALUES))
        if unknown:
            raise MedclError(
                f"The label volume '{label_path}' holds the values {unknown}, which are not "
                f"MMWHS labels ({', '.join(map(str, _LABEL_VALUES))}); fix or replace the file."
            )
        labels, _ = _remap(labels, _LABEL_VALUES, _CLASS_NAMES, label_path)
        try:
            s, h, w = roi_box(labels, margin)
        except ValueError:
            raise MedclError(
                f"The label volume '{label_path}' holds no labelled voxel, so no region of "
                "interest can be cropped; check that it is the right file."
            ) from None
        crop = robust_minmax(data[s, :, h, w])
        images.append(_resize_images(crop, size))
        masks.append(_resize_masks(labels[s, h, w], size))
        n = s.stop - s.start
        volume = _IMAGE.match(image_path.name).group(1)  # type: ignore[union-attr]
        ids += [f"{volume}:{i}" for i in range(s.start, s.stop)]
        volume_ids += [volume] * n
        positions += [(i / (n - 1) if n > 1 else 0.0) for i in range(n)]
    return ImageSet(
        images=np.concatenate(images),
        masks=np.concatenate(masks),
        has_mask=np.ones(len(ids), dtype=bool),
        ids=np.array(ids, dtype=object),
        volume_ids=np.array(volume_ids, dtype=object),
        positions=np.array(positions, dtype=np.float64),
        class_names=list(_CLASS_NAMES),
    )
