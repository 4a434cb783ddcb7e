"""Would SCAN's refinement of the warm-up encoder map the digits better? A study on finished runs.

SCAN (Van Gansbeke et al. 2020) turns a contrastive encoder into a classifier without labels:
a linear head of k clusters is put on the encoder, and the whole network is trained so that
every training image and one of its 20 nearest neighbours (in the warm-up's latents) fall in
the same cluster, while the batch's mean assignment keeps a high entropy (weight 5); then a
self-labelling step trains the augmented view of every confident image (clean-view
probability > 0.99) towards its cluster. The strata are the head's argmax.

For every run directory given (finished ``medcl stratify`` runs; validation runs only until
an adoption), this starts from the run's warm-up encoder and its chosen k (nothing of the
packaged clustering is reused), trains the two steps with SCAN's published settings (Adam,
lr 1e-4, weight decay 1e-4, batch 128) and the warm-up's own augmentations, and scores what
the evaluation stage scores: the majority mapping (clusters -> digits on the run's mapped
training labels) of the evaluation images' head clusters, kNN (k = evaluate.knn_k) and the
linear probe on the refined encoder's latents. The run's own metrics are the reference; the
summary gives the paired differences over the runs with 95% t intervals.

    python benchmarks/scan_refine_study.py RUN [RUN ...] [--recluster] [--json OUT]

This is the study that chose the ``refine`` stage (``benchmarks/results/scan/``): the stage
trains the same two steps through ``medcl.train.train_loop`` (checkpoints, devices), so its
random draws, and its numbers, are not the study's bit for bit.

Per run it also lists the training digits in another digit's clusters after each step (as
``benchmarks/clustering_study.py`` does for the packaged partition).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from clustering_study import where_wrong  # noqa: E402  (benchmarks/ is on sys.path when run)
from k_rule_study import load_run, mapped_predictions  # noqa: E402

from medcl._load import load_npy, load_torch  # noqa: E402
from medcl.data import stratified_split  # noqa: E402
from medcl.evaluate import (  # noqa: E402
    knn_predict,
    linear_probe,
    majority_mapping,
    paired_difference,
)
from medcl.losses import scan_loss, self_label_loss  # noqa: E402
from medcl.rundir import atomic_write_text  # noqa: E402
from medcl.stages.stratify._shared import (  # noqa: E402
    WARMUP_MODEL,
    build_model,
    encode,
    latent_space,
)
from medcl.stages.stratify.refine import Clusterer, nearest_neighbours  # noqa: E402
from medcl.stages.stratify.warmup import make_views  # noqa: E402
from medcl.train import make_fabric  # noqa: E402

# SCAN's published CIFAR settings (its configs/scan and configs/selflabel), except the epochs
SETTINGS = {
    "neighbours": 20,
    "entropy_weight": 5.0,
    "threshold": 0.99,
    "lr": 1e-4,
    "weight_decay": 1e-4,
    "batch_size": 128,
}


def train_scan(net, x, nbrs, views, device, epochs: int, self_label_epochs: int, seed: int):
    """SCAN's clustering step, then its self-labelling step; the loss history of each."""
    s = SETTINGS
    gen = np.random.default_rng(seed)
    torch.manual_seed(seed)
    opt = torch.optim.Adam(net.parameters(), lr=s["lr"], weight_decay=s["weight_decay"])
    bs, history = s["batch_size"], {"scan": [], "self_label": []}

    def aug(idx: np.ndarray) -> torch.Tensor:
        with torch.no_grad():
            v = views(x[torch.from_numpy(idx)].to(device)).clamp_(0, 1)
        return v.contiguous(memory_format=torch.channels_last)

    for step, n_epochs in (("scan", epochs), ("self_label", self_label_epochs)):
        for epoch in range(n_epochs):
            net.train()
            order, total, t0 = gen.permutation(len(x)), [], time.perf_counter()
            for b in range(0, len(order) - bs + 1, bs):  # full batches, as the warm-up
                idx = order[b : b + bs]
                if step == "scan":
                    nb = nbrs[idx, gen.integers(0, nbrs.shape[1], len(idx))]
                    logits = net(torch.cat([aug(idx), aug(nb)]))
                    loss = scan_loss(logits[: len(idx)], logits[len(idx) :], s["entropy_weight"])[0]
                else:
                    with torch.no_grad():
                        clean = x[torch.from_numpy(idx)].to(device)
                        weak = net(clean.contiguous(memory_format=torch.channels_last))
                    loss = self_label_loss(weak, net(aug(idx)), s["threshold"])[0]
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total.append(float(loss.detach()))
            history[step].append(float(np.mean(total)))
            print(
                f"  {step} epoch {epoch + 1}/{n_epochs}: loss {history[step][-1]:.4f} "
                f"({time.perf_counter() - t0:.1f} s)",
                flush=True,
            )
    return history


