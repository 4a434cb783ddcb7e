"""The compact cache: stored dtypes, exact float32 read-back, sparse masks, old layouts."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from medcl.data import ImageSet, SparseMasks, StoredImages, load_folder, split_fingerprint
from medcl.data._intensity import Intensity
from medcl.data._stored import compact_images, compact_masks


def png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def bits(a) -> bytes:
    a = np.asarray(a)
    return a.dtype.str.encode() + repr(a.shape).encode() + a.tobytes()


# --------------------------------------------------------------------------- the stores


@pytest.mark.parametrize(
    "values,stored",
    [
        (np.arange(256, dtype=np.float32) / np.float32(255), "uint8"),
        (np.arange(0, 65536, 7, dtype=np.float32) / np.float32(65535), "uint16"),
        (np.array([0.5, 0.25, 1 / 3, -2.0], dtype=np.float16).astype(np.float32), "float16"),
        (np.random.default_rng(0).random(64, dtype=np.float32), "float32"),
        (np.array([0.0, -0.0], dtype=np.float32), "float16"),  # -0.0 is not k / 255
    ],
)
def test_narrowest_dtype_that_gives_the_values_back_bit_for_bit(values, stored):
    x = np.resize(values, (len(values), 1, 1, 1)).astype(np.float32)
    s = compact_images(x)
    assert s.stored_dtype == stored
    assert s.dtype == np.float32 and s.shape == x.shape and len(s) == len(x)
    assert bits(s[:]) == bits(x) and bits(np.asarray(s)) == bits(x)
    assert bits(s.tensor(slice(None), "cpu").numpy()) == bits(x)  # the device path too


def test_indexing_like_the_float32_array():
    x = (np.random.default_rng(1).integers(0, 256, (7, 3, 4, 5)) / 255).astype(np.float32)
    s = compact_images(x)
    assert s.stored_dtype == "uint8"
    picks = [3, -1, slice(1, 5), slice(None, None, 2), np.array([4, 0, 4]), x[:, 0, 0, 0] > 0.5]
    for key in picks:
        assert bits(s[key]) == bits(x[key]), key
    assert bits(s[2, 1]) == bits(x[2, 1]) and bits(s[[1, 2], 0]) == bits(x[[1, 2], 0])
    sel = s.select(np.array([6, 2, 5]))
    assert bits(sel[:]) == bits(x[[6, 2, 5]]) and sel.shape == (3, 3, 4, 5)
    assert bits(sel.select(np.array([2, 0]))[:]) == bits(x[[5, 6]])
    assert bits(sel.tensor(np.array([1, 2]), "cpu").numpy()) == bits(x[[2, 5]])
    assert float(s.max()) == float(x.max())  # other ndarray attributes: the whole array


def test_a_mapped_store_releases_its_pages_and_reads_on(tmp_path, monkeypatch):
    import medcl.data._stored as stored

    monkeypatch.setattr(stored, "_RELEASE_BYTES", 1)  # release after every read
    x = (np.random.default_rng(5).integers(0, 256, (9, 3, 4, 4)) / 255).astype(np.float32)
    np.save(tmp_path / "a.npy", compact_images(x).raw)
    s = StoredImages(np.load(tmp_path / "a.npy", mmap_mode="r"))
    rows = [s[i : i + 2] for i in range(0, 9, 2)]
    again = [s.tensor(np.array([i]), "cpu").numpy() for i in range(9)]
    assert bits(np.concatenate(rows)) == bits(x) and bits(np.concatenate(again)) == bits(x)


def test_sparse_masks_store_only_the_masked_rows():
    masks = np.zeros((5, 2, 3), dtype=np.int64)
    masks[1], masks[3] = 2, 1
    has = np.array([False, True, False, True, True])
    m = compact_masks(masks, has)
    assert m.raw.shape == (3, 2, 3) and m.raw.dtype == np.uint8
    assert m.rows.tolist() == [-1, 0, -1, 1, 2]
    assert m.dtype == np.int64 and m.shape == masks.shape
    for key in (0, 1, slice(None), np.array([4, 0, 1]), has):
        assert bits(m[key]) == bits(masks[key]), key
    assert bits(m.select(np.array([3, 0]))[:]) == bits(masks[[3, 0]])
    many = np.full((1, 2, 2), 300, dtype=np.int64)
    assert compact_masks(many, np.array([True])).raw.dtype == np.int16  # > 255 classes


def test_fingerprint_is_that_of_the_float32_int64_arrays():
    rng = np.random.default_rng(2)
    x = (rng.integers(0, 256, (6, 1, 4, 4)) / 255).astype(np.float32)
    masks = np.zeros((6, 4, 4), np.int64)
    masks[::2] = rng.integers(0, 3, (3, 4, 4))
    has = np.arange(6) % 2 == 0

    def make(images, m):
        ds = ImageSet(
            images, m, has, np.array(list("abcdef"), object), np.full(6, "", object),
            np.full(6, np.nan), ["background", "a", "b"],
        )  # fmt: skip
        ds.split[:] = "train"
        return ds

    compact = make(compact_images(x), compact_masks(masks, has))
    assert compact.images.stored_dtype == "uint8"
    assert split_fingerprint(compact, "train") == split_fingerprint(make(x, masks), "train")


# --------------------------------------------------------------------------- load_folder


@pytest.fixture
def folders(tmp_path):
    rng = np.random.default_rng(3)
    for i in range(4):
        png(tmp_path / "rgb" / f"a{i}.png", rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
        png(tmp_path / "grey" / f"a{i}.png", rng.integers(0, 256, (8, 8), dtype=np.uint8))
        png(tmp_path / "deep" / f"a{i}.png", rng.integers(0, 65536, (8, 8), dtype=np.uint16))
        if i % 2:
            png(tmp_path / "masks" / f"a{i}_m.png", rng.integers(0, 2, (8, 8), dtype=np.uint8))
    return tmp_path


def _reference(folder, scale):
    """Today's float32 values, the naive way: every file divided by its type's range."""
    files = sorted(folder.iterdir())
    arrays = [np.asarray(Image.open(f)) for f in files]
    x = np.stack([a if a.ndim == 3 else a[..., None] for a in arrays]).astype(np.float32)
    return np.ascontiguousarray(np.moveaxis(x, -1, 1)) / np.float32(scale)


@pytest.mark.parametrize(
    "folder,kwargs,stored,scale",
    [
        ("rgb", {}, "uint8", 255),
        ("grey", {}, "uint8", 255),
        ("grey", {"channels": 3}, "uint8", None),
        ("deep", {"intensity": Intensity(scale="type")}, "uint16", 65535),
        ("deep", {}, "float32", None),  # percentiles: not k / 65535
        ("rgb", {"image_size": 4}, "float32", None),  # resized: between the steps
        ("rgb", {"channels": 1}, "float32", None),  # luminance: between the steps
    ],
)
def test_dtype_per_source_and_values_as_before(folders, folder, kwargs, stored, scale):
    kwargs = {"image_size": 8, **kwargs}
    plain = load_folder(folders / folder, **kwargs)
    cached = load_folder(folders / folder, cache_dir=folders / "cache", **kwargs)
    again = load_folder(folders / folder, cache_dir=folders / "cache", **kwargs)
    for ds in (plain, cached, again):
        assert isinstance(ds.images, StoredImages) and ds.images.stored_dtype == stored
        assert bits(ds.images[:]) == bits(plain.images[:])
    if scale is not None:
        assert bits(plain.images[:]) == bits(_reference(folders / folder, scale))


def test_masks_on_disk_only_for_images_that_have_one(folders):
    ds = load_folder(
        folders / "grey", folders / "masks", "_m", image_size=8, cache_dir=folders / "c"
    )
    assert isinstance(ds.masks, SparseMasks) and ds.has_mask.tolist() == [0, 1, 0, 1]
    stored = np.load(next((folders / "c").glob("*.masks.npy")))
    images = np.load(next((folders / "c").glob("*.images.npy")))
    assert stored.shape == (2, 8, 8) and stored.dtype == np.uint8
    assert images.dtype == np.uint8 and images.shape == (4, 1, 8, 8)
    want = [np.asarray(Image.open(folders / "masks" / f"a{i}_m.png")) for i in (1, 3)]
    assert bits(ds.masks[:]) == bits(
        np.stack([0 * want[0], want[0], 0 * want[0], want[1]]).astype(np.int64)
    )


def test_an_old_layout_is_named_in_one_line_and_rebuilt(folders, capsys):
    first = load_folder(folders / "rgb", image_size=8, cache_dir=folders / "c")
    meta_path = next((folders / "c").glob("*.meta.json"))
    meta = json.loads(meta_path.read_text())
    del meta["format"]  # what medcl wrote before the compact layout
    meta_path.write_text(json.dumps(meta))
    capsys.readouterr()
    second = load_folder(folders / "rgb", image_size=8, cache_dir=folders / "c")
    err = capsys.readouterr().err.splitlines()
    assert (
        len(err) == 1 and "older layout" in err[0] and meta_path.name[: -len("meta.json")] in err[0]
    )
    assert json.loads(meta_path.read_text())["format"] == 4
    assert bits(second.images[:]) == bits(first.images[:])
    load_folder(folders / "rgb", image_size=8, cache_dir=folders / "c")
    assert capsys.readouterr().err == ""  # rebuilt once


def test_a_zeroed_images_file_is_noticed_and_decoded_again(folders, capsys):
    first = load_folder(folders / "rgb", image_size=8, cache_dir=folders / "c")
    path = next((folders / "c").glob("*.images.npy"))
    path.write_bytes(bytes(path.stat().st_size))
    capsys.readouterr()
    second = load_folder(folders / "rgb", image_size=8, cache_dir=folders / "c")
    err = capsys.readouterr().err
    assert f"cache file {path} is damaged" in err
    assert bits(second.images[:]) == bits(first.images[:])


@pytest.mark.parametrize("size", [8, 6])  # 6: resized in the workers (torch threads)
def test_parallel_decoding_gives_the_same_set(folders, monkeypatch, size):
    import medcl.data._folder as folder

    monkeypatch.setattr(folder, "POOL_MIN_FILES", 2)
    kwargs = dict(masks=folders / "masks", mask_suffix="_m", image_size=size)
    one = load_folder(folders / "grey", workers=1, **kwargs)
    two = load_folder(folders / "grey", workers=2, **kwargs)
    assert bits(one.images[:]) == bits(two.images[:]) and bits(one.masks[:]) == bits(two.masks[:])
    assert list(one.ids) == list(two.ids) and one.has_mask.tolist() == two.has_mask.tolist()


def test_device_batches_equal_the_cpu_values():
    if not torch.cuda.is_available():
        pytest.skip("no GPU")
    rng = np.random.default_rng(4)
    for scale, dtype in ((255, np.uint8), (65535, np.uint16)):
        x = (rng.integers(0, scale + 1, (5, 3, 8, 8)) / scale).astype(np.float32)
        s = compact_images(x)
        assert s.stored_dtype == np.dtype(dtype).name
        assert bits(s.tensor(np.array([4, 1]), "cuda").cpu().numpy()) == bits(x[[4, 1]])


# --------------------------------------------------------------------------- store="source"


@pytest.mark.parametrize(
    "folder,kwargs,stored,levels",
    [
        ("rgb", {"image_size": 4}, "uint8", 255),  # resized 8-bit photographs: one byte
        ("rgb", {"image_size": 4, "channels": 1}, "uint8", 255),
        ("deep", {}, "uint16", 65535),  # 16-bit, percentile scaled
        ("grey", {}, "uint8", 255),  # exact already: the same store as exact gives
    ],
)
def test_source_store_rounds_to_the_files_depth(folders, folder, kwargs, stored, levels):
    kwargs = {"image_size": 8, **kwargs}
    exact = load_folder(folders / folder, **kwargs)
    source = load_folder(folders / folder, store="source", cache_dir=folders / "c", **kwargs)
    again = load_folder(folders / folder, store="source", cache_dir=folders / "c", **kwargs)
    assert source.images.stored_dtype == again.images.stored_dtype == stored
    want = np.rint(np.clip(exact.images[:], 0, 1) * np.float32(levels)) / np.float32(levels)
    assert bits(source.images[:]) == bits(want.astype(np.float32))
    assert bits(again.images[:]) == bits(source.images[:])
    assert np.abs(source.images[:] - exact.images[:]).max() <= 0.5 / levels + 1e-7
    if exact.images.stored_dtype == stored:
        assert bits(source.images[:]) == bits(exact.images[:])


def test_source_and_exact_stores_are_cached_apart(folders):
    kwargs = dict(image_size=4, cache_dir=folders / "c")
    exact = load_folder(folders / "rgb", **kwargs)
    source = load_folder(folders / "rgb", store="source", **kwargs)
    assert exact.images.stored_dtype == "float32" and source.images.stored_dtype == "uint8"
    assert len(list((folders / "c").glob("*.images.npy"))) == 2
    assert load_folder(folders / "rgb", **kwargs).images.stored_dtype == "float32"


def test_an_unknown_store_is_one_sentence(folders):
    from medcl.errors import MedclError

    with pytest.raises(MedclError, match=r"data.store is 'uint8'; use exact or source"):
        load_folder(folders / "rgb", image_size=4, store="uint8")
