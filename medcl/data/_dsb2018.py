"""The 2018 Data Science Bowl nuclei (BBBC038v1): the Kaggle layout, groups, appearance, split.

Caicedo et al., "Nucleus segmentation across imaging experiments: the 2018 Data Science
Bowl", Nature Methods 16, 2019 (CC0 1.0; the stage-1 training set with the community's
annotation fixes). The Kaggle download extracts as::

    ROOT/stage1_train/<id>/images/<id>.png        one RGBA (or RGB/grey) image
    ROOT/stage1_train/<id>/masks/<mask-id>.png    one binary mask (0/255) per nucleus

``data.root`` may be ``ROOT`` or ``ROOT/stage1_train`` itself. The alpha channel is dropped;
the union of an image's nucleus masks is its foreground (class 1, ``nucleus``) and every
nucleus keeps its own id in :attr:`ImageSet.instances` (1..n in mask-file order; where two
masks overlap, the later file wins).

Three rules, the same for the built-in copy (``data.dataset=dsb2018``, prepared by
``scripts/prepare_dsb2018.py``) and for a Kaggle folder (``data.layout=dsb2018``):

* **Appearance group** (:func:`appearance_group`, judged on the stored pixels): *stained* if
  the mean colour saturation ``mean(max(R,G,B) - min(R,G,B)) / 255`` is at least 0.02,
  else *brightfield* if the median grey level is at least 0.3 (dark nuclei on a bright
  background), else *fluorescence* (bright nuclei on a dark background). On the 664 images
  no image lies near either threshold: saturation is 0 (grey images) or above 0.046, and
  the median grey level of the grey images below 0.18 or above 0.88. The groups judge unsupervised outputs only
  (``ImageSet.reference_labels``); no method reads them.
* **Acquisition groups** (:func:`acquisition_groups`): many images are tiles of one larger
  field, a few overlap another image or duplicate it. Two images are linked when (a) they
  have the same size and one's last column (row) continues the other's first column (row):
  normalised cross-correlation at least 0.9, no lower than the correlation of the image's
  own last two columns minus 0.05, a margin of 0.05 over the second-best candidate, the
  best match in both directions, and a border that is not constant (grey std at least
  0.5/255);
  (b) they have the same size and overlap: the peak of their phase correlation (on copies at
  most 128 pixels wide) shifts them onto at least 30% of each other with a correlation of
  at least 0.95 there; or (c) their 32 x 32 grey thumbnails correlate at least 0.9 (a
  near-duplicate, any size). A group is a connected component of these links; every image
  of a group goes to the same split.
* **Split** (:func:`medcl.data.stratified_group_split`): within each appearance group, the
  acquisition groups are shuffled (seed ``data.split_seed``) and dealt, one group at a time,
  to whichever of test, val and train is furthest below its share of that appearance
  group's images; the built-in copy's shares are 20% / 10% / 70%.

Images are resized to ``image_size`` whole (not cropped; bilinear with antialiasing), so
aspect ratios from 1:1 to 2.1:1 become square. The foreground mask is the area-resized union
mask thresholded at 0.5, so an output pixel at least half covered by nuclei is foreground;
instance ids are resized by nearest neighbour inside that foreground (a foreground pixel
that nearest neighbour puts on background takes the id covering most of its cell).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from medcl.data._imageset import ImageSet
from medcl.errors import MedclError

__all__ = [
    "APPEARANCE_GROUPS",
    "DSB2018_CLASSES",
    "Signature",
    "acquisition_groups",
    "appearance_group",
    "dsb2018_images",
    "load_dsb2018",
    "load_dsb2018_folder",
    "resize_instances",
]

DSB2018_CLASSES = ["background", "nucleus"]
APPEARANCE_GROUPS = ("fluorescence", "stained", "brightfield")
SATURATION_STAINED = 0.02
BRIGHTNESS_BRIGHTFIELD = 0.3
BUILTIN_FRACTIONS = (0.1, 0.2)  # val, test shares of the built-in copy


def appearance_group(rgb: np.ndarray) -> str:
    """``'stained'``, ``'brightfield'`` or ``'fluorescence'`` for an ``(H, W, 3)`` uint8 image.

    Stained if the mean saturation ``(max - min over R, G, B) / 255`` is at least 0.02; else
    brightfield if the median grey level (mean of R, G, B, / 255) is at least 0.3; else
    fluorescence.

    >>> appearance_group(np.zeros((4, 4, 3), np.uint8))
    'fluorescence'
    """
    x = np.asarray(rgb)
    if x.ndim != 3 or x.shape[2] != 3:
        raise ValueError(f"need an (H, W, 3) image, got shape {x.shape}")
    x = x.astype(np.float32)
    saturation = float((x.max(axis=2) - x.min(axis=2)).mean()) / 255.0
    if saturation >= SATURATION_STAINED:
        return "stained"
    if float(np.median(x.mean(axis=2))) / 255.0 >= BRIGHTNESS_BRIGHTFIELD:
        return "brightfield"
    return "fluorescence"


# ----------------------------------------------------------------------------- groups


@dataclass
class Signature:
    """What :func:`acquisition_groups` needs of one image, so the full image can be dropped.

    ``shape``: the original ``(H, W)``; ``borders``: grey ``(6, L)``-like dict of the first,
    last and second-to-last rows and columns; ``small``: grey copy at most 128 pixels on
    its longer side; ``thumb``: standardised 32 x 32 grey thumbnail, flattened.
    """

    shape: tuple[int, int]
    borders: dict[str, np.ndarray]
    small: np.ndarray
    thumb: np.ndarray

    @classmethod
    def of(cls, rgb: np.ndarray) -> Signature:
        grey = np.asarray(rgb, dtype=np.float32).mean(axis=2)
        h, w = grey.shape
        borders = {
            "left": grey[:, 0],
            "right": grey[:, -1],
            "right2": grey[:, -2] if w > 1 else grey[:, -1],
            "top": grey[0, :],
            "bottom": grey[-1, :],
            "bottom2": grey[-2, :] if h > 1 else grey[-1, :],
        }
        factor = max(1, int(np.ceil(max(h, w) / 128)))
        small = _area_resize(grey, (max(1, h // factor), max(1, w // factor)))
        thumb = _standardise(_area_resize(grey, (32, 32)).ravel())
        return cls((h, w), {k: v.copy() for k, v in borders.items()}, small, thumb)


def _area_resize(grey: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    t = torch.from_numpy(np.ascontiguousarray(grey, dtype=np.float32))[None, None]
    return F.interpolate(t, size=size, mode="area")[0, 0].numpy()


def _standardise(v: np.ndarray) -> np.ndarray:
    v = v - v.mean(axis=-1, keepdims=True)
    return v / (np.linalg.norm(v, axis=-1, keepdims=True) + 1e-6)


def acquisition_groups(signatures: Sequence[Signature]) -> np.ndarray:
    """``(N,)`` int group of each image: tiles of one field, overlaps, near-duplicates.

    See the module docstring for the three kinds of link; groups are the connected
    components, numbered in order of their first image.
    """
    n = len(signatures)
    parent = np.arange(n)

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = int(parent[i])
        return i

    def link(i: int, j: int) -> None:
        a, b = find(i), find(j)
        if a != b:
            parent[max(a, b)] = min(a, b)

    for i, j in _links(signatures):
        link(i, j)
    roots = np.array([find(i) for i in range(n)], dtype=np.int64)
    _, first = np.unique(roots, return_index=True)
    order = {int(roots[f]): g for g, f in enumerate(sorted(first))}
    return np.array([order[int(r)] for r in roots], dtype=np.int64)


def _links(signatures: Sequence[Signature]) -> Iterator[tuple[int, int]]:
    by_shape: dict[tuple[int, int], list[int]] = {}
    for i, s in enumerate(signatures):
        by_shape.setdefault(s.shape, []).append(i)
    for members in by_shape.values():
        if len(members) < 2:
            continue
        yield from _tile_links(signatures, members)
        yield from _overlap_links(signatures, members)
    thumbs = np.stack([s.thumb for s in signatures]) if signatures else np.zeros((0, 1024))
    sim = thumbs @ thumbs.T
    a, b = np.nonzero(np.triu(sim >= 0.9, k=1))
    yield from zip(a.tolist(), b.tolist(), strict=True)


def _tile_links(signatures: Sequence[Signature], members: list[int]) -> Iterator[tuple[int, int]]:
    """Same-size images whose touching border rows/columns continue each other."""
    for last, first, inner in (("right", "left", "right2"), ("bottom", "top", "bottom2")):
        end = np.stack([signatures[i].borders[last] for i in members])
        start = np.stack([signatures[i].borders[first] for i in members])
        own = np.stack([signatures[i].borders[inner] for i in members])
        ez, sz = _standardise(end), _standardise(start)
        inner_corr = (ez * _standardise(own)).sum(axis=1)
        corr = ez @ sz.T
        np.fill_diagonal(corr, -1.0)
        corr[end.std(axis=1) < 0.5, :] = -1.0  # a constant border continues anything
        corr[:, start.std(axis=1) < 0.5] = -1.0
        best = corr.argmax(axis=1)
        s1 = corr[np.arange(len(members)), best]
        runner_up = corr.copy()
        runner_up[np.arange(len(members)), best] = -1.0
        s2 = runner_up.max(axis=1) if len(members) > 2 else np.full(len(members), -1.0)
        best_back = corr.argmax(axis=0)
        for p in range(len(members)):
            q = int(best[p])
            if (
                s1[p] >= 0.9
                and s1[p] >= inner_corr[p] - 0.05
                and s1[p] - s2[p] >= 0.05
                and best_back[q] == p
            ):
                yield members[p], members[q]


def _overlap_links(
    signatures: Sequence[Signature], members: list[int]
) -> Iterator[tuple[int, int]]:
    """Same-size images that share at least 30% of their area at correlation >= 0.95."""
    smalls = [signatures[i].small for i in members]
    h, w = smalls[0].shape
    z = [(s - s.mean()) / (s.std() + 1e-6) for s in smalls]
    spectra = np.stack([np.fft.rfft2(s, s=(2 * h, 2 * w)) for s in z])
    for a in range(len(members) - 1):
        cc = np.fft.irfft2(spectra[a][None] * np.conj(spectra[a + 1 :]), s=(2 * h, 2 * w))
        peaks = cc.reshape(len(cc), -1).argmax(axis=1)
        for k, peak in enumerate(peaks):
            b = a + 1 + k
            dy, dx = np.unravel_index(int(peak), (2 * h, 2 * w))
            dy = dy if dy < h else dy - 2 * h
            dx = dx if dx < w else dx - 2 * w
            if (h - abs(dy)) * (w - abs(dx)) < 0.3 * h * w:
                continue
            pa = z[a][max(0, dy) : h + min(0, dy), max(0, dx) : w + min(0, dx)]
            pb = z[b][max(0, -dy) : h + min(0, -dy), max(0, -dx) : w + min(0, -dx)]
            if pa.size >= 16 and np.corrcoef(pa.ravel(), pb.ravel())[0, 1] >= 0.95:
                yield members[a], members[b]


# ----------------------------------------------------------------------------- resizing


def resize_instances(instances: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """``(foreground uint8 (N, h, w), instance ids int32 (N, h, w))`` of ``(N, H, W)`` id maps.

    The foreground is the area-resized union mask thresholded at 0.5 (an output pixel at
    least half covered by nuclei); its ids come from nearest neighbour, and a foreground
    pixel that nearest neighbour puts on background takes the id covering most of its cell.
    """
    inst = np.asarray(instances)
    n, H, W = inst.shape
    h, w = int(size[0]), int(size[1])
    if (H, W) == (h, w):
        return (inst > 0).astype(np.uint8), inst.astype(np.int32)
    fg_t = torch.from_numpy((inst > 0).astype(np.float32))[:, None]
    cover = F.interpolate(fg_t, size=(h, w), mode="area")  # each output pixel's covered share
    fg = (cover[:, 0] >= 0.5).numpy()
    ids = (
        F.interpolate(
            torch.from_numpy(inst.astype(np.float32))[:, None], size=(h, w), mode="nearest-exact"
        )[:, 0]
        .round()
        .numpy()
        .astype(np.int32)
    )
    for k, i, j in zip(*np.nonzero(fg & (ids == 0)), strict=True):
        cell = inst[
            k,
            (i * H) // h : -(-(i + 1) * H // h),
            (j * W) // w : -(-(j + 1) * W // w),
        ]
        values, counts = np.unique(cell[cell > 0], return_counts=True)
        ids[k, i, j] = int(values[counts.argmax()])
    ids[~fg] = 0
    return (ids > 0).astype(np.uint8), ids


def _resize_rgb(images: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``(N, H, W, 3)`` uint8 -> ``(N, 3, h, w)`` float32 in [0, 1]."""
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div_(255.0)
    if tuple(x.shape[-2:]) != tuple(size):
        x = F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)
    return x.clamp_(0, 1).numpy()


