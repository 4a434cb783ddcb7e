"""Batches assembled one step ahead on a worker thread (``run.prefetch``) change nothing.

The views of batch i + 1 are drawn while the model computes batch i; since the stage's
``prepare`` is the only code of a step that draws random numbers, the draws come in the same
order as inline, and every method's pretraining is the same bit for bit.
"""

import json
import shutil
import threading

import pytest
import torch

from medcl.cli import main
from medcl.methods import METHODS
from medcl.train._prefetch import ahead
from tests.cli.conftest import TINY, write_png_folder, write_tiny_config
from tests.cli.test_volumes import _volumes


def test_ahead_gives_every_result_in_order_inline_or_not():
    items = list(range(7))
    for enabled in (True, False):
        assert list(ahead(lambda i: i * 10, items, enabled)) == [(i, i * 10) for i in items]
    assert list(ahead(lambda i: i, [], True)) == []
    assert list(ahead(lambda i: i, [5], True)) == [(5, 5)]


def test_ahead_prepares_the_next_item_while_the_caller_works():
    started = {i: threading.Event() for i in range(3)}

    def fn(i):
        started[i].set()
        return threading.current_thread().name

    for i, name in ahead(fn, range(3)):
        assert name.startswith("medcl-prefetch")
        if i < 2:  # the next item is under way before the caller is done with this one
            assert started[i + 1].wait(timeout=10)


def test_ahead_raises_the_workers_error_at_that_item():
    def fn(i):
        if i == 2:
            raise ValueError("bad item 2")
        return i

    got = []
    with pytest.raises(ValueError, match="bad item 2"):
        for i, _ in ahead(fn, range(5)):
            got.append(i)
    assert got == [0, 1]


PRETRAINING = sorted(n for n, m in METHODS.items() if m.pretrains)


def test_every_method_trains_the_same_with_and_without_prefetch(tmp_path):
    cfg = _volumes(tmp_path)  # volumes, so that GLCL and PCL apply
    inline, ahead_ = tmp_path / "inline", tmp_path / "ahead"
    settings = [*TINY, "pretrain.glcl_local_weight=1.0"]  # GLCL's local loss draws views too
    assert main(["features", str(cfg), "--run", str(inline), *settings]) == 0
    assert main(["cluster", "--run", str(inline)]) == 0
    shutil.copytree(inline, ahead_)
    for method in PRETRAINING:
        for run, prefetch in ((inline, "false"), (ahead_, "true")):
            argv = ["pretrain", "--run", str(run), f"method={method}", "seed=0"]
            assert main([*argv, f"run.prefetch={prefetch}"]) == 0
        done = [json.loads((r / "pretrain" / method / "seed0" / "done.json").read_text())
                for r in (inline, ahead_)]  # fmt: skip
        assert done[0]["loss"] == done[1]["loss"], method
        weights = [torch.load(r / "pretrain" / method / "seed0" / "encoder.pt")
                   for r in (inline, ahead_)]  # fmt: skip
        assert weights[0].keys() == weights[1].keys()
        assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0]), method
    for method in ("random", "glcl"):  # fine-tuning draws its paired augmentations ahead too
        for run, prefetch in ((inline, "false"), (ahead_, "true")):
            argv = ["finetune", "--run", str(run), f"method={method}", "fraction=1.0", "seed=0"]
            assert main([*argv, f"run.prefetch={prefetch}"]) == 0
        cell = f"finetune/{method}/labels1/seed0"
        models = [torch.load(r / cell / "best.pt") for r in (inline, ahead_)]
        assert all(torch.equal(models[0][k], models[1][k]) for k in models[0]), method


def test_segment_prior_trains_the_same_with_and_without_prefetch(tmp_path):
    from tests.cli.test_segment_prior import SMALL

    tiny_config = write_tiny_config(write_png_folder(tmp_path / "data"))
    losses = []
    for prefetch in ("false", "true"):
        out = tmp_path / prefetch
        argv = ["segment-prior", str(tiny_config), "--out", str(out), *SMALL]
        assert main([*argv, "prior.structure=[2]", f"run.prefetch={prefetch}"]) == 0
        losses.append(json.loads((out / "results.json").read_text())["loss"])
    assert losses[0] == losses[1]
    models = [torch.load(tmp_path / p / "model.pt") for p in ("false", "true")]
    assert all(torch.equal(models[0][k], models[1][k]) for k in models[0])


def test_the_stratify_warmup_trains_the_same_with_and_without_prefetch(tmp_path):
    import numpy as np

    from tests.stratify.test_cli import TINY as STRATIFY

    for prefetch in ("false", "true"):
        argv = ["stratify", *STRATIFY, "evaluate.baselines=false", "decoder.epochs=1"]
        assert main([*argv, "--out", str(tmp_path / prefetch), f"run.prefetch={prefetch}"]) == 0
    done = [
        json.loads((tmp_path / p / "warmup" / "done.json").read_text()) for p in ("false", "true")
    ]
    assert done[0]["loss"] == done[1]["loss"]
    latents = [np.load(tmp_path / p / "embed" / "latents.npy") for p in ("false", "true")]
    assert np.array_equal(latents[0], latents[1])
