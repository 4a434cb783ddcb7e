"""What every stratify stage shares: the data, the latent space and the trained encoder."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from medcl._load import load_torch
from medcl.config import check_k_for
from medcl.errors import MedclError
from medcl.models import ContrastiveAutoencoder
from medcl.rundir import RunDir
from medcl.stratify_config import StratifyConfig

WARMUP_MODEL = "warmup/model.pt"
REFINED_ENCODER = "refine/encoder.pt"
LATENTS = "embed/latents.npy"
DECODER_MODEL = "decoder/decoder.pt"


@dataclass
class Job:
    """One stratify run: its config, run directory, device and data (loaded once)."""

    cfg: StratifyConfig
    run: RunDir
    fabric: object
    ds: object  # medcl.data.LabelledImageSet

    @property
    def device(self) -> torch.device:
        return self.fabric.device  # type: ignore[attr-defined]

    @property
    def tr(self) -> np.ndarray:
        return self.ds.data.indices("train")  # type: ignore[attr-defined]

    @property
    def te(self) -> np.ndarray:
        return eval_indices(self.cfg, self.ds)

    @property
    def eval_split(self) -> str:
        return self.cfg.data.eval_split if self.ds.labels is not None else "train"  # type: ignore[attr-defined]

    def command(self, stage: str) -> str:
        """The command that runs ``stage`` alone (for "run ... first" messages)."""
        return f"stratify --stage {stage}"

    def x_all(self) -> torch.Tensor:
        images = self.ds.data.images  # type: ignore[attr-defined]
        return torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))


def latent_space(h, normalize: bool):
    """The space clustering works in: ``h`` L2-normalised per row (``cluster.normalize``,
    cosine geometry) or as it is. The one place this choice is applied, for numpy arrays
    and torch tensors alike (``F.normalize``'s formula, ``h / max(|h|, 1e-12)``)."""
    if not normalize:
        return h
    if isinstance(h, torch.Tensor):
        return F.normalize(h, dim=-1)
    return h / np.maximum(np.linalg.norm(h, axis=1, keepdims=True), 1e-12)


def load_stratify_data(cfg: StratifyConfig):
    """The labelled image set named by ``cfg.data`` (:class:`~medcl.data.LabelledImageSet`)."""
    from medcl.data import load_medmnist, load_mnist5k

    if cfg.data.dataset == "mnist-5k":
        ds = load_mnist5k(cfg.data.val_fraction, cfg.data.split_seed, cfg.data.test_seed)
    elif cfg.data.dataset == "dsb2018":
        ds = dsb2018_by_appearance(cfg.data.image_size, cfg.data.split_seed)
    elif cfg.data.dataset == "folder":  # images without labels: every one trains
        from medcl.data import LabelledImageSet, load_folder

        images = load_folder(
            cfg.data.images or "", image_size=cfg.data.image_size, channels=cfg.data.channels
        )
        images.split = np.full(len(images), "train", dtype=object)
        ds = LabelledImageSet(images, None)
    else:
        ds = load_medmnist(cfg.data.medmnist_path or "")
    if cfg.data.drop:
        drop_classes(ds, cfg.data.drop, cfg.data.test_seed)
    if cfg.data.max_train is not None:
        train = ds.data.indices("train")
        drop = train[np.random.default_rng(0).permutation(len(train))[cfg.data.max_train :]]
        ds.data.split[drop] = ""
    if ds.labels is not None and len(ds.data.indices(cfg.data.eval_split)) == 0:
        raise MedclError(
            f"data.eval_split='{cfg.data.eval_split}' holds no images; set data.val_fraction "
            "above 0 for 'val'."
        )
    from medcl.cluster import SPECTRAL_METHODS

    spare = 1 if cfg.cluster.method in SPECTRAL_METHODS else 0
    check_k_for(cfg.cluster, len(ds.data.indices("train")), "training images", spare)
    return ds


def dsb2018_by_appearance(image_size, split_seed: int):
    """The built-in dsb2018 nuclei with their appearance group (stained, brightfield,
    fluorescence) as the label to score the strata against; its leak-free group split."""
    from medcl.data import LabelledImageSet, load_dsb2018

    data = load_dsb2018(tuple(image_size), split_seed)
    appearance = np.asarray(data.reference_labels["appearance"]).astype(str)
    names = sorted(set(appearance.tolist()))
    return LabelledImageSet(data, np.searchsorted(names, appearance), names)


def drop_classes(ds, drop: dict[str, float], seed: int) -> None:
    """Remove ``drop[name]`` of class ``name``'s images from each split (seeded), in place:
    a class-imbalanced resample with the same train/test proportions per class."""
    names = [str(c) for c in ds.label_names]
    if ds.labels is None:
        raise MedclError(
            "data.drop removes part of a class, but these images have no labels; unset data.drop."
        )
    rng = np.random.default_rng(seed)
    split = ds.data.split
    for name, fraction in sorted(drop.items()):
        if name not in names:
            raise MedclError(
                f"data.drop names class '{name}', which is not a class of these images; "
                f"use one of {', '.join(names)}."
            )
        for part in ("train", "val", "test"):
            idx = np.flatnonzero((ds.labels == names.index(name)) & (split == part))
            split[rng.choice(idx, int(round(fraction * len(idx))), replace=False)] = ""


def eval_indices(cfg: StratifyConfig, ds) -> np.ndarray:
    """The images the metrics and the report describe: ``data.eval_split``, or, without
    labels (``data.dataset=folder``), the training images themselves."""
    split = cfg.data.eval_split if ds.labels is not None else "train"
    return ds.data.indices(split)


def build_model(cfg: StratifyConfig, channels: int, image_size: tuple[int, int]):
    m = cfg.model
    return ContrastiveAutoencoder(channels, image_size, m.widths, m.latent_dim, m.projector, m.norm)


def load_trained_model(job: Job, x: torch.Tensor, refined: bool = True) -> ContrastiveAutoencoder:
    """The warm-up's contrastive autoencoder from ``warmup/model.pt``, with the refined
    encoder of ``refine/encoder.pt`` in it when ``refine.epochs`` > 0 (and ``refined``),
    laid out as it was trained (channels_last), so that what it computes is what training
    computed."""
    size = (int(x.shape[2]), int(x.shape[3]))
    model = build_model(job.cfg, x.shape[1], size).to(job.device, memory_format=torch.channels_last)
    model.load_state_dict(load_torch(job.run.path / WARMUP_MODEL))
    if refined and job.cfg.refine.epochs > 0:
        model.encoder.load_state_dict(load_torch(job.run.path / REFINED_ENCODER))
    return model.eval()


@torch.no_grad()
def encode(
    encoder: nn.Module, x: torch.Tensor, device: torch.device, batch: int = 1024
) -> np.ndarray:
    encoder.eval()
    out = [encoder(x[s : s + batch].to(device)).cpu() for s in range(0, len(x), batch)]
    return torch.cat(out).numpy().astype(np.float32)
