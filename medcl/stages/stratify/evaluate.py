"""Stage 5, evaluation: every image's stratum, and the strata judged against the labels.

Reads ``embed/latents.npy``, the prototypes, the warm-up model and the decoder; writes
``assignments.csv`` (every image's stratum and its distance to every prototype),
``metrics.json`` / ``metrics.md`` (majority mapping, kNN, linear probe, the baselines, cluster
metrics, the decoder's MSE), ``evaluate/latents.npy`` / ``evaluate/clusters.npy`` (the
evaluated images' latents and strata, for the report) and ``evaluate/done.json``.
"""

from __future__ import annotations

import csv
import io
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from medcl._load import load_npy
from medcl.cluster import KMeansClustering
from medcl.report import metrics_markdown
from medcl.rundir import atomic_save_npy, atomic_write_text
from medcl.stages._checks import check_seconds
from medcl.stages._deps import stratify_decoder_deps, stratify_evaluate_deps
from medcl.stages._done import read_payload, require_current, reusable, write_record
from medcl.stages.stratify._shared import LATENTS, Job, encode, latent_space, load_trained_model
from medcl.stages.stratify.decoder import load_decoder, residual_and_assignment

RECORD = "evaluate/done.json"
OUTPUTS = [
    "assignments.csv", "metrics.json", "metrics.md", "evaluate/latents.npy",
    "evaluate/clusters.npy",
]  # fmt: skip

PAPER_MNIST = {
    "majority mapping": 0.90,
    "kNN (k=5)": 0.98,
    "linear probe": 0.98,
    "features + KMeans": 0.69,
}


def nearest_prototypes(z: np.ndarray, prototypes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row's stratum (the most cosine-similar prototype) and its distance to every one."""
    clusters = (latent_space(z, True) @ latent_space(prototypes, True).T).argmax(1)
    return clusters, np.linalg.norm(z[:, None, :] - prototypes[None], axis=-1)


def assign_latents(
    z: np.ndarray, prototypes: np.ndarray, bank: np.ndarray, bank_clusters: np.ndarray, cfg
) -> tuple[np.ndarray, np.ndarray]:
    """Strata of latents ``z`` and their distances to every prototype.

    ``cluster.assign=prototype`` (the paper): the nearest prototype. ``knn``: the majority
    stratum of the ``evaluate.knn_k`` nearest clustered training latents ``bank`` (cosine).
    """
    clusters, dist = nearest_prototypes(z, prototypes)
    if cfg.cluster.assign == "knn":
        from medcl.evaluate import knn_predict

        clusters = knn_predict(bank, bank_clusters, z, cfg.evaluate.knn_k)
    return clusters, dist


def write_assignments(path: Path, ids, split, clusters, dist) -> None:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["id", "split", "cluster", *[f"distance_{j}" for j in range(dist.shape[1])]])
    for i in range(len(ids)):
        w.writerow([ids[i], split[i], int(clusters[i]), *[f"{v:.5f}" for v in dist[i]]])
    atomic_write_text(path, buf.getvalue())


def train_supervised_cnn(cfg, x, y, fabric, epochs: int) -> nn.Sequential:
    """The supervised baseline: the same encoder + a linear head, from scratch (Adam)."""
    from medcl.models import ConvEncoder
    from medcl.train import train_loop

    m = cfg.model
    torch.manual_seed(cfg.run.seed + 2)
    enc = ConvEncoder(x.shape[1], tuple(x.shape[2:]), m.widths, m.latent_dim, m.norm)
    net = nn.Sequential(enc, nn.GELU(), nn.Linear(m.latent_dim, int(y.max()) + 1))
    opt = torch.optim.Adam(net.parameters(), lr=cfg.evaluate.baseline_lr)
    yt = torch.from_numpy(y)

    def step_loss(idx: np.ndarray, model: torch.nn.Module) -> torch.Tensor:
        t = torch.from_numpy(idx)
        return F.cross_entropy(model(fabric.to_device(x[t])), fabric.to_device(yt[t]))

    train_loop(
        fabric=fabric,
        module=net,
        step_loss=step_loss,
        n_items=len(x),
        epochs=epochs,
        batch_size=min(128, len(x)),
        lr=cfg.evaluate.baseline_lr,
        seed=cfg.run.seed + 2,
        desc="supervised CNN baseline",
        optimizer=opt,
        lr_fn=lambda step, total: cfg.evaluate.baseline_lr,
        lr_key="evaluate.baseline_lr",
    )
    return net.eval()


