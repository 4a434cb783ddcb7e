"""The benchmark scripts run (tiny sizes) and report what they claim to."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))


def test_bench_step_reports_both_steps_for_each_method(tmp_path):
    import bench_step

    rows = bench_step.main(
        [
            "--size",
            "16",
            "--batch",
            "4",
            "--repeats",
            "1",
            "--steps",
            "2",
            "--threads",
            "1",
            "--methods",
            "simclr",
            "moco",
            "finetune",
            "--json",
            str(tmp_path / "r.json"),
        ]
    )
    assert [r["method"] for r in rows] == ["simclr", "moco", "finetune"]
    for r in rows:
        assert r["raw_images_per_s"] > 0 and r["full_images_per_s"] > 0
        for key in ("full", "ahead"):
            ratio = r[f"{key}_images_per_s"] / r["raw_images_per_s"]
            assert r[f"{key}_over_raw"] == pytest.approx(ratio, rel=0.02)
        assert r["syncs"] is None  # counted on CUDA only
    assert (tmp_path / "r.json").exists()


def test_bench_gpu_refuses_without_a_gpu_in_one_line(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present: the script would run")
    p = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_gpu.py"), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert p.returncode == 2
    assert p.stderr.count("\n") == 1 and "no CUDA device" in p.stderr
    assert "Traceback" not in p.stderr


def test_stratify_robustness_reruns_other_rules_on_the_same_latents_and_judges_the_worst(
    tmp_path,
):
    import numpy as np
    import stratify_robustness

    tiny = ["data.max_train=120", "warmup.epochs=1", "decoder.epochs=1",
            "evaluate.probe_epochs=2", "evaluate.baselines=false", "cluster.k_max=4",
            "model.widths=[4,8]", "model.latent_dim=8", "model.projector=[16,8]"]  # fmt: skip
    stratify_robustness.main(
        [
            "--out",
            str(tmp_path),
            "--rules",
            "eigengap",
            "--common",
            *tiny,
            "--variant",
            "cut",
            "data.drop={'8': 0.5}",
        ]  # fmt: skip
    )
    text = (tmp_path / "table.md").read_text()
    assert "| cut | stability | 120 / 950 (test) |" in text  # the packaged rule, 8s halved
    assert "| cut | eigengap |" in text
    # the other rule clustered the latents the packaged rule's warm-up (and refinement) produced
    same = np.load(tmp_path / "cut" / "embed" / "latents.npy")
    assert np.array_equal(np.load(tmp_path / "cut@eigengap" / "embed" / "latents.npy"), same)
    # random-feature scores are far below the goals: the verdict must say so
    assert "NOT met" in text and "every variant) met" not in text
    row = {"variant": "v", "n_train": 1, "n_eval": 1, "eval_split": "test", "k": 10,
           "linear probe": 0.9, "wall_s": 60.0, "k_rule": "stability"}  # fmt: skip
    good = [{**row, "majority mapping": 0.96, "kNN": 0.98}]
    assert stratify_robustness.table(good).rstrip().endswith(" met")
    worst = good + [{**row, "majority mapping": 0.96, "kNN": 0.965}]
    assert "NOT met" in stratify_robustness.table(worst)


@pytest.mark.parametrize("store", ["exact", "source"])
def test_bench_data_measures_both_layouts_and_compares_their_images(tmp_path, store):
    import json

    out = tmp_path / "r.json"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "bench_data.py"), "--n", "70"]
    cmd += ["--size", "16", "--source-size", "24", "--masks", "7", "--steps", "1"]
    cmd += ["--batch", "4", "--reference-n", "30", "--workers", "1", "--store", store]
    cmd += ["--root", str(tmp_path / "data"), "--json", str(out)]
    p = subprocess.run(cmd, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr[-2000:]
    r = json.loads(out.read_text())
    old, new = r["float32"], r["compact"]
    assert old["n_images"] == 30 and new["n_images"] == 70  # the reference on a subset
    assert old["cache_bytes_at_n"] == pytest.approx(old["cache_bytes"] * 70 / 30)
    # resized images: float32 when exact (no int64 masks for the unmasked images though),
    # one byte per value when rounded to the files' depth
    per_image = new["cache_bytes"] / 70
    assert per_image < (3 * 16 * 16 * 1.5 if store == "source" else 3 * 16 * 16 * 4 + 300)
    if store == "exact":
        assert "same images and fingerprint in both layouts (first 30 images): True" in p.stdout
    else:
        assert "largest |compact - float32|" in p.stdout


def test_bench_views_times_the_views_the_container_and_one_call():
    import bench_views

    ms = bench_views.main(["--size", "16", "--batch", "2", "--repeats", "1"])
    assert set(ms) == {"views", "container", "one call"} and all(v > 0 for v in ms.values())


def test_k_rule_study_scores_the_mapping_as_the_evaluation_does(tmp_path):
    """On a finished run the study's mapping at the run's own k is the one metrics.json
    reports, and the sweep reads each threshold's k from the curves."""
    import json

    import k_rule_study

    from medcl.config import packaged_config
    from medcl.stages.stratify import run_stratify
    from medcl.stratify_config import load_stratify_config

    # without the refinement: the SCAN study starts from the warm-up's latents
    # without the refinement: the SCAN study starts from the warm-up's latents
    tiny = ["data.max_train=120", "warmup.epochs=1", "decoder.epochs=1",
            "evaluate.probe_epochs=2", "evaluate.baselines=false", "cluster.k_max=5",
            "model.widths=[4,8]", "model.latent_dim=8", "model.projector=[16,8]",
            "refine.epochs=0"]  # fmt: skip
    out = tmp_path / "run"
    run_stratify(load_stratify_config(packaged_config("stratify-mnist"), tiny), out)
    metrics = json.loads((out / "metrics.json").read_text())
    r = k_rule_study.study_run(out, [(4, 0)])
    assert r["ks"] == [2, 3, 4, 5]
    mapped = metrics["rows"]["majority mapping"]["accuracy"]
    assert r["mapping"][metrics["k"]] == pytest.approx(mapped)
    (low, high) = k_rule_study.sweep({"run": r}, [0.0, 1.01])
    assert low["worst"] == r["mapping"][5]  # every k passes: the largest
    curve = r["curves"]["4x0"]
    assert high["worst"] == r["mapping"][r["ks"][curve.index(max(curve))]]  # none: argmax
    merged = k_rule_study.study_run(out, [(4, 0)], "merge")  # another cluster.method
    assert merged["ks"] == [2, 3, 4, 5] and all(0 <= v <= 1 for v in merged["mapping"].values())

    import knn_k_study  # the probe's k: at the run's own knn_k, what the evaluation reports

    by_k = knn_k_study.study_run(out, [1, 5])
    assert by_k[5][0] == pytest.approx(metrics["rows"]["kNN (k=5)"]["accuracy"])
    assert by_k[5][1] == pytest.approx(mapped)  # cluster.assign=knn with the same k

    import clustering_study  # other clusterings of the same latents, at k, k + 1, k + 2

    c = clustering_study.study_run(out)
    assert c["ks"] == [metrics["k"], metrics["k"] + 1, metrics["k"] + 2]
    assert c["mapping"]["spectral"][metrics["k"]] == pytest.approx(mapped)  # the stage's
    assert {"consensus", "smoothed", "projector-space", "spectral+kmeans"} <= set(c["mapping"])
    assert all(0 <= v <= 1 for by_k in c["mapping"].values() for v in by_k.values())
    assert c["errors"]["mapping_errors"] == round((1 - mapped) * metrics["n_eval"])
    rows = clustering_study.summary({"a": c, "b": c})
    assert rows[2].startswith("| spectral | ") and "+0.0000" in rows[2]
    # the misplaced group is the training images the run's own partition put there
    own = np.load(out / "train_clusters.npy")
    group = own[c["errors"]["misplaced_train"]]
    assert len(group) == 0 or (group == group[0]).all()
    e = c["errors"]
    assert len(e["still_there"]) == 2 and all(0 <= v <= 1 for v in e["still_there"])
    assert 0 <= e["neighbours_in_group"] <= 1 and 0 <= e["neighbours_same_digit"] <= 1
    # every training image in a cluster mapped to another digit, counted once, by digit pair
    from medcl.evaluate import majority_mapping

    *_, y_tr, _, mapped = clustering_study.load_run(out)
    mapping = majority_mapping(own[mapped], y_tr[mapped], int(own.max()) + 1)
    wrong = mapping[own] != y_tr
    assert sum(e["misplaced_by_digit"].values()) == int(wrong.sum())
    if wrong.any():
        first = next(iter(e["misplaced_by_digit"]))
        d, t = map(int, first.split("->"))
        assert e["misplaced_by_digit"][first] == int(((y_tr == d) & (mapping[own] == t)).sum())
    clustering_study.montage({"a": c}, {"a": out}, tmp_path / "m.png")
    assert (tmp_path / "m.png").stat().st_size > 1000

    import scan_refine_study  # SCAN from the run's warm-up encoder and k

    untrained = scan_refine_study.study_run(out, 0, 0, recluster=True)  # the warm-up's encoder
    knn = metrics["rows"]["kNN (k=5)"]["accuracy"]
    assert untrained["packaged"]["knn"] == knn and untrained["k"] == metrics["k"]
    assert untrained["scan_step"]["knn"] == pytest.approx(knn)  # what the evaluation saw
    assert untrained["scan+self_label"]["linear"] == pytest.approx(untrained["packaged"]["linear"])
    accuracy = metrics["rows"]["majority mapping"]["accuracy"]
    assert untrained["reclustered"]["mapping"] == pytest.approx(accuracy)  # the stage's clustering
    assert untrained["reclustered"]["k"] == metrics["k"]
    s = scan_refine_study.study_run(out, 1, 1, recluster=True)
    assert 2 <= s["reclustered"]["k"] <= 5 and 0 <= s["reclustered"]["mapping"] <= 1
    assert len(s["loss"]["scan"]) == 1 and len(s["loss"]["self_label"]) == 1
    for step in ("scan_step", "scan+self_label"):
        assert 0 <= s[step]["mapping"] <= 1 and 1 <= s[step]["clusters_used"] <= metrics["k"]
    table = scan_refine_study.summary([untrained, s])
    assert "paired differences" in table and "reclustered mapping" in table


