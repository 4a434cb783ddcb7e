"""Would another clustering of the same latents map the digits better? A study on finished runs.

For every run directory given (finished ``medcl stratify`` runs; use validation runs only),
this reads the training latents the clustering stage saw and partitions them by the packaged
method (spectral clustering of the 10-nearest-neighbour graph, ``cluster_qr``) and by
alternatives that need no new training:

- ``spectral+kmeans``: the same spectral embedding discretised by k-means on its
  row-normalised first k eigenvectors (Ng, Jordan, Weiss 2001) instead of ``cluster_qr``;
- ``spectral-nnN``: the same method on the N-nearest-neighbour graph (N = 5, 7, 15, 20, 30);
- ``smoothed``: the packaged partition, then three rounds of every latent taking the
  majority cluster of its 10 nearest neighbours (itself included);
- ``consensus``: average linkage on the co-association of the 16 spectral partitions of
  80% subsamples that the stability rule compares (same draws, seed ``run.seed``): how often
  two latents fell in one cluster when both were drawn (Monti et al. 2003);
- ``projector-space``: the packaged method on the warm-up projector's L2-normalised outputs
  (the space the contrastive loss shapes) instead of the latents, for the clustering and
  for the assignment.

Each is scored as the evaluation stage scores the run (majority mapping on the training
labels, evaluation latents assigned by ``cluster.assign``) at the run's chosen k and at the
next two (a rule that chooses one or two clusters too many, as on one test variant). The
summary gives every alternative's paired difference from the packaged method over the runs,
with its 95% t interval. Nothing is trained; k is the one the run chose.

    python benchmarks/clustering_study.py runs/w200-val8/* [--json OUT] [--montage PNG]

Per run it also lists every digit -> digit pair with at least 6 training images in clusters
that map to the other digit (e.g. ``7->2 17``). ``--montage`` draws, one row per run, the
training images of the largest misplaced group.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
from k_rule_study import load_run, mapped_predictions  # noqa: E402  (benchmarks/ is on sys.path when run)

from medcl._load import load_npy  # noqa: E402
from medcl.cluster import laplacian_spectrum, partitions  # noqa: E402
from medcl.evaluate import paired_difference  # noqa: E402
from medcl.rundir import atomic_write_bytes, atomic_write_text  # noqa: E402
from medcl.stages.stratify._shared import LATENTS  # noqa: E402
from medcl.stages.stratify.clustering import partition  # noqa: E402

OFFSETS = (0, 1, 2)  # the chosen k and one or two more


def spectral_variants(X: np.ndarray, ks: list[int], seed: int) -> dict[str, dict[int, np.ndarray]]:
    """Packaged spectral partitions (exactly the clustering stage's), the k-means
    discretisation of the same embedding, and other graph sizes."""
    from sklearn.cluster import KMeans
    from sklearn.cluster._spectral import cluster_qr

    out: dict[str, dict[int, np.ndarray]] = {"spectral": {}, "spectral+kmeans": {}}
    _, emb = laplacian_spectrum(X, max(ks) + 1, seed=seed)
    for k in ks:
        out["spectral"][k] = partition(X, "spectral", k, seed)
        e = emb[:, :k] / np.linalg.norm(emb[:, :k], axis=1, keepdims=True)
        out["spectral+kmeans"][k] = KMeans(k, n_init=10, random_state=seed).fit_predict(e)
    for nb in (5, 7, 15, 20, 30):
        _, emb = laplacian_spectrum(X, max(ks) + 1, n_neighbors=nb, seed=seed)
        out[f"spectral-nn{nb}"] = {k: np.asarray(cluster_qr(emb[:, :k]), np.int64) for k in ks}
    return out


def smoothed(X: np.ndarray, labels: np.ndarray, k: int, n_neighbors: int = 10, rounds: int = 3):
    """Each point takes the majority label of its ``n_neighbors`` nearest (itself included)."""
    from sklearn.neighbors import NearestNeighbors

    idx = NearestNeighbors(n_neighbors=n_neighbors).fit(X).kneighbors(X, return_distance=False)
    rows = np.repeat(np.arange(len(X)), n_neighbors)
    for _ in range(rounds):
        votes = np.zeros((len(X), k))
        np.add.at(votes, (rows, labels[idx].ravel()), 1)
        labels = votes.argmax(1)
    return labels


def consensus(X: np.ndarray, ks: list[int], seed: int, n_resamples=16, fraction=0.8):
    """Average linkage on the co-association of spectral partitions of the stability rule's
    subsamples (the draws of :func:`medcl.cluster.stability_curve` with the same seed)."""
    from sklearn.cluster import AgglomerativeClustering

    from medcl.cluster._choose_k import subsamples

    n = len(X)
    subsets = subsamples(n, n_resamples, fraction, seed)
    together = {k: np.zeros((n, n), np.float32) for k in ks}
    drawn = np.zeros((n, n), np.float32)
    for i, idx in enumerate(subsets):
        fits = partitions(X[idx], ks, "spectral", seed=seed + i)
        drawn[np.ix_(idx, idx)] += 1
        for k in ks:
            onehot = np.eye(k, dtype=np.float32)[fits[k]]
            together[k][np.ix_(idx, idx)] += onehot @ onehot.T
    out = {}
    for k in ks:
        dist = 1.0 - together[k] / np.maximum(drawn, 1.0)
        out[k] = AgglomerativeClustering(k, metric="precomputed", linkage="average").fit_predict(
            dist
        )
    return out


def projected(run: Path, cfg) -> np.ndarray:
    """The warm-up projector applied to the run's latents, L2-normalised."""
    import torch

    from medcl.models._heads import ProjectionHead

    state = torch.load(run / "warmup" / "model.pt", map_location="cpu")
    head = ProjectionHead([cfg.model.latent_dim, *cfg.model.projector])
    head.load_state_dict(
        {k.removeprefix("projector."): v for k, v in state.items() if k.startswith("projector.")}
    )
    with torch.no_grad():
        p = head.eval()(torch.from_numpy(load_npy(run / LATENTS).astype(np.float32))).numpy()
    return p / np.linalg.norm(p, axis=1, keepdims=True)


def study_run(run: Path) -> dict:
    """Mapping of every variant at the run's k and the next ones."""
    cfg, z, tr, te, y_tr, y_te, mapped = load_run(run)
    k0 = int(json.loads((run / "cluster.json").read_text())["k"])
    ks = [k0 + o for o in OFFSETS]
    X, seed = z[tr], cfg.run.seed
    parts = spectral_variants(X, ks, seed)
    parts["smoothed"] = {k: smoothed(X, parts["spectral"][k], k) for k in ks}
    parts["consensus"] = consensus(X, ks, seed)
    p = projected(run, cfg)
    parts["projector-space"] = partitions(p[tr], ks, "spectral", seed=seed)
    mapping: dict[str, dict[int, float]] = {}
    scored = {}  # spectral: k -> (labels, cluster -> digit mapping, predictions)
    for name, by_k in parts.items():
        space = p if name == "projector-space" else z
        mapping[name] = {}
        for k, lab in by_k.items():
            pred, m = mapped_predictions(space, tr, te, y_tr, mapped, lab, k, cfg)
            mapping[name][k] = float((pred == y_te).mean())
            if name == "spectral":
                scored[k] = (lab, m, pred)
    lab, m, pred = scored[k0]
    later = [scored[k][:2] for k in ks[1:]]
    errors = where_wrong(z, tr, te, y_tr, y_te, lab, m, pred, cfg.evaluate.knn_k, later)
    return {"k": k0, "ks": ks, "mapping": mapping, "errors": errors}


def where_wrong(z, tr, te, y_tr, y_te, lab, m, pred, knn_k: int, later=None) -> dict:
    """The packaged partition's mapping errors (``pred``, by the cluster -> digit mapping
    ``m``): how many kNN on the labels makes too, and the largest group of one digit inside a
    cluster that maps to another: its 10 nearest training latents (how many show its digit,
    how many are in the group itself) and, for each partition ``(labels, mapping)`` of
    ``later`` (the next k), how much of it still sits in clusters mapped to that other digit."""
    from sklearn.metrics.cluster import contingency_matrix
    from sklearn.neighbors import NearestNeighbors

    from medcl.evaluate import knn_predict

    knn = knn_predict(z[tr], y_tr, z[te], knn_k)
    clusters, digits = np.unique(lab), np.unique(y_tr)
    table = contingency_matrix(lab, y_tr)  # clusters x digits, both sorted
    table[m[clusters][:, None] == digits[None, :]] = 0  # the digit each cluster maps to
    moved: dict[str, int] = {}  # "7->2": training 7s in clusters that map to 2
    for ci, dj in zip(*np.nonzero(table), strict=True):
        key = f"{digits[dj]}->{int(m[clusters[ci]])}"
        moved[key] = moved.get(key, 0) + int(table[ci, dj])
    i, j = np.unravel_index(table.argmax(), table.shape)
    c, d, n = clusters[i], digits[j], int(table[i, j])
    group = np.flatnonzero((lab == c) & (y_tr == d))  # positions in the training set
    same = inside = 0.0  # an empty group (every cluster holds only its own digit)
    still = [0.0] * len(later or [])
    if len(group):
        nb = NearestNeighbors(n_neighbors=11).fit(z[tr]).kneighbors(z[tr][group])[1][:, 1:]
        same, inside = float((y_tr[nb] == d).mean()), float(np.isin(nb, group).mean())
        still = [float((mk[lk[group]] == m[c]).mean()) for lk, mk in (later or [])]
    return {
        "mapping_errors": int((pred != y_te).sum()),
        "knn_also_wrong": int(((pred != y_te) & (knn != y_te)).sum()),
        "largest_misplaced": f"{n} training {d}s ({n / (y_tr == d).sum():.1%}) in a cluster "
        f"of {int(m[c])}s",
        "misplaced_train": group.tolist(),  # for --montage
        "misplaced_by_digit": dict(sorted(moved.items(), key=lambda kv: -kv[1])),
        "neighbours_same_digit": same,  # of its 10 nearest training latents, itself left out
        "neighbours_in_group": inside,
        "still_there": still,
    }


def montage(results: dict, runs: dict[str, Path], out: Path, per_row: int = 16) -> None:
    """One row per run: up to ``per_row`` training images of its largest misplaced group
    (the digit the packaged partition puts most often in a cluster mapped to another)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from medcl.stages.stratify._shared import load_stratify_data

    fig, axes = plt.subplots(
        len(results), per_row, figsize=(per_row * 0.7, len(results) * 0.85), squeeze=False
    )
    for row, (name, r) in zip(axes, results.items(), strict=True):
        cfg, _, tr, *_ = load_run(runs[name])
        images = load_stratify_data(cfg).data.images
        idx = r["errors"]["misplaced_train"]
        for i, ax in enumerate(row):
            ax.axis("off")
            if i < len(idx):
                ax.imshow(np.asarray(images[tr[idx[i]]]).squeeze(), cmap="gray")
        row[0].set_title(
            f"{name}: {r['errors']['largest_misplaced']}", fontsize=7, loc="left", pad=2
        )
    fig.suptitle("largest misplaced group of each run (training images)", fontsize=9)
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=0.93, wspace=0.05, hspace=0.45)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    plt.close(fig)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out, buf.getvalue())


def summary(results: dict) -> list[str]:
    """Per variant: paired difference from spectral at the chosen k and over the k range."""
    names = list(next(iter(results.values()))["mapping"])
    lines = [
        "| variant | at the chosen k: mean, paired diff (95% CI), worst | over k..k+2: mean, "
        "paired diff (95% CI), worst |",
        "|---|---|---|",
    ]
    base0 = [r["mapping"]["spectral"][r["k"]] for r in results.values()]
    base_all = [np.mean(list(r["mapping"]["spectral"].values())) for r in results.values()]
    for name in names:
        at0 = [r["mapping"][name][r["k"]] for r in results.values()]
        over = [np.mean(list(r["mapping"][name].values())) for r in results.values()]
        cells = []
        for vals, base in ((at0, base0), (over, base_all)):
            d = paired_difference(vals, base)
            cells.append(
                f"{np.mean(vals):.4f}, {d['mean']:+.4f} ({d['low']:+.3f} to {d['high']:+.3f}), "
                f"{min(vals):.3f}"
            )
        lines.append(f"| {name} | {cells[0]} | {cells[1]} |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", type=Path, help="finished medcl stratify run directories")
    ap.add_argument("--json", type=Path, help="write every mapping here")
    ap.add_argument(
        "--montage", type=Path, help="draw each run's largest misplaced group here (PNG)"
    )
    args = ap.parse_args()
    t0 = time.perf_counter()
    results = {}
    for run in args.runs:
        if not (run / LATENTS).exists():
            print(f"{run}: no {LATENTS}, skipped")
            continue
        r = results[run.name] = study_run(run)
        print(f"{run.name} (chosen k = {r['k']}), mapping at k = {r['ks']}:", flush=True)
        for name, by_k in r["mapping"].items():
            print(f"  {name:16s} " + " ".join(f"{v:.3f}" for v in by_k.values()))
        e = r["errors"]
        print(
            f"  spectral at k = {r['k']}: {e['mapping_errors']} mapping errors, kNN also wrong "
            f"on {e['knn_also_wrong']}; largest misplaced group: {e['largest_misplaced']}"
        )
        print(
            f"    its 10 nearest training latents: {e['neighbours_same_digit']:.2f} of its "
            f"digit, {e['neighbours_in_group']:.2f} in the group; still in that cluster's "
            "digit at k = "
            + ", ".join(f"{k}: {v:.2f}" for k, v in zip(r["ks"][1:], e["still_there"], strict=True))
        )
        top = [f"{key} {n}" for key, n in e["misplaced_by_digit"].items() if n >= 6]
        print(f"    training digits in another digit's clusters (>= 6): {', '.join(top) or '-'}")
    if len(results) < 2:
        raise SystemExit("clustering_study.py: needs at least two finished runs.")
    print(f"\n{len(results)} runs; paired differences from the packaged spectral partition")
    print("\n".join(summary(results)))
    print(f"({time.perf_counter() - t0:.0f} s)")
    if args.json:
        atomic_write_text(args.json, json.dumps(results, indent=1))
    if args.montage:
        montage(results, {run.name: run for run in args.runs}, args.montage)
        print(f"montage: {args.montage}")


if __name__ == "__main__":
    main()
