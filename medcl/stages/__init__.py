"""The pipeline stages; each reads from and writes to one run directory.

``features -> cluster -> pretrain -> finetune -> evaluate``, and ``run_pipeline`` chaining
them over methods x label fractions x seeds. ``medcl.stages.stratify`` holds the stages of
``medcl stratify`` (warmup -> refine -> embed -> cluster -> decoder -> evaluate -> report).
"""

from medcl.stages.cluster import run_cluster
from medcl.stages.features import run_features
from medcl.stages.finetune import run_evaluate_cell, run_finetune
from medcl.stages.pipeline import demo_config, run_pipeline
from medcl.stages.pretrain import run_pretrain

__all__ = [
    "demo_config",
    "run_cluster",
    "run_evaluate_cell",
    "run_features",
    "run_finetune",
    "run_pipeline",
    "run_pretrain",
]
