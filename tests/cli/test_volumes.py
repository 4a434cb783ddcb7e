"""NIfTI volumes with MMWHS-style label values, through the whole pipeline."""

import json

import nibabel as nib
import numpy as np
import torch

from medcl.cli import main
from medcl.config import load_config
from medcl.rundir import RunDir
from medcl.stages._common import load_data
from medcl.stages.finetune import build_model
from tests.cli.conftest import TINY


def _volumes(tmp_path):
    rng = np.random.default_rng(0)
    (tmp_path / "img").mkdir()
    (tmp_path / "lab").mkdir()
    zz, yy, xx = np.mgrid[:8, :32, :32]
    for v in range(6):
        c = rng.integers(12, 20, size=2)
        lab = np.zeros((8, 32, 32), np.int16)
        lab[(yy - c[0]) ** 2 + (xx - c[1]) ** 2 < 36] = 205
        lab[(yy - c[0]) ** 2 + (xx - c[1]) ** 2 < 9] = 420
        img = (lab / 4 + rng.normal(0, 10, lab.shape)).astype(np.float32)
        # nibabel arrays are (x, y, z): slices along axis 2
        nib.save(
            nib.Nifti1Image(img.transpose(2, 1, 0), np.eye(4)),
            tmp_path / "img" / f"ct_train_10{v:02d}_image.nii.gz",
        )
        nib.save(
            nib.Nifti1Image(lab.transpose(2, 1, 0), np.eye(4)),
            tmp_path / "lab" / f"ct_train_10{v:02d}_image.nii.gz",
        )
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        f"data:\n  images: {tmp_path / 'img'}\n  masks: {tmp_path / 'lab'}\n"
        "  label_values: [0, 205, 420]\n  val_fraction: 0.2\n  test_fraction: 0.2\n"
    )
    return cfg


def test_nifti_volumes_end_to_end(tmp_path, capsys):
    cfg = _volumes(tmp_path)
    out = tmp_path / "run"
    argv = ["run", str(cfg), "--out", str(out), *TINY, "run.methods=[random,ufc]"]
    assert main(argv) == 0
    results = json.loads((out / "results.json").read_text())
    assert len(results["rows"]) == 4
    assert all(len(r["dice_per_class"]) == 2 for r in results["rows"])
    # 6 volumes of 8 slices: whole volumes per split, so train holds 4 x 8 = 32 slices.
    assert len(np.load(out / "features" / "embeddings.npy")) == 32
    ids = json.loads((out / "features" / "ids.json").read_text())
    assert len({i.rsplit(":", 1)[0] for i in ids}) == 4


def test_volume_methods_run_on_volumes(tmp_path):
    cfg = _volumes(tmp_path)
    out = tmp_path / "bench"
    argv = ["benchmark", str(cfg), "--out", str(out), *TINY, "run.methods=[glcl,pcl]",
            "run.label_fractions=[1.0]", "pretrain.glcl_local_weight=1.0"]  # fmt: skip
    assert main(argv) == 0
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert sorted(r["method"] for r in rows) == ["glcl", "pcl"]
    for m in ("glcl", "pcl"):
        loss = json.loads((out / "pretrain" / m / "seed0" / "done.json").read_text())["loss"]
        assert len(loss) == 2 and all(np.isfinite(loss))
    # GLCL's local loss pretrained a decoder, and fine-tuning starts from it (not its head)
    assert not (out / "pretrain" / "pcl" / "seed0" / "decoder.pt").exists()
    saved = torch.load(out / "pretrain" / "glcl" / "seed0" / "decoder.pt")
    run = RunDir(out)
    cfg_run = load_config(out / "config.yaml")
    data = load_data(cfg_run, cache_dir=out / "cache")
    for method, same in (("glcl", True), ("pcl", False)):
        dec = build_model(cfg_run, data, method, 0, run).decoder.state_dict()
        key = (
            "fuse.0.conv.weight"
            if "fuse.0.conv.weight" in dec
            else next(k for k in dec if k.startswith("fuse") and k.endswith("weight"))
        )
        assert torch.equal(dec[key], saved[key]) == same
        assert dec["head.weight"].shape[0] == 3  # background + 2 classes, not the saved head


def test_kfold_benchmark_pools_every_fold(tmp_path, capsys):
    cfg = _volumes(tmp_path)
    out = tmp_path / "kfold"
    argv = ["benchmark", str(cfg), "--out", str(out), *TINY, "run.methods=[random]",
            "run.label_fractions=[1.0]", "data.folds=3"]  # fmt: skip
    assert main(argv) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["folds"] == 3
    assert sorted(r["fold"] for r in results["rows"]) == [0, 1, 2]
    tested = []
    for f in range(3):
        assert f"fold: {f}" in (out / f"fold{f}" / "config.yaml").read_text()
        row = json.loads((out / f"fold{f}" / "results.json").read_text())["rows"][0]
        tested.append(row["dice"])
    assert "over 1 seeds x 3 folds" in capsys.readouterr().out
    mean = float(np.mean(tested)) * 100
    assert f"| random | {mean:.1f} " in (out / "table.md").read_text()