def label_metrics(cfg, fabric, x_all, h_all, clusters, labels, tr, te, k) -> dict:
    """Majority mapping, kNN, linear probe (and the baselines) against the labels of ``te``."""
    from sklearn.metrics import pairwise_distances_argmin

    from medcl.data import stratified_split
    from medcl.evaluate import classification_scores, knn_predict, linear_probe, majority_mapping

    device = fabric.device
    x_tr = x_all[torch.from_numpy(tr)]
    y_tr, y_te = labels[tr], labels[te]
    e, seed = cfg.evaluate, cfg.run.seed
    mapped = stratified_split(y_tr, e.mapping_fraction, seed)
    mapping = majority_mapping(clusters[tr][mapped], y_tr[mapped], k)
    rows: dict[str, dict[str, float]] = {}
    rows["majority mapping"] = classification_scores(y_te, mapping[clusters[te]])
    rows["kNN (k=5)" if e.knn_k == 5 else f"kNN (k={e.knn_k})"] = classification_scores(
        y_te, knn_predict(h_all[tr], y_tr, h_all[te], e.knn_k)
    )
    probe = stratified_split(y_tr, e.probe_fraction, seed)
    rows["linear probe"] = classification_scores(
        y_te,
        linear_probe(
            h_all[tr][probe],
            y_tr[probe],
            h_all[te],
            epochs=e.probe_epochs,
            lr=e.probe_lr,
            seed=seed,
        ),
    )
    if e.baselines:
        net = train_supervised_cnn(cfg, x_tr, y_tr, fabric, e.baseline_epochs)
        with torch.no_grad():
            pred = torch.cat(
                [
                    net(x_all[torch.from_numpy(te[s : s + 1024])].to(device)).argmax(1).cpu()
                    for s in range(0, len(te), 1024)
                ]
            ).numpy()
        rows["supervised CNN (baseline)"] = classification_scores(y_te, pred)
        f_all = encode(net[0], x_all, device)
        km_b = KMeansClustering(k, random_state=seed, n_init=5).fit(f_all[tr])
        map_b = majority_mapping(km_b.labels_[mapped], y_tr[mapped], km_b.n_clusters_)
        rows["features + KMeans (baseline)"] = classification_scores(
            y_te, map_b[pairwise_distances_argmin(f_all[te], km_b.cluster_centers_)]
        )
    return rows


def _upstream_seconds(job: Job) -> dict[str, float]:
    out = {}
    stages = ["warmup", "refine", "cluster", "decoder"] if job.cfg.refine.epochs else [
        "warmup", "cluster", "decoder"]  # fmt: skip
    for stage in stages:
        out[stage] = float((read_payload(job.run, f"{stage}/done.json") or {}).get("seconds", 0.0))
    return out


def run_evaluate(job: Job) -> dict:
    from medcl.evaluate import cluster_metrics

    cfg, run, data, labels = job.cfg, job.run, job.ds.data, job.ds.labels  # type: ignore[attr-defined]
    deps = stratify_evaluate_deps(cfg, data)
    done = reusable(run, RECORD, deps, check_seconds)
    if done:
        return run.read_json("metrics.json")
    require_current(
        run, "decoder/done.json", stratify_decoder_deps(cfg, data), job.command("decoder")
    )
    t0 = time.perf_counter()
    tr, te = job.tr, job.te
    k = int(run.read_json("model.json")["k"])
    x_all = job.x_all()
    h_all = load_npy(run.path / LATENTS)
    z_all = latent_space(h_all, cfg.cluster.normalize)
    prototypes = load_npy(run.path / "prototypes.npy")
    train_labels = load_npy(run.path / "train_clusters.npy")
    # every image takes its nearest prototype (cosine); with cluster.assign=knn the training
    # images keep their cluster and the others take their neighbours' stratum
    clusters, dist = assign_latents(z_all, prototypes, z_all[tr], train_labels, cfg)
    if cfg.cluster.assign == "knn":
        clusters[tr] = train_labels
    keep = data.split != ""  # images left out by data.max_train are not part of the run
    write_assignments(
        run.file("assignments.csv"), data.ids[keep], data.split[keep], clusters[keep], dist[keep]
    )
    rows: dict[str, dict[str, float]] = {}
    if labels is not None:
        rows = label_metrics(cfg, job.fabric, x_all, h_all, clusters, labels, tr, te, k)
    cm = cluster_metrics(z_all[te], clusters[te], None if labels is None else labels[te])
    model = load_trained_model(job, x_all)
    dec = load_decoder(job, model, k)
    with torch.no_grad():
        xt = x_all[torch.from_numpy(te)].to(job.device)
        protos = torch.from_numpy(prototypes).to(job.device)
        r, a = residual_and_assignment(model.encoder(xt), protos, cfg.cluster)
        mse_true = float(F.mse_loss(dec(r, a), xt))
        perm = torch.randperm(len(a), generator=torch.Generator().manual_seed(0))
        mse_shuffled = float(F.mse_loss(dec(r, a[perm]), xt))
    seconds = {**_upstream_seconds(job), "evaluate": time.perf_counter() - t0}
    seconds["total"] = sum(seconds.values())
    info = run.read_json("cluster.json") or {}
    metrics: dict = {
        "dataset": cfg.data.dataset,
        "eval_split": job.eval_split,
        "labels": labels is not None,
        "n_train": int(len(tr)),
        "n_eval": int(len(te)),
        "k": k,
        "elbow_k": info.get("elbow_k"),
        "silhouette_k": info.get("silhouette_k"),
        "stability_k": info.get("stability_k"),
        "stability_plausible": info.get("stability_plausible"),
        "eigengap_k": info.get("eigengap_k"),
        "seed": cfg.run.seed,
        "rows": rows,
        "cluster": cm,
        "decoder_mse": {"true_assignment": mse_true, "shuffled_assignment": mse_shuffled},
        "seconds": {k_: round(v, 1) for k_, v in seconds.items()},
        "paper_mnist": PAPER_MNIST if cfg.data.dataset == "mnist-5k" else None,
    }
    atomic_save_npy(run.file("evaluate", "latents.npy"), z_all[te].astype(np.float32))
    atomic_save_npy(run.file("evaluate", "clusters.npy"), np.asarray(clusters[te], np.int64))
    run.write_json("metrics.json", metrics)
    atomic_write_text(run.file("metrics.md"), metrics_markdown(metrics))
    write_record(run, RECORD, {"seconds": round(seconds["evaluate"], 1)}, deps, OUTPUTS)
    return metrics