# ----------------------------------------------------------------------------- Kaggle layout


def _train_folder(root: str | os.PathLike) -> Path:
    root = Path(root)
    if not root.is_dir():
        raise MedclError(
            f"The DSB2018 folder '{root}' does not exist; set data.root to the folder that "
            "holds stage1_train/ (the Kaggle download, extracted)."
        )
    for candidate in (root / "stage1_train", root):
        if candidate.is_dir() and any(
            (d / "images").is_dir() for d in candidate.iterdir() if d.is_dir()
        ):
            return candidate
    raise MedclError(
        f"The folder '{root}' has no stage1_train/<id>/images/<id>.png; data.root must be "
        "the folder holding stage1_train/ of the Kaggle DSB2018 download."
    )


def dsb2018_images(root: str | os.PathLike) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """``(id, rgb (H, W, 3) uint8, instance ids (H, W) uint16)`` per image, sorted by id.

    Reads the Kaggle layout under ``root`` (see the module docstring); an image without a
    masks folder yields an all-zero id map and is reported by the caller as unlabelled.
    """
    from PIL import Image, UnidentifiedImageError

    folder = _train_folder(root)
    for case in sorted(d for d in folder.iterdir() if d.is_dir() and not d.name.startswith(".")):
        image_path = case / "images" / f"{case.name}.png"
        if not image_path.is_file():
            raise MedclError(
                f"The DSB2018 case '{case}' has no image '{image_path.name}' in its images/ "
                "folder; the download looks incomplete, so extract it again."
            )
        try:
            with Image.open(image_path) as im:
                rgb = np.array(im.convert("RGB"))
        except (OSError, UnidentifiedImageError) as exc:
            raise MedclError(
                f"Cannot read the DSB2018 image '{image_path}' ({exc}); replace the file."
            ) from None
        instances = np.zeros(rgb.shape[:2], dtype=np.uint16)
        mask_dir = case / "masks"
        masks = sorted(mask_dir.glob("*.png")) if mask_dir.is_dir() else []
        for k, mask_path in enumerate(masks, start=1):
            try:
                with Image.open(mask_path) as im:
                    mask = np.asarray(im.convert("L")) > 0
            except (OSError, UnidentifiedImageError) as exc:
                raise MedclError(
                    f"Cannot read the DSB2018 mask '{mask_path}' ({exc}); replace the file."
                ) from None
            if mask.shape != instances.shape:
                raise MedclError(
                    f"The mask '{mask_path}' is {mask.shape[0]}x{mask.shape[1]} but its image "
                    f"is {rgb.shape[0]}x{rgb.shape[1]}; masks must have the image's size."
                )
            instances[mask] = k
        yield case.name, rgb, instances


