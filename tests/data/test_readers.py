"""Readers: values after scaling, layouts, metadata and error messages for every format."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from PIL import Image

from medcl.data._readers import (
    READERS,
    SUPPORTED_SUFFIXES,
    file_stem,
    file_suffix,
    read_image,
    read_mask,
    read_volume,
    reader_for,
)
from medcl.errors import MedclError

GRAY8 = np.array([[0, 51, 102], [153, 204, 255]], dtype=np.uint8)
GRAY16 = np.array([[0, 13107, 26214], [39321, 52428, 65535]], dtype=np.uint16)
EXPECTED = np.array([[0.0, 0.2, 0.4], [0.6, 0.8, 1.0]], dtype=np.float32)


def write_dicom(path, pixels, slope=1.0, intercept=0.0, photometric="MONOCHROME2"):
    """A minimal valid single-frame DICOM file holding ``pixels`` (uint16 or int16)."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "CT"
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1 if pixels.dtype == np.int16 else 0
    ds.RescaleSlope = f"{slope:g}"
    ds.RescaleIntercept = f"{intercept:g}"
    ds.PixelData = pixels.tobytes()
    ds.save_as(path, enforce_file_format=True)


def write_nifti(path, volume, affine=None):
    import nibabel as nib

    nib.save(nib.Nifti1Image(volume, np.eye(4) if affine is None else affine), str(path))


def test_suffixes_and_stems():
    assert file_suffix("a/b/Case_01.NII.GZ") == ".nii.gz"
    assert file_stem("a/b/case_01.nii.gz") == "case_01"
    assert file_stem("ISIC_0001.jpg") == "ISIC_0001"
    for suffix in (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".dcm", ".nii", ".nii.gz"):
        assert suffix in SUPPORTED_SUFFIXES
        assert sum(r.can_read(f"x{suffix}") for r in READERS.values()) == 1
    with pytest.raises(MedclError, match=r"not supported; use one of \.png"):
        reader_for("notes.txt")


@pytest.mark.parametrize("name", sorted(READERS))
def test_every_reader_has_the_interface(name):
    reader = READERS[name]
    assert reader.suffixes and reader.format
    assert all(reader.can_read(f"file{s.upper()}") for s in reader.suffixes)


def test_png_gray_8bit(tmp_path):
    Image.fromarray(GRAY8).save(tmp_path / "g.png")
    image, meta = read_image(tmp_path / "g.png")
    assert image.shape == (1, 2, 3) and image.dtype == np.float32
    np.testing.assert_allclose(image[0], EXPECTED, atol=1e-6)
    assert meta["format"] == "PNG/JPEG/BMP" and meta["is_volume"] is False


def test_png_16bit_scales_by_65535(tmp_path):
    Image.fromarray(GRAY16).save(tmp_path / "g16.png")
    image, meta = read_image(tmp_path / "g16.png")
    assert meta["dtype"] == "uint16"
    np.testing.assert_allclose(image[0], EXPECTED, atol=1e-6)


def test_png_rgba_drops_alpha_and_palette_converts(tmp_path):
    rgba = np.zeros((2, 2, 4), dtype=np.uint8)
    rgba[..., 0], rgba[..., 3] = 255, 7
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    image, _ = read_image(tmp_path / "a.png")
    assert image.shape == (3, 2, 2)
    np.testing.assert_allclose(image[:, 0, 0], [1.0, 0.0, 0.0])

    pal = Image.fromarray(np.array([[0, 1], [2, 1]], dtype=np.uint8), "P")
    pal.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0])
    pal.save(tmp_path / "p.png")
    image, _ = read_image(tmp_path / "p.png")
    np.testing.assert_allclose(image[:, 0, 1], [1.0, 0.0, 0.0])
    np.testing.assert_allclose(image[:, 1, 0], [0.0, 1.0, 0.0])
    # as a mask, a palette image gives its indices
    np.testing.assert_array_equal(read_mask(tmp_path / "p.png"), [[0, 1], [2, 1]])


