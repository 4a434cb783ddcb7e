"""Plots and the run reports; they read the run directory and never import a stage."""

from medcl.report._report import write_report
from medcl.report._stratify import metrics_markdown, write_stratify_report

__all__ = ["metrics_markdown", "write_report", "write_stratify_report"]
