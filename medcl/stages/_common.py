"""What every stage needs: the data, the device, seeds, and array-to-tensor batches."""

from __future__ import annotations

import json
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from medcl.config import Config
from medcl.data import (
    ImageSet,
    assign_splits,
    kfold_splits,
    load_builtin,
    load_dsb2018_folder,
    load_folder,
    load_isic2017,
    load_mmwhs,
    stratified_group_split,
)
from medcl.errors import MedclError
from medcl.models import UNetEncoder
from medcl.rundir import RunDir


def say(message: str) -> None:
    """One progress line on stderr: readable in a terminal and in a CI log alike."""
    print(f"medcl: {message}", file=sys.stderr, flush=True)


def load_data(cfg: Config, cache_dir: Path | None = None) -> ImageSet:
    """The configured data set, split into train/val/test."""
    d = cfg.data
    factor = 2 ** (len(cfg.model.channels) - 1)
    if d.image_size[0] % factor or d.image_size[1] % factor:
        raise MedclError(
            f"data.image_size={list(d.image_size)} must be divisible by {factor} for a UNet "
            f"with {len(cfg.model.channels)} levels (model.channels); e.g. "
            f"[{d.image_size[0] // factor * factor or factor}, {d.image_size[1] // factor * factor or factor}]."
        )
    _check_data_keys(cfg)
    size = (d.image_size[0], d.image_size[1])
    if d.layout == "isic2017":
        assert d.root is not None  # checked above
        channels = d.channels or 3
        data = load_isic2017(d.root, size, d.extra_images, channels, cache_dir=cache_dir)
    elif d.layout == "mmwhs":
        assert d.root is not None
        data = load_mmwhs(d.root, size, volume_axis=d.volume_axis, cache_dir=cache_dir)
    elif d.layout == "dsb2018":
        assert d.root is not None
        data = load_dsb2018_folder(d.root, size, cache_dir=cache_dir)
    elif d.dataset:
        data = load_builtin(d.dataset, d.image_size, d.split_seed)
    elif d.images:
        data = load_folder(
            d.images,
            masks=d.masks,
            mask_suffix=d.mask_suffix,
            label_values=d.label_values,
            class_names=d.class_names,
            image_size=(d.image_size[0], d.image_size[1]),
            channels=d.channels,
            volume_axis=d.volume_axis,
            cache_dir=cache_dir,
        )
    else:
        raise MedclError(
            "No data given: set data.dataset (dsb2018 or brain-aal) or data.images=FOLDER (and data.masks)."
        )
    if d.folds is not None:
        data = kfold_splits(data, d.folds, d.fold, d.split_seed)
    elif d.layout == "dsb2018" and not d.split_csv:  # whole fields, by appearance group
        data.split = stratified_group_split(
            data.group_ids,
            data.reference_labels["appearance"],
            d.val_fraction,
            d.test_fraction,
            d.split_seed,
        )
    elif d.layout != "isic2017" and not d.dataset:  # those come with their split
        data = assign_splits(data, d.val_fraction, d.test_fraction, d.split_seed, d.split_csv)
    for split in ("train", "val", "test"):
        if len(data.indices(split)) == 0:
            raise MedclError(
                f"The {split} split is empty ({len(data)} images in all); add images or change "
                "data.val_fraction / data.test_fraction."
            )
    for split in ("val", "test"):
        if not data.has_mask[data.indices(split)].any():
            raise MedclError(f"No image of the {split} split has a mask; Dice needs masks there.")
    return data


_EXAMPLE_ROOT = {"isic2017": "ISIC2017", "mmwhs": "ct_train", "dsb2018": "dsb2018"}


def _check_data_keys(cfg: Config) -> None:
    """Keys that contradict each other, before any file is read."""
    d = cfg.data
    if d.layout == "folder":
        if d.dataset and d.images:
            raise MedclError("Set either data.dataset (built-in) or data.images, not both.")
        if d.root or d.extra_images:
            key = "data.root" if d.root else "data.extra_images"
            raise MedclError(
                f"{key} is for data.layout isic2017, mmwhs or dsb2018; with data.layout=folder give "
                "data.images (and data.masks), or set data.layout."
            )
    else:
        if d.root is None:
            raise MedclError(
                f"data.layout={d.layout} needs data.root, the folder holding the data set "
                f"(e.g. data.root=/path/to/{_EXAMPLE_ROOT[d.layout]})."
            )
        if d.dataset or d.images or d.masks:
            raise MedclError(
                f"data.layout={d.layout} reads data.root; leave data.dataset, data.images and "
                "data.masks unset."
            )
        if d.layout != "isic2017" and d.extra_images:
            raise MedclError(f"data.extra_images is for data.layout=isic2017, not {d.layout}.")
    fixed = "isic2017" if d.layout == "isic2017" else d.dataset
    if d.folds is not None and fixed:
        raise MedclError(
            f"data.folds is set but the {fixed} data set comes with its own split; unset "
            "data.folds."
        )
    if d.folds is not None and d.split_csv:
        raise MedclError("Set either data.folds (cross-validation) or data.split_csv, not both.")


def check_against_data(cfg: Config, data: ImageSet) -> None:
    """Settings that can only be checked once the images are known; fail before any training."""
    n = len(data.indices("train"))
    if cfg.cluster.k is not None and cfg.cluster.k > n:
        raise MedclError(
            f"cluster.k={cfg.cluster.k} is larger than the number of images ({n}); choose "
            f"k <= {n} or leave cluster.k unset to take k from the elbow."
        )


def build_encoder(cfg: Config, in_channels: int) -> UNetEncoder:
    return UNetEncoder(
        in_channels,
        cfg.model.channels,
        2,
        cfg.model.norm,
        cfg.model.num_res_units,
        standardize=cfg.data.normalize == "zscore",
    )


def seed_all(seed: int) -> None:
    torch.manual_seed(seed)


def to_device(fabric, array: np.ndarray, idx: np.ndarray | None = None) -> torch.Tensor:
    sel = array if idx is None else array[idx]
    return fabric.to_device(torch.as_tensor(np.ascontiguousarray(sel)))


def groups_for(data: ImageSet, idx: np.ndarray) -> np.ndarray | None:
    """Volume ids of ``idx`` for volumetric data (Dice per volume), else None (per image)."""
    return data.volume_ids[idx] if data.is_volumetric else None


@contextmanager
def timed(store: dict, key: str):
    t = time.perf_counter()
    yield
    store[key] = round(store.get(key, 0.0) + time.perf_counter() - t, 2)


def read_done(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.exists() else None


def require(path: Path, what: str, stage: str, run: RunDir) -> Path:
    if not path.exists():
        raise MedclError(
            f"{what} not found in run directory '{run.path}'; run `medcl {stage} --run "
            f"{run.path}` first."
        )
    return path
