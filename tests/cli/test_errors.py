"""Every user mistake gets one sentence on stderr and exit status 2, never a traceback."""

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from medcl.cli import main
from tests.cli.conftest import TINY


def _fails(capsys, argv, *needles):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("medcl: error: ") and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    for n in needles:
        assert n in err, err
    return err


def test_missing_path(capsys, tmp_path):
    _fails(capsys, ["run", str(tmp_path / "none.yaml")], "none.yaml", "does not exist")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"data:\n  images: {tmp_path / 'nowhere'}\n")
    _fails(capsys, ["run", str(cfg), "--out", str(tmp_path / "r"), *TINY], "nowhere")


def test_empty_folder(capsys, tmp_path):
    (tmp_path / "empty").mkdir()
    _fails(
        capsys,
        ["run", "--out", str(tmp_path / "r"), str(_cfg(tmp_path, tmp_path / "empty")), *TINY],
        "empty",
    )


def test_unreadable_image(capsys, png_folder, tiny_config):
    (png_folder / "images" / "case03.png").write_bytes(b"not a png at all")
    args = ["run", str(tiny_config), "--out", str(png_folder / "r"), *TINY]
    # skip, the default, leaves it out with one line: tests/data/test_unreadable.py
    _fails(capsys, [*args, "data.on_unreadable=error"], "case03.png")


def test_mask_size_differs(capsys, png_folder, tiny_config):
    Image.fromarray(np.zeros((20, 32), np.uint8)).save(png_folder / "masks" / "case05_seg.png")
    _fails(
        capsys, ["run", str(tiny_config), "--out", str(png_folder / "r"), *TINY], "case05_seg.png"
    )


def test_mask_values_outside_declared_list(capsys, png_folder, tiny_config):
    m = np.zeros((32, 32), np.uint8)
    m[0, 0] = 77
    Image.fromarray(m).save(png_folder / "masks" / "case07_seg.png")
    _fails(
        capsys,
        ["run", str(tiny_config), "--out", str(png_folder / "r"), *TINY],
        "case07_seg.png",
        "label_values",
    )


def test_unknown_config_key(capsys, tiny_config, tmp_path):
    _fails(capsys, ["run", str(tiny_config), "pretrain.epoch=3"], "pretrain.epoch", "epochs")
    bad = tmp_path / "bad.yaml"
    bad.write_text("pretrian:\n  epochs: 3\n")
    _fails(capsys, ["run", str(bad)], "pretrian")


@pytest.mark.parametrize("value", ["0", "1.5", "-0.1"])
def test_label_fraction_outside_unit_interval(capsys, tiny_config, value):
    _fails(capsys, ["run", str(tiny_config), f"run.label_fractions=[{value}]"], value, "(0, 1]")


def test_k_larger_than_number_of_images(capsys, png_folder, tiny_config):
    _fails(
        capsys,
        ["run", str(tiny_config), "--out", str(png_folder / "r"), *TINY, "cluster.k=500"],
        "cluster.k=500",
        "larger than the number of training images",
    )


def test_unknown_method_and_stage_without_config(capsys, tiny_config, tmp_path):
    _fails(capsys, ["run", str(tiny_config), "run.methods=[mocov9]"], "mocov9")
    _fails(capsys, ["cluster", "--run", str(tmp_path / "fresh")], "no config.yaml")


def test_real_command_exit_status(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "medcl.cli", "run", str(tmp_path / "x.yaml")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and "x.yaml" in proc.stderr


def _cfg(tmp_path, images):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"data:\n  images: {images}\n")
    return cfg


def test_packaged_config_by_name(capsys):
    from medcl.cli import _split_args

    config, overrides = _split_args(["demo", "run.seeds=[0]"])
    assert config is not None and config.endswith("configs/demo.yaml")
    assert overrides == ["run.seeds=[0]"]
    _fails(capsys, ["run", "no-such-config"], "no-such-config", "does not exist")
