"""Dice and per-class metrics, result tables."""

from medcl.evaluate._clustering import (
    classification_scores,
    cluster_metrics,
    knn_predict,
    linear_probe,
    majority_mapping,
)
from medcl.evaluate._dice import dice_scores
from medcl.evaluate._table import compare_to_baselines, format_table, summarize

__all__ = [
    "classification_scores",
    "cluster_metrics",
    "compare_to_baselines",
    "dice_scores",
    "format_table",
    "knn_predict",
    "linear_probe",
    "majority_mapping",
    "summarize",
]
