"""Dice and per-class metrics, result tables."""

from medcl.evaluate._dice import dice_scores
from medcl.evaluate._table import format_table, summarize

__all__ = ["dice_scores", "format_table", "summarize"]
