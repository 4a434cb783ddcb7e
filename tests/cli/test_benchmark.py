"""`medcl benchmark`: the grid, the refusal of volume methods on 2-D data, and resuming."""

import json

import medcl.stages.finetune as finetune_stage
import medcl.stages.pipeline as pipeline
from medcl.cli import main
from tests.cli.conftest import TINY

GRID = [*TINY, "run.seeds=[0,1]", "run.label_fractions=[0.5,1.0]"]


def test_benchmark_on_2d_leaves_out_volume_methods(tiny_config, tmp_path, capsys):
    out = tmp_path / "b"
    argv = ["benchmark", str(tiny_config), "--out", str(out), *TINY, "run.label_fractions=[1.0]"]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "glcl, pcl left out: they need 3-D volumes" in err
    results = json.loads((out / "results.json").read_text())
    assert sorted({r["method"] for r in results["rows"]}) == [
        "byol", "ld", "moco", "random", "simclr", "ufc",
    ]  # fmt: skip
    table = (out / "table.md").read_text().splitlines()
    assert table[0] == "Test Dice % (mean (± std) over 1 seed):"
    assert table[2] == "| method | 100% labels |"
    assert any(line.startswith("| ufc |") for line in table)  # throughput and Dice rows
    assert "method minus random init" in "\n".join(table)
    rows = results["rows"]
    assert all(r["images_per_s"]["finetune"] > 0 for r in rows)
    assert all(r["images_per_s"]["pretrain"] > 0 for r in rows if r["method"] != "random")
    assert (out / "table.csv").read_text().startswith("method,1_mean,1_std\n")
    assert (out / "plots" / "dice.png").stat().st_size > 0
    assert (out / "report.html").exists()


def test_benchmark_refuses_a_named_volume_method_on_2d(tiny_config, tmp_path, capsys):
    argv = ["benchmark", str(tiny_config), "--out", str(tmp_path / "b"), *TINY,
            "run.methods=[random,pcl]"]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("medcl: error: Method 'pcl' needs slices of 3-D volumes")
    assert "run.methods" in err


def test_killed_benchmark_finishes_without_redoing_cells(tiny_config, tmp_path, monkeypatch):
    out = tmp_path / "b"
    argv = ["benchmark", str(tiny_config), "--out", str(out), *GRID,
            "run.methods=[random,simclr]"]  # fmt: skip
    real_finetune = pipeline.run_finetune
    calls = {"n": 0}

    def dying_finetune(*a, **k):
        calls["n"] += 1
        if calls["n"] == 4:  # the 4th of 8 cells: seed 0 done, seed 1 half done
            raise KeyboardInterrupt
        return real_finetune(*a, **k)

    monkeypatch.setattr(pipeline, "run_finetune", dying_finetune)
    assert main(argv) == 130
    finished = sorted(out.glob("finetune/*/*/*/done.json"))
    assert len(finished) == 3
    stamps = {p: p.stat().st_mtime_ns for p in finished}
    pre = out / "pretrain" / "simclr" / "seed0" / "done.json"
    pre_stamp = pre.stat().st_mtime_ns

    trained = {"n": 0}
    real_loop = finetune_stage.train_loop

    def counting_loop(*a, **k):
        trained["n"] += 1
        return real_loop(*a, **k)

    monkeypatch.setattr(pipeline, "run_finetune", real_finetune)
    monkeypatch.setattr(finetune_stage, "train_loop", counting_loop)
    assert main(argv) == 0
    assert trained["n"] == 5  # only the cells that were not finished
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items())
    assert pre.stat().st_mtime_ns == pre_stamp
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert len(rows) == 8
    assert "| simclr |" in (out / "table.md").read_text()


def test_seeds_per_method_runs_fewer_seeds_for_the_named_methods(tiny_config, tmp_path, capsys):
    out = tmp_path / "b"
    argv = ["benchmark", str(tiny_config), "--out", str(out), *TINY, "run.label_fractions=[1.0]",
            "run.methods=[random,simclr]", "run.seeds=[0,1]", "run.seeds_per_method={simclr: [1]}"]  # fmt: skip
    assert main(argv) == 0
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert sorted((r["method"], r["seed"]) for r in rows) == [
        ("random", 0), ("random", 1), ("simclr", 1),
    ]  # fmt: skip
    assert not (out / "pretrain" / "simclr" / "seed0").exists()
    assert "1/2 seeds" in capsys.readouterr().out
    bad = [*argv[:-1], "run.seeds_per_method={moco: [0]}"]
    assert main(bad) == 2
    assert (
        "run.seeds_per_method names 'moco', which is not in run.methods" in capsys.readouterr().err
    )
