"""data.on_unreadable: files that cannot be read are left out with one line, or stop the run."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from medcl.config import load_config
from medcl.data._folder import load_folder
from medcl.errors import MedclError


def _folder(root, n_good=3, broken=("bad.png", "cut.png")):
    images = root / "images"
    images.mkdir(parents=True)
    for i in range(n_good):
        Image.fromarray(np.full((8, 8), 40 * i, np.uint8)).save(images / f"ok{i}.png")
    for name in broken:
        if name.startswith("cut"):  # a real PNG cut short
            Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8)).save(images / name)
            data = (images / name).read_bytes()
            (images / name).write_bytes(data[: len(data) // 2])
        else:
            (images / name).write_text("not a PNG at all")
    return images


def test_skip_is_the_default_and_says_so_in_one_line(tmp_path, capsys):
    images = _folder(tmp_path)
    ds = load_folder(images, image_size=(8, 8))
    assert sorted(ds.ids) == ["ok0", "ok1", "ok2"]
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("medcl:")]
    assert len(err) == 1
    assert "left out 2 of 5 files" in err[0]
    assert "bad.png (" in err[0] and "cut.png (" in err[0]
    assert "data.on_unreadable=error" in err[0]
    assert [name for name, _ in ds.unreadable] == ["bad.png", "cut.png"]


def test_skip_says_it_again_when_the_set_comes_from_the_cache(tmp_path, capsys):
    images = _folder(tmp_path)
    first = load_folder(images, image_size=(8, 8), cache_dir=tmp_path / "cache")
    capsys.readouterr()
    again = load_folder(images, image_size=(8, 8), cache_dir=tmp_path / "cache")
    assert list(again.ids) == list(first.ids)
    assert "left out 2 of 5 files" in capsys.readouterr().err
    assert again.unreadable == first.unreadable


def test_error_lists_every_unreadable_file(tmp_path):
    images = _folder(tmp_path, broken=("bad1.png", "bad2.png", "bad3.png", "bad4.png", "cut.png"))
    with pytest.raises(MedclError) as err:
        load_folder(images, image_size=(8, 8), on_unreadable="error")
    text = str(err.value)
    assert text.startswith("5 of the 8 files in")
    for name in ("bad1.png", "bad2.png", "bad3.png", "bad4.png", "cut.png"):
        assert f"{name} (" in text
    assert "data.on_unreadable=skip" in text and "\n" not in text


def test_skip_shows_the_first_three_and_counts_the_rest(tmp_path, capsys):
    images = _folder(tmp_path, broken=("b1.png", "b2.png", "b3.png", "b4.png", "b5.png"))
    load_folder(images, image_size=(8, 8))
    err = capsys.readouterr().err
    assert "b3.png (" in err and "b4.png" not in err and "and 2 more" in err


def test_nothing_readable_is_an_error_even_with_skip(tmp_path):
    images = _folder(tmp_path, n_good=0)
    with pytest.raises(MedclError, match="None of the 2 files in .* can be read"):
        load_folder(images, image_size=(8, 8))


def test_an_unreadable_mask_leaves_its_image_out_too(tmp_path, capsys):
    images = _folder(tmp_path, broken=())
    masks = tmp_path / "masks"
    masks.mkdir()
    for i in range(3):
        Image.fromarray(np.eye(8, dtype=np.uint8)).save(masks / f"ok{i}.png")
    (masks / "ok1.png").write_text("broken")
    ds = load_folder(images, masks=masks, image_size=(8, 8))
    assert sorted(ds.ids) == ["ok0", "ok2"] and ds.has_mask.all()
    assert "ok1.png (" in capsys.readouterr().err


def test_config_key_is_checked():
    assert load_config(None, ["data.on_unreadable=error"]).data.on_unreadable == "error"
    with pytest.raises(MedclError, match="data.on_unreadable"):
        load_config(None, ["data.on_unreadable=ignore"])


def test_cli_error_mode_exits_2_with_one_sentence(tmp_path, capsys):
    from medcl.cli import main
    from tests.cli.conftest import TINY, write_png_folder

    root = write_png_folder(tmp_path / "d")
    (root / "images" / "zz_broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"data:\n  images: {root / 'images'}\n")
    run = str(tmp_path / "r")
    args = ["features", str(cfg), "--run", run, *TINY]
    assert main([*args, "data.on_unreadable=error"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "1 of the 25 files" in err[0] and "zz_broken.png (" in err[0]
    assert main(args) == 0
    out = capsys.readouterr()
    assert "left out 1 of 25 files" in out.err
    assert "Embeddings of 24 images" in out.out
