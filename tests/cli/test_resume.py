"""Ctrl-C in the middle of a stage, then the same command again: it resumes."""

import json

import torch

from medcl.cli import main
from medcl.data import TwoViews
from tests.cli.conftest import TINY


def test_interrupted_pretrain_resumes_from_checkpoint(png_folder, tiny_config, monkeypatch):
    run = png_folder / "r"
    args = [*TINY, "pretrain.epochs=4", "pretrain.batch_size=4"]
    assert main(["features", str(tiny_config), "--run", str(run), *args]) == 0
    assert main(["cluster", "--run", str(run)]) == 0

    calls = {"n": 0}
    original = TwoViews.forward

    def dying_forward(self, x):
        calls["n"] += 1
        if calls["n"] == 8:  # second step of the third epoch (3 steps per epoch)
            raise KeyboardInterrupt
        return original(self, x)

    monkeypatch.setattr(TwoViews, "forward", dying_forward)
    assert main(["pretrain", "--run", str(run), "method=ufc", "seed=0"]) == 130
    ckpt = run / "pretrain" / "ufc" / "seed0" / "checkpoint.pt"
    state = torch.load(ckpt, weights_only=True)  # plain values only: loads safely
    assert state["epoch"] == 1 and len(state["history"]) == 2
    assert not (run / "pretrain" / "ufc" / "seed0" / "encoder.pt").exists()

    monkeypatch.setattr(TwoViews, "forward", original)
    calls["n"] = 0
    assert main(["pretrain", "--run", str(run), "method=ufc", "seed=0"]) == 0
    done = json.loads((run / "pretrain" / "ufc" / "seed0" / "done.json").read_text())
    assert len(done["loss"]) == 4 and done["loss"][:2] == state["history"]
    assert (run / "pretrain" / "ufc" / "seed0" / "encoder.pt").exists()
    assert not ckpt.exists()  # the resumable checkpoint is cleared once the stage is done
