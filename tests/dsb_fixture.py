"""A tiny DSB2018 download in the Kaggle layout, for the reader and end-to-end tests."""

import numpy as np
from PIL import Image


def _field(rng, h, w, n_nuclei, bright=True):
    """A smooth synthetic microscopy field with Gaussian nuclei and their instance map."""
    yy, xx = np.mgrid[:h, :w]
    img = np.zeros((h, w), np.float32) + (20 if bright else 225)
    inst = np.zeros((h, w), np.uint16)
    for k in range(1, n_nuclei + 1):
        cy, cx, r = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(2, 4)
        d2 = (yy - cy) ** 2 + (xx - cx) ** 2
        img += (180 if bright else -150) * np.exp(-d2 / (2 * r**2))
        inst[d2 < r**2] = k
    py, px = rng.uniform(0, 2 * np.pi, 2)  # smooth background texture, its own per field
    img += 8 * np.sin(yy / 9.0 + py) * np.cos(xx / 11.0 + px)
    return np.clip(img, 0, 255).astype(np.uint8), inst


def _write_case(root, case_id, rgb, inst, rgba=True):
    (root / case_id / "images").mkdir(parents=True)
    pixels = np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)]) if rgba else rgb
    Image.fromarray(pixels).save(root / case_id / "images" / f"{case_id}.png")
    (root / case_id / "masks").mkdir()
    for k in range(1, int(inst.max()) + 1):
        if (inst == k).any():
            mask = ((inst == k) * 255).astype(np.uint8)
            Image.fromarray(mask).save(root / case_id / "masks" / f"m{k:03d}.png")


def write_dsb_fixture(base):
    """Kaggle layout: a field cut into two tiles, a duplicate, stained, brightfield, others."""
    rng = np.random.default_rng(0)
    root = base / "stage1_train"
    field, finst = _field(rng, 48, 96, 30)
    grey = lambda g: np.repeat(g[:, :, None], 3, axis=2)  # noqa: E731
    _write_case(root, "tileA", grey(field[:, :48]), finst[:, :48])
    _write_case(root, "tileB", grey(field[:, 48:]), finst[:, 48:])
    img, inst = _field(rng, 48, 48, 8)
    _write_case(root, "orig", grey(img), inst)
    noisy = np.clip(img.astype(int) + rng.integers(-2, 3, img.shape), 0, 255).astype(np.uint8)
    _write_case(root, "dup", grey(noisy), inst)
    for i in range(4):
        img, inst = _field(rng, 48, 48, 10)
        _write_case(root, f"fluo{i}", grey(img), inst)
    for i in range(3):
        img, inst = _field(rng, 40, 56, 6, bright=False)
        stained = np.dstack([img, (img * 0.6).astype(np.uint8), img])  # purple-ish
        _write_case(root, f"stain{i}", stained, inst, rgba=False)
    img, inst = _field(rng, 64, 64, 5, bright=False)
    _write_case(root, "bright0", grey(img), inst)
    return base