@torch.no_grad()
def predict(net: Clusterer, x: torch.Tensor, device) -> tuple[np.ndarray, np.ndarray]:
    """Every image's cluster (the head's argmax) and latent, in eval mode, without views."""
    net.eval()
    h = encode(net.encoder, x.contiguous(memory_format=torch.channels_last), device)
    logits = net.head(torch.from_numpy(h).to(device)).cpu().numpy()
    return logits.argmax(1), h


def score(cfg, clusters, h, tr, te, y_tr, y_te, mapped, k: int) -> dict:
    """Majority mapping, kNN and linear probe as the evaluation stage computes them."""
    e = cfg.evaluate
    m = majority_mapping(clusters[tr][mapped], y_tr[mapped], k)
    pred = m[clusters[te]]
    probe = stratified_split(y_tr, e.probe_fraction, cfg.run.seed)
    lin = linear_probe(
        h[tr][probe], y_tr[probe], h[te], epochs=e.probe_epochs, lr=e.probe_lr, seed=cfg.run.seed
    )
    z = latent_space(h, True)
    errors = where_wrong(z, tr, te, y_tr, y_te, clusters[tr], m, pred, e.knn_k)
    return {
        "mapping": float((pred == y_te).mean()),
        "knn": float((knn_predict(h[tr], y_tr, h[te], e.knn_k) == y_te).mean()),
        "linear": float((lin == y_te).mean()),
        "clusters_used": int(len(np.unique(clusters[tr]))),
        "misplaced_by_digit": errors["misplaced_by_digit"],
    }


def score_reclustered(cfg, h, tr, te, y_tr, y_te, mapped) -> dict:
    """The packaged clustering (k by ``cluster.k_rule``, ``cluster.method``, assignment by
    ``cluster.assign``) of the refined encoder's latents ``h``, scored as the evaluation."""
    from medcl.stages.stratify.clustering import cluster_latents

    z = latent_space(h, cfg.cluster.normalize)
    labels, k, _ = cluster_latents(z[tr], cfg)
    pred, m = mapped_predictions(z, tr, te, y_tr, mapped, labels, k, cfg)
    errors = where_wrong(z, tr, te, y_tr, y_te, labels, m, pred, cfg.evaluate.knn_k)
    return {
        "k": int(k),
        "mapping": float((pred == y_te).mean()),
        "misplaced_by_digit": errors["misplaced_by_digit"],
    }


def study_run(run: Path, epochs: int, self_label_epochs: int, recluster: bool = False) -> dict:
    t0 = time.perf_counter()
    cfg, _, tr, te, y_tr, y_te, mapped = load_run(run)
    from medcl.stages.stratify._shared import load_stratify_data

    ds = load_stratify_data(cfg)
    x = torch.from_numpy(np.ascontiguousarray(ds.data.images, dtype=np.float32))
    device = make_fabric(cfg.run.device).device
    size = (int(x.shape[2]), int(x.shape[3]))
    model = build_model(cfg, x.shape[1], size)
    model.load_state_dict(load_torch(run / WARMUP_MODEL))
    k = int(json.loads((run / "cluster.json").read_text())["k"])
    z0 = latent_space(load_npy(run / "embed" / "latents.npy"), True)
    nbrs = nearest_neighbours(z0[tr], SETTINGS["neighbours"])
    torch.manual_seed(cfg.run.seed)  # the head's initial weights
    net = Clusterer(copy.deepcopy(model.encoder), cfg.model.latent_dim, k)
    net = net.to(device, memory_format=torch.channels_last)
    views = make_views(cfg, size).to(device)
    x_tr = x[torch.from_numpy(tr)]
    packaged = json.loads((run / "metrics.json").read_text())["rows"]
    out: dict = {
        "run": run.name,
        "k": k,
        "packaged": {
            "mapping": packaged["majority mapping"]["accuracy"],
            "knn": next(v["accuracy"] for n, v in packaged.items() if n.startswith("kNN")),
            "linear": packaged["linear probe"]["accuracy"],
        },
    }
    # the clustering step alone (reported, not the candidate), then both steps
    hist = train_scan(net, x_tr, nbrs, views, device, epochs, 0, cfg.run.seed)
    out["scan_step"] = score(cfg, *predict(net, x, device), tr, te, y_tr, y_te, mapped, k)
    hist2 = train_scan(net, x_tr, nbrs, views, device, 0, self_label_epochs, cfg.run.seed + 1)
    clusters, h = predict(net, x, device)
    out["scan+self_label"] = score(cfg, clusters, h, tr, te, y_tr, y_te, mapped, k)
    if recluster:  # the refined encoder's latents, clustered as the packaged stage does
        out["reclustered"] = score_reclustered(cfg, h, tr, te, y_tr, y_te, mapped)
    out["loss"] = {"scan": hist["scan"], "self_label": hist2["self_label"]}
    out["seconds"] = round(time.perf_counter() - t0, 1)
    return out


