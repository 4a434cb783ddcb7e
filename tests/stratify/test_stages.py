"""``medcl stratify`` as stages: a changed key reruns its stage and those after it, saying
why, and every stage runs alone from the run directory."""

from __future__ import annotations

import json

from medcl.cli import main
from medcl.config import packaged_config
from medcl.stages.stratify import STAGES
from medcl.stratify_config import load_stratify_config
from tests.stratify.test_cli import TINY

BASE = [a for a in TINY if not a.startswith("evaluate.baseline")] + ["evaluate.baselines=false"]


def _epochs(out) -> dict[str, int]:
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    return {
        s: sum(1 for r in lines if r.get("stage") == s and "epoch" in r)
        for s in ("warmup", "decoder")
    }


def test_a_changed_key_reruns_its_stage_and_those_after_it(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["stratify", *BASE, "--out", str(out)]) == 0
    refined = load_stratify_config(packaged_config("stratify-mnist"), BASE).refine.epochs > 0
    for name in STAGES:  # refine runs only with refine.epochs > 0
        assert (out / name / "done.json").is_file() == (name != "refine" or refined), name
    trained = _epochs(out)
    k = json.loads((out / "metrics.json").read_text())["k"]
    capsys.readouterr()

    assert main(["stratify", *BASE, f"cluster.k={k + 1}", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert f"stratify clustering: rerun, cluster.k changed from null to {k + 1}" in err
    assert "stratify decoder: rerun, stratify clustering changed" in err
    assert "stratify evaluation: rerun" in err and "stratify report: rerun" in err
    assert "warm-up: rerun" not in err and "embeddings: rerun" not in err
    after = _epochs(out)
    assert after["warmup"] == trained["warmup"]  # the warm-up was reused
    assert after["decoder"] > trained["decoder"]  # the decoder was retrained
    assert json.loads((out / "metrics.json").read_text())["k"] == k + 1

    # the same again: nothing is recomputed
    assert main(["stratify", *BASE, f"cluster.k={k + 1}", "--out", str(out)]) == 0
    assert ": rerun," not in capsys.readouterr().err
    assert _epochs(out) == after


def test_one_stage_alone_from_the_run_directory(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["stratify", *BASE, "--stage", "warmup", "--out", str(out)]) == 0
    assert (out / "warmup" / "model.pt").is_file() and not (out / "embed").exists()
    # a stage whose upstream is not finished says which command to run first
    assert main(["stratify", "--run", str(out), "--stage", "cluster"]) == 2
    assert "medcl stratify --stage embed" in capsys.readouterr().err
    for stage in ("refine", "embed", "cluster", "decoder", "evaluate", "report"):
        assert main(["stratify", "--run", str(out), "--stage", stage]) == 0, stage
    assert (out / "report.html").is_file() and (out / "metrics.json").is_file()


def test_the_cli_names_every_stage_in_order():
    from medcl.cli import STRATIFY_STAGES

    assert STRATIFY_STAGES == tuple(STAGES)
