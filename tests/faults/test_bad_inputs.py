"""Bad inputs over every command: each exits 2 with one sentence naming the culprit.

Every row of ``CASES`` is something a user can get wrong: a config key, a value, a data
file, a run directory, an argument of a stage command. The command must exit with status 2
and no traceback, print one ``medcl: error:`` sentence as its last line of stderr, name the
culprit (the key, the file, the argument) in it, and never print a result. A row that
"worked" before would have given a silent wrong output (an empty table, duplicated rows, a
test Dice of 750 %); a row that crashed would have been a traceback.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from medcl.cli import main
from tests.cli.conftest import TINY, write_tiny_config
from tests.faults.conftest import PIPELINE, STRATIFY


class Ctx:
    """What a case builds its command from; copies are made only when a case asks."""

    def __init__(self, request, tmp: Path) -> None:
        self.request = request
        self.tmp = tmp
        self.root: Path = request.getfixturevalue("data_root")
        self.cfg = self.root / "cfg.yaml"

    def out(self) -> str:
        return str(self.tmp / "out")

    def folder(self) -> Path:
        """A private copy of the images and masks, with its config at ``cfg.yaml``."""
        root = self.tmp / "data"
        shutil.copytree(self.root / "images", root / "images")
        shutil.copytree(self.root / "masks", root / "masks")
        write_tiny_config(root)
        return root

    def run(self) -> Path:
        """A copy of a finished pipeline run (random and ufc, 100% labels)."""
        return shutil.copytree(self.request.getfixturevalue("finished_run"), self.tmp / "run")

    def stratify(self) -> Path:
        return shutil.copytree(
            self.request.getfixturevalue("finished_stratify"), self.tmp / "strat"
        )

    def yaml(self, text: str, name: str = "bad.yaml") -> str:
        p = self.tmp / name
        p.write_text(text)
        return str(p)


@dataclass
class Case:
    id: str
    argv: Callable[[Ctx], list[str]]
    needles: tuple[str, ...]
    patch: Callable[[pytest.MonkeyPatch], None] | None = None


def run_cmd(ctx: Ctx, *extra: str) -> list[str]:
    return ["run", str(ctx.cfg), "--out", ctx.out(), *TINY, *extra]


def _run(*extra: str) -> Callable[[Ctx], list[str]]:
    return lambda ctx: run_cmd(ctx, *extra)


def _data_case(change: Callable[[Path], None], *extra: str) -> Callable[[Ctx], list[str]]:
    def build(ctx: Ctx) -> list[str]:
        root = ctx.folder()
        change(root)
        return ["run", str(root / "cfg.yaml"), "--out", ctx.out(), *TINY, *extra]

    return build


def _nan_folder(ctx: Ctx) -> Path:
    root = ctx.folder()
    _tiff(root, np.nan)
    return root


def _tiff(root: Path, value: float) -> None:
    import tifffile

    x = np.random.default_rng(0).random((32, 32)).astype(np.float32)
    x[3, 4] = value
    (root / "images" / "case04.png").unlink()
    tifffile.imwrite(root / "images" / "case04.tif", x)


def _csv(root: Path, rows: list[tuple[str, str]] | bytes) -> None:
    p = root / "split.csv"
    if isinstance(rows, bytes):
        p.write_bytes(rows)
    else:
        p.write_text("id,split\n" + "".join(f"{i},{s}\n" for i, s in rows))
    with open(root / "cfg.yaml", "a") as fh:
        fh.write(f"  split_csv: {p}\n")


def _split_rows() -> list[tuple[str, str]]:
    return [(f"case{i:02d}", "train" if i < 14 else "val" if i < 19 else "test") for i in range(24)]


def _all_background(root: Path) -> None:
    for p in (root / "masks").iterdir():
        Image.fromarray(np.zeros((32, 32), np.uint8)).save(p)


def _unmask_train(root: Path) -> None:
    for i in range(14):
        (root / "masks" / f"case{i:02d}_seg.png").unlink()


def _stage(command: str, *args: str, config: bool = False) -> Callable[[Ctx], list[str]]:
    def build(ctx: Ctx) -> list[str]:
        run = ctx.run()
        return [command, *([str(ctx.cfg)] if config else []), "--run", str(run), *args]

    return build


class _Payload:
    """Unpickling this runs ``touch MARKER``: what a hostile checkpoint would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _evil_checkpoint(ctx: Ctx) -> list[str]:
    run = ctx.run()
    (run / "pretrain" / "ufc" / "seed0" / "done.json").unlink()
    torch.save(
        {"model": _Payload(ctx.tmp / "PWNED")}, run / "pretrain" / "ufc" / "seed0" / "checkpoint.pt"
    )
    return ["run", str(ctx.cfg), "--out", str(run), *PIPELINE]


