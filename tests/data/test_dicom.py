"""DICOM as users have it: LUTs, colour, multi-frame, series, non-images, compressed files.

Every file is written with pydicom in ``tmp_path``; expected values are computed by hand or
with pydicom's own reference functions.
"""

from __future__ import annotations

import numpy as np
import pytest

from medcl.data import Intensity
from medcl.data._folder import load_folder
from medcl.data._readers import apply_window, read_image, read_mask, read_volume
from medcl.errors import MedclError, NotAnImage, UnreadableFile

pydicom = pytest.importorskip("pydicom")
from pydicom.dataset import Dataset, FileMetaDataset  # noqa: E402
from pydicom.uid import (  # noqa: E402
    CTImageStorage,
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLSLossless,
    RLELossless,
    SecondaryCaptureImageStorage,
    generate_uid,
)


def dicom(pixels, photometric="MONOCHROME2", frames=1, **attrs):
    """A valid DICOM dataset holding ``pixels``: ``(H, W)``, ``(F, H, W)`` or ``(..., 3)``."""
    pixels = np.asarray(pixels)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = attrs.pop("sop_class", SecondaryCaptureImageStorage)
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "OT"
    samples = 3 if photometric in ("RGB", "YBR_FULL", "YBR_FULL_422") else 1
    shape = pixels.shape[1:] if frames > 1 else pixels.shape
    ds.Rows, ds.Columns = shape[:2]
    if frames > 1:
        ds.NumberOfFrames = frames
    ds.SamplesPerPixel = samples
    if samples == 3:
        ds.PlanarConfiguration = 0
    ds.PhotometricInterpretation = photometric
    bits = pixels.dtype.itemsize * 8
    ds.BitsAllocated = ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = 1 if pixels.dtype.kind == "i" else 0
    for key, value in attrs.items():
        setattr(ds, key, value)
    ds.PixelData = np.ascontiguousarray(pixels).tobytes()
    return ds


def save(ds, path):
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


# ----------------------------------------------------------------------------- LUTs


def test_ct_rescale_gives_hounsfield_units(tmp_path):
    stored = np.array([[0, 24], [1024, 1424]], np.uint16)
    path = save(dicom(stored, RescaleSlope="1", RescaleIntercept="-1024"), tmp_path / "ct.dcm")
    values, meta = read_volume(path)  # min-max of the HU
    hu = stored.astype(np.float64) - 1024
    np.testing.assert_allclose(values[0, 0], (hu - hu.min()) / np.ptp(hu), atol=1e-6)
    spec = Intensity(scale="window", window=(-1000, 400))
    out = load_folder(path, image_size=(2, 2), intensity=spec)
    np.testing.assert_allclose(out.images[0, 0], np.clip((hu + 1000) / 1400, 0, 1), atol=1e-6)


def test_modality_lut_sequence_is_applied(tmp_path):
    stored = np.array([[0, 1], [2, 3]], np.uint16)
    ds = dicom(stored)
    item = Dataset()
    item.LUTDescriptor = [4, 0, 16]
    item.ModalityLUTType = "HU"
    item["LUTData"] = pydicom.DataElement(0x00283006, "US", [10, 20, 40, 80])
    ds.ModalityLUTSequence = [item]
    path = save(ds, tmp_path / "lut.dcm")
    out = load_folder(path, image_size=(2, 2), intensity=Intensity(scale="window", window=(0, 80)))
    np.testing.assert_allclose(out.images[0, 0], [[10 / 80, 20 / 80], [40 / 80, 1.0]], atol=1e-6)


@pytest.mark.parametrize("function", ["LINEAR", "LINEAR_EXACT", "SIGMOID"])
def test_window_matches_pydicom(function):
    from pydicom.pixels import apply_voi_lut

    stored = np.arange(0, 4096, 7, dtype=np.uint16).reshape(1, -1)
    ds = dicom(stored, WindowCenter="1040", WindowWidth="400", VOILUTFunction=function)
    want = apply_voi_lut(stored.astype(np.float64), ds)  # in [0, 2**16 - 1]
    got = apply_window(stored, {"center": 1040.0, "width": 400.0, "function": function})
    np.testing.assert_allclose(got, want / 65535.0, atol=1e-5)


