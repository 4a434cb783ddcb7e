"""The checks of a loaded data set against its config: splits, masks, values, memory.

Each raises one :class:`~medcl.errors.MedclError` sentence naming the key to change
(:func:`medcl.stages._common.load_data` runs them).
"""

from __future__ import annotations

import numpy as np
import torch

from medcl.config import Config, check_k_for
from medcl.data import ImageSet, SparseMasks, StoredImages
from medcl.data._digest import chunk_of
from medcl.errors import MedclError


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
    if d.store != "exact" and not (d.images or d.layout == "isic2017"):
        source = f"data.layout={d.layout}" if d.layout != "folder" else "the built-in data set"
        raise MedclError(
            f"data.store={d.store} rounds images decoded from data.images or the isic2017 "
            f"layout; {source} is stored as it is, so leave data.store unset."
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
    check_k_for(cfg.cluster, len(data.indices("train")), "training images")
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
