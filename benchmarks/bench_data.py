"""Benchmark the image cache at ISIC size: decode throughput, size on disk, pretraining memory.

Usage::

    python benchmarks/bench_data.py [--n 45141] [--size 192] [--masks 2000] [--root DIR]
    python benchmarks/bench_data.py --n 2000 --size 64 --masks 200      # a quick run
    python benchmarks/bench_data.py --n 5000 --source-size 384 --store source  # resized photos

Data: a synthetic folder like the paper's ISIC pretraining set, generated (never downloaded)
under ``--root`` (default ``benchmarks/.data``; kept and reused when it already holds these
files): ``--n`` RGB 8-bit PNGs of ``--size`` x ``--size`` (smooth seeded colour fields plus
noise, so that they compress like photographs rather than like noise) and ``--masks`` binary
0/255 lesion masks (an ellipse) for evenly spread images. Full size: 45,141 images at 192 x
192, 2,000 masks, about 3 GB of PNGs plus the caches: allow 15 GB of disk. ``--source-size``
writes the files larger than ``--size`` (real ISIC photographs are), so that decoding resizes
them; ``--store`` is the compact path's ``data.store`` (``exact``: resized images stay
float32, bit for bit; ``source``: rounded to uint8, then compared within half a grey level).

Two paths, each measured in its own subprocess so that memory figures do not mix:

* ``compact``: what medcl does now: ``load_folder`` decoding in parallel
  (``--workers``, default the CPUs up to 8), images stored uint8, masks uint8 only for the
  images that have one, read back memory-mapped.
* ``float32``: the previous layout, measured in the same run as the reference: the same
  readers one file at a time, float32 images and int64 masks for every image, saved as the
  previous cache did, and loaded memory-mapped (it was above 256 MB); pretraining copies the
  training split as the previous ``pretrain`` stage did (``data.images[train_idx]``).

Reported per path: ``decode``: images per second of decoding plus writing the cache (median
of ``--repeats``); ``cache``: bytes of the cache files on disk; ``peak RSS``: ``ru_maxrss``
of a fresh process that loads the cache, computes the training split's fingerprint (as every
stage's record does) and runs ``--steps`` SimCLR pretraining steps (batch ``--batch``) on
random training images on the CPU; and the ratios compact / float32 beside the issue's goals
(cache <= 6 GB, peak RSS <= 4 GB, decode >= 2x at full size). Both paths' images are checked
bit for bit equal, and their fingerprints equal.

The float32 layout holds every image and mask in memory while it decodes (33 GB at full
size), more than many machines have. ``--reference-n M`` measures it on the first ``M``
images only (default: every image when that fits in half of the memory available, else
5,000): its decode rate is measured there, its cache size is scaled to ``--n`` exactly (the
layout's bytes are linear in the number of images) and its peak RSS is given as measured on
``M`` and, at ``--n``, as that plus the float32 copy of the other images' pixels (a lower
bound); the compact path always runs on all ``--n``,
and the images and fingerprint are compared on the first ``M``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


# ----------------------------------------------------------------------------- data


def _write_chunk(job: tuple[str, int, int, int, list[int]]) -> None:
    from PIL import Image

    root, start, stop, size, masked = job
    masked_set = set(masked)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    for i in range(start, stop):
        rng = np.random.default_rng(i)
        f = rng.uniform(0.5, 3.0, (3, 2))
        p = rng.uniform(0, 2 * np.pi, (3, 2))
        base = rng.uniform(60, 200, 3)
        rgb = np.stack(
            [
                base[c]
                + 40
                * np.sin(2 * np.pi * f[c, 0] * xx + p[c, 0])
                * np.cos(2 * np.pi * f[c, 1] * yy + p[c, 1])
                for c in range(3)
            ],
            axis=-1,
        )
        rgb += rng.normal(0, 6, rgb.shape)
        img = np.clip(rgb, 0, 255).astype(np.uint8)
        Image.fromarray(img).save(Path(root) / "images" / f"SYN_{i:07d}.png", compress_level=6)
        if i in masked_set:
            cy, cx, ry, rx = rng.uniform(0.3, 0.7), rng.uniform(0.3, 0.7), *rng.uniform(0.1, 0.3, 2)
            mask = (((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1).astype(np.uint8) * 255
            Image.fromarray(mask).save(Path(root) / "masks" / f"SYN_{i:07d}_segmentation.png")


def make_folder(root: Path, n: int, size: int, n_masks: int, workers: int) -> Path:
    """``root/images`` and ``root/masks`` as described above; reused when complete."""
    stamp = root / "made.json"
    want = {"n": n, "size": size, "masks": n_masks, "version": 1}
    if stamp.exists() and json.loads(stamp.read_text()) == want:
        return root
    shutil.rmtree(root, ignore_errors=True)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    masked = np.linspace(0, n - 1, num=min(n_masks, n)).astype(int).tolist() if n_masks else []
    step = 500
    jobs = [
        (str(root), s, min(n, s + step), size, [m for m in masked if s <= m < s + step])
        for s in range(0, n, step)
    ]
    t0 = time.perf_counter()
    if workers > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(workers) as pool:
            list(pool.map(_write_chunk, jobs))
    else:
        for job in jobs:
            _write_chunk(job)
    print(f"generated {n:,} PNGs ({n_masks:,} masks) in {time.perf_counter() - t0:.0f} s")
    stamp.write_text(json.dumps(want))
    return root


# ----------------------------------------------------------------------------- children


def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def _bytes_in(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.iterdir() if p.is_file())


def _pairs(root: Path):
    from medcl.data._folder import _list_images, _pair_masks

    files = _list_images(root / "images", root / "masks", "_segmentation")
    return _pair_masks(files, root / "images", root / "masks", "_segmentation")


def _decode_float32(root: Path, size: int, out: Path, limit: int | None) -> None:
    """The previous layout: one file at a time, float32 images, int64 masks for all."""
    from medcl.data._folder import _check_label_values, _decode
    from medcl.data._intensity import Intensity

    pairs = _pairs(root)
    ds = _decode(
        pairs[:limit] if limit else pairs,
        _check_label_values(None, None),
        None,
        (size, size),
        None,
        2,
        "skip",
        None,
        Intensity(),
        workers=1,
        pack=False,
    )
    images = np.ascontiguousarray(ds.images.raw, dtype=np.float32)
    masks = np.asarray(ds.masks)  # (N, H, W) int64, zeros for unlabeled images
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "images.npy", images)
    np.save(out / "masks.npy", masks)
    np.save(out / "has_mask.npy", ds.has_mask)
    (out / "ids.json").write_text(json.dumps([str(i) for i in ds.ids]))
    from medcl._load import file_digest

    for name in ("images.npy", "masks.npy"):  # the previous cache hashed its arrays too
        file_digest(out / name)


def _decode_compact(root: Path, size: int, out: Path, workers: int | None, store: str) -> None:
    from medcl.data import load_folder

    load_folder(
        root / "images",
        masks=root / "masks",
        mask_suffix="_segmentation",
        image_size=size,
        cache_dir=out,
        workers=workers,
        store=store,
    )


def _open(path: str, root: Path, size: int, out: Path, store: str = "exact"):
    """The cached set of ``path`` as an ImageSet, all of it 'train'."""
    from medcl.data import ImageSet, load_folder

    if path == "compact":
        ds = load_folder(
            root / "images",
            masks=root / "masks",
            mask_suffix="_segmentation",
            image_size=size,
            cache_dir=out,
            store=store,
        )
    else:
        images = np.load(out / "images.npy", mmap_mode="r")
        n = len(images)
        ds = ImageSet(
            images=images,
            masks=np.load(out / "masks.npy", mmap_mode="r"),
            has_mask=np.load(out / "has_mask.npy"),
            ids=np.array(json.loads((out / "ids.json").read_text()), dtype=object),
            volume_ids=np.full(n, "", dtype=object),
            positions=np.full(n, np.nan),
            class_names=["background", "class_1"],
        )
    ds.split[:] = "train"
    return ds


def _pretrain(
    path: str,
    root: Path,
    size: int,
    out: Path,
    steps: int,
    batch: int,
    limit: int | None,
    store: str,
) -> dict:
    """Load, fingerprint, and ``steps`` SimCLR steps; the memory a pretraining run holds."""
    import torch

    from medcl.config import Config
    from medcl.data import TwoViews, split_fingerprint
    from medcl.methods import Batch, build_method
    from medcl.stages._common import build_encoder, rows_of, to_device
    from medcl.train import make_fabric, train_loop

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1") or 1))
    base = _maxrss_mb()
    ds = _open(path, root, size, out, store)
    fingerprint = split_fingerprint(ds, "train")
    compared = fingerprint
    if limit and limit < len(ds):  # the reference holds the first `limit` images only
        ds.split[limit:] = "test"
        compared = split_fingerprint(ds, "train")
        ds.split[:] = "train"
    train_idx = ds.indices("train")
    # the previous pretrain stage copied the split as float32; the compact one keeps it stored
    images = rows_of(ds.images, train_idx) if path == "compact" else ds.images[train_idx]
    cfg = Config()
    fabric = make_fabric("cpu", "32-true")
    model = build_method("simclr", build_encoder(cfg, ds.channels))
    views = TwoViews(ds.image_size, strength=cfg.pretrain.aug_strength)
    order = np.random.default_rng(0).permutation(len(train_idx))[: steps * batch]

    def step_loss(idx: np.ndarray, net: torch.nn.Module) -> torch.Tensor:
        x = to_device(fabric, images, np.sort(order[idx]))
        return net(Batch(views=views(x), images=x))

    stats: dict = {}
    t0 = time.perf_counter()
    train_loop(
        fabric=fabric,
        module=model,
        step_loss=step_loss,
        n_items=len(order),
        epochs=1,
        batch_size=batch,
        lr=cfg.pretrain.lr,
        desc=f"pretrain ({path})",
        stats=stats,
    )
    return {
        "fingerprint": fingerprint,
        "compared_fingerprint": compared,
        "n_images": len(ds),
        "baseline_rss_mb": base,
        "peak_rss_mb": _maxrss_mb(),
        "pretrain_s": time.perf_counter() - t0,
        "first_images_sha": _sha(ds.images[: min(64, limit or 64)]),
    }


def _sha(x: np.ndarray) -> str:
    import hashlib

    return hashlib.sha256(np.ascontiguousarray(x, dtype=np.float32).tobytes()).hexdigest()


def child(args: argparse.Namespace) -> dict:
    root, out = Path(args.root), Path(args.out)
    if args.child == "decode":
        shutil.rmtree(out, ignore_errors=True)
        t0 = time.perf_counter()
        if args.path == "compact":
            _decode_compact(root, args.size, out, args.workers, args.store)
        else:
            _decode_float32(root, args.size, out, args.reference_n)
        return {
            "seconds": time.perf_counter() - t0,
            "cache_bytes": _bytes_in(out),
            "decode_peak_rss_mb": _maxrss_mb(),
        }
    limit = args.reference_n if args.path == "compact" else None
    return _pretrain(args.path, root, args.size, out, args.steps, args.batch, limit, args.store)


# ----------------------------------------------------------------------------- main


def _float32_bytes(n: int, size: int) -> int:
    """What the float32 layout holds for ``n`` RGB images: float32 images, int64 masks."""
    return n * size * size * (3 * 4 + 8)


def _reference_n(args: argparse.Namespace) -> int | None:
    """Images the float32 reference decodes: all (None) when they fit, else a subset."""
    if args.reference_n is not None:
        return min(args.reference_n, args.n) if args.reference_n > 0 else None
    from medcl._memory import available_memory

    free = available_memory()
    if free is None or 2 * _float32_bytes(args.n, args.size) <= free:
        return None
    return min(5_000, args.n)


def _cache_dir(folder: Path, size: int, path: str) -> Path:
    """Where ``path`` (compact or float32) caches ``folder`` decoded at ``size``."""
    return folder.parent / f"cache-{folder.name}-{size}-{path}"


def _largest_difference(args: argparse.Namespace, folder: Path) -> float:
    """max |compact - float32| over the first images, read back from both caches."""
    ds = _open("compact", folder, args.size, _cache_dir(folder, args.size, "compact"), args.store)
    ref = np.load(_cache_dir(folder, args.size, "float32") / "images.npy", mmap_mode="r")
    k = min(256, len(ref))
    return float(np.abs(ds.images[:k] - ref[:k]).max())


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, default=str))
    os.replace(tmp, path)


def _run_child(args: argparse.Namespace, what: str, path: str, out: Path) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--child",
        what,
        "--path",
        path,
        "--root",
        str(args.root),
        "--out",
        str(out),
        "--size",
        str(args.size),
        "--steps",
        str(args.steps),
        "--batch",
        str(args.batch),
    ]
    if args.workers is not None:
        cmd += ["--workers", str(args.workers)]
    if args.reference_n is not None:
        cmd += ["--reference-n", str(args.reference_n)]
    cmd += ["--store", args.store]
    env = dict(os.environ, OMP_WAIT_POLICY=os.environ.get("OMP_WAIT_POLICY", "PASSIVE"))
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if done.returncode:
        sys.stderr.write(done.stderr)
        raise SystemExit(f"the {what} child ({path}) failed")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=45_141)
    parser.add_argument("--size", type=int, default=192)
    parser.add_argument("--masks", type=int, default=2_000)
    parser.add_argument(
        "--source-size", type=int, default=None, help="size of the files (default: --size)"
    )
    parser.add_argument("--store", choices=["exact", "source"], default="exact")
    parser.add_argument("--root", type=Path, default=HERE / ".data")
    parser.add_argument("--workers", type=int, default=None, help="decode processes (compact)")
    parser.add_argument("--repeats", type=int, default=1, help="decodes per path (median)")
    parser.add_argument("--steps", type=int, default=10, help="pretraining steps")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument(
        "--reference-n",
        type=int,
        default=None,
        help="images the float32 reference decodes (default: all when they fit in half of "
        "the available memory, else 5000)",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument("--child", choices=["decode", "pretrain"], help=argparse.SUPPRESS)
    parser.add_argument("--path", choices=["compact", "float32"], help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args)))
        return
    from medcl.data._folder import decode_workers

    workers = decode_workers(args.workers)
    args.reference_n = _reference_n(args)
    source = args.source_size or args.size
    folder = args.root / f"syn-{args.n}-{source}-{args.masks}"
    make_folder(folder, args.n, source, args.masks, workers)
    args.root = folder
    print(
        f"image cache, {args.n:,} RGB PNGs at {source}x{source} decoded at {args.size}x"
        f"{args.size} (data.store={args.store}), {args.masks:,} masks; "
        f"compact decodes with {workers} processes on {os.cpu_count()} CPUs; decode = median "
        f"of {args.repeats}; peak RSS = ru_maxrss of a fresh process: load, fingerprint, "
        f"{args.steps} SimCLR steps of {args.batch} on the CPU"
    )
    m = args.reference_n or args.n
    if m < args.n:
        print(
            f"the float32 reference decodes the first {m:,} images only: at {args.n:,} it would "
            f"hold {_float32_bytes(args.n, args.size) / 1e9:.1f} GB in memory "
            f"(--reference-n sets it)"
        )
    r: dict[str, dict] = {}
    for path in ("float32", "compact"):
        out = _cache_dir(folder, args.size, path)
        runs = [_run_child(args, "decode", path, out) for _ in range(args.repeats)]
        seconds = float(np.median([x["seconds"] for x in runs]))
        count = m if path == "float32" else args.n
        r[path] = {
            "n_images": count,
            "decode_images_per_s": count / seconds,
            "decode_s": seconds,
            "cache_bytes": runs[-1]["cache_bytes"],
            "decode_peak_rss_mb": max(x["decode_peak_rss_mb"] for x in runs),
            **_run_child(args, "pretrain", path, out),
        }
    old, new = r["float32"], r["compact"]
    # the float32 layout is linear in the images: its header is the only fixed part
    old["cache_bytes_at_n"] = old["cache_bytes"] * args.n / m
    old["held_bytes_at_n"] = _float32_bytes(args.n, args.size)
    for path in ("float32", "compact"):
        x = r[path]
        print(
            f"{path:>8} ({x['n_images']:,} images): decode {x['decode_images_per_s']:6.0f} "
            f"images/s ({x['decode_s']:.1f} s, peak RSS {x['decode_peak_rss_mb']:.0f} MB)  cache "
            f"{x['cache_bytes'] / 1e9:6.3f} GB  pretraining peak RSS {x['peak_rss_mb']:6.0f} MB "
            f"(after imports {x['baseline_rss_mb']:.0f} MB; {args.steps} steps {x['pretrain_s']:.1f} s)"
        )
    rss_old = old["peak_rss_mb"]
    if m < args.n:
        # measured on m images, plus the float32 copy of the other images' pixels that the
        # previous pretrain stage made (a lower bound: their masks and pages are left out)
        rss_old = old["peak_rss_mb"] + (args.n - m) * 3 * args.size**2 * 4 / 2**20
        print(
            f"   float32 at {args.n:,} images (scaled, not run): cache "
            f"{old['cache_bytes_at_n'] / 1e9:.2f} GB; pretraining would hold at least "
            f"{rss_old / 1e3:.1f} GB (as measured, plus the float32 copy of the other images)"
        )
    if args.store == "exact":
        same = (
            old["fingerprint"] == new["compared_fingerprint"]
            and old["first_images_sha"] == new["first_images_sha"]
        )
    else:  # rounded on purpose: within half a grey level of the float32 values
        worst = _largest_difference(args, folder)
        same = worst <= 0.5 / 255 + 1e-6
        print(f"   largest |compact - float32| over the first 256 images: {worst * 255:.3f} / 255")
    print(
        f"   ratio: decode {new['decode_images_per_s'] / old['decode_images_per_s']:.2f}x "
        f"(goal >= 2x)  cache {new['cache_bytes'] / old['cache_bytes_at_n']:.3f}x "
        f"({new['cache_bytes'] / 1e9:.2f} GB, goal <= 6 GB at full size)  peak RSS "
        f"{new['peak_rss_mb'] / rss_old:.2f}x ({new['peak_rss_mb'] / 1e3:.2f} GB, "
        f"goal <= 4 GB at full size)"
    )
    if args.store == "exact":
        print(f"   same images and fingerprint in both layouts (first {m:,} images): {same}")
    if args.json:
        _write_json(args.json, {"args": {k: str(v) for k, v in vars(args).items()}, **r})
    if not same:
        raise SystemExit("the two layouts disagree")


if __name__ == "__main__":
    main()
