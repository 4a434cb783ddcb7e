"""What an intact record of each stage holds: its keys, their types and their ranges.

Each function takes a record's payload and returns None when it is intact, else a few words
saying what is wrong ("'dice' is 7.5, outside [0, 1]"); :func:`medcl.stages._done.reusable`
then recomputes the stage and names the file. The record's checksum already catches edits
and damage; these checks catch impossible values however they got there (an older or buggy
writer, a diverged training).
"""

from __future__ import annotations

import json
import math

from medcl.stages._done import check_fraction, check_keys


def _finite_list(values: list, key: str) -> str | None:
    for v in values:
        if not isinstance(v, int | float) or isinstance(v, bool) or not math.isfinite(v):
            return f"'{key}' holds {json.dumps(v)}"
    return None


def check_trained(done: dict) -> str | None:
    """features, pretrain: seconds and a finite loss history."""
    return check_keys(done, seconds=(int, float), loss=list) or _finite_list(done["loss"], "loss")


def check_seconds(done: dict) -> str | None:
    """A stage that records only how long it took (stratify's embeddings, report)."""
    return check_keys(done, seconds=(int, float))


def check_summary(s: dict) -> str | None:
    problem = check_keys(s, method=str, k=int, sizes=list, k_values=list, curve=list)
    if problem is None and (s["k"] < 1 or sum(s["sizes"]) < s["k"]):
        problem = f"k is {s['k']} with cluster sizes {s['sizes']}"
    return problem


def check_best(best: dict) -> str | None:
    """A fine-tuning cell's best-so-far: a validation Dice in [0, 1] (-1: none yet)."""
    problem = check_keys(best, val_dice=(int, float), epoch=int)
    if problem is None and best["val_dice"] != -1.0:
        problem = check_fraction(best, "val_dice")
    return problem


def check_finetune(done: dict) -> str | None:
    return (
        check_keys(done, seconds=(int, float), n_labelled=int, best_epoch=int, loss=list)
        or check_fraction(done, "val_dice")
        or _finite_list(done["loss"], "loss")
    )


def check_result(result: dict) -> str | None:
    """A cell's test result: the mean Dice and every class's Dice in [0, 1]."""
    problem = check_keys(
        result, method=str, label_fraction=(int, float), seed=int, dice=(int, float)
    ) or check_fraction(result, "dice")
    if problem is None:
        per_class = result.get("dice_per_class")
        if not isinstance(per_class, list):
            return "key 'dice_per_class' is missing"
        for v in per_class:
            if v is not None and not (isinstance(v, int | float) and 0 <= v <= 1):
                return f"'dice_per_class' holds {v}, outside [0, 1]"
    return problem
