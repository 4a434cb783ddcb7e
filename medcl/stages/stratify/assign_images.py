"""``medcl stratify assign``: the strata of new image files, from a finished run.

Reads ``config.yaml``, ``model.json``, ``model.pt`` and ``prototypes.npy`` (and, with
``cluster.assign=knn``, ``train_latents.npy`` / ``train_clusters.npy``); loads tensors only.
The images are conformed like a folder load (:func:`medcl.data.conform_image`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from medcl._load import load_npy, load_torch
from medcl.errors import DamagedFile, MedclError
from medcl.rundir import RunDir
from medcl.stages.stratify._shared import build_model, encode, latent_space
from medcl.stages.stratify.evaluate import assign_latents, write_assignments
from medcl.stratify_config import StratifyConfig

NEEDED = ("model.pt", "model.json", "prototypes.npy", "config.yaml")


def _check_paths(run: Path, paths: list[str]) -> None:
    if not run.is_dir() or not all((run / name).is_file() for name in NEEDED):
        raise MedclError(
            f"Run directory '{run}' has no trained model ({', '.join(NEEDED)}); run "
            "`medcl stratify CONFIG.yaml --out DIR` first."
        )
    if not paths:
        raise MedclError("Give at least one image file to assign.")
    for p in paths:
        if Path(p).is_dir():
            raise MedclError(f"'{p}' is a folder; give image files, e.g. {p}/*.png.")
        if not Path(p).is_file():
            raise MedclError(f"Image file '{p}' does not exist.")


def assign(run_dir: str | Path, paths: list[str], out: str | Path | None = None) -> list[dict]:
    """Assign image files to the strata of a finished run; writes ``out`` (CSV) if given."""
    from medcl.data import conform_image, read_image

    run = Path(run_dir)
    _check_paths(run, paths)
    try:
        cfg = StratifyConfig.model_validate(RunDir(run).load_config_dict() or {})
    except ValueError:
        raise DamagedFile(run / "config.yaml", "not a stratify config") from None
    info = RunDir(run).read_json("model.json")
    try:
        k = int(info["k"])
        channels = int(info["channels"])
        image_size = (int(info["image_size"][0]), int(info["image_size"][1]))
    except (TypeError, KeyError, ValueError, IndexError):
        raise DamagedFile(run / "model.json", "not k, channels and image_size") from None
    prototypes = load_npy(run / "prototypes.npy")
    if prototypes.shape != (k, cfg.model.latent_dim) or not np.isfinite(prototypes).all():
        raise DamagedFile(run / "prototypes.npy", f"not {k} finite prototypes")
    state = load_torch(run / "model.pt")
    images = [read_image(p)[0] for p in paths]
    x = np.concatenate(
        [conform_image(im, channels, image_size, p) for im, p in zip(images, paths, strict=True)]
    )
    model = build_model(cfg, channels, image_size)
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError):
        raise DamagedFile(run / "model.pt", "its tensors do not fit the saved config") from None
    h = encode(model.encoder, torch.from_numpy(x), torch.device("cpu"))
    z = latent_space(h, cfg.cluster.normalize)
    bank = bank_clusters = None
    if cfg.cluster.assign == "knn":
        bank = load_npy(run / "train_latents.npy")
        bank_clusters = load_npy(run / "train_clusters.npy")
    clusters, dist = assign_latents(z, prototypes, bank, bank_clusters, cfg)  # type: ignore[arg-type]
    rows = [
        {"path": str(p), "cluster": int(c), "distance": float(dd[c])}
        for p, c, dd in zip(paths, clusters, dist, strict=True)
    ]
    if out is not None:
        ids = np.array(paths, dtype=object)
        write_assignments(Path(out), ids, np.full(len(paths), "new"), clusters, dist)
    return rows
