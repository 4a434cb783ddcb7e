"""Matplotlib figures of a run; each returns a Figure and never touches training."""

from __future__ import annotations

from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import ListedColormap  # noqa: E402

from medcl.evaluate import summarize  # noqa: E402


def elbow_figure(summary: dict):
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    ks, curve = summary["k_values"], summary["curve"]
    ax.plot(ks, curve, "o-", ms=3)
    k = summary["k"]
    if k in ks:
        ax.axvline(k, color="C3", ls="--")
        ax.annotate(
            f"k = {k}",
            (k, curve[ks.index(k)]),
            textcoords="offset points",
            xytext=(8, 8),
            color="C3",
        )
    ax.set_xlabel("number of clusters k")
    ax.set_ylabel("mean within-cluster distance")
    ax.set_title(
        "Elbow of the Ward tree"
        + (" (k fixed by the user)" if summary.get("elbow_k") is None else "")
    )
    fig.tight_layout()
    return fig


def gallery_figure(
    images: np.ndarray,
    labels: np.ndarray,
    per_class: int = 8,
    max_classes: int = 12,
    reference: np.ndarray | None = None,
):
    """Sample images of each pseudo-class; with ``reference`` (e.g. the appearance group
    of each image), each row's title counts the members of every reference group."""
    classes = np.unique(labels)[:max_classes]
    fig, axes = plt.subplots(
        len(classes), per_class, squeeze=False, figsize=(per_class * 0.9, len(classes) * 1.6)
    )
    rng = np.random.default_rng(0)
    for row, c in zip(axes, classes, strict=False):
        members = np.flatnonzero(labels == c)
        chosen = rng.choice(members, size=min(per_class, len(members)), replace=False)
        for j, ax in enumerate(row):
            ax.axis("off")
            if j < len(chosen):
                ax.imshow(_show(images[chosen[j]]), cmap="gray", vmin=0, vmax=1)
        title = f"class {c} (n={len(members)})"
        if reference is not None:
            groups, counts = np.unique(np.asarray(reference)[members], return_counts=True)
            title += ": " + ", ".join(
                f"{g} {n}" for g, n in sorted(zip(groups, counts, strict=True), key=lambda t: -t[1])
            )
        row[0].set_title(title, fontsize=7, loc="left")
    fig.suptitle("Sample images per pseudo-class", fontsize=9)
    fig.tight_layout()
    return fig


def agreement_figure(agreement: dict, name: str):
    """Heat map of pseudo-classes (rows) against reference groups (columns), image counts."""
    table = np.asarray(agreement["contingency"], dtype=float)
    fig, ax = plt.subplots(figsize=(1.6 + 1.1 * table.shape[1], 0.9 + 0.3 * table.shape[0]))
    shares = table / np.maximum(table.sum(axis=1, keepdims=True), 1)
    ax.imshow(shares, cmap="Blues", vmin=0, vmax=1, aspect="auto")
    for (i, j), v in np.ndenumerate(table):
        ax.text(
            j,
            i,
            f"{int(v)}",
            ha="center",
            va="center",
            fontsize=7,
            color="white" if shares[i, j] > 0.6 else "black",
        )
    ax.set_xticks(range(len(agreement["classes"])), agreement["classes"], fontsize=8)
    ax.set_yticks(range(len(agreement["clusters"])), agreement["clusters"], fontsize=7)
    ax.set_xlabel(f"{name} group (never seen by any method)")
    ax.set_ylabel("pseudo-class")
    ax.set_title(
        f"NMI {agreement['nmi']:.2f}, ARI {agreement['ari']:.2f} (shade: share of the row)",
        fontsize=9,
    )
    fig.tight_layout()
    return fig


