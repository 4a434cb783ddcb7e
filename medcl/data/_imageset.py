"""The in-memory image collection every stage works on."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from medcl.data._stored import SparseMasks, StoredImages


@dataclass
class ImageSet:
    """Decoded images with their masks and provenance, all as arrays.

    Attributes:
        images: ``(N, C, H, W)`` float32, intensities in [0, 1] (or standardised): an array,
            or (loaded from files) a :class:`~medcl.data.StoredImages` that keeps them in
            their source depth, often memory-mapped, and reads back the same float32 values.
        masks: ``(N, H, W)`` int64 class maps with values in ``0..num_classes-1``; rows whose
            ``has_mask`` is False hold zeros and must not be used as targets. An array, or a
            :class:`~medcl.data.SparseMasks` that stores only the images that have one.
        has_mask: ``(N,)`` bool, whether a ground-truth mask exists for the image.
        ids: ``(N,)`` str, a stable identifier per image (file stem, or ``volume:slice``).
        volume_ids: ``(N,)`` str, the volume an image was sliced from ('' for 2D images).
        positions: ``(N,)`` float, relative position of the slice in its volume in [0, 1]
            (NaN for 2D images); positional methods use it.
        class_names: names of the ``num_classes`` mask classes, background first.
        split: ``(N,)`` str, 'train', 'val', 'test' or '' when not split yet.
        group_ids: ``(N,)`` str, images that must share a split (tiles of one field, say);
            '' means the image is grouped by its volume, or alone.
        instances: ``(N, H, W)`` int32 instance ids (0 background) where the data set has
            them (dsb2018), else None; for instance-level metrics, never a training target.
        reference_labels: named ``(N,)`` arrays that *judge* unsupervised results (e.g.
            dsb2018's appearance group); no method may read them.
        unreadable: ``(file name, reason)`` of every file a loader skipped because it could
            not be read (``data.on_unreadable=skip``), so that it can say so.
        not_images: ``(file name, what it is)`` of every file a loader skipped because it
            holds no image (a DICOM SEG, RTSTRUCT, SR, ...).
    """

    images: np.ndarray | StoredImages
    masks: np.ndarray | SparseMasks
    has_mask: np.ndarray
    ids: np.ndarray
    volume_ids: np.ndarray
    positions: np.ndarray
    class_names: list[str]
    split: np.ndarray = field(default_factory=lambda: np.array([], dtype=object))
    group_ids: np.ndarray = field(default_factory=lambda: np.array([], dtype=object))
    instances: np.ndarray | None = None
    reference_labels: dict[str, np.ndarray] = field(default_factory=dict)
    unreadable: list[tuple[str, str]] = field(default_factory=list)
    not_images: list[tuple[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        n = len(self.images)
        if self.images.ndim != 4:
            raise ValueError(f"images must be (N, C, H, W), got shape {self.images.shape}")
        if self.masks.shape != (n, *self.images.shape[2:]):
            raise ValueError(
                f"masks must be (N, H, W) = {(n, *self.images.shape[2:])}, got {self.masks.shape}"
            )
        if len(self.split) == 0:
            self.split = np.full(n, "", dtype=object)
        if len(self.group_ids) == 0:
            self.group_ids = np.full(n, "", dtype=object)
        for name in ("has_mask", "ids", "volume_ids", "positions", "split", "group_ids"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"{name} must have one entry per image ({n})")
        if self.instances is not None and self.instances.shape != self.masks.shape:
            raise ValueError(
                f"instances must have the masks' shape {self.masks.shape}, got "
                f"{self.instances.shape}"
            )
        for name, labels in self.reference_labels.items():
            if len(labels) != n:
                raise ValueError(f"reference_labels['{name}'] must have one entry per image ({n})")

    def __len__(self) -> int:
        return len(self.images)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def channels(self) -> int:
        return int(self.images.shape[1])

    @property
    def image_size(self) -> tuple[int, int]:
        return int(self.images.shape[2]), int(self.images.shape[3])

    @property
    def is_volumetric(self) -> bool:
        return bool(np.all(self.volume_ids != ""))

    def indices(self, split: str) -> np.ndarray:
        """Indices of the images in ``split`` ('train', 'val' or 'test')."""
        return np.flatnonzero(self.split == split)

    def subset(self, idx: np.ndarray) -> ImageSet:
        """A new ImageSet holding the images at ``idx`` (arrays are copied)."""
        idx = np.asarray(idx)
        return ImageSet(
            images=np.ascontiguousarray(self.images[idx]),
            masks=self.masks[idx],
            has_mask=self.has_mask[idx],
            ids=self.ids[idx],
            volume_ids=self.volume_ids[idx],
            positions=self.positions[idx],
            class_names=list(self.class_names),
            split=self.split[idx],
            group_ids=self.group_ids[idx],
            instances=None if self.instances is None else self.instances[idx],
            reference_labels={k: v[idx] for k, v in self.reference_labels.items()},
            unreadable=list(self.unreadable),
            not_images=list(self.not_images),
        )
