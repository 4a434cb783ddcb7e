"""What every stage needs: the data, the device, seeds, and array-to-tensor batches."""

from __future__ import annotations

import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medcl.config import Config
from medcl.data import (
    ImageSet,
    Intensity,
    SparseMasks,
    StoredImages,
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
from medcl.rundir import say as say  # the stages' progress lines
from medcl.stages._data_checks import (
    _check_data_keys,
    _check_finite,
    _check_masks,
    _split_keys,
)
from medcl.stages._data_checks import (
    check_against_data as check_against_data,
)
from medcl.stages._data_checks import (
    check_training_memory as check_training_memory,
)
from medcl.stages._data_checks import (
    finetune_blocker as finetune_blocker,
)


def load_data(cfg: Config, cache_dir: Path | None = None, *, need_masks: bool = True) -> ImageSet:
    """The configured data set, split into train/val/test.

    ``need_masks=False`` is for the stages that learn without labels (features, cluster,
    pretrain): they need training images only, so a set without masks, or with empty val
    and test splits, is accepted. With ``need_masks`` (fine-tuning, evaluation) the reason
    :func:`finetune_blocker` gives, if any, is an error.

    When no image has a mask and no split is fixed (``data.split_csv``, ``data.folds``),
    every image is a training image: val and test would hold images that nothing scores.
    """
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
        data = load_isic2017(
            d.root,
            size,
            d.extra_images,
            channels,
            cache_dir=cache_dir,
            workers=cfg.run.decode_workers,
            store=d.store,
        )
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
            on_unreadable=d.on_unreadable,
            label_groups=d.label_groups,
            intensity=Intensity(**d.intensity.model_dump()),
            workers=cfg.run.decode_workers,
            store=d.store,
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
    if not data.has_mask.any() and not d.split_csv and d.folds is None:
        data.split = np.full(len(data), "train", dtype=object)
    if len(data.indices("train")) == 0:
        raise MedclError(
            f"The train split is empty ({len(data)} images in all); add images or change "
            f"{_split_keys(cfg)}."
        )
    _check_masks(cfg, data)
    if need_masks:
        reason = finetune_blocker(cfg, data)
        if reason:
            raise MedclError(reason)
    _check_finite(data)
    return data


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


def to_device(fabric, array: np.ndarray, idx: Any = None) -> torch.Tensor:
    """Rows ``idx`` of ``array`` (all rows when None) as a tensor on the fabric's device.

    Stored images (:class:`~medcl.data.StoredImages`) travel in their stored dtype and are
    converted to float32 on the device, giving the same values as the float32 path.
    """
    if isinstance(array, StoredImages):
        return array.tensor(slice(None) if idx is None else idx, fabric.device)
    sel = array if idx is None else array[idx]
    return fabric.to_device(torch.as_tensor(np.ascontiguousarray(sel)))


def rows_of(array: Any, idx: np.ndarray) -> Any:
    """The rows ``idx`` of an image or mask array: still stored (nothing read) where it is a
    compact store, else copied as numpy indexing does."""
    if isinstance(array, StoredImages | SparseMasks):
        return array.select(idx)
    return array[idx]


def groups_for(data: ImageSet, idx: np.ndarray) -> np.ndarray | None:
    """Volume ids of ``idx`` for volumetric data (Dice per volume), else None (per image)."""
    return data.volume_ids[idx] if data.is_volumetric else None


@contextmanager
def timed(store: dict, key: str):
    t = time.perf_counter()
    yield
    store[key] = round(store.get(key, 0.0) + time.perf_counter() - t, 2)
