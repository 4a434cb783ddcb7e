"""A pretrained encoder outside medcl: as a ``torch.nn.Module``, or in a MONAI network.

:func:`load_encoder` returns the encoder that ``medcl pretrain`` (or ``medcl run``) saved in
a run directory as a :class:`~medcl.models.UNetEncoder`, built from the run's saved config
and loaded with ``torch.load(..., weights_only=True)``. :func:`export_encoder` (``medcl
export``) writes its weights under the parameter names of a network that MONAI users build
themselves:

* ``network="autoencoder"``: ``monai.networks.nets.AutoEncoder`` with ``strides=(1, 2, ...,
  2)``. Its ``encode`` part is the same stack of blocks, so every level gives the same
  features as medcl's encoder, to the last bit.
* ``network="unet"``: ``monai.networks.nets.UNet`` with ``strides=(1, 2, ..., 2)`` (one
  fewer than the levels). Every level but the deepest gives the same features; MONAI's UNet
  runs its deepest ("bottom") block at stride 1, so that block gets the pretrained weights
  (all but the shortcut of a residual unit, which MONAI makes 1x1 there) but sees a map
  twice as fine as in medcl.

The file holds the encoder's weights only; load it with ``net.load_state_dict(weights,
strict=False)``: the missing keys are the decoder's, which fine-tuning trains. The network's
settings are written beside it as JSON (``FILE.json``) and returned.

With ``data.normalize=zscore`` medcl's encoder standardises every image first; a MONAI
network does not, so standardise the inputs yourself (:func:`medcl.models.standardize_images`).

Example::

    >>> enc = load_encoder("runs/my", "ufc", seed=0)          # a torch.nn.Module
    >>> feats = enc.forward_features(x)                       # one map per level
    >>> settings = export_encoder("runs/my", "ufc", 0, "ufc_unet.pt")
    >>> net = monai.networks.nets.UNet(**settings, out_channels=2)
    >>> net.load_state_dict(torch.load("ufc_unet.pt", weights_only=True), strict=False)
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from medcl._load import load_torch
from medcl.config import Config
from medcl.errors import MedclError
from medcl.models import UNetEncoder
from medcl.rundir import RunDir, atomic_torch_save, atomic_write_text
from medcl.stages._common import build_encoder
from medcl.stages.pretrain import encoder_path, method_or_error, pretrain_dir

__all__ = ["NETWORKS", "export_encoder", "load_encoder", "monai_settings"]

NETWORKS = ("unet", "autoencoder")


def _first_conv(state: dict[str, torch.Tensor]) -> torch.Tensor | None:
    for key in ("levels.0.conv.weight", "levels.0.conv.unit0.conv.weight"):
        if key in state:
            return state[key]
    return None


def load_encoder(run_dir: str | os.PathLike, method: str = "ufc", seed: int = 0) -> UNetEncoder:
    """The encoder that ``method`` pretrained with ``seed`` in ``run_dir``, in eval mode.

    Args:
        run_dir: a run directory of ``medcl run`` or ``medcl pretrain``.
        method: a pretraining method of that run (``ufc``, ``simclr``, ``moco``, ...).
        seed: the pretraining seed.

    Returns:
        a :class:`~medcl.models.UNetEncoder` (``torch.nn.Module``): ``forward_features(x)``
        gives the feature maps of every level, ``forward(x)`` the pooled deepest features
        ``(B, model.channels[-1])``; ``x`` is ``(B, C, H, W)`` with intensities in [0, 1].
    """
    root = Path(run_dir)
    if not root.is_dir():
        raise MedclError(f"The run directory '{root}' does not exist; give a medcl run directory.")
    run = RunDir(root)
    if not method_or_error(method).pretrains:
        raise MedclError(
            f"Method '{method}' does not pretrain an encoder (random initialisation); choose a "
            "pretraining method of the run, e.g. ufc or simclr."
        )
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise MedclError(f"seed={seed!r} is not a seed; give a whole number >= 0.")
    saved = run.load_config_dict()
    if saved is None:
        raise MedclError(f"'{root}' has no config.yaml, so it is not a medcl run directory.")
    path = encoder_path(run, method, seed)
    if not (pretrain_dir(run, method, seed) / "done.json").exists() or not path.exists():
        raise MedclError(
            f"'{root}' has no finished pretraining of {method} with seed {seed}; run "
            f"`medcl pretrain --run {root} method={method} seed={seed}` first."
        )
    state = load_torch(path)  # weights_only=True
    first = _first_conv(state) if isinstance(state, dict) else None
    if first is None:
        raise MedclError(f"'{path}' is not an encoder's weights; rerun its pretraining.")
    cfg = Config.model_validate(saved)
    encoder = build_encoder(cfg, int(first.shape[1]))
    try:
        encoder.load_state_dict(state)
    except RuntimeError:
        raise MedclError(
            f"The weights in '{path}' do not fit the run's model settings (model.* in "
            f"'{root / 'config.yaml'}'); rerun the pretraining with --fresh."
        ) from None
    return encoder.eval()


def monai_settings(encoder: UNetEncoder, network: str = "unet") -> dict:
    """The ``monai.networks.nets`` constructor arguments that hold ``encoder``'s weights."""
    if network not in NETWORKS:
        raise MedclError(f"network={network} is not one of {', '.join(NETWORKS)}.")
    n = len(encoder.channels)
    settings: dict[str, Any] = {
        "spatial_dims": encoder.spatial_dims,
        "in_channels": encoder.in_channels,
        "channels": list(encoder.channels),
        "strides": [1] + [2] * (n - 1 if network == "autoencoder" else n - 2),
        "num_res_units": encoder.num_res_units,
        "norm": encoder.norm,
        "act": "PRELU",
    }
    if network == "autoencoder":
        settings["out_channels"] = encoder.in_channels
    return settings