@dataclass
class PreparedDSB:
    """Arrays of the whole collection at one size (what the built-in npz file stores)."""

    ids: np.ndarray  # (N,) str
    images: np.ndarray  # (N, S, S, 3) uint8
    instances: np.ndarray  # (N, S, S) uint16
    has_mask: np.ndarray  # (N,) bool
    groups: np.ndarray  # (N,) int
    appearance: np.ndarray  # (N,) str
    original_shape: np.ndarray  # (N, 2) int


def prepare_dsb2018(
    root: str | os.PathLike, size: tuple[int, int], progress: bool = True
) -> PreparedDSB:
    """Read the Kaggle layout, compute appearance and acquisition groups, resize to ``size``."""
    from tqdm import tqdm

    ids, images, instances, has_mask, appearance, shapes, signatures = [], [], [], [], [], [], []
    cases = sorted(d for d in _train_folder(root).iterdir() if d.is_dir())
    for case_id, rgb, inst in tqdm(
        dsb2018_images(root),
        total=len(cases),
        desc="Reading DSB2018",
        unit="image",
        disable=None if progress else True,
    ):
        ids.append(case_id)
        appearance.append(appearance_group(rgb))
        signatures.append(Signature.of(rgb))
        shapes.append(rgb.shape[:2])
        has_mask.append(bool(inst.any()))
        x = _resize_rgb(rgb[None], size)[0]
        images.append(np.round(x.transpose(1, 2, 0) * 255).astype(np.uint8))
        instances.append(
            resize_instances(inst[None].astype(np.int32), size)[1][0].astype(np.uint16)
        )
    if not ids:
        raise MedclError(f"The DSB2018 folder '{root}' holds no cases; check data.root.")
    return PreparedDSB(
        ids=np.array(ids, dtype=object),
        images=np.stack(images),
        instances=np.stack(instances),
        has_mask=np.array(has_mask, dtype=bool),
        groups=acquisition_groups(signatures),
        appearance=np.array(appearance, dtype=object),
        original_shape=np.array(shapes, dtype=np.int64),
    )