def _evil_model(ctx: Ctx) -> list[str]:
    strat = ctx.stratify()
    torch.save({"w": _Payload(ctx.tmp / "PWNED")}, strat / "model.pt")
    img = ctx.tmp / "x.png"
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(img)
    return ["stratify", "assign", "--run", str(strat), str(img)]


def _assign(setup: Callable[[Path, Ctx], list[str]]) -> Callable[[Ctx], list[str]]:
    def build(ctx: Ctx) -> list[str]:
        strat = ctx.stratify()
        return ["stratify", "assign", "--run", str(strat), *setup(strat, ctx)]

    return build


def _digit(ctx: Ctx) -> str:
    img = ctx.tmp / "digit.png"
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(img)
    return str(img)


def _zero(path: Path) -> None:
    path.write_bytes(bytes(path.stat().st_size))


def _strat(*extra: str) -> Callable[[Ctx], list[str]]:
    return lambda ctx: ["stratify", *STRATIFY, *extra, "--out", ctx.out()]


def _npz(ctx: Ctx, content: bytes | dict) -> str:
    p = ctx.tmp / "med.npz"
    if isinstance(content, bytes):
        p.write_bytes(content)
    else:
        np.savez(p, **content)
    return str(p)


def _medmnist_nan(ctx: Ctx) -> list[str]:
    x = np.random.default_rng(0).random((20, 28, 28)).astype(np.float32) * 255
    x[3, 1, 1] = np.nan
    parts = {}
    for s in ("train", "val", "test"):
        parts[f"{s}_images"] = x
        parts[f"{s}_labels"] = np.arange(20)[:, None] % 2
    path = _npz(ctx, parts)
    return ["stratify", "data.dataset=medmnist", f"data.medmnist_path={path}", "--out", ctx.out()]


def _locked(ctx: Ctx) -> list[str]:
    import subprocess
    import sys

    out = Path(ctx.out())
    out.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from medcl._lock import lock_directory; "
         f"lock_directory({str(out)!r}); print('held', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    ctx.request.addfinalizer(holder.kill)
    ctx.holder_pid = holder.pid  # type: ignore[attr-defined]
    return run_cmd(ctx)


def _older_config(ctx: Ctx) -> list[str]:
    run = ctx.run()
    (run / "config.yaml").write_bytes(b"\x00\x01garbage: [\n")
    return ["cluster", "--run", str(run)]


def _no_gpu(ctx: Ctx) -> list[str]:
    if torch.cuda.is_available():
        pytest.skip("a GPU is visible")
    return run_cmd(ctx, "run.device=cuda")


def _unwritable(ctx: Ctx) -> list[str]:
    if os.access("/sys", os.W_OK) and not os.path.isdir("/sys/kernel"):
        pytest.skip("no unwritable folder here")
    return ["run", str(ctx.cfg), "--out", "/sys/medcl-run", *TINY]


def _small_memory(mp: pytest.MonkeyPatch) -> None:
    import medcl._memory

    # the tiny set needs a few tens of kB (24 images of 32 x 32 in their 8-bit source depth,
    # twice while they are concatenated; as float32 it needed 0.6 MB)
    mp.setattr(medcl._memory, "available_memory", lambda: 10_000)


def _medium_memory(mp: pytest.MonkeyPatch) -> None:
    import medcl._memory

    # the decoded tiny set (0.6 MB) fits, its training (about 3 MB) does not
    mp.setattr(medcl._memory, "available_memory", lambda: 1_500_000)


