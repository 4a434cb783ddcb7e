"""Rebuild medcl/data/assets/brain_aal.npz from Debian's mricron-data package.

Source: the Colin27 T1 MRI (``ch2.nii.gz``) and the AAL atlas drawn on that same brain
(``aal.nii.gz``, region codes in ``aal.nii.txt``), installed by ``apt-get install
mricron-data`` under /usr/share/mricron/templates/ (BSD-3-Clause, see
/usr/share/doc/mricron-data/copyright).

What it stores (uint8, compressed):
* ``image_left``/``image_right``: axial slices of each hemisphere, (slices, 192, 80); the right
  hemisphere is mirrored so both look alike. Voxel column 90 is the midline (x = 0 mm); the 4
  columns around it are dropped so the two hemispheres share no voxel.
* ``label_left``/``label_right``: the 116 AAL regions grouped by the thousands digit of their
  code into 8 groups (1 frontal .. 8 cerebellum), 0 background.
* ``z``: the axial voxel index of each slice; ``class_names``.

Usage: python scripts/prepare_brain_aal.py [--templates DIR] [--out PATH]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import nibabel as nib
import numpy as np

GROUPS = {
    2: "frontal",
    3: "insula",
    4: "limbic",
    5: "occipital",
    6: "parietal",
    7: "subcortical",
    8: "temporal",
    9: "cerebellum",
}
MIDLINE = 90  # voxel column of x = 0 mm (affine offset -90 mm, 1 mm voxels)
HALF_GAP = 2  # columns dropped on each side of the midline
WIDTH = 80  # columns kept per hemisphere
Y_RANGE = (16, 208)  # anterior-posterior rows kept (atlas spans 20..199)
Z_RANGE = (10, 156)  # axial slices with atlas labels (10..155)


def group_lookup(txt: Path) -> np.ndarray:
    """Map AAL region index (0..116) to group id (0 = background, 1..8)."""
    lut = np.zeros(256, dtype=np.uint8)
    for line in txt.read_text().splitlines():
        parts = line.split()
        if len(parts) < 3:
            continue
        index, code = int(parts[0]), int(parts[2])
        lut[index] = sorted(GROUPS).index(code // 1000) + 1
    return lut


def hemisphere_slices(volume: np.ndarray, side: str) -> np.ndarray:
    """Axial slices (z, y, x) of one hemisphere, anterior at the top, mirrored for 'right'."""
    if side == "left":
        block = volume[MIDLINE - HALF_GAP - WIDTH : MIDLINE - HALF_GAP]
    else:
        block = volume[MIDLINE + HALF_GAP : MIDLINE + HALF_GAP + WIDTH][::-1]
    block = block[:, Y_RANGE[0] : Y_RANGE[1], Z_RANGE[0] : Z_RANGE[1]]  # (x, y, z)
    # (z, y, x) with anterior (high y) at the top row.
    return np.ascontiguousarray(block.transpose(2, 1, 0)[:, ::-1, :])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--templates", type=Path, default=Path("/usr/share/mricron/templates"))
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parents[1] / "medcl/data/assets/brain_aal.npz"
    )
    args = parser.parse_args()
    t1 = np.asarray(nib.load(args.templates / "ch2.nii.gz").dataobj).astype(np.uint8)
    aal = np.asarray(nib.load(args.templates / "aal.nii.gz").dataobj).astype(np.uint8)
    groups = group_lookup(args.templates / "aal.nii.txt")[aal]
    out = {}
    for side in ("left", "right"):
        out[f"image_{side}"] = hemisphere_slices(t1, side)
        out[f"label_{side}"] = hemisphere_slices(groups, side)
    out["z"] = np.arange(*Z_RANGE, dtype=np.int16)
    out["class_names"] = np.array(["background", *GROUPS.values()])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **out)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