def test_compare_robustness_pairs_the_variants_both_tables_have(tmp_path, capsys):
    import json

    import compare_robustness

    def row(variant, rule, k, mapping, knn, linear):
        return {"variant": variant, "k_rule": rule, "k": k, "majority mapping": mapping,
                "kNN": knn, "linear probe": linear}  # fmt: skip

    base = tmp_path / "base.json"
    cand = tmp_path / "cand.json"
    base.write_text(
        json.dumps(
            [
                row("a", "stability", 12, 0.950, 0.960, 0.940),
                row("b", "stability", 12, 0.970, 0.980, 0.960),
                row("b", "silhouette", 10, 0.100, 0.980, 0.960),
                row("only", "stability", 12, 0.5, 0.5, 0.5),
            ]
        )
    )
    cand.write_text(
        json.dumps(
            [
                row("a", "stability", 14, 0.960, 0.980, 0.940),
                row("b", "stability", 14, 0.960, 0.990, 0.960),
            ]
        )
    )
    compare_robustness.main(["--base", str(base), "--candidate", str(cand)])
    out = capsys.readouterr().out
    assert "mapping: differences [0.01, -0.01], mean +0.0000" in out
    assert "kNN: differences [0.02, 0.01], mean +0.0150" in out and "worst 0.960 -> 0.980" in out
    assert "only" not in out  # a variant on one side only is not compared
    with pytest.raises(SystemExit):
        compare_robustness.main(["--base", str(base), "--candidate", str(base), "--rule", "elbow"])
