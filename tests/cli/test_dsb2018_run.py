"""`medcl run` on a DSB2018 download (data.layout=dsb2018): appearance agreement and Dice by group."""

import json

from medcl.cli import main
from tests.cli.conftest import TINY
from tests.dsb_fixture import write_dsb_fixture


def test_run_on_the_kaggle_layout_judges_pseudo_classes_by_appearance(tmp_path, capsys):
    root = write_dsb_fixture(tmp_path / "dsb")
    out = tmp_path / "run"
    argv = ["run", "demo", "data.dataset=null", "data.layout=dsb2018", f"data.root={root}",
            "data.val_fraction=0.2", "data.test_fraction=0.25", "--out", str(out), *TINY,
            "finetune.epochs=null", "finetune.min_steps=null", "finetune.max_steps=null",
            "run.label_fractions=[1.0]", "cluster.k=3"]  # fmt: skip
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "NMI with appearance" in err
    agreement = json.loads((out / "cluster" / "agreement.json").read_text())["appearance"]
    n_train = len(json.loads((out / "features" / "ids.json").read_text()))
    assert sum(map(sum, agreement["contingency"])) == n_train
    assert 0 <= agreement["nmi"] <= 1 and len(agreement["clusters"]) == 3
    rows = json.loads((out / "results.json").read_text())["rows"]
    for r in rows:
        assert set(r["dice_by"]["appearance"]) <= {"fluorescence", "stained", "brightfield"}
    table = (out / "table.md").read_text()
    assert "NMI with the appearance groups" in table and "by appearance group" in table
    html = (out / "report.html").read_text()
    assert "Pseudo-classes against the appearance groups" in html
