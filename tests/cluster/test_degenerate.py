"""Degenerate clusterings: the rule, the cap on the Ward tree, and what the stage records."""

from __future__ import annotations

import numpy as np
import pytest

from medcl.cluster import WardClustering, degeneracy, largest_sound_k


@pytest.mark.parametrize(
    ("sizes", "n", "expected"),
    [
        ([6, 6, 6, 6], 24, None),
        ([20, 1], 21, None),  # one singleton is not "many"
        ([10, 9, 1, 1, 1], 22, "3 of the 5 clusters hold a single image"),
        ([4] * 7, 24, "k = 7 is more than a quarter of the 24 images"),
        ([3] * 8 + [1] * 8, 32, "8 of the 16 clusters hold a single image; k = 16 is more"),
    ],
)
def test_degeneracy_rule(sizes, n, expected):
    got = degeneracy(sizes, n)
    assert got == expected if expected is None else got.startswith(expected)


def _tiles_with_outliers(seed=0):
    """41 points: three tight groups of 11 and eight far, isolated outliers (singletons)."""
    rng = np.random.default_rng(seed)
    centres = np.array([[0, 0], [10, 0], [0, 10]], float)
    groups = [c + rng.normal(0, 0.3, (11, 2)) for c in centres]
    outliers = rng.uniform(30, 200, (8, 2)) * rng.choice([-1, 1], (8, 2))
    return np.concatenate([*groups, outliers])


def test_largest_sound_k_cuts_the_tree_until_no_singletons_dominate():
    X = _tiles_with_outliers()
    ward = WardClustering(n_clusters=11, random_state=0).fit(X)
    assert degeneracy(np.bincount(ward.labels_).tolist(), len(X)) is not None
    k = largest_sound_k(ward.labels_for, 11, 2)
    assert k is not None and k < 11
    assert degeneracy(np.bincount(ward.labels_for(k)).tolist(), len(X)) is None
    # and it is the largest: the next cut up is degenerate
    assert degeneracy(np.bincount(ward.labels_for(k + 1)).tolist(), len(X)) is not None


def test_no_sound_k_gives_none():
    labels_for = lambda k: np.arange(k)  # noqa: E731  every cluster a single image
    assert largest_sound_k(labels_for, 5, 2) is None


def _run(tmp_path, X, overrides):
    """The cluster stage on the embeddings ``X`` (a features record written for them)."""
    from medcl.config import load_config
    from medcl.data import ImageSet
    from medcl.rundir import RunDir, atomic_save_npy
    from medcl.stages._deps import features_deps
    from medcl.stages._done import write_record
    from medcl.stages.cluster import run_cluster

    n = len(X)
    data = ImageSet(
        images=np.zeros((n, 1, 4, 4), np.float32),
        masks=np.zeros((n, 4, 4), np.int64),
        has_mask=np.zeros(n, bool),
        ids=np.array([f"t{i}" for i in range(n)], object),
        volume_ids=np.full(n, "", object),
        positions=np.full(n, np.nan),
        class_names=["background"],
        split=np.full(n, "train", object),
    )
    cfg = load_config(None, overrides)
    run = RunDir(tmp_path / "run")
    atomic_save_npy(run.file("features", "embeddings.npy"), X.astype(np.float32))
    record = {"seconds": 0.0, "loss": [1.0], "beta": 4.0}
    write_record(run, "features/done.json", record, features_deps(cfg, data))
    return run_cluster(run, cfg, data)


def _fit_with_elbow(k):
    """WardClustering.fit whose elbow is ``k``: the knee of this toy curve is beside the point."""
    original = WardClustering.fit

    def fit(self, X, y=None):
        original(self, X, y)
        if self.n_clusters is None:
            self.elbow_k_ = self.n_clusters_ = k
            self.labels_ = self.labels_for(k)
        return self

    return fit


def test_stage_caps_the_elbow_and_records_the_warning(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(WardClustering, "fit", _fit_with_elbow(11))
    summary = _run(tmp_path, _tiles_with_outliers(), ["cluster.k_max=12"])
    assert summary["elbow_k"] == 11 and summary["k"] < 11
    assert "the elbow chose k = 11 for 41 images" in summary["warning"]
    assert f"using k = {summary['k']}" in summary["warning"]
    assert "warning: cluster: the elbow chose k = 11" in capsys.readouterr().err
    assert len(summary["sizes"]) == summary["k"]
    assert degeneracy(summary["sizes"], 41) is None


def test_stage_keeps_a_fixed_k_and_warns(tmp_path):
    summary = _run(tmp_path, _tiles_with_outliers(), ["cluster.k=11"])
    assert summary["k"] == 11
    assert "cluster.k = 11 for 41 images is degenerate" in summary["warning"]


def test_stage_says_nothing_for_a_sound_clustering(tmp_path, capsys):
    rng = np.random.default_rng(0)
    X = np.concatenate([c + rng.normal(0, 0.2, (10, 2)) for c in ([0, 0], [5, 0], [0, 5])])
    summary = _run(tmp_path, X, ["cluster.k=3"])
    assert summary["k"] == 3 and summary["warning"] is None
    assert "warning" not in capsys.readouterr().err


def test_the_report_says_it(tmp_path, monkeypatch):
    from medcl.report import write_report
    from medcl.rundir import RunDir

    monkeypatch.setattr(WardClustering, "fit", _fit_with_elbow(11))
    _run(tmp_path, _tiles_with_outliers(), ["cluster.k_max=12"])
    write_report(RunDir(tmp_path / "run"))
    assert "**Warning:** the elbow chose k = 11" in (tmp_path / "run" / "report.md").read_text()
