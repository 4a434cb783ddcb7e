"""Plots and report of ``medcl stratify``: t-SNE with decoded prototypes, prototype grid, gallery.

Everything comes from the run directory the stratify stages wrote (``metrics.json``,
``cluster.json``, the training stages' ``done.json`` (loss histories), ``decoder/decoded.npy``, ``evaluate/latents.npy`` and ``clusters.npy``,
``config.yaml``); only the evaluated images themselves are passed in. Nothing here imports
a stage.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from medcl.report._report import _save, write_pages  # noqa: E402
from medcl.rundir import RunDir  # noqa: E402


def _show(img: np.ndarray) -> np.ndarray:
    """``(C, H, W)`` -> something imshow takes."""
    return img[0] if img.shape[0] == 1 else np.moveaxis(img[:3], 0, -1)


def tsne_figure(
    points: np.ndarray, labels: np.ndarray | None, clusters: np.ndarray, decoded: np.ndarray
):
    """t-SNE panels (true label if known, cluster), each decoded prototype at its cluster's mean."""
    from matplotlib.offsetbox import AnnotationBbox, OffsetImage

    panels = [(clusters, "cluster")] if labels is None else [(labels, "true label")]
    panels += [(clusters, "cluster")] if labels is not None else []
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 5.5), squeeze=False)
    axes = axes[0]
    for ax, (colour, title) in zip(axes, panels, strict=True):
        sc = ax.scatter(points[:, 0], points[:, 1], c=colour, cmap="tab20", s=5, alpha=0.7)
        ax.set_title(f"t-SNE of the latent space, coloured by {title}")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.legend(*sc.legend_elements(num=None), fontsize=6, loc="best", markerscale=0.7)
    for j, img in enumerate(decoded):
        members = clusters == j
        if not members.any():
            continue
        xy = points[members].mean(0)
        box = OffsetImage(_show(img), zoom=1.2, cmap="gray")
        axes[-1].add_artist(AnnotationBbox(box, xy, frameon=True, pad=0.1))
    fig.tight_layout()
    return fig


def prototype_grid(decoded: np.ndarray, sizes: list[int]):
    k = len(decoded)
    cols = min(k, 10)
    rows = -(-k // cols)
    fig, axes = plt.subplots(rows, cols, squeeze=False, figsize=(cols * 1.1, rows * 1.3))
    for j, ax in enumerate(axes.ravel()):
        ax.axis("off")
        if j < k:
            ax.imshow(_show(decoded[j]), cmap="gray", vmin=0, vmax=1)
            ax.set_title(f"{j} (n={sizes[j]})", fontsize=7)
    fig.suptitle("Decoded prototypes (typical image of each stratum)", fontsize=9)
    fig.tight_layout()
    return fig


def member_gallery(images: np.ndarray, clusters: np.ndarray, k: int, per_cluster: int = 10):
    rng = np.random.default_rng(0)
    fig, axes = plt.subplots(k, per_cluster, squeeze=False, figsize=(per_cluster * 0.8, k * 0.85))
    for j in range(k):
        members = np.flatnonzero(clusters == j)
        chosen: np.ndarray | list = (
            rng.choice(members, size=min(per_cluster, len(members)), replace=False)
            if len(members)
            else []
        )
        for i, ax in enumerate(axes[j]):
            ax.axis("off")
            if i < len(chosen):
                ax.imshow(_show(images[chosen[i]]), cmap="gray", vmin=0, vmax=1)
        axes[j][0].set_title(f"cluster {j}", fontsize=6, loc="left")
    fig.suptitle("Members per cluster (random sample)", fontsize=9)
    fig.tight_layout()
    return fig


# the curves a k rule may add to cluster.json, with their axis labels
_RULE_CURVES = {
    "silhouette": "mean silhouette (cosine)",
    "stability": "worst-cluster Jaccard on subsamples",
    "eigengap": "eigengap of the kNN graph",
}


def elbow_plot(info: dict):
    """The within-cluster distance curve with its knee; beside it the curve of each other k
    rule that was computed (silhouette, stability, eigengap) with the k it chose."""
    extra = [name for name in _RULE_CURVES if info.get(name)]
    n = 1 + len(extra)
    fig, axes = plt.subplots(1, n, figsize=(4.5 * n, 3.2), squeeze=False)
    ax = axes[0][0]
    ax.plot(info["k_values"], info["curve"], "o-", ms=3)
    ax.axvline(info["elbow_k"], color="C3", ls="--", label=f"elbow k = {info['elbow_k']}")
    ax.set_xlabel("k")
    ax.set_ylabel("mean within-cluster distance")
    ax.legend()
    for ax, name in zip(axes[0][1:], extra, strict=True):
        ax.plot(info["k_values"], info[name], "o-", ms=3, color="C2")
        k = info.get(f"{name}_k")
        if k is not None:
            ax.axvline(k, color="C3", ls="--", label=f"{name} k = {k}")
            ax.legend()
        if name == "stability":  # the rule's threshold (runs from before it was kept: 0.75)
            t = info.get("stability_threshold", 0.75)
            ax.axhline(t, color="0.6", lw=0.8, label=f"threshold {t:g}")
            ax.legend()
        ax.set_xlabel("k")
        ax.set_ylabel(_RULE_CURVES[name])
    for a in axes[0]:
        a.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    return fig


def training_curves(records: dict[str, dict]):
    """One panel per training stage that recorded a loss history (``warmup``, ``refine``
    with its two steps, ``decoder``: their ``done.json``), loss against epoch; None if none."""
    panels = []
    for stage, title in (("warmup", "warm-up"), ("refine", "refinement"), ("decoder", "decoder")):
        done = records.get(stage) or {}
        steps = done.get("loss_by_step") or ({stage: done["loss"]} if done.get("loss") else {})
        steps = {name: v for name, v in steps.items() if v}
        if steps:
            panels.append((title, steps))
    if not panels:
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.0), squeeze=False)
    for ax, (title, steps) in zip(axes[0], panels, strict=True):
        start = 0  # steps one after the other, each on its own loss axis (their scales differ)
        for i, (name, loss) in enumerate(steps.items()):
            a = ax if i == 0 else ax.twinx()
            a.plot(range(start + 1, start + len(loss) + 1), loss, lw=1.2, color=f"C{i}")
            a.set_ylabel(f"{name} loss" if len(steps) > 1 else "loss", color=f"C{i}", fontsize=8)
            start += len(loss)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    return fig


