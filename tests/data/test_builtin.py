import numpy as np
import pytest
import torch

from medcl.data import PairedAugment, TwoViews, load_brain_aal, load_builtin
from medcl.data._builtin import right_hemisphere_split
from medcl.errors import MedclError


@pytest.fixture(scope="module")
def brain():
    return load_brain_aal()


def test_brain_aal_contents(brain):
    assert brain.images.shape[1:] == (1, 96, 40) and brain.images.dtype == np.float32
    assert 0 <= brain.images.min() and brain.images.max() <= 1
    assert brain.class_names == [
        "background",
        "frontal",
        "insula",
        "limbic",
        "occipital",
        "parietal",
        "subcortical",
        "temporal",
        "cerebellum",
    ]
    assert set(np.unique(brain.masks)) == set(range(9))  # every group is present
    counts = {s: len(brain.indices(s)) for s in ("train", "val", "test")}
    assert counts == {"train": 146, "val": 32, "test": 82}
    assert brain.is_volumetric and np.all((0 <= brain.positions) & (brain.positions <= 1))


def test_brain_aal_split_does_not_leak(brain):
    train_vols = set(brain.volume_ids[brain.indices("train")])
    held_out = set(brain.volume_ids[brain.indices("val")]) | set(
        brain.volume_ids[brain.indices("test")]
    )
    assert train_vols == {"colin27-left"} and held_out == {"colin27-right"}
    # val and test slices are never adjacent: at least 2 dropped slices between them.
    z = {
        s: np.array([int(i.split(":z")[1]) for i in brain.ids[brain.indices(s)]])
        for s in ("val", "test")
    }
    gaps = np.abs(z["val"][:, None] - z["test"][None, :])
    assert gaps.min() >= 3


def test_right_hemisphere_blocks():
    split = right_hemisphere_split(40, block=10, gap=2)
    assert list(split[:8]) == ["test"] * 8 and list(split[8:12]) == [""] * 4
    assert list(split[12:18]) == ["val"] * 6


def test_builtin_errors():
    with pytest.raises(MedclError, match="not a built-in data set"):
        load_builtin("brain-xyz")
    with pytest.raises(MedclError, match="image_size"):
        load_brain_aal((4, 4))


def test_two_views_differ_and_keep_shape(brain):
    torch.manual_seed(0)
    x = torch.from_numpy(brain.images[:4])
    v = TwoViews((96, 40))(x)
    assert v.shape == (4, 2, 1, 96, 40)
    assert not torch.allclose(v[:, 0], v[:, 1])


def test_paired_augment_moves_mask_with_image():
    torch.manual_seed(0)
    x = torch.zeros(16, 1, 32, 32)
    x[:, :, 4:12, 4:20] = 1.0
    mask = (x[:, 0] > 0.5).long() * 3
    aug = PairedAugment((32, 32))
    aug.appearance = torch.nn.Identity()  # spatial part only, so the image stays binary
    xa, ma = aug(x, mask)
    assert ma.dtype == torch.long and set(ma.unique().tolist()) <= {0, 3}
    agree = ((xa[:, 0] > 0.5) == (ma == 3)).float().mean()
    assert agree > 0.97  # the mask follows the image through crops, flips and rotations
    assert not torch.equal(ma, mask)  # and something did move
