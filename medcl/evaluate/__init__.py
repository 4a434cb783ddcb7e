"""Dice and per-class metrics, result tables."""

from medcl.evaluate._clustering import (
    classification_scores,
    cluster_agreement,
    cluster_metrics,
    knn_predict,
    linear_probe,
    majority_mapping,
)
from medcl.evaluate._compare import (
    comparison_sentence,
    comparisons_markdown,
    label_trend_flags,
    paired_comparisons,
    paired_difference,
)
from medcl.evaluate._dice import dice_scores
from medcl.evaluate._table import (
    format_table,
    paper_note,
    results_markdown,
    summarize,
    throughput_markdown,
)

__all__ = [
    "classification_scores",
    "cluster_agreement",
    "cluster_metrics",
    "comparison_sentence",
    "comparisons_markdown",
    "dice_scores",
    "format_table",
    "knn_predict",
    "label_trend_flags",
    "linear_probe",
    "majority_mapping",
    "paired_comparisons",
    "paired_difference",
    "paper_note",
    "results_markdown",
    "summarize",
    "throughput_markdown",
]