def _gpu_out_of_memory(mp: pytest.MonkeyPatch) -> None:
    import medcl.stages.features

    def oom(*a, **k):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    mp.setattr(medcl.stages.features, "train_loop", oom)


CASES = [
    # ---------------------------------------------------------------- run: config values
    Case("seeds-empty", _run("run.seeds=[]"), ("run.seeds", "empty")),
    Case("methods-empty", _run("run.methods=[]"), ("run.methods", "empty")),
    Case("fractions-empty", _run("run.label_fractions=[]"), ("run.label_fractions", "empty")),
    Case("seeds-duplicate", _run("run.seeds=[0,0]"), ("run.seeds", "more than once")),
    Case("fractions-duplicate", _run("run.label_fractions=[0.5,0.5]"), ("run.label_fractions",)),
    Case("methods-duplicate", _run("run.methods=[ufc,ufc]"), ("run.methods", "more than once")),
    Case("seed-negative", _run("run.seeds=[-1]"), ("run.seeds", "-1")),
    Case("seeds-not-a-list", _run("run.seeds=abc"), ("run.seeds", "abc")),
    Case("fraction-word", _run("run.label_fractions=[half]"), ("run.label_fractions", "half")),
    Case("fraction-zero", _run("run.label_fractions=[0]"), ("(0, 1]",)),
    Case("fraction-above-one", _run("run.label_fractions=[1.5]"), ("1.5", "(0, 1]")),
    Case("precision", _run("run.precision=fp7"), ("run.precision", "fp7")),
    Case("channels-empty", _run("model.channels=[]"), ("model.channels",)),
    Case("channels-zero", _run("model.channels=[0,0]"), ("model.channels",)),
    Case("channels-one-level", _run("model.channels=[8]"), ("model.channels",)),
    Case("device-unknown", _run("run.device=tpu"), ("run.device", "tpu")),
    Case("device-no-gpu", _no_gpu, ("run.device", "cuda")),
    Case("devices-zero", _run("run.devices=0"), ("run.devices",)),
    Case("threads-zero", _run("run.num_threads=0"), ("run.num_threads",)),
    Case("unknown-key", _run("pretrain.epoch=3"), ("pretrain.epoch", "epochs")),
    Case("unknown-section", _run("pretrian.epochs=3"), ("pretrian",)),
    Case("override-without-value", _run("seeds"), ("seeds", "key=value")),
    Case("lr-zero", _run("pretrain.lr=0"), ("pretrain.lr",)),
    Case("features-kind", _run("features.kind=gan"), ("features.kind", "gan")),
    Case("min-steps-without-epochs", _run("finetune.min_steps=5"), ("finetune.min_steps",)),
    Case("k-range", _run("cluster.k_min=6", "cluster.k_max=3"), ("cluster.k_min", "k_max")),
    Case("k-too-large", _run("cluster.k=500"), ("cluster.k=500", "number of training images")),
    Case("method-unknown", _run("run.methods=[mocov9]"), ("mocov9",)),
    Case("volume-method-on-2d", _run("run.methods=[pcl]"), ("pcl", "run.methods")),
    Case("val-fraction", _run("data.val_fraction=1.5"), ("data.val_fraction",)),
    Case("folds-two", _run("data.folds=2"), ("data.folds",)),
    Case("fold-out-of-range", _run("data.folds=3", "data.fold=5"), ("data.fold",)),
    Case("layout-unknown", _run("data.layout=kaggle"), ("data.layout", "kaggle")),
    Case("layout-without-root", _run("data.layout=isic2017"), ("data.root",)),
    Case(
        "overlay-as-config",
        lambda ctx: ["run", "demo-quick", "--out", ctx.out()],
        ("'demo-quick' is not a whole config", "medcl demo --quick"),
    ),  # fmt: skip
    Case("store-unknown", _run("data.store=uint8"), ("data.store", "uint8")),
    Case(
        "store-on-builtin",
        _run("data.store=source", "data.dataset=dsb2018", "data.images="),
        ("data.store=source", "built-in", "leave data.store unset"),
    ),  # fmt: skip
    Case("dataset-unknown", _run("data.dataset=nosuch", "data.images="), ("data.dataset",)),
    Case("size-not-divisible", _run("data.image_size=[30,30]"), ("data.image_size", "divisible")),
    # ---------------------------------------------------------------- run: the config file
    Case(
        "yaml-section-scalar",
        lambda c: ["run", c.yaml("run: 5\n"), "--out", c.out()],
        ("'run'", "bad.yaml"),
    ),  # fmt: skip
    Case(
        "yaml-section-list",
        lambda c: ["run", c.yaml("data: [1, 2]\n"), "--out", c.out()],
        ("'data'",),
    ),  # fmt: skip
    Case(
        "yaml-top-level-list",
        lambda c: ["run", c.yaml("- 1\n- 2\n"), "--out", c.out()],
        ("bad.yaml", "mapping"),
    ),  # fmt: skip
    Case(
        "yaml-syntax",
        lambda c: ["run", c.yaml("data: [unclosed\n"), "--out", c.out()],
        ("bad.yaml", "not valid YAML"),
    ),  # fmt: skip
    Case(
        "yaml-missing", lambda c: ["run", str(c.tmp / "none.yaml")], ("none.yaml", "does not exist")
    ),
    Case(
        "two-config-files",
        lambda c: ["run", str(c.cfg), c.yaml("run: {}\n", "b.yaml"), "--out", c.out()],
        ("Two config files", "b.yaml"),
    ),  # fmt: skip
    Case(
        "out-is-a-file",
        lambda c: run_cmd(c)[:3] + [c.yaml("x: 1\n", "f.txt"), *TINY],
        ("f.txt", "is a file"),
    ),  # fmt: skip
    Case("out-not-writable", _unwritable, ("/sys/medcl-run",)),
    Case("out-in-use", _locked, ("in use by another medcl process", "pid")),
    # ---------------------------------------------------------------- run: memory
    Case(
        "memory-decode",
        _run("data.image_size=[32768,32768]"),
        ("data.image_size=[32768, 32768]", "memory"),
    ),  # fmt: skip
    Case(
        "memory-decode-small-machine",
        _run(),
        ("Decoding 24 image", "memory", "available"),
        _small_memory,
    ),  # fmt: skip
    Case(
        "memory-training",
        _run(),
        ("Training at data.image_size=[32, 32]", "model.channels", "batch size 15"),
        _medium_memory,
    ),  # fmt: skip
    Case(
        "memory-gpu",
        _run(),
        ("GPU ran out of memory", "data.image_size", "batch_size"),
        _gpu_out_of_memory,
    ),
    # ---------------------------------------------------------------- run: the images
    Case("image-nan", _data_case(lambda r: _tiff(r, np.nan)), ("case04.tif", "NaN")),
    Case("image-inf", _data_case(lambda r: _tiff(r, np.inf)), ("case04.tif", "infinite")),
    Case(
        "image-unreadable",
        _data_case(
            lambda r: (r / "images" / "case03.png").write_bytes(b"no"), "data.on_unreadable=error"
        ),  # skip, the default, leaves it out: tests/data/test_unreadable.py
        ("case03.png",),
    ),  # fmt: skip
    Case(
        "image-empty-file",
        _data_case(
            lambda r: (r / "images" / "case03.png").write_bytes(b""), "data.on_unreadable=error"
        ),
        ("case03.png",),
    ),  # fmt: skip
    Case("images-missing", _run("data.images=/nonexistent/imgs"), ("/nonexistent/imgs",)),
    Case("masks-missing", _run("data.masks=/nonexistent/masks"), ("/nonexistent/masks",)),
    Case(
        "images-empty",
        _data_case(lambda r: [p.unlink() for p in (r / "images").iterdir()]),
        ("images", "no supported image files"),
    ),  # fmt: skip
    Case(
        "mask-size",
        _data_case(
            lambda r: Image.fromarray(np.zeros((20, 32), np.uint8)).save(
                r / "masks" / "case05_seg.png"
            )
        ),
        ("case05_seg.png",),
    ),  # fmt: skip
    Case(
        "mask-value",
        _data_case(
            lambda r: Image.fromarray(np.full((32, 32), 77, np.uint8)).save(
                r / "masks" / "case07_seg.png"
            )
        ),
        ("case07_seg.png", "label_values"),
    ),  # fmt: skip
    Case("masks-all-background", _data_case(_all_background), ("background only", "data.masks")),
    Case(
        "csv-binary",
        _data_case(lambda r: _csv(r, bytes(range(256)) * 4)),
        ("split.csv", "not a text CSV"),
    ),  # fmt: skip
    Case(
        "csv-no-train-masks",
        _data_case(lambda r: (_csv(r, _split_rows()), _unmask_train(r))),
        ("train split", "data.split_csv"),
    ),  # fmt: skip
    Case(
        "csv-unknown-id",
        _data_case(lambda r: _csv(r, [*_split_rows(), ("ghost", "train")])),
        ("split.csv", "ghost"),
    ),  # fmt: skip
    Case(
        "csv-bad-split",
        _data_case(lambda r: _csv(r, [("case00", "holdout")])),
        ("split.csv", "holdout"),
    ),  # fmt: skip
    Case("csv-missing", _run("data.split_csv=/nonexistent/split.csv"), ("split.csv",)),
    # ---------------------------------------------------------------- run: the run directory
    Case(
        "checkpoint-pickled-callable",
        _evil_checkpoint,
        ("checkpoint.pt", "could run code", "posix.system"),
    ),  # fmt: skip
    Case("config-yaml-damaged", _older_config, ("config.yaml", "damaged")),
    # ---------------------------------------------------------------- demo and benchmark
    Case(
        "demo-seeds-empty",
        lambda c: ["demo", "--quick", "--out", c.out(), "run.seeds=[]"],
        ("run.seeds",),
    ),  # fmt: skip
    Case(
        "demo-out-file",
        lambda c: ["demo", "--quick", "--out", c.yaml("x", "f.txt")],
        ("f.txt", "is a file"),
    ),  # fmt: skip
    Case(
        "demo-second-config",
        lambda c: ["demo", "--quick", "--out", c.out(), str(c.cfg)],
        ("Two config files",),
    ),  # fmt: skip
    Case(
        "benchmark-yaml-run-scalar",
        lambda c: ["benchmark", c.yaml("run: 5\n"), "--out", c.out()],
        ("'run'",),
    ),  # fmt: skip
    Case(
        "benchmark-method-unknown",
        lambda c: ["benchmark", str(c.cfg), "--out", c.out(), *TINY, "run.methods=[nosuch]"],
        ("nosuch",),
    ),  # fmt: skip
    Case(
        "benchmark-folds-and-csv",
        lambda c: [
            "benchmark",
            str(c.cfg),
            "--out",
            c.out(),
            *TINY,
            "data.folds=3",
            "data.split_csv=x.csv",
        ],
        ("data.folds", "data.split_csv"),
    ),  # fmt: skip
    Case(
        "benchmark-seeds-duplicate",
        lambda c: ["benchmark", str(c.cfg), "--out", c.out(), *TINY, "run.seeds=[1,1]"],
        ("run.seeds",),
    ),  # fmt: skip
    # ---------------------------------------------------------------- segment-prior
    Case(
        "prior-structure",
        lambda c: ["segment-prior", str(c.cfg), "--out", c.out(), *TINY, "prior.structure=[5]"],
        ("prior.structure=[5]",),
    ),  # fmt: skip
    Case(
        "prior-references",
        lambda c: ["segment-prior", str(c.cfg), "--out", c.out(), *TINY, "prior.references=500"],
        ("prior.references=500",),
    ),  # fmt: skip
    Case(
        "prior-cluster",
        lambda c: ["segment-prior", str(c.cfg), "--out", c.out(), *TINY, "prior.cluster=99"],
        ("prior.cluster=99",),
    ),  # fmt: skip
    Case(
        "prior-epochs",
        lambda c: ["segment-prior", str(c.cfg), "--out", c.out(), *TINY, "prior.epochs=0"],
        ("prior.epochs",),
    ),  # fmt: skip
    # ---------------------------------------------------------------- stage commands
    Case(
        "features-epochs-zero",
        lambda c: ["features", str(c.cfg), "--run", c.out(), *TINY, "features.epochs=0"],
        ("features.epochs",),
    ),  # fmt: skip
    Case(
        "features-nan-image",
        lambda c: (lambda r: ["features", str(r / "cfg.yaml"), "--run", c.out(), *TINY])(
            _nan_folder(c)
        ),
        ("case04.tif", "NaN"),
    ),  # fmt: skip
    Case("pretrain-method-path", _stage("pretrain", "method=../../x"), ("../../x", "method")),
    Case("finetune-method-path", _stage("finetune", "method=../../x"), ("../../x",)),
    Case("pretrain-seed-word", _stage("pretrain", "seed=abc"), ("seed=abc",)),
    Case("pretrain-seed-negative", _stage("pretrain", "seed=-1"), ("seed=-1",)),
    Case("finetune-fraction-word", _stage("finetune", "fraction=half"), ("fraction=half",)),
    Case("finetune-fraction-two", _stage("finetune", "fraction=2"), ("fraction=2", "(0, 1]")),
    Case(
        "stage-no-config", lambda c: ["cluster", "--run", str(c.tmp / "fresh")], ("no config.yaml",)
    ),  # fmt: skip
    Case(
        "cluster-before-features",
        lambda c: ["cluster", str(c.cfg), "--run", c.out(), *TINY],
        ("features", "medcl features"),
    ),  # fmt: skip
    Case(
        "finetune-before-pretrain",
        lambda c: ["finetune", str(c.cfg), "--run", c.out(), *TINY, "method=simclr"],
        ("pretrain", "method=simclr"),
    ),  # fmt: skip
    Case(
        "evaluate-before-finetune",
        lambda c: ["evaluate", str(c.cfg), "--run", c.out(), *TINY],
        ("No fine-tuned model",),
    ),  # fmt: skip
    Case(
        "pretrain-stale-clusters",
        _stage("pretrain", "method=ufc", "cluster.k=2"),
        ("cluster", "other settings", "cluster.k", "medcl cluster"),
    ),  # fmt: skip
    Case(
        "finetune-stale-encoder",
        _stage("finetune", "method=ufc", "fraction=1.0", "pretrain.epochs=3"),
        ("pretrain ufc seed 0", "pretrain.epochs"),
    ),  # fmt: skip
    Case("evaluate-unknown-key", _stage("evaluate", "finetune.stepz=3"), ("finetune.stepz",)),
    # ---------------------------------------------------------------- stratify
    Case("stratify-crop-scale", _strat("warmup.crop_scale=[1.5,0.2]"), ("warmup.crop_scale",)),
    Case("stratify-blur-sigma", _strat("warmup.blur_sigma=[-1,2]"), ("warmup.blur_sigma",)),
    Case("stratify-k-too-large", _strat("cluster.k=5000"), ("cluster.k=5000",)),
    Case(
        "stratify-spectral-k-all",  # spectral clustering needs k <= n - 1
        _strat("cluster.method=spectral", "cluster.k=160"),
        ("cluster.k=160", "cluster.method=spectral"),
    ),
    Case("stratify-k-min", _strat("cluster.k_min=500", "cluster.k_max=600"), ("cluster.k_min",)),
    Case(
        "stratify-yaml-run-scalar",
        lambda c: ["stratify", c.yaml("run: 5\n"), "--out", c.out()],
        ("'run'",),
    ),  # fmt: skip
    Case("stratify-unknown-key", _strat("warmup.epoch=3"), ("warmup.epoch",)),
    Case("stratify-max-train", _strat("data.max_train=4"), ("data.max_train",)),
    Case("stratify-drop-unknown", _strat("data.drop={'11': 0.5}"), ("data.drop", "'11'")),
    Case(
        "stratify-dsb-val-fraction",
        _strat("data.dataset=dsb2018", "data.val_fraction=0.1"),
        ("data.val_fraction", "dsb2018"),
    ),
    Case("stratify-drop-all", _strat("data.drop={'3': 1.0}"), ("data.drop['3']",)),
    Case("stratify-widths-zero", _strat("model.widths=[0]"), ("model.widths",)),
    Case(
        "stratify-medmnist-missing",
        _strat("data.dataset=medmnist", "data.medmnist_path=/nonexistent/x.npz"),
        ("/nonexistent/x.npz",),
    ),  # fmt: skip
    Case(
        "stratify-medmnist-garbage",
        lambda c: [
            "stratify",
            "data.dataset=medmnist",
            f"data.medmnist_path={_npz(c, b'garbage')}",
            "--out",
            c.out(),
        ],
        ("med.npz",),
    ),  # fmt: skip
    Case("stratify-medmnist-nan", _medmnist_nan, ("med.npz", "NaN")),
    Case(
        "stratify-two-configs",
        lambda c: ["stratify", c.yaml("{}\n", "a.yaml"), c.yaml("{}\n", "b.yaml")],
        ("Two config files",),
    ),  # fmt: skip
    # ---------------------------------------------------------------- stratify assign
    Case("assign-folder", _assign(lambda s, c: [str(c.tmp)]), ("is a folder",)),
    Case("assign-nothing", _assign(lambda s, c: []), ("at least one image",)),
    Case("assign-missing-image", _assign(lambda s, c: [str(c.tmp / "no.png")]), ("no.png",)),
    Case("assign-unreadable-image", _assign(lambda s, c: [c.yaml("x", "bad.png")]), ("bad.png",)),
    Case(
        "assign-no-run",
        lambda c: ["stratify", "assign", "--run", str(c.tmp / "none"), "a.png"],
        ("no trained model",),
    ),  # fmt: skip
    Case("assign-without-run", lambda c: ["stratify", "assign", "a.png"], ("--run",)),
    Case(
        "assign-model-zeroed",
        _assign(lambda s, c: (_zero(s / "model.pt"), [_digit(c)])[1]),
        ("model.pt", "damaged"),
    ),  # fmt: skip
    Case(
        "assign-prototypes-zeroed",
        _assign(lambda s, c: (_zero(s / "prototypes.npy"), [_digit(c)])[1]),
        ("prototypes.npy", "damaged"),
    ),  # fmt: skip
    Case(
        "assign-model-json-garbage",
        _assign(lambda s, c: ((s / "model.json").write_text("{"), [_digit(c)])[1]),
        ("model.json", "damaged"),
    ),  # fmt: skip
    Case("assign-pickled-callable", _evil_model, ("model.pt", "could run code")),
]