def _imageset(prepared: PreparedDSB, image_size: tuple[int, int]) -> ImageSet:
    fg, inst = resize_instances(prepared.instances, image_size)
    n = len(prepared.ids)
    return ImageSet(
        images=_resize_rgb(prepared.images, image_size),
        masks=fg.astype(np.int64),
        has_mask=prepared.has_mask.copy(),
        ids=prepared.ids.copy(),
        volume_ids=np.full(n, "", dtype=object),
        positions=np.full(n, np.nan),
        class_names=list(DSB2018_CLASSES),
        group_ids=np.array([f"field{g:03d}" for g in prepared.groups], dtype=object),
        instances=inst,
        reference_labels={"appearance": prepared.appearance.copy()},
    )


def load_dsb2018_folder(
    root: str | os.PathLike,
    image_size: tuple[int, int] = (64, 64),
    cache_dir: str | os.PathLike | None = None,
) -> ImageSet:
    """A Kaggle DSB2018 download (``data.layout=dsb2018``), split not yet set.

    Decoding the originals and finding the groups takes about a minute for the 664 images;
    with ``cache_dir`` the result (at this ``image_size``) is kept and reused while the
    files are unchanged.
    """
    from medcl.data._folder import decode_cached

    size = (int(image_size[0]), int(image_size[1]))
    folder = _train_folder(root)
    pairs: list[tuple[Path, Path | None]] = []
    for case in sorted(d for d in folder.iterdir() if d.is_dir()):
        pairs.append((case / "images" / f"{case.name}.png", None))
        pairs += [(m, None) for m in sorted((case / "masks").glob("*.png"))]
    settings = {"layout": "dsb2018", "version": 1, "image_size": list(size)}
    return decode_cached(
        lambda to_file: _imageset(prepare_dsb2018(folder, size), size), pairs, settings, cache_dir
    )


