"""Fine-tuned Dice of the same tiles saved as 8-bit PNG and as dim 16-bit TIFF (data.intensity).

The built-in dsb2018 tiles (64 x 64, RGB) are written to a folder twice: as 8-bit PNGs, and
as uint16 TIFFs holding the same values 0-255 (under 1% of the type's range, like a 16-bit
microscope image that never got bright). Random initialisation is fine-tuned on each, on
the built-in split (``data.split_csv``), at 5% and 100% of the training masks, with
``data.intensity.scale`` = auto (8-bit: / 255; 16-bit: its 0.5-99.5th percentiles) and, for
the 16-bit copy, ``type`` (/ 65535, what medcl did before ``data.intensity``).

Usage::

    python benchmarks/intensity_16bit.py --out runs/intensity [--seeds 0 1] [key=value ...]

The key=value overrides go to every run (e.g. ``finetune.max_steps=50`` for a smoke test).
"""

from __future__ import annotations

import argparse
import csv
import os
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

CONFIG = """\
data:
  masks: {root}/masks
  split_csv: {root}/split.csv
  label_values: [0, 255]
  image_size: [64, 64]
model:
  channels: [16, 32, 64, 128]
  num_res_units: 0
finetune:
  epochs: 40
  min_steps: 200
  max_steps: 600
  batch_size: 16
  lr: 0.01
  eval_every: 20
run:
  methods: [random]
  label_fractions: [0.05, 1.0]
  seeds: {seeds}
  device: cpu
  num_threads: 1
"""

VARIANTS = {
    "8-bit PNG, auto": ["data.images={root}/img8"],
    "16-bit TIFF, type (/ 65535)": ["data.images={root}/img16", "data.intensity.scale=type"],
    "16-bit TIFF, auto (percentiles)": ["data.images={root}/img16"],
}


def write_folders(root: Path) -> None:
    """The dsb2018 tiles as 8-bit PNG and 16-bit TIFF, their masks, and the built-in split."""
    import numpy as np
    import tifffile
    from PIL import Image

    from medcl.data import load_builtin

    ds = load_builtin("dsb2018", (64, 64), 0)
    for name in ("img8", "img16", "masks"):
        (root / name).mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(len(ds)):
        x = np.moveaxis(ds.images[i], 0, -1) if ds.channels == 3 else ds.images[i, 0]
        u8 = np.round(np.clip(x, 0, 1) * 255).astype(np.uint8)
        stem = f"t{i:04d}"
        Image.fromarray(u8).save(root / "img8" / f"{stem}.png")
        tifffile.imwrite(root / "img16" / f"{stem}.tif", u8.astype(np.uint16))
        mask = (ds.masks[i] > 0).astype(np.uint8) * 255
        Image.fromarray(mask).save(root / "masks" / f"{stem}.png")
        rows.append((stem, ds.split[i]))
    with open(root / "split.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "split"])
        writer.writerows(rows)


def main() -> None:
    import json

    from medcl.cli import main as medcl
    from medcl.evaluate import format_table

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/intensity")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("overrides", nargs="*", metavar="key=value")
    args = parser.parse_args()
    root = Path(args.out).resolve()
    if not (root / "split.csv").exists():
        write_folders(root)
    config = root / "config.yaml"
    config.write_text(CONFIG.format(root=root, seeds=list(args.seeds)))
    tables = []
    for i, (name, variant) in enumerate(VARIANTS.items()):
        out = root / f"run{i}"
        argv = ["run", str(config), *(o.format(root=root) for o in variant), *args.overrides]
        if medcl([*argv, "--out", str(out)]):
            raise SystemExit(f"{name}: medcl run failed")
        rows = json.loads((out / "results.json").read_text())["rows"]
        tables.append(f"{name}:\n{format_table(rows, ['random'])}")
    print("\nTest Dice % of random init, mean (± std) over seeds", args.seeds)
    print("\n\n".join(tables))


if __name__ == "__main__":
    main()