def test_the_table_is_large_and_its_ids_unique():
    assert len(CASES) >= 60
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_sentence_and_exit_2(case, request, tmp_path, capsys, monkeypatch):
    ctx = Ctx(request, tmp_path)
    argv = case.argv(ctx)
    capsys.readouterr()
    if case.patch is not None:
        case.patch(monkeypatch)
    code = main(argv)  # an unexpected exception would fail the test with its traceback
    captured = capsys.readouterr()
    err_lines = [line for line in captured.err.strip().splitlines() if line.strip()]
    assert code == 2, captured.err[-2000:]
    assert "Traceback" not in captured.err
    assert err_lines and err_lines[-1].startswith("medcl: error: "), captured.err[-2000:]
    assert sum(line.startswith("medcl: error:") for line in err_lines) == 1
    message = err_lines[-1]
    for needle in case.needles:
        assert needle in message, message
    if case.id == "out-in-use":
        assert f"pid {ctx.holder_pid}" in message  # type: ignore[attr-defined]
    assert "Finished" not in captured.out and "Test Dice" not in captured.out
    assert not (tmp_path / "PWNED").exists()  # no pickled payload ever ran
    if "method-path" in case.id:  # nothing was read or written outside the run directory
        assert not (tmp_path / "x").exists() and not (tmp_path / "run" / "x").exists()
