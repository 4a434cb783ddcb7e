"""The run report: ``report.md`` (with PNGs in ``plots/``) and a self-contained ``report.html``."""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

import numpy as np

from medcl.evaluate import paired_comparisons, results_markdown
from medcl.rundir import RunDir, atomic_write_bytes, atomic_write_text


def _save(fig, path: Path) -> Path:
    """Write ``fig`` as a PNG (atomically) and return its path."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return path


def write_pages(
    run: RunDir, heading: str, sections: list[tuple[str, str, Path | None]], config: dict
) -> Path:
    """``report.md`` (PNGs linked from ``plots/``) and a self-contained ``report.html``.

    ``sections`` are ``(title, markdown text, PNG path or None)``; the HTML embeds each PNG
    as base64 so the page opens anywhere on its own.
    """
    md = [f"# {heading}", "", f"Run directory: `{run.path}`", ""]
    body = [
        f"<h1>{html.escape(heading)}</h1>"
        f"<p>Run directory: <code>{html.escape(str(run.path))}</code></p>"
    ]
    for title, text, png in sections:
        md += [f"## {title}", "", text]
        body.append(f"<h2>{html.escape(title)}</h2>{_md_to_html(text)}")
        if png is not None:
            md += [f"![{title}]({png.relative_to(run.path).as_posix()})", ""]
            data = base64.b64encode(png.read_bytes()).decode()
            body.append(f'<img alt="{html.escape(title)}" src="data:image/png;base64,{data}">')
    md += ["## Config", "", "```json", json.dumps(config, indent=2), "```", ""]
    body.append(f"<h2>Config</h2><pre>{html.escape(json.dumps(config, indent=2))}</pre>")
    atomic_write_text(run.file("report.md"), "\n".join(md))
    page = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(heading)}</title>"
        "<style>body{font-family:sans-serif;max-width:1100px;margin:auto;padding:1em}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px}"
        "img{max-width:100%}</style></head><body>" + "".join(body) + "</body></html>"
    )
    atomic_write_text(run.file("report.html"), page)
    return run.path / "report.html"


def write_report(run: RunDir, data=None) -> Path:
    """Write the report of everything the run directory holds so far; returns the HTML path.

    ``data`` (the run's :class:`~medcl.data.ImageSet`) enables the image galleries and the
    prediction overlays; without it those sections are left out.
    """
    from medcl.report import _plots as P

    results = run.read_json("results.json") or {"rows": []}
    summary = run.read_json("cluster/summary.json")
    config = run.load_config_dict() or {}
    methods = (config.get("run") or {}).get("methods")
    sections: list[tuple[str, str, Path | None]] = []  # (title, markdown text, png)

    rows = results["rows"]
    stopped = run.read_json("stopped.json")
    if stopped:  # pretrained, then nothing to fine-tune on (no masks, or no val/test split)
        encoders = "\n".join(f"- `{e}`" for e in stopped.get("encoders", []))
        sections.append(
            (
                "Stopped before fine-tuning",
                f"{stopped.get('reason', '')}\n\nPretrained encoders (load one with "
                f"`medcl.load_encoder(run_dir, method, seed)`):\n\n{encoders}\n",
                None,
            )
        )
    if rows:
        timing = ", ".join(f"{k} {v:.0f} s" for k, v in results.get("stage_seconds", {}).items())
        layout = (config.get("data") or {}).get("layout")
        text = results_markdown(results, methods, layout) + f"\nTime per stage: {timing}.\n"
        names = results.get("class_names", [])[1:]
        if names:
            per_class = _per_class_table(rows, names, methods)
            text += "\nPer-class Dice % (mean over seeds), lowest label fraction:\n\n" + per_class
        sections.append(("Results", text, None))
        sections.append(
            (
                "Dice vs label fraction",
                "",
                _save(P.dice_figure(rows), run.file("plots", "dice.png")),
            )
        )
        fig = P.comparison_figure(paired_comparisons(rows))
        if fig is not None:
            sections.append(
                (
                    "Paired differences",
                    "Each method minus the baseline, per seed, then mean and 95% CI over seeds.",
                    _save(fig, run.file("plots", "paired.png")),
                )
            )
    if summary:
        sections.append(
            (
                "Elbow curve",
                f"Method {summary['method']}; k = {summary['k']}"
                + (
                    f" (knee of the curve at k = {summary['elbow_k']})."
                    if summary.get("elbow_k")
                    else " (fixed)."
                )
                + (f"\n\n**Warning:** {summary['warning']}." if summary.get("warning") else ""),
                _save(P.elbow_figure(summary), run.file("plots", "elbow.png")),
            )
        )
        labels_path = run.path / "cluster" / "labels.npy"
        emb_path = run.path / "features" / "embeddings.npy"
        if labels_path.exists() and emb_path.exists():
            labels = np.load(labels_path)
            sections.append(
                (
                    "Embedding map",
                    "",
                    _save(
                        P.embedding_figure(np.load(emb_path), labels),
                        run.file("plots", "embeddings.png"),
                    ),
                )
            )
            agreement = run.read_json("cluster/agreement.json") or {}
            reference = None
            if data is not None:
                train_idx = data.indices("train")
                train = data.images[train_idx]
                if agreement and len(train) == len(labels):
                    reference = data.reference_labels[next(iter(agreement))][train_idx]
                if len(train) == len(labels):
                    sections.append(
                        (
                            "Pseudo-class gallery",
                            "Row titles count each pseudo-class's members by reference group."
                            if reference is not None
                            else "",
                            _save(
                                P.gallery_figure(train, labels, reference=reference),
                                run.file("plots", "gallery.png"),
                            ),
                        )
                    )
            for name, a in agreement.items():
                sections.append(
                    (
                        f"Pseudo-classes against the {name} groups",
                        f"NMI {a['nmi']:.3f}, ARI {a['ari']:.3f}, purity {a['purity']:.3f} "
                        f"(k = {len(a['clusters'])}). The {name} groups judge the clustering "
                        "only; no method reads them.",
                        _save(
                            P.agreement_figure(a, name), run.file("plots", f"agreement-{name}.png")
                        ),
                    )
                )
    fig = P.loss_figure(run.read_metrics())
    if fig is not None:
        sections.append(("Training losses", "", _save(fig, run.file("plots", "losses.png"))))
    if data is not None and rows:
        overlay = _overlay(run, data, rows)
        if overlay is not None:
            sections.append(
                (
                    "Test predictions",
                    "Lowest label fraction, seed 0.",
                    _save(overlay, run.file("plots", "predictions.png")),
                )
            )

    return write_pages(run, "medcl run report", sections, config)


def _per_class_table(rows, names, methods) -> str:
    low = min(r["label_fraction"] for r in rows)
    methods = methods or sorted({r["method"] for r in rows})
    out = ["| method | " + " | ".join(names) + " |", "|" + "---|" * (len(names) + 1)]
    for m in methods:
        per = [r["dice_per_class"] for r in rows if r["method"] == m and r["label_fraction"] == low]
        if per:
            mean = np.nanmean(np.array(per, dtype=float), axis=0) * 100
            out.append(f"| {m} | " + " | ".join(f"{v:.1f}" for v in mean) + " |")
    return "\n".join(out) + "\n"


def _overlay(run: RunDir, data, rows):
    from medcl.report import _plots as P

    low = min(r["label_fraction"] for r in rows)
    preds, index = {}, None
    for m in dict.fromkeys(r["method"] for r in rows):
        p = run.path / "finetune" / m / f"labels{low:g}" / "seed0" / "examples.npz"
        if p.exists():
            ex = np.load(p)
            index = ex["index"]
            preds[m] = ex["pred"]
    if index is None:
        return None
    return P.overlay_figure(data.images[index], data.masks[index], preds, data.num_classes)


def _md_to_html(text: str) -> str:
    """Enough markdown for our sections: paragraphs and pipe tables."""
    out, table = [], []
    for line in text.splitlines() + [""]:
        if line.startswith("|"):
            if not set(line) <= set("|-: "):
                table.append([c.strip() for c in line.strip("|").split("|")])
            continue
        if table:
            head, *body = table
            out.append(
                "<table><tr>"
                + "".join(f"<th>{html.escape(c)}</th>" for c in head)
                + "</tr>"
                + "".join(
                    "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>"
                    for r in body
                )
                + "</table>"
            )
            table = []
        if line.strip():
            out.append(f"<p>{html.escape(line)}</p>")
    return "".join(out)
