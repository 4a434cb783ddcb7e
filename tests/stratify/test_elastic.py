"""``warmup.elastic``: an optional elastic warp in the warm-up's views. Off (0) it is not in
the pipeline at all, so the views, and every run directory made before the key existed,
stay as they were; on, it moves pixels by about what its description says."""

from __future__ import annotations

import json

import kornia.augmentation as K
import torch

from medcl.cli import main
from medcl.config import load_config, packaged_config
from medcl.stages.stratify.warmup import make_views
from medcl.stratify_config import StratifyConfig
from tests.stratify.test_stages import BASE


def _cfg(*overrides: str) -> StratifyConfig:
    return load_config(packaged_config("stratify-mnist"), list(overrides), schema=StratifyConfig)


def test_off_by_default_and_then_absent_from_the_views():
    views = make_views(_cfg(), (28, 28))
    assert not any(isinstance(m, K.RandomElasticTransform) for m in views)
    on = make_views(_cfg("warmup.elastic=2"), (28, 28))
    kinds = [type(m) for m in on]
    assert kinds.index(K.RandomElasticTransform) == kinds.index(K.RandomRotation) + 1
    assert [k for k in kinds if k is not K.RandomElasticTransform] == [type(m) for m in views]


def test_the_warp_moves_pixels_by_about_what_the_description_says():
    """A coordinate image warped with p = 1: the mean displacement inside the border is
    ~1.4 px at elastic 2 (sigma 4), about twice that at 4, and grows with the strength."""
    h = 28
    yy, xx = torch.meshgrid(torch.arange(h).float(), torch.arange(h).float(), indexing="ij")
    coords = torch.stack([xx, yy])[None].repeat(64, 1, 1, 1)
    moved = {}
    for alpha in (1.0, 2.0, 4.0):
        warp = [
            m
            for m in make_views(_cfg(f"warmup.elastic={alpha}", "warmup.aug_p=1"), (h, h))
            if isinstance(m, K.RandomElasticTransform)
        ][0]
        torch.manual_seed(0)
        d = (warp(coords) - coords)[:, :, 6:-6, 6:-6]
        moved[alpha] = d.norm(dim=1).mean().item()
    assert 1.0 < moved[2.0] < 2.0, moved
    assert moved[1.0] < moved[2.0] < moved[4.0], moved


def reused_off_then_retrained_on(tmp_path, capsys, key: str, on: str, second: str) -> None:
    """A warm-up option off by default: a run without it records none of its keys (the record
    a run from before the key would write), setting it to 0 reuses that run, and switching
    it on retrains, naming ``key`` and its ``second`` key as new."""
    out = tmp_path / "run"
    assert main(["stratify", *BASE, "--out", str(out)]) == 0
    record = json.loads((out / "warmup" / "done.json").read_text())
    assert not any(k.startswith(key) for k in record["record"]["depends"]["config"])
    capsys.readouterr()

    assert main(["stratify", *BASE, f"{key}=0", "--out", str(out)]) == 0
    assert ": rerun," not in capsys.readouterr().err

    assert main(["stratify", *BASE, f"{key}={on}", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert f"stratify warm-up: rerun, {key} is new; {second} is new" in err


def test_a_run_without_the_warp_is_reused_and_switching_it_on_retrains(tmp_path, capsys):
    reused_off_then_retrained_on(tmp_path, capsys, "warmup.elastic", "2", "warmup.elastic_sigma")


def test_a_bad_strength_or_smoothness_is_one_sentence_and_exit_2(tmp_path, capsys):
    for key, value in (("warmup.elastic", "-1"), ("warmup.elastic_sigma", "0")):
        assert main(["stratify", *BASE, f"{key}={value}", "--out", str(tmp_path / "r")]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"'{key}'" in err[0] and value in err[0], err
    assert not (tmp_path / "r").exists()
