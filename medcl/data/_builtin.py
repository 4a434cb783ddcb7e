"""Built-in data sets that ship with medcl, so the demo works offline."""

from __future__ import annotations

from importlib import resources

import numpy as np
import torch
import torch.nn.functional as F

from medcl.data._dsb2018 import load_dsb2018
from medcl.data._imageset import ImageSet
from medcl.errors import MedclError

BLOCK = 12  # right-hemisphere slices per val/test block
GAP = 2  # slices dropped at each val/test boundary (adjacent slices are near-duplicates)


def _resize(images: np.ndarray, masks: np.ndarray, size: tuple[int, int]):
    x = torch.from_numpy(images).float().div_(255.0).unsqueeze(1)
    m = torch.from_numpy(masks.astype(np.int64)).unsqueeze(1).float()
    if tuple(x.shape[-2:]) != tuple(size):
        x = F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)
        m = F.interpolate(m, size=size, mode="nearest")
    return x.clamp_(0, 1).numpy(), m.squeeze(1).long().numpy()


def right_hemisphere_split(n_slices: int, block: int = BLOCK, gap: int = GAP) -> np.ndarray:
    """Val/test assignment of the right hemisphere's slices, '' for dropped gap slices.

    Slices are cut into contiguous blocks of ``block``; every third block is validation,
    the others test. ``gap`` slices on each side of a val/test boundary are dropped, so no
    validation slice is adjacent to a test slice.
    """
    block_split = np.array(["val" if (i // block) % 3 == 1 else "test" for i in range(n_slices)])
    out = block_split.astype(object)
    for i in range(1, n_slices):
        if block_split[i] != block_split[i - 1]:
            out[max(0, i - gap) : min(n_slices, i + gap)] = ""
    return out


def load_brain_aal(image_size: tuple[int, int] = (96, 40)) -> ImageSet:
    """The ``brain-aal`` data set: axial half-slices of the Colin27 T1 MRI with AAL groups.

    Source: ``ch2.nii.gz`` and ``aal.nii.gz`` from Debian's ``mricron-data`` (BSD-3-Clause),
    prepared by ``scripts/prepare_brain_aal.py``. Each axial slice is cut at the midline into
    a left and a (mirrored) right half-image; masks hold 9 classes: background and the 8
    AAL region groups (frontal, insula, limbic, occipital, parietal, subcortical, temporal,
    cerebellum).

    The split cannot leak: every training image (labelled or not) comes from the **left**
    hemisphere; validation and test images come from the **right** hemisphere, in
    alternating blocks of 12 slices with 2 slices dropped at each boundary. No voxel of a
    test image appears in any training or validation image.

    Args:
        image_size: ``(H, W)`` of the returned images; the stored slices are 192 x 80.

    Returns:
        An :class:`ImageSet` with 146 train, 32 val and 82 test images, split set.
    """
    if len(image_size) != 2 or min(image_size) < 8:
        raise MedclError(f"data.image_size={list(image_size)} must be two sizes of at least 8.")
    with resources.files("medcl.data").joinpath("assets/brain_aal.npz").open("rb") as fh:
        raw = dict(np.load(fh))
    z = raw["z"].astype(np.float64)
    positions = (z - z.min()) / max(1.0, z.max() - z.min())
    images, masks, ids, vols, pos, split = [], [], [], [], [], []
    right_split = right_hemisphere_split(len(z))
    for side in ("left", "right"):
        keep = np.arange(len(z)) if side == "left" else np.flatnonzero(right_split != "")
        img, msk = _resize(raw[f"image_{side}"][keep], raw[f"label_{side}"][keep], image_size)
        images.append(img)
        masks.append(msk)
        ids += [f"colin27-{side}:z{int(z[k]):03d}" for k in keep]
        vols += [f"colin27-{side}"] * len(keep)
        pos.append(positions[keep])
        split += ["train"] * len(keep) if side == "left" else list(right_split[keep])
    all_images = np.concatenate(images).astype(np.float32)
    return ImageSet(
        images=all_images,
        masks=np.concatenate(masks),
        has_mask=np.ones(len(all_images), dtype=bool),
        ids=np.array(ids, dtype=object),
        volume_ids=np.array(vols, dtype=object),
        positions=np.concatenate(pos),
        class_names=[str(c) for c in raw["class_names"]],
        split=np.array(split, dtype=object),
    )


BUILTIN_DATASETS = {"brain-aal": load_brain_aal, "dsb2018": load_dsb2018}
RESPLITTABLE = {"dsb2018"}  # built-in sets whose split data.split_seed can redraw


def load_builtin(
    name: str, image_size: tuple[int, int] | None = None, split_seed: int = 0
) -> ImageSet:
    """Load a built-in data set by name (see ``BUILTIN_DATASETS``).

    ``split_seed`` redraws the split of the sets that allow it (``dsb2018``: same rule,
    another shuffle); brain-aal's split is fixed by its construction (left vs right
    hemisphere) and a seed other than 0 is refused.
    """
    if name not in BUILTIN_DATASETS:
        raise MedclError(
            f"data.dataset='{name}' is not a built-in data set; choose one of "
            f"{sorted(BUILTIN_DATASETS)} or set data.images to a folder of your own."
        )
    kwargs: dict = {}
    if split_seed:
        if name not in RESPLITTABLE:
            raise MedclError(
                f"data.split_seed={split_seed} but the {name} split is fixed by its "
                "construction; leave data.split_seed at 0."
            )
        kwargs["split_seed"] = split_seed
    if image_size is None:
        return BUILTIN_DATASETS[name](**kwargs)
    return BUILTIN_DATASETS[name]((int(image_size[0]), int(image_size[1])), **kwargs)