def summary(results: list[dict]) -> str:
    re = all("reclustered" in r for r in results)
    lines = [
        "| run | k | packaged: mapping, kNN, linear | SCAN step: mapping, kNN, linear, "
        "clusters used | SCAN + self-label: mapping, kNN, linear, clusters used |"
        + (" refined latents clustered: k, mapping |" if re else "")
        + " s |",
        "|---|---|---|---|---|" + ("---|" if re else "") + "---|",
    ]
    for r in results:
        p, a, b = r["packaged"], r["scan_step"], r["scan+self_label"]
        c = f" {r['reclustered']['k']}, {r['reclustered']['mapping']:.3f} |" if re else ""
        lines.append(
            f"| {r['run']} | {r['k']} | {p['mapping']:.3f}, {p['knn']:.3f}, {p['linear']:.3f} "
            f"| {a['mapping']:.3f}, {a['knn']:.3f}, {a['linear']:.3f}, {a['clusters_used']} "
            f"| {b['mapping']:.3f}, {b['knn']:.3f}, {b['linear']:.3f}, {b['clusters_used']} |"
            f"{c} {r['seconds']:.0f} |"
        )
    lines.append("")
    steps = ["scan_step", "scan+self_label"] + (["reclustered"] if re else [])
    for r in results:
        for step in steps:
            moved = {d: n for d, n in r[step]["misplaced_by_digit"].items() if n >= 6}
            pairs = ", ".join(f"{d} {n}" for d, n in moved.items()) or "none"
            lines.append(
                f"{r['run']} {step}: training digits in another digit's clusters (>= 6): {pairs}"
            )
    if len(results) > 1:
        lines.append("")
        lines.append("paired differences from the packaged run (95% t interval):")
        for step in steps:
            for metric in ("mapping", "knn", "linear") if step != "reclustered" else ("mapping",):
                d = paired_difference(
                    [r[step][metric] for r in results], [r["packaged"][metric] for r in results]
                )
                mean = np.mean([r[step][metric] for r in results])
                lines.append(
                    f"  {step} {metric}: mean {mean:.4f}, {d['mean']:+.4f} "
                    f"({d['low']:+.4f} to {d['high']:+.4f}), ahead on {d['ahead']} of {d['n']}"
                )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", type=Path, help="finished medcl stratify run directories")
    ap.add_argument("--epochs", type=int, default=50, help="SCAN clustering-step epochs")
    ap.add_argument("--self-label-epochs", type=int, default=50, help="self-labelling epochs")
    ap.add_argument(
        "--recluster",
        action="store_true",
        help="also cluster the refined encoder's latents as the packaged stage does "
        "(k by cluster.k_rule, cluster.method) and score that mapping",
    )
    ap.add_argument("--json", type=Path, help="write every run's numbers here")
    args = ap.parse_args(argv)
    results = []
    for run in args.runs:
        print(f"{run}:", flush=True)
        results.append(study_run(run, args.epochs, args.self_label_epochs, args.recluster))
        if args.json:  # after every run, so a stopped study keeps what it finished
            atomic_write_text(args.json, json.dumps(results, indent=1))
    print(summary(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