def test_scale_window_without_window_uses_the_files_own(tmp_path, capsys):
    stored = np.array([[0, 1000], [1024, 2048]], np.uint16)  # HU -1024, -24, 0, 1024
    ds = dicom(stored, RescaleSlope="1", RescaleIntercept="-1024")
    ds.WindowCenter, ds.WindowWidth = ["40", "400"], ["400", "2000"]  # the first one counts
    save(ds, tmp_path / "im" / "a.dcm")
    save(dicom(stored, WindowCenter="0", WindowWidth="2049"), tmp_path / "im" / "b.dcm")
    out = load_folder(tmp_path / "im", image_size=(2, 2), intensity=Intensity(scale="window"))
    hu = stored.astype(np.float64) - 1024
    linear = np.clip((hu - 39.5) / 399 + 0.5, 0, 1)
    np.testing.assert_allclose(out.images[0, 0], linear, atol=1e-6)
    np.testing.assert_allclose(out.images[1, 0], np.clip((stored + 0.5) / 2048 + 0.5, 0, 1))
    # the default does not use the window: percentiles of the HU, unchanged
    auto = load_folder(tmp_path / "im", image_size=(2, 2))
    assert auto.images[0, 0].min() == 0.0 and auto.images[0, 0].max() == 1.0


def test_voi_lut_sequence(tmp_path):
    stored = np.array([[0, 1], [2, 3]], np.uint16)
    ds = dicom(stored)
    item = Dataset()
    item.LUTDescriptor = [4, 0, 8]
    item["LUTData"] = pydicom.DataElement(0x00283006, "US", [0, 255, 51, 102])
    ds.VOILUTSequence = [item]
    path = save(ds, tmp_path / "voi.dcm")
    out = load_folder(path, image_size=(2, 2), intensity=Intensity(scale="window"))
    np.testing.assert_allclose(out.images[0, 0], [[0, 1], [0.2, 0.4]], atol=1e-6)


def test_a_file_without_a_window_asks_for_one(tmp_path):
    path = save(dicom(np.eye(2, dtype=np.uint16)), tmp_path / "plain.dcm")
    with pytest.raises(MedclError, match=r"plain.dcm' has no window of its own.*intensity.window"):
        load_folder(path, image_size=(2, 2), intensity=Intensity(scale="window"))


def test_monochrome1_is_inverted_after_the_window(tmp_path):
    stored = np.array([[0, 100], [200, 400]], np.uint16)
    ds = dicom(stored, "MONOCHROME1", WindowCenter="200.5", WindowWidth="401")
    path = save(ds, tmp_path / "cr.dcm")
    out = load_folder(path, image_size=(2, 2), intensity=Intensity(scale="window"))
    np.testing.assert_allclose(out.images[0, 0], 1 - stored / 400, atol=1e-6)
    image, _ = read_image(path)  # min-max, then inverted
    np.testing.assert_allclose(image[0], 1 - stored / 400, atol=1e-6)


# ----------------------------------------------------------------------------- colour


def test_palette_color_is_looked_up_to_rgb(tmp_path):
    ds = dicom(np.array([[0, 1], [2, 3]], np.uint8), "PALETTE COLOR")
    red = np.array([0, 255, 0, 51], np.uint16) * 257  # 16-bit entries
    green = np.array([0, 0, 255, 102], np.uint16) * 257
    blue = np.array([0, 0, 0, 204], np.uint16) * 257
    for tag, name, lut in ((0x1201, "Red", red), (0x1202, "Green", green), (0x1203, "Blue", blue)):
        setattr(ds, f"{name}PaletteColorLookupTableDescriptor", [4, 0, 16])
        ds[0x00280000 | tag] = pydicom.DataElement(0x00280000 | tag, "OW", lut.tobytes())
    path = save(ds, tmp_path / "pal.dcm")
    out = load_folder(path, image_size=(2, 2))
    assert out.channels == 3
    want = np.stack([red, green, blue]).reshape(3, 2, 2) / 65535
    np.testing.assert_allclose(out.images[0], want, atol=1e-6)
    np.testing.assert_array_equal(read_mask(path), [[0, 1], [2, 3]])  # masks: the indices


@pytest.mark.parametrize("space", ["YBR_FULL", "YBR_FULL_422"])
def test_ybr_becomes_rgb(tmp_path, space):
    from pydicom.pixels import convert_color_space

    rgb = np.zeros((2, 4, 3), np.uint8)
    rgb[:, :2] = [200, 30, 30]  # pairs of columns share chroma, as 4:2:2 needs
    rgb[:, 2:] = [20, 40, 220]
    ybr = convert_color_space(rgb, "RGB", "YBR_FULL")
    pixels = ybr
    if space == "YBR_FULL_422":  # stored as Y0 Y1 Cb Cr for every two pixels of a row
        pairs = ybr.reshape(2, 2, 2, 3)  # row, pair, pixel, channel
        pixels = np.concatenate([pairs[..., 0], pairs[:, :, 0, 1:]], axis=-1)
    ds = dicom(ybr, space)
    ds.PixelData = np.ascontiguousarray(pixels).tobytes()
    path = save(ds, tmp_path / "ybr.dcm")
    out = load_folder(path, image_size=(2, 4))
    np.testing.assert_allclose(out.images[0], np.moveaxis(rgb, -1, 0) / 255, atol=3 / 255)


