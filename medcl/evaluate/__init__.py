"""Dice and per-class metrics, result tables."""

from medcl.evaluate._dice import dice_scores
from medcl.evaluate._table import compare_to_baselines, format_table, summarize

__all__ = ["compare_to_baselines", "dice_scores", "format_table", "summarize"]
