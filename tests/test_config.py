import pytest

from medcl.config import load_config, parse_overrides
from medcl.errors import MedclError
from medcl.rundir import RunDir


def test_overrides_parse_yaml_values():
    tree = parse_overrides(
        ["run.seeds=[0,1]", "pretrain.lr=3e-4", "data.dataset=brain-aal", "cluster.k=null"]
    )
    assert tree == {
        "run": {"seeds": [0, 1]},
        "pretrain": {"lr": 3e-4},
        "data": {"dataset": "brain-aal"},
        "cluster": {"k": None},
    }


def test_file_then_overrides(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("pretrain:\n  epochs: 7\n  lr: 0.01\n")
    cfg = load_config(f, ["pretrain.epochs=9"])
    assert (cfg.pretrain.epochs, cfg.pretrain.lr) == (9, 0.01)


@pytest.mark.parametrize(
    "override,needle",
    [
        ("pretrain.epoch=3", "Unknown config key 'pretrain.epoch'"),
        ("pretrain.temperature=0", "pretrain.temperature"),
        ("run.label_fractions=[0.05,2]", "outside (0, 1]"),
        ("cluster.k=1", "cluster.k"),
        ("seeds", "not a config file or a key=value"),
    ],
)
def test_bad_overrides(override, needle):
    with pytest.raises(MedclError) as e:
        load_config(None, [override])
    assert needle in str(e.value)


def test_bad_yaml(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("data: [unclosed\n")
    with pytest.raises(MedclError, match="not valid YAML"):
        load_config(f)


def test_rundir_atomic_json_and_metrics(tmp_path):
    run = RunDir(tmp_path / "r")
    run.write_json("a/b.json", {"x": 1})
    assert run.read_json("a/b.json") == {"x": 1}
    assert not [p for p in (tmp_path / "r" / "a").iterdir() if p.name.endswith(".tmp")]
    run.log(stage="s", loss=1.5)
    with open(run.file("metrics.jsonl"), "a") as fh:
        fh.write('{"cut": ')  # a line cut short by a kill is skipped, not fatal
    assert [m["loss"] for m in run.read_metrics()] == [1.5]