# ----------------------------------------------------------------------------- structure


def test_multi_frame_is_one_volume(tmp_path):
    frames = np.stack([np.full((3, 3), 10 * f, np.uint16) for f in range(5)])
    frames[:, 0, 0] = 100
    save(dicom(frames, frames=5), tmp_path / "im" / "cine.dcm")
    save(dicom(np.eye(3, dtype=np.uint16)), tmp_path / "im" / "single.dcm")
    out = load_folder(tmp_path / "im", image_size=(3, 3))
    assert len(out) == 6
    assert list(out.volume_ids) == ["cine"] * 5 + [""]
    assert list(out.ids[:5]) == [f"cine:{i}" for i in range(5)]
    np.testing.assert_allclose(out.positions[:5], [0, 0.25, 0.5, 0.75, 1])
    # one volume shares its scaling: frame f holds 10 f of the volume's 0..100
    np.testing.assert_allclose(out.images[:5, 0, 1, 1], [0.0, 0.1, 0.2, 0.3, 0.4], atol=0.02)


def test_enhanced_multi_frame_rescale_per_frame(tmp_path):
    frames = np.full((2, 2, 2), 100, np.uint16)
    ds = dicom(frames, frames=2, sop_class=CTImageStorage)
    per_frame = []
    for intercept in ("0", "-100"):
        transform = Dataset()
        transform.RescaleSlope, transform.RescaleIntercept = "1", intercept
        item = Dataset()
        item.PixelValueTransformationSequence = [transform]
        per_frame.append(item)
    ds.PerFrameFunctionalGroupsSequence = per_frame
    path = save(ds, tmp_path / "enh.dcm")
    out = load_folder(path, image_size=(2, 2), intensity=Intensity(scale="window", window=(0, 100)))
    np.testing.assert_allclose(out.images[:, 0, 0, 0], [1.0, 0.0])


def test_multi_frame_window_per_frame_and_shared(tmp_path):
    frames = np.stack([np.array([[0, 100], [200, 300]], np.uint16)] * 2)
    ds = dicom(frames, frames=2, WindowCenter="150.5", WindowWidth="301")  # 0..300
    path = save(ds, tmp_path / "shared.dcm")
    out = load_folder(path, image_size=(2, 2), intensity=Intensity(scale="window"))
    np.testing.assert_allclose(out.images[:, 0], frames / 300, atol=1e-6)
    per_frame = []
    for center, width in (("150.5", "301"), ("50.5", "101")):  # 0..300, then 0..100
        voi = Dataset()
        voi.WindowCenter, voi.WindowWidth = center, width
        item = Dataset()
        item.FrameVOILUTSequence = [voi]
        per_frame.append(item)
    ds.PerFrameFunctionalGroupsSequence = per_frame
    path = save(ds, tmp_path / "per_frame.dcm")
    out = load_folder(path, image_size=(2, 2), intensity=Intensity(scale="window"))
    np.testing.assert_allclose(out.images[0, 0], frames[0] / 300, atol=1e-6)
    np.testing.assert_allclose(out.images[1, 0], np.clip(frames[1] / 100, 0, 1), atol=1e-6)


def series_file(path, value, position, number, uid, normal_axis=2):
    ds = dicom(np.full((2, 2), value, np.uint16))
    ds.SeriesInstanceUID = uid
    ds.InstanceNumber = number
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0] if normal_axis == 2 else [0, 1, 0, 0, 0, 1]
    where = [0.0, 0.0, 0.0]
    where[normal_axis] = position
    ds.ImagePositionPatient = where
    return save(ds, path)


