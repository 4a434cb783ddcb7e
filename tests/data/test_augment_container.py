"""The augmentation pipelines run as plain nn.Sequential: the same draws and output as kornia's
AugmentationSequential container, so no result changed when the container was dropped."""

from __future__ import annotations

import kornia.augmentation as K
import pytest
import torch

from medcl.config import load_config, packaged_config
from medcl.data import TwoViews
from medcl.stages.stratify.warmup import make_views
from medcl.stratify_config import StratifyConfig


def _same(ours: torch.nn.Module, shape: tuple[int, ...], seeds: int = 6) -> None:
    container = K.AugmentationSequential(*ours.children())
    for seed in range(seeds):
        x = torch.rand(shape, generator=torch.Generator().manual_seed(100 + seed))
        torch.manual_seed(seed)
        a = ours(x)
        after_ours = torch.random.get_rng_state()
        torch.manual_seed(seed)
        b = container(x)
        assert torch.equal(a, b), seed
        assert torch.equal(after_ours, torch.random.get_rng_state()), seed  # same draws


@pytest.mark.parametrize("shape", [(1, 1, 28, 28), (5, 3, 64, 64), (16, 1, 96, 40)])
def test_two_views_equal_kornias_container(shape):
    views = TwoViews(shape[2:], strength=1.0)
    assert isinstance(views.aug, torch.nn.Sequential)
    _same(views.aug, shape)


def test_stratify_warmup_views_equal_kornias_container():
    cfg = load_config(packaged_config("stratify-mnist"), [], schema=StratifyConfig)
    _same(make_views(cfg, (28, 28)), (64, 1, 28, 28))
