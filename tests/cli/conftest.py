import numpy as np
import pytest
from PIL import Image


def write_png_folder(root):
    """24 synthetic 32x32 grey images with a bright disc (class 1) and square (class 2)."""
    rng = np.random.default_rng(0)
    img_dir, mask_dir = root / "images", root / "masks"
    img_dir.mkdir(parents=True)
    mask_dir.mkdir()
    yy, xx = np.mgrid[:32, :32]
    for i in range(24):
        cy, cx, r = rng.integers(8, 24), rng.integers(8, 24), rng.integers(3, 7)
        mask = np.zeros((32, 32), np.uint8)
        mask[(yy - cy) ** 2 + (xx - cx) ** 2 < r**2] = 255
        sy, sx = rng.integers(0, 24, size=2)
        mask[sy : sy + 6, sx : sx + 6] = 128
        img = (40 + 0.6 * mask + rng.normal(0, 10, (32, 32))).clip(0, 255).astype(np.uint8)
        Image.fromarray(img).save(img_dir / f"case{i:02d}.png")
        Image.fromarray(mask).save(mask_dir / f"case{i:02d}_seg.png")
    return root


def write_tiny_config(root, images=None, masks=None):
    """The YAML config of a folder written by :func:`write_png_folder`."""
    cfg = root / "cfg.yaml"
    cfg.write_text(
        f"data:\n  images: {images or root / 'images'}\n  masks: {masks or root / 'masks'}\n"
        "  mask_suffix: _seg\n  label_values: [0, 128, 255]\n"
        "  class_names: [background, square, disc]\n"
    )
    return cfg


@pytest.fixture
def png_folder(tmp_path):
    """24 synthetic 32x32 grey images with a bright disc (class 1) and square (class 2)."""
    return write_png_folder(tmp_path)


TINY = [
    "data.image_size=[32,32]",
    "model.channels=[4,8,16]",
    "features.epochs=2",
    "features.latent_dim=8",
    "cluster.k_max=6",
    "pretrain.epochs=2",
    "pretrain.batch_size=8",
    "pretrain.proj_hidden=32",
    "pretrain.proj_out=16",
    "finetune.steps=6",
    "finetune.eval_every=3",
    "run.seeds=[0]",
    "run.label_fractions=[0.5,1.0]",
]


@pytest.fixture
def tiny_config(png_folder):
    return write_tiny_config(png_folder)
