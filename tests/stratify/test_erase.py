"""``warmup.erase``: optional random erasing in the warm-up's views. Off (0) it is not in the
pipeline, so the views and the run directories made before the key existed stay as they
were; on, it blanks one rectangle of the area its ``erase_scale`` says, last."""

from __future__ import annotations

import kornia.augmentation as K
import torch

from medcl.cli import main
from medcl.stages.stratify.warmup import make_views
from tests.stratify.test_elastic import _cfg, reused_off_then_retrained_on
from tests.stratify.test_stages import BASE


def test_off_by_default_and_then_last_in_the_views():
    views = make_views(_cfg(), (28, 28))
    assert not any(isinstance(m, K.RandomErasing) for m in views)
    on = make_views(_cfg("warmup.erase=0.5"), (28, 28))
    assert isinstance(on[-1], K.RandomErasing) and on[-1].p == 0.5
    assert [type(m) for m in on[:-1]] == [type(m) for m in views]


def test_it_blanks_one_rectangle_of_the_area_asked_for():
    """On an all-ones image with p = 1, the zeroed share of each view lies in erase_scale,
    and is one axis-aligned rectangle."""
    erase = make_views(_cfg("warmup.erase=1", "warmup.erase_scale=[0.05,0.08]"), (28, 28))[-1]
    torch.manual_seed(0)
    out = erase(torch.ones(32, 1, 28, 28))
    blank = out[:, 0] == 0
    share = blank.float().mean((1, 2))
    assert bool(((share > 0.03) & (share < 0.1)).all()), share  # rounding to whole pixels
    for b in blank:
        rows, cols = b.any(1).nonzero(), b.any(0).nonzero()
        h, w = int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1)
        assert int(b.sum()) == h * w  # filled: one rectangle
    views = make_views(_cfg("warmup.erase=0"), (28, 28))
    assert not any(isinstance(m, K.RandomErasing) for m in views)


def test_a_run_without_erasing_is_reused_and_switching_it_on_retrains(tmp_path, capsys):
    reused_off_then_retrained_on(tmp_path, capsys, "warmup.erase", "0.5", "warmup.erase_scale")


def test_a_bad_probability_or_area_is_one_sentence_and_exit_2(tmp_path, capsys):
    for key, value in (
        ("warmup.erase", "1.5"),
        ("warmup.erase", "-0.1"),
        ("warmup.erase_scale", "[0.2,0.1]"),
        ("warmup.erase_scale", "[0.1,1.0]"),
    ):
        assert main(["stratify", *BASE, f"{key}={value}", "--out", str(tmp_path / "r")]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and key in err[0], err
    assert not (tmp_path / "r").exists()
