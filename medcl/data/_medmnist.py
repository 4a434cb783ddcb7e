"""A loader for MedMNIST ``.npz`` files the user already has (nothing is downloaded).

MedMNIST (Yang et al., Scientific Data 2023) ships each data set as one ``.npz`` file with
the keys ``train_images``, ``train_labels``, ``val_images``, ``val_labels``, ``test_images``
and ``test_labels``; images are ``(N, H, W)`` (grey) or ``(N, H, W, 3)`` (colour) uint8 and
labels ``(N, 1)`` integers. Multi-label sets (ChestMNIST) have no single class per image and
are refused.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from medcl.data._mnist import LabelledImageSet, image_set_from_uint8
from medcl.errors import MedclError

SPLITS = ("train", "val", "test")


def load_medmnist(path: str | Path, config_key: str = "data.medmnist_path") -> LabelledImageSet:
    """Read a MedMNIST ``.npz`` file into a :class:`LabelledImageSet` with its own splits.

    Args:
        path: the ``.npz`` file, e.g. ``pneumoniamnist.npz``.
        config_key: the config key that names the file, quoted in error messages.

    Example:
        >>> ds = load_medmnist("pneumoniamnist.npz")  # doctest: +SKIP
        >>> ds.data.images.shape  # (5856, 1, 28, 28)
    """
    p = Path(path)
    if not p.is_file():
        raise MedclError(
            f"MedMNIST file '{p}' does not exist; put the data set's .npz file there (medcl "
            f"downloads nothing) or point {config_key} at it."
        )
    if not zipfile.is_zipfile(p):
        raise MedclError(f"MedMNIST file '{p}' is not a readable .npz file (not a zip archive).")
    try:
        z = np.load(p, allow_pickle=False)
    except Exception as e:
        raise MedclError(f"MedMNIST file '{p}' is not a readable .npz file ({e}).") from None
    with z:
        missing = [f"{s}_{k}" for s in SPLITS for k in ("images", "labels") if f"{s}_{k}" not in z]
        if missing:
            raise MedclError(
                f"MedMNIST file '{p}' lacks the keys {', '.join(missing)}; expected "
                "train/val/test _images and _labels as in the MedMNIST release."
            )
        try:
            parts = [(s, z[f"{s}_images"], np.asarray(z[f"{s}_labels"])) for s in SPLITS]
        except Exception as e:  # object arrays (pickles), a cut-short member
            raise MedclError(f"MedMNIST file '{p}' is not a readable .npz file ({e}).") from None
    images, labels, split = [], [], []
    shape = None
    for s, x, y in parts:
        if x.ndim not in (3, 4) or (x.ndim == 4 and x.shape[-1] not in (1, 3)):
            raise MedclError(
                f"MedMNIST file '{p}': {s}_images has shape {x.shape}; expected (N, H, W) or "
                "(N, H, W, 3)."
            )
        if x.dtype.kind not in "uif" or (x.dtype.kind == "f" and not np.isfinite(x).all()):
            raise MedclError(
                f"MedMNIST file '{p}': {s}_images holds {'NaN or infinite' if x.dtype.kind == 'f' else x.dtype} "
                "pixel values; expected numbers from 0 to 255."
            )
        if y.dtype.kind not in "iu":
            raise MedclError(
                f"MedMNIST file '{p}': {s}_labels are {y.dtype}, not whole numbers (class ids)."
            )
        if shape is not None and x.shape[1:] != shape:
            raise MedclError(
                f"MedMNIST file '{p}': {s}_images has shape {x.shape[1:]}, not {shape}."
            )
        shape = x.shape[1:]
        y = y.reshape(len(y), -1) if y.ndim > 1 else y.reshape(-1, 1)
        if y.shape != (len(x), 1):
            raise MedclError(
                f"MedMNIST file '{p}': {s}_labels has shape {y.shape}; only single-label sets "
                f"with one label per image ({len(x)}, 1) are supported."
            )
        images.append(x)
        labels.append(y[:, 0].astype(np.int64))
        split.append(np.full(len(x), s, dtype=object))
    x_all = np.concatenate(images)
    if x_all.dtype != np.uint8:
        x_all = np.clip(x_all, 0, 255).astype(np.uint8)
    ids = np.concatenate(
        [np.array([f"{s}-{i:05d}" for i in range(len(x))], dtype=object) for s, x, _ in parts]
    )
    y_all = np.concatenate(labels)
    if y_all.min() < 0:
        raise MedclError(f"MedMNIST file '{p}' has negative labels.")
    return LabelledImageSet(image_set_from_uint8(x_all, ids, np.concatenate(split)), y_all)
