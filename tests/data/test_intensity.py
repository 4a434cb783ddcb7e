"""data.intensity: 16-bit and float images by their own range, windows, per data set, warnings."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from medcl.config import load_config
from medcl.data._folder import load_folder
from medcl.data._intensity import Intensity
from medcl.errors import MedclError


def _tiff(path, array):
    import tifffile

    path.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(path, array)


def _png16(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array.astype(np.uint16)).save(path)


DIM = np.linspace(0, 235, 64).reshape(8, 8).astype(np.uint16)  # 16-bit, values 0-235


def _expected(x, lo_p=0.5, hi_p=99.5):
    lo, hi = np.percentile(x.astype(np.float64), [lo_p, hi_p])
    return np.clip((x - lo) / (hi - lo), 0, 1)


def test_dim_16_bit_png_is_scaled_by_its_own_range_and_warned_about(tmp_path, capsys):
    _png16(tmp_path / "im" / "tile.png", DIM)
    ds = load_folder(tmp_path / "im", image_size=(8, 8))
    np.testing.assert_allclose(ds.images[0, 0], _expected(DIM), atol=1e-6)
    assert ds.images.max() == pytest.approx(1.0)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("medcl: warning: 1 of 1 images use under 1%")
    assert "'tile.png': values 0-235 of uint16's 0-65535" in err[0]
    assert "scaled by their own values (data.intensity.scale=auto)" in err[0]


def test_scale_type_divides_by_65535_and_the_warning_says_what_to_do(tmp_path, capsys):
    _png16(tmp_path / "im" / "tile.png", DIM)
    ds = load_folder(tmp_path / "im", image_size=(8, 8), intensity=Intensity(scale="type"))
    np.testing.assert_allclose(ds.images[0, 0], DIM / 65535, atol=1e-7)
    err = capsys.readouterr().err
    assert "nearly uniform; set data.intensity.scale=percentile" in err


def test_the_warning_comes_once_for_many_images_and_not_for_flat_ones(tmp_path, capsys):
    for i in range(3):
        _png16(tmp_path / "im" / f"t{i}.png", DIM + i)
    _png16(tmp_path / "im" / "flat.png", np.full((8, 8), 7))
    load_folder(tmp_path / "im", image_size=(8, 8))
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "3 of 4 images use under 1%" in err[0]


def test_8_bit_images_keep_their_type_scaling(tmp_path):
    x = np.array([[0, 51], [204, 255]], np.uint8)
    (tmp_path / "im").mkdir()
    Image.fromarray(x).save(tmp_path / "im" / "a.png")
    ds = load_folder(tmp_path / "im", image_size=(2, 2))
    np.testing.assert_allclose(ds.images[0, 0], x / 255, atol=1e-7)
    ds = load_folder(tmp_path / "im", image_size=(2, 2), intensity=Intensity(scale="percentile"))
    np.testing.assert_allclose(ds.images[0, 0], _expected(x), atol=1e-6)


def test_16_bit_tiff_and_float_tiff(tmp_path):
    pytest.importorskip("tifffile")
    rng = np.random.default_rng(0)
    u16 = rng.integers(1000, 1500, (8, 8)).astype(np.uint16)
    f32 = rng.normal(0.0, 1e-3, (8, 8)).astype(np.float32)
    _tiff(tmp_path / "im" / "a.tif", u16)
    _tiff(tmp_path / "im" / "b.tif", f32)
    ds = load_folder(tmp_path / "im", image_size=(8, 8))
    np.testing.assert_allclose(ds.images[0, 0], _expected(u16), atol=1e-6)
    np.testing.assert_allclose(ds.images[1, 0], _expected(f32), atol=1e-5)
    typed = load_folder(tmp_path / "im", image_size=(8, 8), intensity=Intensity(scale="type"))
    np.testing.assert_allclose(typed.images[0, 0], u16 / 65535, atol=1e-7)
    lo, hi = f32.min(), f32.max()  # floats have no type range: min-max
    np.testing.assert_allclose(typed.images[1, 0], (f32 - lo) / (hi - lo), atol=1e-5)


def test_window_in_stored_units(tmp_path):
    pytest.importorskip("tifffile")
    ct = np.array([[-2000, -1000], [-300, 400], [1000, 3000]], np.int16)
    _tiff(tmp_path / "im" / "ct.tif", ct)
    spec = Intensity(scale="window", window=(-1000, 400))
    ds = load_folder(tmp_path / "im", image_size=(3, 2), intensity=spec)
    np.testing.assert_allclose(ds.images[0, 0], np.clip((ct + 1000) / 1400, 0, 1), atol=1e-6)


def test_dicom_window_applies_the_rescale_first(tmp_path):
    pytest.importorskip("pydicom")
    from pydicom.dataset import Dataset

    stored = np.array([[0, 24], [1024, 1424]], np.uint16)  # HU = stored - 1024
    ds = Dataset()
    ds.Rows, ds.Columns, ds.SamplesPerPixel = 2, 2, 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit, ds.PixelRepresentation = 15, 0
    ds.RescaleSlope, ds.RescaleIntercept = "1", "-1024"
    ds.PixelData = stored.tobytes()
    (tmp_path / "im").mkdir()
    ds.save_as(tmp_path / "im" / "ct.dcm", implicit_vr=True, little_endian=True)
    spec = Intensity(scale="window", window=(-1000, 400))
    out = load_folder(tmp_path / "im", image_size=(2, 2), intensity=spec)
    hu = stored.astype(np.float64) - 1024
    np.testing.assert_allclose(out.images[0, 0], np.clip((hu + 1000) / 1400, 0, 1), atol=1e-6)


def test_per_dataset_keeps_brightness_differences(tmp_path):
    dim = np.linspace(100, 200, 64).reshape(8, 8)
    bright = dim * 10
    _png16(tmp_path / "im" / "a.png", dim)
    _png16(tmp_path / "im" / "b.png", bright)
    each = load_folder(tmp_path / "im", image_size=(8, 8))
    assert each.images[0].max() == pytest.approx(1.0) and each.images[1].max() == pytest.approx(1)
    spec = Intensity(per="dataset")
    together = load_folder(tmp_path / "im", image_size=(8, 8), intensity=spec)
    both = np.concatenate([dim.astype(np.uint16).ravel(), bright.astype(np.uint16).ravel()])
    lo, hi = np.percentile(both.astype(np.float32), [0.5, 99.5])
    want = np.clip((dim.astype(np.uint16) - lo) / (hi - lo), 0, 1)
    np.testing.assert_allclose(together.images[0, 0], want, atol=1e-5)
    assert together.images[0].max() < 0.2 < together.images[1].max()


def test_intensity_is_part_of_the_cache_key_and_the_fingerprint(tmp_path):
    from medcl.data import split_fingerprint

    _png16(tmp_path / "im" / "tile.png", DIM)
    cache = tmp_path / "cache"
    auto = load_folder(tmp_path / "im", image_size=(8, 8), cache_dir=cache)
    typed = load_folder(
        tmp_path / "im", image_size=(8, 8), cache_dir=cache, intensity=Intensity(scale="type")
    )
    assert not np.allclose(auto.images, typed.images)
    auto.split[:] = typed.split[:] = "train"
    assert split_fingerprint(auto, "train") != split_fingerprint(typed, "train")


def test_config_keys():
    cfg = load_config(None, ["data.intensity.window=[-1000,400]"])
    assert cfg.data.intensity.scale == "window"  # a window given is the one used
    assert load_config(None, []).data.intensity.scale == "auto"
    # a window scale without a window: each DICOM file's own (tests/data/test_dicom.py)
    assert load_config(None, ["data.intensity.scale=window"]).data.intensity.window is None
    bad = [
        (["data.intensity.percentiles=[99,1]"], "0 <= low < high <= 100"),
        (["data.intensity.window=[5,5]"], "low < high"),
        (["data.intensity.scale=type", "data.intensity.window=[0,9]"], "unset one of them"),
        (["data.intensity.per=volume"], "data.intensity.per"),
    ]
    for overrides, match in bad:
        with pytest.raises(MedclError, match=match):
            load_config(None, overrides)
