"""Runs on images without masks: the unsupervised stages work, `run` stops before fine-tuning."""

import io
import json
import sys

import numpy as np
import pytest
import torch

from medcl import MedclError, load_encoder
from medcl.cli import main
from tests.cli.conftest import TINY, write_png_folder, write_tiny_config


@pytest.fixture(scope="module")
def unlabeled_run(tmp_path_factory):
    """`medcl run` on a folder of 24 PNGs and no masks: (run directory, exit code, stdout)."""
    root = write_png_folder(tmp_path_factory.mktemp("unlabeled"))
    cfg = root / "images_only.yaml"
    cfg.write_text(f"data:\n  images: {root / 'images'}\n")
    out = root / "run"
    capture = pytest.MonkeyPatch()  # capsys is per test; this fixture is per module
    buf = io.StringIO()
    capture.setattr(sys, "stdout", buf)
    try:
        code = main(["run", str(cfg), "--out", str(out), *TINY])
    finally:
        capture.undo()
    return out, code, buf.getvalue()


def test_run_without_masks_pretrains_and_stops_with_one_line(unlabeled_run):
    out, code, printed = unlabeled_run
    assert code == 0
    lines = [line for line in printed.splitlines() if line.strip()]
    assert len(lines) == 1
    assert "stopped before fine-tuning: No image has a mask" in lines[0]
    for method in ("simclr", "ufc"):
        assert (out / "pretrain" / method / "seed0" / "encoder.pt").is_file()
    assert not (out / "finetune").exists()
    # with no mask anywhere every image pretrains: nothing could score a val or test image
    assert len(np.load(out / "features" / "embeddings.npy")) == 24
    assert len(np.load(out / "cluster" / "labels.npy")) == 24
    stopped = json.loads((out / "stopped.json").read_text())
    assert stopped["reason"].startswith("No image has a mask")
    assert len(stopped["encoders"]) == 2
    report = (out / "report.md").read_text()
    assert "## Stopped before fine-tuning" in report and "No image has a mask" in report
    assert "## Elbow curve" in report and (out / "report.html").is_file()


def test_rerun_without_masks_recomputes_nothing(unlabeled_run, capsys):
    out, _, _ = unlabeled_run
    cfg = out.parent / "images_only.yaml"
    before = (out / "metrics.jsonl").read_text()
    assert main(["run", str(cfg), "--out", str(out), *TINY]) == 0
    assert (out / "metrics.jsonl").read_text() == before
    assert "stopped before fine-tuning" in capsys.readouterr().out


def test_run_with_masks_but_no_val_or_test_split_stops_before_fine_tuning(tmp_path, capsys):
    root = write_png_folder(tmp_path)
    cfg = write_tiny_config(root)
    out = tmp_path / "run"
    args = ["run", str(cfg), "--out", str(out), *TINY, "run.methods=[simclr]"]
    assert main([*args, "data.val_fraction=0", "data.test_fraction=0"]) == 0
    printed = capsys.readouterr().out
    assert "stopped before fine-tuning: The val split is empty (24 images in all)" in printed
    assert (out / "pretrain" / "simclr" / "seed0" / "encoder.pt").is_file()
    assert not (out / "results.json").exists()


def test_random_init_alone_without_masks_is_an_error(tmp_path, capsys):
    root = write_png_folder(tmp_path)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"data:\n  images: {root / 'images'}\n")
    code = main(["run", str(cfg), "--out", str(tmp_path / "r"), *TINY, "run.methods=[random]"])
    assert code == 2
    assert "No image has a mask" in capsys.readouterr().err


def test_stage_commands_without_masks(tmp_path, capsys):
    root = write_png_folder(tmp_path)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"data:\n  images: {root / 'images'}\n")
    run = str(tmp_path / "staged")
    assert main(["features", str(cfg), "--run", run, *TINY]) == 0
    assert main(["cluster", "--run", run]) == 0
    assert main(["pretrain", "--run", run, "method=ufc", "seed=0"]) == 0
    capsys.readouterr()
    assert main(["finetune", "--run", run, "method=ufc", "fraction=0.5", "seed=0"]) == 2
    assert "No image has a mask" in capsys.readouterr().err


def test_load_encoder_returns_the_pretrained_module(unlabeled_run):
    out, _, _ = unlabeled_run
    enc = load_encoder(out, "ufc", 0)
    assert isinstance(enc, torch.nn.Module) and not enc.training
    saved = torch.load(out / "pretrain" / "ufc" / "seed0" / "encoder.pt", weights_only=True)
    for key, value in enc.state_dict().items():
        assert torch.equal(value, saved[key]), key
    x = torch.rand(2, 1, 32, 32)
    assert enc(x).shape == (2, 16)
    assert [f.shape[1] for f in enc.forward_features(x)] == [4, 8, 16]
    other = load_encoder(out, "simclr", 0)
    assert not torch.equal(other(x), enc(x))


@pytest.mark.parametrize(
    ("method", "seed", "match"),
    [
        ("ufc", 3, "no finished pretraining of ufc with seed 3"),
        ("random", 0, "does not pretrain"),
        ("nope", 0, "Unknown method"),
    ],
)
def test_load_encoder_refuses_what_the_run_lacks(unlabeled_run, method, seed, match):
    with pytest.raises(MedclError, match=match):
        load_encoder(unlabeled_run[0], method, seed)


def _hooked(modules):
    outs = []
    for m in modules:
        m.register_forward_hook(lambda _m, _i, o: outs.append(o))
    return outs


@pytest.mark.parametrize("network", ["unet", "autoencoder"])
def test_exported_weights_give_the_same_features_in_monai(unlabeled_run, network, capsys):
    from monai.networks import nets

    out, _, _ = unlabeled_run
    target = out.parent / f"ufc_{network}.pt"
    args = ["export", "--run", str(out), "method=ufc", f"network={network}", "--out", str(target)]
    assert main(args) == 0
    assert str(target) in capsys.readouterr().out
    settings = json.loads(target.with_name(target.name + ".json").read_text())["settings"]
    weights = torch.load(target, weights_only=True)
    enc = load_encoder(out, "ufc", 0)
    if network == "unet":
        net = nets.UNet(**settings, out_channels=3).eval()
        blocks = [net.model[0], net.model[1].submodule[0], net.model[1].submodule[1].submodule]
        same = 2  # MONAI's bottom block runs at stride 1: the same weights, a finer map
    else:
        net = nets.AutoEncoder(**settings).eval()
        blocks = list(net.encode)
        same = 3
    missing = net.load_state_dict(weights, strict=False)
    assert not missing.unexpected_keys
    assert all(k in net.state_dict() for k in weights)
    outs = _hooked(blocks)
    x = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        mine = enc.forward_features(x)
        net(x)
    for level in range(same):
        torch.testing.assert_close(outs[level], mine[level], rtol=0, atol=1e-6)
    if network == "unet":
        assert outs[2].shape[-1] == 2 * mine[2].shape[-1]  # the bottom: documented, not equal
    else:
        torch.testing.assert_close(net.encode(x), mine[-1], rtol=0, atol=1e-6)


def test_export_refuses_an_unknown_network(unlabeled_run, capsys):
    assert main(["export", "--run", str(unlabeled_run[0]), "network=vit"]) == 2
    assert "network=vit is not one of unet, autoencoder" in capsys.readouterr().err
