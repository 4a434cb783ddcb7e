"""Rebuild medcl/data/assets/dsb2018.npz from the 2018 Data Science Bowl stage-1 training set.

Source: ``dsb2018-stage1-train.tar.xz`` (BBBC038v1 with the community's annotation fixes,
CC0 1.0), or the Kaggle download extracted (a folder holding ``stage1_train/``).

What it stores (compressed): every image resized whole to SIZE x SIZE (192 by default;
bilinear with antialiasing, RGBA -> RGB) as uint8 ``images`` (N, S, S, 3); the nucleus
masks as one uint16 instance-id map per image, ``instances`` (N, S, S), foreground by area
coverage >= 0.5; ``ids``; ``groups`` (acquisition groups: tiles of one field, overlaps and
near-duplicates, found on the full-resolution images); ``appearance`` (fluorescence /
stained / brightfield); ``original_shape``. The rules are in ``medcl/data/_dsb2018.py``.

Usage: python scripts/prepare_dsb2018.py SOURCE [--size 192] [--out PATH]
"""

from __future__ import annotations

import argparse
import tarfile
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np

from medcl.data._dsb2018 import prepare_dsb2018
from medcl.data._splits import stratified_group_split

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "medcl" / "data" / "assets" / "dsb2018.npz"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("source", type=Path, help="the .tar.xz file or the extracted folder")
    ap.add_argument("--size", type=int, default=192, help="stored height and width")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = args.source
        if root.is_file():
            with tarfile.open(root) as tar:
                tar.extractall(tmp, filter="data")
            root = Path(tmp)
        prepared = prepare_dsb2018(root, (args.size, args.size))
    np.savez_compressed(
        args.out,
        ids=prepared.ids.astype(str),
        images=prepared.images,
        instances=prepared.instances,
        groups=prepared.groups,
        appearance=prepared.appearance.astype(str),
        original_shape=prepared.original_shape,
    )
    split = stratified_group_split(prepared.groups, prepared.appearance, 0.1, 0.2, 0)
    sizes = Counter(Counter(prepared.groups.tolist()).values())
    print(f"wrote {args.out} ({args.out.stat().st_size / 2**20:.1f} MiB)")
    print(f"{len(prepared.ids)} images, {len(set(prepared.groups.tolist()))} acquisition groups")
    print("group sizes (size: count):", dict(sorted(sizes.items())))
    for group in sorted(set(prepared.appearance.tolist())):
        sel = prepared.appearance == group
        counts = Counter(split[sel].tolist())
        print(
            f"  {group:13s} {sel.sum():4d} images, {len(set(prepared.groups[sel]))} groups: "
            + ", ".join(f"{s} {counts[s]}" for s in ("train", "val", "test"))
        )


if __name__ == "__main__":
    main()
