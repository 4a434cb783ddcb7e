"""Plots and the run report."""

from medcl.report._report import write_report

__all__ = ["write_report"]
