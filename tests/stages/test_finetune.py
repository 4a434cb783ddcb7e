"""finetune.epochs: the paper's epochs at every label fraction instead of a fixed step budget."""

from __future__ import annotations

import numpy as np
import pytest

from medcl.config import load_config
from medcl.data import ImageSet
from medcl.rundir import RunDir
from medcl.stages.finetune import finetune_steps, run_finetune
from medcl.train._device import make_fabric


@pytest.mark.parametrize(
    "steps, epochs, n_labelled, batch_size, expected",
    [
        (200, None, 100, 24, 200),  # steps: the same budget at every fraction
        (200, None, 5, 24, 200),
        (200, 3, 100, 24, 15),  # 3 x ceil(100 / 24) = 3 x 5
        (200, 200, 100, 24, 1000),
        (200, 2, 96, 24, 8),  # exact multiple
        (200, 7, 5, 5, 7),  # fewer images than a batch: one step per epoch
    ],
)
def test_finetune_steps(steps, epochs, n_labelled, batch_size, expected):
    assert finetune_steps(steps, epochs, n_labelled, batch_size) == expected


@pytest.mark.parametrize(
    "n_labelled, expected",
    [(5, 150), (93, 150), (200, 260), (464, 580), (2000, 600)],  # 20 x ceil(n / 16), clipped
)
def test_finetune_steps_bounds_scale_with_the_labelled_set(n_labelled, expected):
    assert finetune_steps(200, 20, n_labelled, 16, min_steps=150, max_steps=600) == expected


def test_step_bounds_need_epochs():
    from medcl.errors import MedclError

    with pytest.raises(MedclError, match="set finetune.epochs too"):
        load_config(None, ["finetune.max_steps=100"])
    with pytest.raises(MedclError, match="above finetune.max_steps"):
        load_config(None, ["finetune.epochs=2", "finetune.min_steps=9", "finetune.max_steps=3"])


def _tiny_set(n_train=8, n_val=2, size=16):
    rng = np.random.default_rng(0)
    n = n_train + n_val + 2
    masks = np.zeros((n, size, size), np.int64)
    masks[:, 4:10, 4:10] = 1
    images = (0.2 + 0.6 * masks[:, None] + rng.normal(0, 0.05, (n, 1, size, size))).clip(0, 1)
    return ImageSet(
        images=images.astype(np.float32),
        masks=masks,
        has_mask=np.ones(n, bool),
        ids=np.array([f"img{i}" for i in range(n)], dtype=object),
        volume_ids=np.full(n, "", dtype=object),
        positions=np.full(n, np.nan),
        class_names=["background", "fg"],
        split=np.array(["train"] * n_train + ["val"] * n_val + ["test"] * 2, dtype=object),
    )


def test_run_finetune_with_epochs_takes_epochs_times_ceil_steps(tmp_path):
    cfg = load_config(
        None,
        [
            "model.channels=[4,8]",
            "finetune.epochs=2",
            "finetune.batch_size=3",
            "finetune.eval_every=100",
        ],
    )
    data = _tiny_set(n_train=8)
    done = run_finetune(RunDir(tmp_path), cfg, "random", 1.0, 0, data, make_fabric("cpu"))
    # 2 x ceil(8 / 3) = 6 optimiser steps; the loop drops the last partial batch, so it
    # runs 8 // 3 = 2 steps per pass: 3 passes
    assert done["n_labelled"] == 8 and len(done["loss"]) == 3
