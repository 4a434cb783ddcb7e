"""Resamples of the built-in digits for robustness checks: ``data.test_seed`` draws another
train/test partition, ``data.drop`` thins chosen classes in every split."""

import numpy as np

from medcl.stages.stratify._shared import load_stratify_data
from medcl.stratify_config import StratifyConfig


def _load(**data):
    return load_stratify_data(StratifyConfig.model_validate({"data": data}))


def _counts(ds, split):
    return np.bincount(ds.labels[ds.data.indices(split)], minlength=10)


def test_test_seed_draws_another_stratified_partition():
    built_in, other = _load(), _load(test_seed=1)
    assert _counts(built_in, "test").tolist() == [100] * 10
    assert _counts(other, "test").tolist() == [100] * 10
    shared = np.intersect1d(built_in.data.indices("test"), other.data.indices("test"))
    assert 0 < len(shared) < 500  # about a fifth by chance, not the same split
    assert _load(test_seed=1).data.indices("test").tolist() == other.data.indices("test").tolist()


def test_drop_thins_the_named_classes_in_every_split_and_only_those():
    ds = _load(val_fraction=0.1, drop={"3": 0.5, "8": 0.3})
    for split, full in (("train", 360), ("val", 40), ("test", 100)):
        got = _counts(ds, split)
        assert got[3] == round(full * 0.5) and got[8] == round(full * 0.7), split
        assert np.delete(got, [3, 8]).tolist() == [full] * 8, split


def test_dsb2018_is_scored_against_its_appearance_groups_on_its_group_split():
    from medcl.data import load_dsb2018

    ds = _load(dataset="dsb2018", image_size=(32, 32))
    ref = load_dsb2018((32, 32))
    assert ds.data.images.shape[1:] == (3, 32, 32)
    assert ds.data.split.tolist() == ref.split.tolist()
    names = np.asarray(ds.label_names)[ds.labels]
    assert names.tolist() == [str(a) for a in ref.reference_labels["appearance"]]
    assert len(ds.label_names) == 3


def test_drop_on_images_without_labels_is_one_sentence():
    import pytest

    from medcl.data import LabelledImageSet
    from medcl.errors import MedclError
    from medcl.stages.stratify._shared import drop_classes

    ds = _load()
    with pytest.raises(MedclError, match=r"no labels; unset data.drop\.$"):
        drop_classes(LabelledImageSet(ds.data, None), {"3": 0.5}, 0)
    with pytest.raises(MedclError, match=r"class '11'.*use one of 0, 1"):
        drop_classes(ds, {"11": 0.5}, 0)


def test_digit_split_settings_are_refused_on_other_data():
    import pytest
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=r"data.test_seed draws a split of the built-in"):
        StratifyConfig.model_validate({"data": {"dataset": "dsb2018", "test_seed": 1}})