def _prefixes(n: int, network: str) -> list[str]:
    """The MONAI module path of each of the ``n`` encoder levels."""
    if network == "autoencoder":
        return [f"encode.encode_{i}" for i in range(n)]
    # UNet: Sequential(down, SkipConnection(Sequential(down, ...)), up); the last level is
    # the bottom layer inside the innermost SkipConnection
    return ["model" + ".1.submodule" * i + (".0" if i < n - 1 else "") for i in range(n)]


def monai_state_dict(encoder: UNetEncoder, network: str = "unet") -> dict[str, torch.Tensor]:
    """``encoder``'s weights under the parameter names of a MONAI ``network``."""
    n = len(encoder.channels)
    prefixes = _prefixes(n, network)
    out = {}
    for key, value in encoder.state_dict().items():
        _, level, rest = key.split(".", 2)  # levels.<i>.<rest>
        if network == "unet" and int(level) == n - 1 and rest.startswith("residual."):
            continue  # MONAI's stride-1 bottom has a 1x1 shortcut, medcl's a 3x3 stride 2
        out[f"{prefixes[int(level)]}.{rest}"] = value.detach().clone()
    return out


def export_encoder(
    run_dir: str | os.PathLike,
    method: str,
    seed: int,
    out: str | os.PathLike,
    network: str = "unet",
) -> dict:
    """Write the encoder's weights for a MONAI ``network`` to ``out`` (a ``.pt`` state dict).

    Returns the network's constructor arguments (also written to ``out`` + ``.json``); for
    ``unet`` add ``out_channels``, the number of classes.
    """
    if network not in NETWORKS:
        raise MedclError(f"network={network} is not one of {', '.join(NETWORKS)}.")
    encoder = load_encoder(run_dir, method, seed)
    settings = monai_settings(encoder, network)
    target = Path(out)
    if target.is_dir():
        raise MedclError(f"'{target}' is a folder; give the file to write, e.g. {target}/enc.pt.")
    atomic_torch_save(monai_state_dict(encoder, network), target)
    info = {
        "network": f"monai.networks.nets.{'UNet' if network == 'unet' else 'AutoEncoder'}",
        "settings": settings,
        "source": {"run": str(Path(run_dir)), "method": method, "seed": seed},
        "standardize_inputs": bool(encoder.standardize),
    }
    atomic_write_text(Path(f"{target}.json"), json.dumps(info, indent=2) + "\n")
    return settings
