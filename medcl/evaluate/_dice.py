"""Dice per class with MONAI's metric."""

from __future__ import annotations

import numpy as np
import torch
from monai.metrics import DiceMetric
from monai.networks.utils import one_hot


def dice_scores(
    pred: np.ndarray, target: np.ndarray, num_classes: int, groups: np.ndarray | None = None
) -> dict:
    """Foreground Dice per class and its mean.

    Args:
        pred, target: ``(N, H, W)`` integer class maps.
        num_classes: classes including background (class 0, which is not scored).
        groups: ``(N,)`` group of each image. Images of one group are stacked and scored as
            one volume (use volume ids for slices of volumes); ``None`` scores every image on
            its own (2D data sets, as in ISIC).

    Returns:
        ``{"dice": mean over classes, "dice_per_class": [C-1 floats]}``. A class absent from
        both prediction and ground truth of a group is skipped for that group (MONAI's
        ``ignore_empty``); a class absent from every group's ground truth gets NaN and is left
        out of the mean.
    """
    if pred.shape != target.shape:
        raise ValueError(f"pred {pred.shape} and target {target.shape} differ in shape")
    groups = np.arange(len(pred)) if groups is None else np.asarray(groups)
    metric = DiceMetric(include_background=False, reduction="none", ignore_empty=True)
    rows = []
    for g in dict.fromkeys(groups.tolist()):
        sel = groups == g
        p = torch.as_tensor(pred[sel]).long()[None, None]  # (1, 1, n, H, W): one volume
        t = torch.as_tensor(target[sel]).long()[None, None]
        score = metric(one_hot(p, num_classes), one_hot(t, num_classes))
        assert isinstance(score, torch.Tensor)
        rows.append(score[0])
    scores = torch.stack(rows).numpy()  # (groups, C-1), NaN where the class is absent
    with np.errstate(all="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            per_class = np.nanmean(scores, axis=0)
            mean = float(np.nanmean(per_class)) if np.isfinite(per_class).any() else float("nan")
    return {"dice": mean, "dice_per_class": [float(v) for v in per_class]}
