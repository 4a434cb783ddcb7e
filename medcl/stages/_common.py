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
from medcl.data._digest import chunk_of
from medcl.errors import MedclError
from medcl.models import UNetEncoder
from medcl.rundir import say as say  # the stages' progress lines


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


def _split_keys(cfg: Config) -> str:
    d = cfg.data
    if d.split_csv:
        return f"data.split_csv ('{d.split_csv}')"
    return "data.val_fraction / data.test_fraction"


def finetune_blocker(cfg: Config, data: ImageSet) -> str | None:
    """Why fine-tuning and scoring cannot run on ``data``, in one sentence; None if they can.

    They cannot when no image has a mask, or when a split is empty (``data.val_fraction=0
    data.test_fraction=0``); pretraining needs neither. ``medcl run`` then pretrains and
    stops with this sentence. Masks that are there but unusable (none in a split that has
    images, or background only) are a mistake in the data instead, which
    :func:`load_data` reports as an error whatever the stage.
    """
    if not data.has_mask.any():
        return (
            "No image has a mask, so there is nothing to fine-tune on or score; give masks "
            "(data.masks) to fine-tune, or use the pretrained encoders as they are."
        )
    for split in ("train", "val", "test"):
        if len(data.indices(split)) == 0:
            return _empty_split(cfg, data, split)
    return None


def _empty_split(cfg: Config, data: ImageSet, split: str) -> str:
    """Why ``split`` is empty, naming what would fill it (volumes, data.split_csv)."""
    d = cfg.data
    if d.split_csv:
        return (
            f"The {split} split is empty: data.split_csv ('{d.split_csv}') puts none of the "
            f"{len(data)} images there; give some images the split '{split}' in that file."
        )
    volumes = sorted({str(v) for v in data.volume_ids if v != ""})
    if volumes and len(volumes) < 3:
        names = ", ".join(f"'{v}'" for v in volumes)
        return (
            f"The {split} split is empty: the {len(data)} images are slices of "
            f"{len(volumes)} volume{'s' if len(volumes) > 1 else ''} ({names}), and all slices "
            "of a volume stay in one split, so no fraction can fill it; add volumes, or list "
            "the split of every slice in data.split_csv (columns id,split; slices of one "
            "volume in two splits leak between them)."
        )
    return (
        f"The {split} split is empty ({len(data)} images in all); add images or change "
        f"{_split_keys(cfg)}."
    )


def _check_masks(cfg: Config, data: ImageSet) -> None:
    """Given masks must be usable: some in every split that has images, not all background."""
    if not data.has_mask.any():
        return
    for split in ("train", "val", "test"):
        idx = data.indices(split)
        if not len(idx):
            continue
        masked = idx[data.has_mask[idx]]
        if not len(masked):
            need = "fine-tuning" if split == "train" else "Dice"
            raise MedclError(
                f"No image of the {split} split has a mask, and {need} needs masks there; add "
                f"masks (data.masks) or change {_split_keys(cfg)}."
            )
        if not _any_foreground(data.masks, masked):
            raise MedclError(
                f"Every mask of the {split} split is background only (class 0), so there is "
                "nothing to segment; check data.masks and data.label_values (the stored value "
                "of each class, background first)."
            )


def _any_foreground(masks: np.ndarray | SparseMasks, idx: np.ndarray) -> bool:
    step = chunk_of(masks)  # a few MB at a time, however large the images
    return any(np.any(masks[idx[s : s + step]] != 0) for s in range(0, len(idx), step))


def _check_finite(data: ImageSet) -> None:
    """NaN or infinite pixels: an error naming the image (the readers name the file first)."""
    if isinstance(data.images, StoredImages) and data.images.stored_dtype in ("uint8", "uint16"):
        return  # k / 255 and k / 65535 are finite: no pass over the whole store
    chunk = chunk_of(data.images)
    for s in range(0, len(data), chunk):
        ok = np.isfinite(data.images[s : s + chunk]).all(axis=(1, 2, 3))
        if not ok.all():
            bad = data.ids[s + int(np.argmin(ok))]
            raise MedclError(
                f"Image '{bad}' holds NaN or infinite pixel values; fix or remove its file (a "
                "cached copy is refreshed when the file changes)."
            )
    if isinstance(data.images, StoredImages):
        data.images.release()


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
    if d.label_groups is not None and not d.images:
        raise MedclError(
            "data.label_groups maps the stored values of masks in data.masks; the built-in "
            "data sets and the isic2017, mmwhs and dsb2018 layouts have their own classes, so "
            "leave it unset."
        )
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
    check_training_memory(cfg, data)


def check_training_memory(cfg: Config, data: ImageSet) -> None:
    """Refuse, in one sentence, a configuration whose training cannot fit in memory (CPU).

    On a GPU the activations live in GPU memory, and running out of it raises an error that
    the command line reports; on the CPU the kernel would kill the process instead.
    """
    from medcl._memory import (
        FEATURES_FACTOR,
        FINETUNE_FACTOR,
        INFER_FACTOR,
        PRETRAIN_FACTOR,
        TRAINED_PARAM_BYTES,
        check_fits,
        feature_map_bytes,
        image_set_bytes,
    )

    if cfg.run.device not in ("cpu", "auto") or (
        cfg.run.device == "auto" and torch.cuda.is_available()
    ):
        return
    size, widths, n = data.image_size, cfg.model.channels, len(data.indices("train"))
    batch = {
        "pretraining": min(cfg.pretrain.batch_size, n),
        "fine-tuning": min(cfg.finetune.batch_size, n),
        "features": min(cfg.features.batch_size, n),
        "validation": min(64, len(data)),
    }
    vae_weights = 3 * cfg.features.latent_dim * widths[-1] * size[0] * size[1]
    vae_weights //= 4 ** (len(widths) - 1)  # its two dense layers, to and from the latent
    steps = {
        "pretraining": PRETRAIN_FACTOR * feature_map_bytes(batch["pretraining"], widths, size),
        "fine-tuning": FINETUNE_FACTOR * feature_map_bytes(batch["fine-tuning"], widths, size),
        "features": FEATURES_FACTOR * feature_map_bytes(batch["features"], widths, size)
        + TRAINED_PARAM_BYTES * vae_weights,
        "validation": INFER_FACTOR * feature_map_bytes(batch["validation"], widths, size),
    }
    worst = max(steps, key=lambda k: steps[k])
    # a stored (compact) set is read a batch at a time; an in-memory one is copied per stage
    copied = not isinstance(data.images, StoredImages)
    needed = steps[worst] + (image_set_bytes(n, data.channels, size) if copied else 0)
    check_fits(
        needed,
        f"Training at data.image_size={list(size)} with model.channels={widths} "
        f"({worst}, batch size {batch[worst]})",
        "lower data.image_size, the batch sizes (pretrain.batch_size, finetune.batch_size, "
        "features.batch_size) or model.channels",
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