def test_series_is_stacked_in_patient_order(tmp_path):
    uid = generate_uid()
    # file names and instance numbers disagree with the positions: positions decide
    series_file(tmp_path / "im" / "a.dcm", 300, 30.0, 1, uid)
    series_file(tmp_path / "im" / "b.dcm", 100, -10.0, 3, uid)
    series_file(tmp_path / "im" / "c.dcm", 200, 10.0, 2, uid)
    save(dicom(np.eye(2, dtype=np.uint16)), tmp_path / "im" / "d.dcm")
    spec = Intensity(scale="window", window=(0, 300))
    out = load_folder(tmp_path / "im", image_size=(2, 2), intensity=spec)
    assert list(out.ids) == ["b", "c", "a", "d"]
    assert list(out.volume_ids) == [uid] * 3 + [""]
    np.testing.assert_allclose(out.positions[:3], [0, 0.5, 1])
    np.testing.assert_allclose(out.images[:3, 0, 0, 0], [1 / 3, 2 / 3, 1], atol=1e-6)
    assert np.isnan(out.positions[3])


def test_series_along_another_normal_and_by_instance_number(tmp_path):
    uid = generate_uid()
    series_file(tmp_path / "s" / "x1.dcm", 1, 5.0, 9, uid, normal_axis=0)
    series_file(tmp_path / "s" / "x2.dcm", 2, -5.0, 1, uid, normal_axis=0)
    out = load_folder(tmp_path / "s", image_size=(2, 2))
    assert list(out.ids) == ["x2", "x1"]
    for path in (tmp_path / "s").iterdir():  # no positions: instance numbers decide
        ds = pydicom.dcmread(path)
        del ds.ImagePositionPatient
        ds.save_as(path)
    out = load_folder(tmp_path / "s", image_size=(2, 2))
    assert list(out.ids) == ["x2", "x1"]


def test_a_series_stays_in_one_split(tmp_path):
    from medcl.data._splits import assign_splits

    uids = [generate_uid() for _ in range(4)]
    for s, uid in enumerate(uids):
        for k in range(3):
            series_file(tmp_path / "im" / f"s{s}_{k}.dcm", 10 * k + s, float(k), k, uid)
    ds = load_folder(tmp_path / "im", image_size=(2, 2))
    ds = assign_splits(ds, val_fraction=0.25, test_fraction=0.25, seed=0)
    for uid in uids:
        assert len(set(ds.split[ds.volume_ids == uid])) == 1


def test_series_slices_keep_their_masks(tmp_path):
    from PIL import Image

    uid = generate_uid()
    series_file(tmp_path / "im" / "a.dcm", 1, 2.0, 1, uid)
    series_file(tmp_path / "im" / "b.dcm", 2, 1.0, 2, uid)
    (tmp_path / "masks").mkdir()
    Image.fromarray(np.array([[0, 1], [1, 1]], np.uint8)).save(tmp_path / "masks" / "a.png")
    out = load_folder(tmp_path / "im", masks=tmp_path / "masks", image_size=(2, 2))
    assert list(out.ids) == ["b", "a"] and list(out.has_mask) == [False, True]
    np.testing.assert_array_equal(out.masks[1], [[0, 1], [1, 1]])


def test_non_images_are_skipped_with_one_note(tmp_path, capsys):
    save(dicom(np.array([[0, 9], [200, 255]], np.uint8)), tmp_path / "im" / "ct.dcm")
    save(dicom(np.eye(2, dtype=np.uint8), Modality="SEG"), tmp_path / "im" / "seg.dcm")
    sr = dicom(np.eye(2, dtype=np.uint8))
    sr.Modality = "SR"
    del sr.PixelData
    save(sr, tmp_path / "im" / "report.dcm")
    nopix = dicom(np.eye(2, dtype=np.uint8), Modality="CT")
    del nopix.PixelData
    save(nopix, tmp_path / "im" / "nopix.dcm")
    out = load_folder(tmp_path / "im", image_size=(2, 2), on_unreadable="error")
    assert list(out.ids) == ["ct"]
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1
    assert "skipped 3 of 4 files" in err[0] and "hold no image" in err[0]
    assert "seg.dcm (a DICOM SEG object, not an image)" in err[0]
    assert "report.dcm (a DICOM SR object" in err[0] and "nopix.dcm (" in err[0]
    assert not out.unreadable and len(out.not_images) == 3
    # the cache keeps the note
    load_folder(tmp_path / "im", image_size=(2, 2), cache_dir=tmp_path / "c")
    capsys.readouterr()
    again = load_folder(tmp_path / "im", image_size=(2, 2), cache_dir=tmp_path / "c")
    assert len(again.not_images) == 3 and "skipped 3 of 4" in capsys.readouterr().err
    with pytest.raises(NotAnImage, match=r"seg.dcm' is a DICOM SEG object, not an image"):
        read_image(tmp_path / "im" / "seg.dcm")
    (tmp_path / "im" / "ct.dcm").unlink()
    with pytest.raises(MedclError, match="None of the 3 files in .* holds an image"):
        load_folder(tmp_path / "im", image_size=(2, 2))