def metrics_markdown(m: dict) -> str:
    paper = m.get("paper_mnist") or {}
    lines = [
        f"Metrics on the {m['n_eval']} '{m['eval_split']}' images of {m['dataset']}; "
        f"k = {m['k']} clusters (elbow: {m['elbow_k']}"
        + "".join(
            f", {name}: {m[name + '_k']}" for name in _RULE_CURVES if m.get(name + "_k") is not None
        )
        + f"); seed {m['seed']}.",
        "",
    ]
    if m["rows"]:
        # the paper's column only where the paper reported this data set (MNIST)
        head = "| method | accuracy | precision (macro) | recall (macro) |"
        lines += [
            head + (" paper (MNIST) |" if paper else ""),
            "|---|---|---|---|" + ("---|" if paper else ""),
        ]
    else:
        lines.append(
            "No labels (data.dataset=folder), so nothing to map the clusters to: they are "
            "described by their silhouette, their sizes and their decoded prototypes."
        )
    for name, r in m["rows"].items():
        ref = f" {paper.get(name.replace(' (baseline)', ''), '')} |" if paper else ""
        lines.append(
            f"| {name} | {r['accuracy']:.3f} | {r['precision']:.3f} | {r['recall']:.3f} |{ref}"
        )
    c = m["cluster"]
    if "supervised CNN (baseline)" in m["rows"]:
        lines += [
            "",
            "Baselines: the supervised CNN is the same encoder with a linear head, trained from "
            "scratch on the training labels (ImageNet weights cannot be downloaded here); "
            "features + KMeans clusters its penultimate features with KMeans (same k) and maps "
            "the clusters to labels by majority.",
        ]
    lines += [
        "",
        "Clusters: "
        + (f"NMI {c['nmi']:.3f}, ARI {c['ari']:.3f}, " if "nmi" in c else "")
        + f"silhouette (cosine) {c['silhouette']:.3f}.",
        f"Conditional decoder {m['eval_split']} MSE: {m['decoder_mse']['true_assignment']:.4f} with the true "
        f"assignment, {m['decoder_mse']['shuffled_assignment']:.4f} with shuffled assignments.",
        "Wall time (s): " + ", ".join(f"{k} {v}" for k, v in m["seconds"].items()) + ".",
        "",
    ]
    return "\n".join(lines)


def write_stratify_report(run: RunDir, images: np.ndarray, labels: np.ndarray | None) -> None:
    """``report.md`` (PNGs in ``plots/``) and a self-contained ``report.html`` of a finished
    stratify run; ``images`` and ``labels`` are those of the evaluated images, in order."""
    from sklearn.manifold import TSNE

    from medcl._load import load_npy

    cfg = run.load_config_dict() or {}
    metrics = run.read_json("metrics.json")
    info = run.read_json("cluster.json") or {}
    z = load_npy(run.path / "evaluate" / "latents.npy")
    clusters = load_npy(run.path / "evaluate" / "clusters.npy")
    decoded = load_npy(run.path / "decoder" / "decoded.npy")
    rng = np.random.default_rng(0)
    tsne_points = int((cfg.get("evaluate") or {}).get("tsne_points", 1000))
    # positions in the evaluated images (sorted, as the images are in data set order)
    pick = np.sort(rng.choice(len(z), size=min(tsne_points, len(z)), replace=False))
    perplexity = float(min(30, max(2, (len(pick) - 1) // 3)))
    pts = TSNE(2, perplexity=perplexity, init="pca", random_state=0).fit_transform(z[pick])
    k = len(decoded)
    sections = [
        ("Results", metrics_markdown(metrics), None),
        (
            "Latent space",
            "",
            _save(
                tsne_figure(pts, None if labels is None else labels[pick], clusters[pick], decoded),
                run.file("plots", "tsne.png"),
            ),
        ),
        (
            "Decoded prototypes",
            "",
            _save(
                prototype_grid(decoded, info.get("sizes", [0] * k)),
                run.file("plots", "prototypes.png"),
            ),
        ),
        (
            "Members per cluster",
            "",
            _save(member_gallery(images, clusters, k), run.file("plots", "gallery.png")),
        ),
    ]
    if info.get("k_values"):
        sections.append(
            ("Choice of k", "", _save(elbow_plot(info), run.file("plots", "elbow.png")))
        )
    trained = ["warmup", "decoder"] + (
        ["refine"] if (cfg.get("refine") or {}).get("epochs") else []
    )
    records = {s: run.read_json(f"{s}/done.json") for s in trained}  # not an old refinement's
    curves = training_curves({s: r for s, r in records.items() if r})
    if curves is not None:
        sections.append(("Training", "", _save(curves, run.file("plots", "training.png"))))
    write_pages(run, "medcl stratify report", sections, cfg)
