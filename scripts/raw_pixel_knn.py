"""Raw-pixel kNN on the built-in MNIST split, by memory-bank size: how much of kNN's accuracy
comes from the number of training digits rather than from the features.

Usage::

    python scripts/raw_pixel_knn.py [--sizes 1000 2000 4000] [--draws 3]

For each size, ``--draws`` random subsets of the 4,000 training digits are the bank; kNN
(k = 5, cosine; ``medcl.evaluate.knn_predict``, the same as ``medcl stratify``'s) on the raw
pixels of the 1,000 test digits. Prints the mean accuracy and the draws.
"""

from __future__ import annotations

import argparse

import numpy as np

from medcl.data import load_mnist5k
from medcl.evaluate import knn_predict


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 2000, 4000])
    ap.add_argument("--draws", type=int, default=3)
    a = ap.parse_args()
    ds = load_mnist5k(0.0, 0)
    tr, te = ds.data.indices("train"), ds.data.indices("test")
    x = ds.data.images.reshape(len(ds.data.images), -1).astype(np.float32)
    y = ds.labels
    for n in a.sizes:
        accs = []
        for seed in range(a.draws):
            bank = np.random.default_rng(seed).choice(tr, min(n, len(tr)), replace=False)
            accs.append(float((knn_predict(x[bank], y[bank], x[te], 5) == y[te]).mean()))
        print(
            f"bank {n:>5}: kNN accuracy {np.mean(accs):.3f}  (draws {np.round(accs, 3).tolist()})"
        )


if __name__ == "__main__":
    main()