# ----------------------------------------------------------------------------- compression


def test_rle_lossless_is_decoded_natively(tmp_path):
    stored = (np.arange(64, dtype=np.uint16).reshape(8, 8) * 30).astype(np.uint16)
    ds = dicom(stored, RescaleSlope="1", RescaleIntercept="-1000")
    ds.compress(RLELossless)
    path = save(ds, tmp_path / "rle.dcm")
    spec = Intensity(scale="window", window=(-1000, 890))
    out = load_folder(path, image_size=(8, 8), intensity=spec)
    np.testing.assert_allclose(out.images[0, 0], stored / 1890, atol=1e-6)


def test_jpeg2000_with_the_dicom_extra(tmp_path):
    pytest.importorskip("openjpeg")  # pylibjpeg-openjpeg, from the medcl[dicom] extra
    stored = (np.arange(32 * 32) % 251).astype(np.uint16).reshape(32, 32)
    ds = dicom(stored)
    ds.compress(JPEG2000Lossless)
    path = save(ds, tmp_path / "j2k.dcm")
    out = load_folder(
        path, image_size=(32, 32), intensity=Intensity(scale="window", window=(0, 250))
    )
    np.testing.assert_allclose(out.images[0, 0], stored / 250, atol=1e-6)


def _without_decoders(monkeypatch, uid):
    """As if no plugin for ``uid`` were installed: pydicom lists them all as missing."""
    from pydicom.pixels import get_decoder

    decoder = get_decoder(uid)
    missing = {label: ("pylibjpeg>=2.0", "pylibjpeg-libjpeg>=2.1") for label in decoder._available}
    monkeypatch.setattr(decoder, "_unavailable", {**decoder._unavailable, **missing})
    monkeypatch.setattr(decoder, "_available", {})


def _jpeg_ls(path):
    from pydicom.encaps import encapsulate

    ds = dicom(np.zeros((4, 4), np.uint8))
    ds.file_meta.TransferSyntaxUID = JPEGLSLossless
    ds.PixelData = encapsulate([b"\xff\xd8\xff\xf7not decoded\xff\xd9"])
    return save(ds, path)


def test_a_missing_decoder_names_the_file_syntax_plugins_and_extra(tmp_path, monkeypatch):
    path = _jpeg_ls(tmp_path / "jls.dcm")
    _without_decoders(monkeypatch, JPEGLSLossless)
    with pytest.raises(UnreadableFile) as err:
        read_image(path)
    text = str(err.value)
    assert "jls.dcm" in text and "JPEG-LS Lossless Image Compression" in text
    assert "1.2.840.10008.1.2.4.80" in text
    assert "gdcm" in text and "pylibjpeg-libjpeg" in text  # every plugin pydicom lists
    assert 'pip install "medcl[dicom]"' in text
    assert "valid DICOM" not in text and "\n" not in text


def test_a_missing_decoder_goes_through_on_unreadable(tmp_path, monkeypatch, capsys):
    _jpeg_ls(tmp_path / "im" / "jls.dcm")
    save(dicom(np.eye(4, dtype=np.uint8)), tmp_path / "im" / "ok.dcm")
    _without_decoders(monkeypatch, JPEGLSLossless)
    out = load_folder(tmp_path / "im", image_size=(4, 4))
    assert list(out.ids) == ["ok"]
    err = capsys.readouterr().err
    assert "left out 1 of 2 files" in err and "JPEG-LS Lossless" in err
    assert 'pip install "medcl[dicom]"' in err
    with pytest.raises(MedclError, match=r"jls.dcm \(.*JPEG-LS.*medcl\[dicom\]"):
        load_folder(tmp_path / "im", image_size=(4, 4), on_unreadable="error")


def test_a_missing_decoder_exits_2(tmp_path, monkeypatch, capsys):
    from medcl.cli import main

    _jpeg_ls(tmp_path / "im" / "jls.dcm")
    save(dicom(np.eye(4, dtype=np.uint8)), tmp_path / "im" / "ok.dcm")
    _without_decoders(monkeypatch, JPEGLSLossless)
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(f"data:\n  images: {tmp_path / 'im'}\n  on_unreadable: error\n")
    code = main(["features", str(cfg), "--run", str(tmp_path / "run")])
    assert code == 2
    assert "medcl[dicom]" in capsys.readouterr().err
