"""Reruns into a run directory: what changed is recomputed, what is damaged is never reused.

A rerun must recompute exactly the stages whose inputs changed (and everything downstream),
saying why in one line each; reuse everything else; and treat a damaged record or artefact
as missing, naming the file, never with a traceback and never reusing it. Results are
compared bit for bit with the undamaged run's.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import medcl.stages.features as features_stage
import medcl.stages.finetune as finetune_stage
import medcl.stages.pretrain as pretrain_stage
from medcl.cli import main
from medcl.config import load_config
from medcl.rundir import RunDir
from medcl.stages._common import load_data
from medcl.stages._deps import evaluate_deps
from medcl.stages._done import write_record
from tests.cli.conftest import write_tiny_config
from tests.faults.conftest import PIPELINE

UFC_CELL = Path("finetune/ufc/labels1/seed0")
RANDOM_CELL = Path("finetune/random/labels1/seed0")


def dice_rows(out: Path) -> list[tuple]:
    """What a run reports, without timings: (method, fraction, seed, dice, per class)."""
    rows = json.loads((out / "results.json").read_text())["rows"]
    return sorted(
        (r["method"], r["label_fraction"], r["seed"], r["dice"], tuple(r["dice_per_class"]))
        for r in rows
    )


@pytest.fixture
def trained(monkeypatch):
    """Counts the trainings of each stage during a rerun."""
    counts = {"features": 0, "pretrain": 0, "finetune": 0}
    for name, module in (
        ("features", features_stage),
        ("pretrain", pretrain_stage),
        ("finetune", finetune_stage),
    ):
        real = module.train_loop

        def counting(*a, _real=real, _name=name, **k):
            counts[_name] += 1
            return _real(*a, **k)

        monkeypatch.setattr(module, "train_loop", counting)
    return counts


def rerun(capsys, cfg: Path, out: Path, *extra: str) -> list[str]:
    capsys.readouterr()
    assert main(["run", str(cfg), "--out", str(out), *PIPELINE, *extra]) == 0
    err = capsys.readouterr().err
    assert "Traceback" not in err and "medcl: error" not in err
    return [line for line in err.splitlines() if ": rerun, " in line or " is damaged (" in line]


# --------------------------------------------------------------------------- fingerprints


def test_nothing_changed_nothing_reruns(finished_run, run_copy, data_root, trained, capsys):
    before = (run_copy / "metrics.jsonl").read_text()
    # an execution setting and another method's key are no dependency of this run's stages
    lines = rerun(capsys, data_root / "cfg.yaml", run_copy, "run.num_threads=2",
                  "pretrain.moco_momentum=0.9")  # fmt: skip
    assert lines == [] and trained == {"features": 0, "pretrain": 0, "finetune": 0}
    assert (run_copy / "metrics.jsonl").read_text() == before
    assert dice_rows(run_copy) == dice_rows(finished_run)


def test_finetune_steps_reruns_only_the_finetuning_cells(run_copy, data_root, trained, capsys):
    lines = rerun(capsys, data_root / "cfg.yaml", run_copy, "finetune.steps=7")
    assert trained == {"features": 0, "pretrain": 0, "finetune": 2}
    assert sorted(lines) == sorted(
        [
            "medcl: finetune random 100% labels seed 0: rerun, finetune.steps changed from 6 to 7",
            "medcl: evaluate random 100% labels seed 0: rerun, finetune random 100% labels "
            "seed 0 changed",
            "medcl: finetune ufc 100% labels seed 0: rerun, finetune.steps changed from 6 to 7",
            "medcl: evaluate ufc 100% labels seed 0: rerun, finetune ufc 100% labels seed 0 "
            "changed",
        ]
    )
    done = json.loads((run_copy / UFC_CELL / "done.json").read_text())
    assert done["record"]["depends"]["config"]["finetune.steps"] == 7


def test_one_method_key_reruns_that_method_only(run_copy, data_root, trained, capsys):
    lines = rerun(capsys, data_root / "cfg.yaml", run_copy, "pretrain.temperature=0.2")
    assert trained == {"features": 0, "pretrain": 1, "finetune": 1}  # ufc's, not random's
    assert lines[0] == (
        "medcl: pretrain ufc seed 0: rerun, pretrain.temperature changed from 0.1 to 0.2"
    )


def test_changed_images_rerun_what_reads_them(run_copy, data_root, tmp_path, trained, capsys):
    # The images, moved to another folder: the fingerprints hash their content, not their
    # paths, so the finished run is still current for them.
    root = tmp_path / "data"
    for part in ("images", "masks"):
        shutil.copytree(data_root / part, root / part)
    cfg = write_tiny_config(root)
    out = run_copy
    first = dice_rows(out)
    data = load_data(load_config(cfg, PIPELINE))
    train_ids, test_ids = (list(data.ids[data.indices(s)]) for s in ("train", "test"))
    assert train_ids == json.loads((out / "features" / "ids.json").read_text())
    test_id = test_ids[0]
    counts_after_first = dict(trained)

    # A test image changes: only the test Dice is recomputed.
    _brighten(root / "images" / f"{test_id}.png")
    lines = rerun(capsys, cfg, out)
    assert trained == counts_after_first
    assert [line.split(":")[1].strip() for line in lines] == [
        "evaluate random 100% labels seed 0",
        "evaluate ufc 100% labels seed 0",
    ]
    assert all("the test split changed" in line for line in lines)

    # A training image changes: everything is recomputed.
    _brighten(root / "images" / f"{train_ids[0]}.png")
    lines = rerun(capsys, cfg, out)
    assert {k: trained[k] - counts_after_first[k] for k in trained} == {
        "features": 1, "pretrain": 1, "finetune": 2,
    }  # fmt: skip
    stages = [line.split(":")[1].strip() for line in lines]
    assert stages == [
        "features",
        "cluster",
        "finetune random 100% labels seed 0",
        "evaluate random 100% labels seed 0",
        "pretrain ufc seed 0",
        "finetune ufc 100% labels seed 0",
        "evaluate ufc 100% labels seed 0",
    ]
    assert dice_rows(out) != first


def _brighten(png: Path) -> None:
    x = np.asarray(Image.open(png)).copy()
    x[:6, :6] = 255
    Image.fromarray(x).save(png)


def test_a_checkpoint_from_other_settings_is_not_resumed(run_copy, data_root, capsys):
    cell = run_copy / UFC_CELL
    for name in ("done.json", "result.json", "best.json", "best.pt"):
        (cell / name).unlink()
    # an interrupted cell of a run with finetune.lr=0.5 left its checkpoint and best-so-far
    state = {"model": {}, "optimizer": {}, "numpy_rng": {}, "torch_rng": torch.get_rng_state(),
             "history": [9.0, 9.0], "epoch": 1, "fingerprint": "another"}  # fmt: skip
    torch.save(state, cell / "checkpoint.pt")
    capsys.readouterr()
    assert main(["run", str(data_root / "cfg.yaml"), "--out", str(run_copy), *PIPELINE]) == 0
    err = capsys.readouterr().err
    assert f"{cell / 'checkpoint.pt'} was saved with other settings or inputs" in err
    done = json.loads((cell / "done.json").read_text())
    assert 9.0 not in done["loss"]  # trained from the start, not from the stale history


# --------------------------------------------------------------------------- damage


def _zero(path: Path) -> None:
    path.write_bytes(bytes(path.stat().st_size))


def _json_edit(path: Path, **changes) -> None:
    doc = json.loads(path.read_text())
    doc.update(changes)
    path.write_text(json.dumps(doc))


def _garbage(path: Path) -> None:
    path.write_bytes(b"\x00garbage{")


def _cut(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _drop_key(path: Path, key: str) -> None:
    doc = json.loads(path.read_text())
    del doc[key]
    path.write_text(json.dumps(doc))


def _bad_but_sealed(run: Path, cell: Path, cfg: Path) -> None:
    """result.json with dice 7.5 and a valid checksum: what a buggy writer would leave."""
    c = load_config(cfg, PIPELINE)
    data = load_data(c, cache_dir=run / "cache")
    doc = json.loads((run / cell / "result.json").read_text())
    body = {k: v for k, v in doc.items() if k != "record"}
    body["dice"] = 7.5
    deps = evaluate_deps(c, data, body["method"], body["label_fraction"], body["seed"])
    write_record(RunDir(run), str(cell / "result.json"), body, deps, [str(cell / "examples.npz")])


# (artefact, how it is damaged, the file named in the line, the reason given): one rerun
# each, marked slow; the default suite damages three at once (test_several_damaged_...)
DAMAGE = [
    ("result-dice-out-of-range", lambda r, c: _json_edit(r / UFC_CELL / "result.json", dice=7.5),
     UFC_CELL / "result.json", "'dice' is 7.5, outside [0, 1]"),
    ("result-dice-sealed-out-of-range", lambda r, c: _bad_but_sealed(r, UFC_CELL, c),
     UFC_CELL / "result.json", "'dice' is 7.5, outside [0, 1]"),
    ("result-dice-nan", lambda r, c: _json_edit(r / RANDOM_CELL / "result.json", dice=float("nan")),
     RANDOM_CELL / "result.json", "'dice' is NaN"),
    ("result-edited", lambda r, c: _json_edit(r / UFC_CELL / "result.json", dice=0.99),
     UFC_CELL / "result.json", "checksum"),
    ("result-garbage", lambda r, c: _garbage(r / UFC_CELL / "result.json"),
     UFC_CELL / "result.json", "not valid JSON"),
    ("examples-zeroed", lambda r, c: _zero(r / UFC_CELL / "examples.npz"),
     UFC_CELL / "result.json", "examples.npz"),
    ("finetune-done-missing-key", lambda r, c: _drop_key(r / UFC_CELL / "done.json", "val_dice"),
     UFC_CELL / "done.json", "key 'val_dice' is missing"),
    ("best-cut", lambda r, c: _cut(r / RANDOM_CELL / "best.pt"),
     RANDOM_CELL / "done.json", "best.pt"),
    ("cache-zeroed", lambda r, c: _zero(next((r / "cache").glob("*.images.npy"))),
     Path("cache"), "cache file"),
    ("pretrain-encoder-zeroed", lambda r, c: _zero(r / "pretrain/ufc/seed0/encoder.pt"),
     Path("pretrain/ufc/seed0/done.json"), "encoder.pt"),
    ("pretrain-done-garbage", lambda r, c: _garbage(r / "pretrain/ufc/seed0/done.json"),
     Path("pretrain/ufc/seed0/done.json"), "not valid JSON"),
    ("cluster-labels-edited", lambda r, c: np.save(r / "cluster/labels.npy",
     np.zeros(15, np.int64)), Path("cluster/summary.json"), "labels.npy"),
    ("cluster-summary-cut", lambda r, c: _cut(r / "cluster/summary.json"),
     Path("cluster/summary.json"), "not valid JSON"),
    ("features-embeddings-zeroed", lambda r, c: _zero(r / "features/embeddings.npy"),
     Path("features/done.json"), "embeddings.npy"),
    ("features-done-loss-nan", lambda r, c: _json_edit(r / "features/done.json",
     loss=[float("nan")]), Path("features/done.json"), "'loss' holds NaN"),
]  # fmt: skip


@pytest.mark.parametrize(
    "name,damage,named,reason",
    [pytest.param(*d, marks=pytest.mark.slow, id=d[0]) for d in DAMAGE],
)
def test_damaged_artefact_is_recomputed_and_named(
    name, damage, named, reason, finished_run, run_copy, data_root, capsys
):
    cfg = data_root / "cfg.yaml"
    damage(run_copy, cfg)
    capsys.readouterr()
    assert main(["run", str(cfg), "--out", str(run_copy), *PIPELINE]) == 0
    err = capsys.readouterr().err
    assert "Traceback" not in err
    line = next(line for line in err.splitlines() if " is damaged (" in line)
    assert str(run_copy / named) in line and reason in line, line
    assert dice_rows(run_copy) == dice_rows(finished_run)  # recomputed, bit for bit


def test_several_damaged_files_at_once(finished_run, run_copy, data_root, capsys):
    """A Dice of 7.5 in one cell, a zeroed prediction file in another, a zeroed cache file."""
    cfg = data_root / "cfg.yaml"
    picked = {d[0]: d for d in DAMAGE}
    for name in ("result-dice-out-of-range", "best-cut", "cache-zeroed"):
        picked[name][1](run_copy, cfg)
    capsys.readouterr()
    assert main(["run", str(cfg), "--out", str(run_copy), *PIPELINE]) == 0
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if " is damaged (" in line]
    assert len(lines) == 3 and "Traceback" not in err, err
    for name in ("result-dice-out-of-range", "best-cut", "cache-zeroed"):
        _, _, named, reason = picked[name]
        assert any(str(run_copy / named) in line and reason in line for line in lines), name
    assert dice_rows(run_copy) == dice_rows(finished_run)


def test_the_damage_table_covers_every_stage():
    assert len(DAMAGE) >= 15
    named = {str(d[2]).split("/")[0] for d in DAMAGE}
    assert named >= {"features", "cluster", "pretrain", "finetune", "cache"}


def test_a_pickled_callable_stops_the_command_before_anything_runs(run_copy, data_root, capsys):
    import os

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {run_copy / 'PWNED'}",))

    (run_copy / UFC_CELL / "done.json").unlink()  # so that the cell would be trained
    torch.save({"model": Payload()}, run_copy / UFC_CELL / "checkpoint.pt")
    before = (run_copy / "metrics.jsonl").read_text()
    files = sorted(p.name for p in run_copy.rglob("*"))
    assert main(["run", str(data_root / "cfg.yaml"), "--out", str(run_copy), *PIPELINE]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "could run code when loaded" in err[0] and "posix.system" in err[0]
    assert not (run_copy / "PWNED").exists()
    assert (run_copy / "metrics.jsonl").read_text() == before  # no stage ran
    assert sorted(p.name for p in run_copy.rglob("*")) == files


# --------------------------------------------------------------------------- --fresh


def test_fresh_reuses_nothing(run_copy, capsys):
    records = sorted(p.relative_to(run_copy) for p in run_copy.rglob("*.json"))
    meta = next((run_copy / "cache").glob("*.meta.json"))
    cached = meta.stat().st_mtime_ns
    assert main(["cluster", "--run", str(run_copy), "--fresh"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith("medcl: --fresh: removed 13 finished-stage records")
    assert "features record" in err[-1] and "is missing" in err[-1]
    left = sorted(p.relative_to(run_copy) for p in run_copy.rglob("*.json"))
    assert [str(p) for p in left if p not in records] == []
    assert not any(p.name in ("done.json", "result.json", "best.json", "summary.json")
                   for p in left)  # fmt: skip
    assert meta.stat().st_mtime_ns != cached  # the images were decoded again


@pytest.mark.slow
def test_fresh_recomputes_everything_with_the_same_result(
    finished_run, run_copy, data_root, trained, capsys
):
    capsys.readouterr()
    argv = ["run", str(data_root / "cfg.yaml"), "--out", str(run_copy), *PIPELINE, "--fresh"]
    assert main(argv) == 0
    assert trained == {"features": 1, "pretrain": 1, "finetune": 2}
    assert dice_rows(run_copy) == dice_rows(finished_run)