def test_rgb_jpeg(tmp_path):
    rgb = np.zeros((8, 8, 3), dtype=np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 200, 100, 0
    Image.fromarray(rgb).save(tmp_path / "c.jpg", quality=100)
    image, _ = read_image(tmp_path / "c.jpg")
    assert image.shape == (3, 8, 8)
    np.testing.assert_allclose(image.mean(axis=(1, 2)), [200 / 255, 100 / 255, 0], atol=0.02)


def test_bmp(tmp_path):
    Image.fromarray(GRAY8).save(tmp_path / "b.bmp")
    image, _ = read_image(tmp_path / "b.bmp")
    np.testing.assert_allclose(image[0], EXPECTED, atol=1e-6)


def test_tiff_16bit_and_multipage(tmp_path):
    import tifffile

    tifffile.imwrite(tmp_path / "t.tif", GRAY16)
    image, meta = read_image(tmp_path / "t.tif")
    assert image.shape == (1, 2, 3) and meta["dtype"] == "uint16"
    np.testing.assert_allclose(image[0], EXPECTED, atol=1e-6)

    stack = np.stack([GRAY16, GRAY16 // 2, GRAY16 // 4])
    tifffile.imwrite(tmp_path / "s.tiff", stack, photometric="minisblack")
    volume, meta = read_volume(tmp_path / "s.tiff")
    assert volume.shape == (3, 1, 2, 3) and meta["is_volume"]
    np.testing.assert_allclose(volume[2, 0], (GRAY16 // 4) / 65535, atol=1e-6)
    with pytest.raises(MedclError, match="holds 3 slices.*read_volume"):
        read_image(tmp_path / "s.tiff")
    assert read_mask(tmp_path / "s.tiff").shape == (3, 2, 3)

    rgb = np.zeros((4, 5, 3), dtype=np.uint8)
    rgb[..., 1] = 255
    tifffile.imwrite(tmp_path / "rgb.tif", rgb)
    image, _ = read_image(tmp_path / "rgb.tif")
    assert image.shape == (3, 4, 5)
    np.testing.assert_allclose(image[:, 0, 0], [0.0, 1.0, 0.0])


def test_float_tiff_is_min_max_scaled(tmp_path):
    import tifffile

    tifffile.imwrite(tmp_path / "f.tif", np.array([[-2.0, 0.0], [2.0, 6.0]], dtype=np.float32))
    image, _ = read_image(tmp_path / "f.tif")
    np.testing.assert_allclose(image[0], [[0.0, 0.25], [0.5, 1.0]])


def test_dicom_applies_rescale_then_min_max(tmp_path):
    pytest.importorskip("pydicom")
    stored = np.array([[0, 10], [20, 40]], dtype=np.uint16)
    write_dicom(tmp_path / "ct.dcm", stored, slope=2.0, intercept=-1024.0)
    image, meta = read_image(tmp_path / "ct.dcm")
    assert image.shape == (1, 2, 2)
    # HU = 2 * stored - 1024 -> -1024, -1004, -984, -944; min-max over the image
    np.testing.assert_allclose(image[0], [[0.0, 0.25], [0.5, 1.0]], atol=1e-6)
    assert meta["rescale_slope"] == 2.0 and meta["rescale_intercept"] == -1024.0
    assert meta["modality"] == "CT" and meta["is_volume"] is False

    write_dicom(tmp_path / "inv.dcm", stored, photometric="MONOCHROME1")
    image, _ = read_image(tmp_path / "inv.dcm")
    np.testing.assert_allclose(image[0], [[1.0, 0.75], [0.5, 0.0]], atol=1e-6)


def test_nifti_volume_slices_and_robust_scaling(tmp_path):
    pytest.importorskip("nibabel")
    vol = np.zeros((4, 5, 6), dtype=np.float32)
    vol[:] = np.arange(6, dtype=np.float32)  # slice k along axis 2 holds the value k
    write_nifti(tmp_path / "case_01.nii.gz", vol)
    volume, meta = read_volume(tmp_path / "case_01.nii.gz", axis=2)
    assert volume.shape == (6, 1, 4, 5) and meta["is_volume"] and meta["axis"] == 2
    lo, hi = np.percentile(vol, [0.5, 99.5])
    for k in range(6):
        np.testing.assert_allclose(volume[k, 0], np.clip((k - lo) / (hi - lo), 0, 1), atol=1e-6)
    assert volume.min() == 0.0 and volume.max() == 1.0

    by_axis2 = volume
    volume, _ = read_volume(tmp_path / "case_01.nii.gz", axis=0)
    assert volume.shape == (4, 1, 5, 6)  # rows = axis 1, columns = axis 2
    for k in range(6):
        np.testing.assert_allclose(volume[:, 0, :, k], by_axis2[k, 0, 0, 0])


def test_nifti_robust_scaling_ignores_outliers(tmp_path):
    pytest.importorskip("nibabel")
    rng = np.random.default_rng(0)
    vol = rng.uniform(0, 100, size=(20, 20, 10)).astype(np.float32)
    vol[0, 0, 0] = 1e6  # one hot voxel must not squash everything else
    write_nifti(tmp_path / "v.nii", vol)
    volume, _ = read_volume(tmp_path / "v.nii")
    assert volume.max() == 1.0 and volume.min() == 0.0
    assert 0.4 < float(np.median(volume)) < 0.6


def test_nifti_4d_channels_and_mask(tmp_path):
    pytest.importorskip("nibabel")
    vol = np.zeros((3, 3, 2, 2), dtype=np.float32)
    vol[..., 1] = 1.0
    write_nifti(tmp_path / "mr.nii.gz", vol)
    volume, _ = read_volume(tmp_path / "mr.nii.gz")
    assert volume.shape == (2, 2, 3, 3)
    np.testing.assert_allclose(volume[:, 0], 0.0)
    np.testing.assert_allclose(volume[:, 1], 1.0)

    labels = np.zeros((3, 3, 4), dtype=np.float32)
    labels[1, 1, 2] = 2.0
    write_nifti(tmp_path / "seg.nii.gz", labels)
    mask = read_mask(tmp_path / "seg.nii.gz")
    assert mask.shape == (4, 3, 3) and mask.dtype == np.int64
    assert mask[2, 1, 1] == 2 and mask.sum() == 2

    write_nifti(tmp_path / "bad.nii.gz", labels + 0.5)
    with pytest.raises(MedclError, match="non-integer value 0.5"):
        read_mask(tmp_path / "bad.nii.gz")


def test_masks_keep_stored_values(tmp_path):
    mask = np.array([[0, 205], [420, 500]], dtype=np.uint16)
    Image.fromarray(mask).save(tmp_path / "m.png")
    out = read_mask(tmp_path / "m.png")
    assert out.dtype == np.int64 and out.shape == (2, 2)
    np.testing.assert_array_equal(out, mask)


def test_colour_mask_is_refused_grey_rgb_mask_accepted(tmp_path):
    grey_rgb = np.repeat(np.array([[0, 255]], dtype=np.uint8)[..., None], 3, axis=2)
    Image.fromarray(grey_rgb).save(tmp_path / "g.png")
    np.testing.assert_array_equal(read_mask(tmp_path / "g.png"), [[0, 255]])
    colour = grey_rgb.copy()
    colour[0, 1, 0] = 0
    Image.fromarray(colour).save(tmp_path / "c.png")
    with pytest.raises(MedclError, match="is a colour image"):
        read_mask(tmp_path / "c.png")


@pytest.mark.parametrize("name", ["broken.png", "broken.jpg", "broken.tif", "broken.dcm"])
def test_unreadable_file(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(b"this is not an image at all" * 4)
    with pytest.raises(MedclError, match=r"Cannot read image '.*broken.*': .+\. Check that it is"):
        read_image(path)


def test_unreadable_nifti(tmp_path):
    pytest.importorskip("nibabel")
    path = tmp_path / "broken.nii.gz"
    path.write_bytes(b"garbage" * 10)
    with pytest.raises(MedclError, match="Check that it is a valid NIfTI file"):
        read_volume(path)


def test_missing_file(tmp_path):
    with pytest.raises(MedclError, match="does not exist"):
        read_image(tmp_path / "nope.png")


def test_missing_optional_library_names_the_package(tmp_path, monkeypatch):
    path = tmp_path / "v.nii"
    path.write_bytes(b"x")
    monkeypatch.setitem(sys.modules, "nibabel", None)  # makes `import nibabel` fail
    with pytest.raises(MedclError, match="needs the 'nibabel' package; install it"):
        read_volume(path)


def test_dicom_without_preamble(tmp_path):
    pytest.importorskip("pydicom")
    from pydicom.dataset import Dataset

    ds = Dataset()
    ds.Rows, ds.Columns, ds.SamplesPerPixel = 2, 2, 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit, ds.PixelRepresentation = 15, 0
    ds.PixelData = np.array([[0, 1], [2, 3]], dtype=np.uint16).tobytes()
    ds.save_as(tmp_path / "raw.dcm", implicit_vr=True, little_endian=True)
    image, _ = read_image(tmp_path / "raw.dcm")
    np.testing.assert_allclose(image[0], [[0, 1 / 3], [2 / 3, 1]], atol=1e-6)