def comparison_figure(comparisons: list[dict]):
    """Paired differences (mean and 95% CI over seeds) against each baseline, per fraction."""
    from medcl.evaluate._compare import DISPLAY

    bases = list(dict.fromkeys(c["baseline"] for c in comparisons))
    if not bases:
        return None
    fig, axes = plt.subplots(1, len(bases), figsize=(5 * len(bases), 3.6), squeeze=False)
    for ax, base in zip(axes[0], bases, strict=True):
        mine = [c for c in comparisons if c["baseline"] == base]
        methods = list(dict.fromkeys(c["method"] for c in mine))
        for k, m in enumerate(methods):
            pts = sorted((c["fraction"], c) for c in mine if c["method"] == m)
            x = np.array([100 * f for f, _ in pts]) * (1 + 0.04 * (k - len(methods) / 2))
            y = np.array([c["mean"] for _, c in pts])
            lo = np.array([c["low"] for _, c in pts])
            hi = np.array([c["high"] for _, c in pts])
            err = np.nan_to_num(np.stack([y - lo, hi - y]), nan=0.0)
            ax.errorbar(x, y, yerr=err, marker="o", capsize=3, label=DISPLAY.get(m, m))
        ax.axhline(0, color="k", lw=0.8)
        ax.set_xscale("log")
        ticks = sorted({100 * c["fraction"] for c in mine})
        ax.set_xticks(ticks, [f"{t:g}%" for t in ticks])
        ax.set_xlabel("labelled fraction of the training masks")
        ax.set_ylabel(f"Dice minus {DISPLAY.get(base, base)} (95% CI)")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def embedding_figure(embeddings: np.ndarray, labels: np.ndarray):
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    n = len(embeddings)
    if n > 5000:
        sel = np.random.default_rng(0).choice(n, 5000, replace=False)
        embeddings, labels = embeddings[sel], labels[sel]
    if len(embeddings) >= 10:
        xy = TSNE(
            2, perplexity=min(30, len(embeddings) // 4), random_state=0, init="pca"
        ).fit_transform(embeddings)
        method = "t-SNE"
    else:
        xy = PCA(2).fit_transform(embeddings)
        method = "PCA"
    fig, ax = plt.subplots(figsize=(5, 4.5))
    sc = ax.scatter(xy[:, 0], xy[:, 1], c=labels, cmap="tab20", s=12)
    ax.set_title(f"{method} of the embeddings", fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    fig.colorbar(sc, ax=ax, label="pseudo-class")
    fig.tight_layout()
    return fig


def loss_figure(metrics: list[dict]):
    curves: dict = defaultdict(list)
    for r in metrics:
        if "loss" not in r or "epoch" not in r:
            continue
        stage = r.get("stage")
        if stage == "features":
            key = ("features", "beta-VAE")
        elif stage == "pretrain":
            key = ("pretrain", f"{r['method']} seed {r['seed']}")
        elif stage == "finetune" and r.get("seed") == 0:
            key = (f"finetune {r['fraction']:g}", r["method"])
        else:
            continue
        curves[key].append((r["epoch"], r["loss"]))
    panels = sorted({k[0] for k in curves}, key=lambda s: (s != "features", s != "pretrain", s))
    if not panels:
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 3), squeeze=False)
    for ax, panel in zip(axes[0], panels, strict=True):
        for (p, name), pts in sorted(curves.items()):
            if p == panel:
                pts = dict(pts)  # a resumed epoch replaces the interrupted one
                ax.plot(list(pts), list(pts.values()), "o-", ms=2, label=name, lw=1)
        ax.set_title(panel, fontsize=9)
        ax.set_xlabel("epoch")
        ax.legend(fontsize=6)
    axes[0][0].set_ylabel("training loss")
    fig.tight_layout()
    return fig


def dice_figure(rows: list[dict]):
    summary = summarize(rows)
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for m, per in summary.items():
        fr = sorted(per)
        ax.errorbar(
            [100 * f for f in fr],
            [per[f][0] for f in fr],
            yerr=[per[f][1] for f in fr],
            marker="o",
            capsize=3,
            label=m,
        )
    ax.set_xscale("log")
    ticks = sorted({100 * f for per in summary.values() for f in per})
    ax.set_xticks(ticks, [f"{t:g}%" for t in ticks])
    ax.set_xlabel("labelled fraction of the training masks")
    ax.set_ylabel("test Dice % (mean ± std over seeds)")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def overlay_figure(
    images: np.ndarray, truth: np.ndarray, preds: dict[str, np.ndarray], num_classes: int
):
    cmap = ListedColormap(plt.get_cmap("tab10")(np.linspace(0, 1, 10))[: max(2, num_classes)])
    cols = 1 + len(preds)
    fig, axes = plt.subplots(
        len(images), cols, squeeze=False, figsize=(1.6 * cols, 2.6 * len(images))
    )
    for i in range(len(images)):
        panels = [("ground truth", truth[i])] + [(k, v[i]) for k, v in preds.items()]
        for ax, (title, mask) in zip(axes[i], panels, strict=True):
            ax.imshow(_show(images[i]), cmap="gray", vmin=0, vmax=1)
            ax.imshow(
                np.ma.masked_equal(mask, 0),
                cmap=cmap,
                vmin=0,
                vmax=num_classes - 1,
                alpha=0.5,
                interpolation="nearest",
            )
            ax.axis("off")
            if i == 0:
                ax.set_title(title, fontsize=7)
    fig.tight_layout()
    return fig


def _show(img: np.ndarray) -> np.ndarray:
    """(C, H, W) -> something imshow takes, in [0, 1]."""
    img = np.asarray(img, dtype=np.float32)
    out = img[0] if img.shape[0] == 1 else np.moveaxis(img[:3], 0, -1)
    lo, hi = float(out.min()), float(out.max())
    return out if 0 <= lo and hi <= 1 else (out - lo) / max(hi - lo, 1e-8)
