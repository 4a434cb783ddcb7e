"""The metrics table has the paper's column only for the paper's data set (MNIST)."""

from medcl.report import metrics_markdown
from medcl.stages.stratify import PAPER_MNIST


def _metrics(paper):
    row = {"accuracy": 0.9, "precision": 0.8, "recall": 0.7}
    return {
        "n_eval": 10, "eval_split": "test", "dataset": "x", "k": 3, "elbow_k": 3, "seed": 0,
        "rows": {"majority mapping": row, "kNN (k=5)": row},
        "paper_mnist": paper,
        "cluster": {"silhouette": 0.5},
        "decoder_mse": {"true_assignment": 0.01, "shuffled_assignment": 0.02},
        "seconds": {"warmup": 1},
    }  # fmt: skip


def test_no_paper_column_for_other_data():
    text = metrics_markdown(_metrics(None))
    assert "paper" not in text
    table = [line for line in text.splitlines() if line.startswith("|")]
    assert {line.count("|") for line in table} == {5}


def test_paper_column_for_mnist():
    text = metrics_markdown(_metrics(PAPER_MNIST))
    table = [line for line in text.splitlines() if line.startswith("|")]
    assert "paper (MNIST)" in table[0]
    assert {line.count("|") for line in table} == {6}