# ----------------------------------------------------------------------------- built-in


def load_dsb2018(image_size: tuple[int, int] = (64, 64), split_seed: int = 0) -> ImageSet:
    """The built-in ``dsb2018`` copy: 664 nucleus images at 192 x 192 resized to ``image_size``.

    Prepared by ``scripts/prepare_dsb2018.py`` from the stage-1 training set (see the module
    docstring for the rules). The split is the fixed 70/10/20 split of
    :func:`medcl.data.stratified_group_split` with seed 0 (``split_seed`` other than 0 draws
    another split with the same rule, to check that a result does not hang on one split).

    Returns:
        an :class:`ImageSet` with RGB images in [0, 1], masks 0/1 (nucleus), instance ids,
        acquisition groups in ``group_ids``, the appearance group in
        ``reference_labels["appearance"]`` and ``split`` set.
    """
    from medcl.data._splits import stratified_group_split

    if len(image_size) != 2 or min(image_size) < 8:
        raise MedclError(f"data.image_size={list(image_size)} must be two sizes of at least 8.")
    with resources.files("medcl.data").joinpath("assets/dsb2018.npz").open("rb") as fh:
        raw = dict(np.load(fh, allow_pickle=False))
    prepared = PreparedDSB(
        ids=raw["ids"].astype(object),
        images=raw["images"],
        instances=raw["instances"],
        has_mask=raw["instances"].reshape(len(raw["ids"]), -1).any(axis=1),
        groups=raw["groups"],
        appearance=raw["appearance"].astype(object),
        original_shape=raw["original_shape"],
    )
    data = _imageset(prepared, (int(image_size[0]), int(image_size[1])))
    val, test = BUILTIN_FRACTIONS
    data.split = stratified_group_split(
        data.group_ids, data.reference_labels["appearance"], val, test, split_seed
    )
    return data
