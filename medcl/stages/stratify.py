"""``medcl stratify``: unsupervised stratification with a contrastive autoencoder.

Ferrante, Boccato, Duggento, Spasov, Toschi, "Contrastive learning for unsupervised medical
image clustering and reconstruction". Phases, each resumable from the run directory:

1. warm-up: NT-Xent on the projector of two augmented views + ``alpha`` x reconstruction
   MSE, LARS with a linear warm-up and cosine annealing (``warmup/checkpoint.pt``);
2. clustering: frozen encoder, KMeans (or Ward, or spectral) over the latents, k from the
   elbow or the silhouette (or given); the centroids are the prototypes (``prototypes.npy``);
3. conditional decoder: trained on reconstruction alone from the soft assignment to the
   prototypes (``decoder/checkpoint.pt``);
4. evaluation against the labels (majority mapping, kNN, linear probe, NMI/ARI/silhouette)
   and the baselines, then ``assignments.csv``, ``metrics.json``/``.md`` and the report.

The two checkpoints carry the fingerprint of what their phase read (:mod:`medcl.stages._deps`):
a rerun resumes a phase whose inputs are unchanged and restarts one whose inputs changed.
The trained model is saved as state dicts (``model.pt``, ``decoder.pt``) plus ``model.json``,
so that ``medcl stratify assign`` loads tensors only.
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

from medcl._load import load_npy, load_torch
from medcl.cluster import KMeansClustering, WardClustering, knee_point, within_cluster_distance
from medcl.errors import DamagedFile, MedclError
from medcl.models import ConditionalDecoder, ContrastiveAutoencoder, soft_assign
from medcl.rundir import RunDir, atomic_torch_save, atomic_write_text
from medcl.stages._common import say
from medcl.stages._deps import stratify_decoder_deps, stratify_warmup_deps
from medcl.stratify_config import StratifyConfig
from medcl.train import LARS, lars_param_groups, make_fabric, train_loop, warmup_cosine_lr

# Written by every run from the phases' results, after training: removed first, so that a run
# that stops part-way never leaves outputs of an earlier config beside the new config.yaml.
OUTPUTS = (
    "model.pt", "model.json", "decoder.pt", "prototypes.npy", "cluster.json",
    "train_latents.npy", "train_clusters.npy", "assignments.csv", "metrics.json",
    "metrics.md", "report.md", "report.html",
)  # fmt: skip

PAPER_MNIST = {
    "majority mapping": 0.90,
    "kNN (k=5)": 0.98,
    "linear probe": 0.98,
    "features + KMeans": 0.69,
}


# --------------------------------------------------------------------------- data


def load_stratify_data(cfg: StratifyConfig):
    """The labelled image set named by ``cfg.data`` (:class:`~medcl.data.LabelledImageSet`)."""
    from medcl.data import load_medmnist, load_mnist5k

    if cfg.data.dataset == "mnist-5k":
        ds = load_mnist5k(cfg.data.val_fraction, cfg.data.split_seed)
    elif cfg.data.dataset == "folder":  # images without labels: every one trains
        from medcl.data import LabelledImageSet, load_folder

        images = load_folder(
            cfg.data.images or "", image_size=cfg.data.image_size, channels=cfg.data.channels
        )
        images.split = np.full(len(images), "train", dtype=object)
        ds = LabelledImageSet(images, None)
    else:
        ds = load_medmnist(cfg.data.medmnist_path or "")
    if cfg.data.max_train is not None:
        train = ds.data.indices("train")
        drop = train[np.random.default_rng(0).permutation(len(train))[cfg.data.max_train :]]
        ds.data.split[drop] = ""
    if ds.labels is not None and len(ds.data.indices(cfg.data.eval_split)) == 0:
        raise MedclError(
            f"data.eval_split='{cfg.data.eval_split}' holds no images; set data.val_fraction "
            "above 0 for 'val'."
        )
    n = len(ds.data.indices("train"))
    c = cfg.cluster
    if c.k is not None and c.k > n:
        raise MedclError(
            f"cluster.k={c.k} is larger than the number of training images ({n}); choose "
            f"k <= {n} or leave cluster.k unset."
        )
    if c.k is None and c.k_min > n - 1:
        raise MedclError(
            f"cluster.k_min={c.k_min} leaves no k to try with {n} training images; choose "
            f"cluster.k_min <= {n - 1}."
        )
    return ds


def eval_indices(cfg: StratifyConfig, ds) -> np.ndarray:
    """The images the metrics and the report describe: ``data.eval_split``, or, without
    labels (``data.dataset=folder``), the training images themselves."""
    split = cfg.data.eval_split if ds.labels is not None else "train"
    return ds.data.indices(split)


def make_views(cfg: StratifyConfig, image_size: tuple[int, int]) -> nn.Module:
    """Kornia pipeline of the paper's augmentations, each applied with probability ``aug_p``."""
    import kornia.augmentation as K

    w, p = cfg.warmup, cfg.warmup.aug_p
    augs: list[nn.Module] = [
        K.RandomRotation(w.rotation, p=p),
        K.RandomGaussianBlur((3, 3), w.blur_sigma, p=p),
        K.RandomGaussianNoise(std=w.noise_std, p=p),
    ]
    if w.flip:
        augs.append(K.RandomHorizontalFlip(p=p))
    augs.append(K.RandomResizedCrop(image_size, scale=w.crop_scale, p=p))
    return K.AugmentationSequential(*augs)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- training


def build_model(cfg: StratifyConfig, channels: int, image_size: tuple[int, int]):
    m = cfg.model
    return ContrastiveAutoencoder(channels, image_size, m.widths, m.latent_dim, m.projector, m.norm)


def train_warmup(cfg, run: RunDir, x: torch.Tensor, fabric, fingerprint: str | None = None):
    """Phase 1; returns the trained :class:`ContrastiveAutoencoder` (on ``fabric.device``)."""
    from medcl.losses import cluster_contrastive_loss

    w = cfg.warmup
    device = fabric.device
    torch.manual_seed(cfg.run.seed)
    size = (int(x.shape[2]), int(x.shape[3]))
    # channels_last: ~10% faster warm-up steps on CPU (benchmarks/bench_stratify_step.py)
    model = build_model(cfg, x.shape[1], size).to(device, memory_format=torch.channels_last)
    views = make_views(cfg, size).to(device)
    opt = LARS(
        lars_param_groups(model, w.weight_decay),
        lr=w.start_lr,
        momentum=w.momentum,
        weight_decay=w.weight_decay,
        eta=w.eta,
    )
    bs = min(w.batch_size, len(x))
    steps = max(1, len(x) // bs)

    def step_loss(idx: np.ndarray, net: torch.nn.Module) -> torch.Tensor:
        xb = x[torch.from_numpy(idx)].to(device)
        with torch.no_grad():
            v = torch.cat([views(xb), views(xb)]).clamp_(0, 1)
            v = v.contiguous(memory_format=torch.channels_last)
        h, z, rec = net(v)
        b = len(idx)
        nt_xent = cluster_contrastive_loss(
            torch.stack([z[:b], z[b:]], 1), None, w.temperature, "supcon"
        )
        return nt_xent + w.alpha * (F.mse_loss(rec[:b], v[:b]) + F.mse_loss(rec[b:], v[b:]))

    def lr_fn(step: int, total: int) -> float:
        return warmup_cosine_lr(
            step, total, w.start_lr, w.peak_lr, w.final_lr, w.warmup_epochs * steps
        )

    train_loop(
        fabric=fabric,
        module=model,
        step_loss=step_loss,
        n_items=len(x),
        epochs=w.epochs,
        batch_size=bs,
        lr=w.start_lr,
        seed=cfg.run.seed,
        checkpoint=run.file("warmup", "checkpoint.pt"),
        log=lambda **r: run.log(stage="warmup", **r),
        desc="warm-up (contrastive AE)",
        optimizer=opt,
        lr_fn=lr_fn,
        fingerprint=fingerprint,
        lr_key="warmup.peak_lr",
    )
    return model.eval()


@torch.no_grad()
def encode(
    encoder: nn.Module, x: torch.Tensor, device: torch.device, batch: int = 1024
) -> np.ndarray:
    encoder.eval()
    out = [encoder(x[s : s + batch].to(device)).cpu() for s in range(0, len(x), batch)]
    return torch.cat(out).numpy().astype(np.float32)


def _normalize(h: np.ndarray) -> np.ndarray:
    return h / np.maximum(np.linalg.norm(h, axis=1, keepdims=True), 1e-12)


def update_prototypes(h: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Prototypes as weighted means of the latents: ``P_j = sum_i w_ij h_i / sum_i w_ij``.

    ``weights`` is ``(n, k)``: one-hot rows give the KMeans centroids, soft assignments give
    soft prototypes. A prototype with zero total weight is left at zero.

    Example:
        >>> update_prototypes(np.array([[0.0, 0], [2, 0], [0, 4]]), np.eye(2)[[0, 0, 1]]).tolist()
        [[1.0, 0.0], [0.0, 4.0]]
    """
    weights = np.asarray(weights, dtype=np.float64)
    total = weights.sum(0)
    return (weights.T @ np.asarray(h, np.float64)) / np.where(total > 0, total, 1.0)[:, None]


def nearest_prototypes(z: np.ndarray, prototypes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row's stratum (the most cosine-similar prototype) and its distance to every one."""
    clusters = (_normalize(z) @ _normalize(prototypes).T).argmax(1)
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


def partition(z: np.ndarray, method: str, k: int, seed: int, ward=None) -> np.ndarray:
    """Labels of ``z`` in ``k`` groups by ``method``; ``ward``: the Ward tree fitted on ``z``
    (method ``ward`` cuts it)."""
    if method == "ward":
        return ward.labels_for(k)
    if method == "spectral":
        from sklearn.cluster import SpectralClustering

        return SpectralClustering(
            k,
            affinity="nearest_neighbors",
            n_neighbors=min(10, len(z) - 1),
            assign_labels="cluster_qr",
            random_state=seed,
        ).fit_predict(z)
    return KMeansClustering(k, random_state=seed, n_init=5).fit(z).labels_


def silhouette_curve(
    z: np.ndarray, labels_for_k, ks: list[int], seed: int, max_points: int = 5000
) -> list[float]:
    """Mean cosine silhouette of the partition ``labels_for_k(k)`` for every ``k`` in ``ks``.

    Above ``max_points`` latents the silhouette is estimated on a seeded sample of that size
    (it needs all pairwise distances). A partition with a single group scores -1.
    """
    from sklearn.metrics import silhouette_score

    sample = min(max_points, len(z)) if len(z) > max_points else None
    out = []
    for k in ks:
        labels = labels_for_k(k)
        ok = 1 < len(np.unique(labels)) < len(z)
        out.append(
            float(
                silhouette_score(z, labels, metric="cosine", sample_size=sample, random_state=seed)
            )
            if ok
            else -1.0
        )
    return out


def cluster_latents(z: np.ndarray, cfg: StratifyConfig) -> tuple[np.ndarray, int, dict]:
    """Labels of the training latents, k, and the curves k was read from.

    ``cluster.method=kmeans`` (the paper): KMeans; the within-cluster distance curve has one
    KMeans per k. ``ward``: one Ward tree gives the curve and the labels for every k
    (:class:`medcl.cluster.WardClustering`, the same as UFC's). ``spectral``: spectral
    clustering of the 10-nearest-neighbour graph, which follows curved groups that a partition
    into convex cells cuts across (its curve is the Ward tree's).

    k is ``cluster.k`` if given, else read by ``cluster.k_rule``: ``elbow`` (the paper) takes
    the knee of the within-cluster distance curve; ``silhouette`` takes the k whose partition
    by ``method`` has the highest mean cosine silhouette (Rousseeuw 1987): compact groups far
    from their neighbours, with no curve shape to read.
    """
    c = cfg.cluster
    seed = cfg.run.seed
    ks = list(range(c.k_min, min(c.k_max, len(z) - 1) + 1))
    ward = None
    fits: dict[int, np.ndarray] = {}
    if c.method == "kmeans":
        fits = {k: KMeansClustering(k, random_state=seed, n_init=2).fit(z).labels_ for k in ks}
        curve = [within_cluster_distance(z, fits[k]) for k in ks]
    else:
        ward = WardClustering(n_clusters=c.k, k_range=(ks[0], ks[-1])).fit(z)
        curve = (
            ward.curve_
            if ward.curve_ is not None
            else [within_cluster_distance(z, ward.labels_for(k)) for k in ks]
        )
    elbow = knee_point(ks, curve)
    info: dict = {"k_values": ks, "curve": [float(v) for v in curve], "elbow_k": elbow}
    k = c.k or elbow
    if c.k_rule == "silhouette":
        cache: dict[int, np.ndarray] = {}

        def labels_for(k_: int) -> np.ndarray:
            if c.method == "kmeans":  # the curve's fits; the chosen k is refitted below
                return fits[k_]
            cache[k_] = partition(z, c.method, k_, seed, ward)
            return cache[k_]

        info["silhouette"] = silhouette_curve(z, labels_for, ks, seed)
        info["silhouette_k"] = ks[int(np.argmax(info["silhouette"]))]
        k = c.k or info["silhouette_k"]
        if k in cache:
            return cache[k], int(k), info
    return partition(z, c.method, k, seed, ward), int(k), info


def train_decoder(
    cfg, run: RunDir, model, x, prototypes: np.ndarray, fabric, fingerprint: str | None = None
):
    """Phase 2: the conditional decoder, on reconstruction alone (the encoder is frozen)."""
    d = cfg.decoder
    device = fabric.device
    torch.manual_seed(cfg.run.seed + 1)
    dec = ConditionalDecoder(model.encoder, len(prototypes), d.conditioning).to(device)
    protos = torch.from_numpy(prototypes).float().to(device)
    for p in model.encoder.parameters():
        p.requires_grad_(False)
    opt = torch.optim.Adam(dec.parameters(), lr=d.lr)
    bs = min(d.batch_size, len(x))

    def step_loss(idx: np.ndarray, decoder: torch.nn.Module) -> torch.Tensor:
        xb = x[torch.from_numpy(idx)].to(device)
        with torch.no_grad():
            r, a = residual_and_assignment(model.encoder(xb), protos, cfg.cluster)
        return F.mse_loss(decoder(r, a), xb)

    train_loop(
        fabric=fabric,
        module=dec,
        step_loss=step_loss,
        n_items=len(x),
        epochs=d.epochs,
        batch_size=bs,
        lr=d.lr,
        seed=cfg.run.seed + 1,
        checkpoint=run.file("decoder", "checkpoint.pt"),
        log=lambda **r: run.log(stage="decoder", **r),
        desc="conditional decoder",
        optimizer=opt,
        lr_fn=lambda step, total: d.lr,
        fingerprint=fingerprint,
        lr_key="decoder.lr",
    )
    return dec.eval()


def residual_and_assignment(
    h: torch.Tensor, prototypes: torch.Tensor, c
) -> tuple[torch.Tensor, torch.Tensor]:
    """``a = softmax(cos(h, P)/T)`` and the residual ``z - a @ P`` the decoder is fed."""
    z = F.normalize(h, dim=-1) if c.normalize else h
    a = soft_assign(z, prototypes, c.temperature)
    return z - a @ prototypes, a


@torch.no_grad()
def decode_prototypes(dec, k: int, latent_dim: int, device) -> np.ndarray:
    """The typical image of every stratum: residual 0, assignment one-hot."""
    return dec(torch.zeros(k, latent_dim, device=device), torch.eye(k, device=device)).cpu().numpy()


# --------------------------------------------------------------------------- baselines


def train_supervised_cnn(cfg, x, y, fabric, epochs: int) -> nn.Sequential:
    """The supervised baseline: the same encoder + a linear head, from scratch (Adam)."""
    from medcl.models import ConvEncoder

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


# --------------------------------------------------------------------------- the stage


def run_stratify(cfg: StratifyConfig, out: str | Path) -> dict:
    """Run every phase (resuming finished ones) and write the results into ``out``."""
    from medcl.evaluate import (
        cluster_metrics,
    )

    t_start = time.perf_counter()
    run = RunDir(out)
    run.lock()
    run.retract(*OUTPUTS)
    run.save_config(cfg.model_dump(mode="json"))
    if cfg.run.num_threads:
        torch.set_num_threads(cfg.run.num_threads)
    fabric = make_fabric(cfg.run.device)
    device = fabric.device
    ds = load_stratify_data(cfg)
    data, labels = ds.data, ds.labels
    tr, te = data.indices("train"), eval_indices(cfg, ds)
    eval_split = cfg.data.eval_split if labels is not None else "train"
    x_all = torch.from_numpy(np.ascontiguousarray(data.images, dtype=np.float32))
    x_tr = x_all[torch.from_numpy(tr)]
    seconds: dict[str, float] = {}

    t0 = time.perf_counter()
    say(
        f"{cfg.data.dataset}: {len(tr)} train images, metrics on {len(te)} "
        f"{eval_split} images{'' if labels is not None else ' (no labels)'}, run directory "
        f"{run.path}"
    )
    model = train_warmup(cfg, run, x_tr, fabric, stratify_warmup_deps(cfg, data).fingerprint)
    seconds["warmup"] = time.perf_counter() - t0
    say(f"warm-up: contrastive autoencoder trained in {seconds['warmup']:.0f} s")

    t0 = time.perf_counter()
    h_all = encode(model.encoder, x_all, device)
    z_all = _normalize(h_all) if cfg.cluster.normalize else h_all
    train_labels, k, k_info = cluster_latents(z_all[tr], cfg)
    prototypes = update_prototypes(z_all[tr], np.eye(k)[train_labels]).astype(np.float32)
    from medcl.rundir import atomic_save_npy

    atomic_save_npy(run.file("prototypes.npy"), prototypes)
    run.write_json(
        "cluster.json",
        {
            **k_info,
            "method": cfg.cluster.method,
            "k": int(k),
            "sizes": np.bincount(train_labels).tolist(),
        },
    )
    seconds["cluster"] = time.perf_counter() - t0
    say(
        f"cluster: k = {k} prototypes"
        + (f" ({cfg.cluster.k_rule})" if cfg.cluster.k is None else "")
    )

    t0 = time.perf_counter()
    dec = train_decoder(
        cfg, run, model, x_tr, prototypes, fabric, stratify_decoder_deps(cfg, data).fingerprint
    )
    seconds["decoder"] = time.perf_counter() - t0
    say(f"conditional decoder trained in {seconds['decoder']:.0f} s; evaluating")
    atomic_torch_save(model.state_dict(), run.file("model.pt"))
    atomic_torch_save(dec.state_dict(), run.file("decoder.pt"))
    shape = {"channels": int(x_all.shape[1]), "image_size": [int(s) for s in x_all.shape[2:]]}
    run.write_json("model.json", {"k": int(k), **shape})  # written last: the model is complete

    # assignments of every image: the nearest prototype (cosine); with cluster.assign=knn the
    # training images keep their cluster and the others take their neighbours' stratum
    protos_t = torch.from_numpy(prototypes)
    atomic_save_npy(run.file("train_latents.npy"), z_all[tr].astype(np.float32))
    atomic_save_npy(run.file("train_clusters.npy"), train_labels.astype(np.int64))
    clusters, dist = assign_latents(z_all, prototypes, z_all[tr], train_labels, cfg)
    if cfg.cluster.assign == "knn":
        clusters[tr] = train_labels
    keep = data.split != ""  # images left out by data.max_train are not part of the run
    _write_assignments(
        run.file("assignments.csv"), data.ids[keep], data.split[keep], clusters[keep], dist[keep]
    )

    # evaluation
    t0 = time.perf_counter()
    rows: dict[str, dict[str, float]] = {}
    if labels is not None:
        rows = _label_metrics(cfg, fabric, x_all, h_all, clusters, labels, tr, te, k)
    cm = cluster_metrics(z_all[te], clusters[te], None if labels is None else labels[te])
    with torch.no_grad():
        xt = x_all[torch.from_numpy(te)].to(device)
        r, a = residual_and_assignment(model.encoder(xt), protos_t.to(device), cfg.cluster)
        mse_true = float(F.mse_loss(dec(r, a), xt))
        perm = torch.randperm(len(a), generator=torch.Generator().manual_seed(0))
        mse_shuffled = float(F.mse_loss(dec(r, a[perm]), xt))
    seconds["evaluate"] = time.perf_counter() - t0
    seconds["total"] = time.perf_counter() - t_start
    metrics = {
        "dataset": cfg.data.dataset,
        "eval_split": eval_split,
        "labels": labels is not None,
        "n_train": int(len(tr)),
        "n_eval": int(len(te)),
        "k": int(k),
        "elbow_k": k_info["elbow_k"],
        "silhouette_k": k_info.get("silhouette_k"),
        "seed": cfg.run.seed,
        "rows": rows,
        "cluster": cm,
        "decoder_mse": {"true_assignment": mse_true, "shuffled_assignment": mse_shuffled},
        "seconds": {k_: round(v, 1) for k_, v in seconds.items()},
        "paper_mnist": PAPER_MNIST if cfg.data.dataset == "mnist-5k" else None,
    }
    run.write_json("metrics.json", metrics)
    atomic_write_text(run.file("metrics.md"), metrics_markdown(metrics))
    from medcl.report._stratify import write_stratify_report

    write_stratify_report(
        run,
        cfg,
        ds,
        h_all,
        z_all,
        clusters,
        prototypes,
        decode_prototypes(dec, k, cfg.model.latent_dim, device),
        metrics,
    )
    return metrics


def _label_metrics(cfg, fabric, x_all, h_all, clusters, labels, tr, te, k) -> dict:
    """Majority mapping, kNN, linear probe (and the baselines) against the labels of ``te``."""
    from medcl.data import stratified_split
    from medcl.evaluate import classification_scores, knn_predict, linear_probe, majority_mapping

    device = fabric.device
    x_tr = x_all[torch.from_numpy(tr)]
    y_tr, y_te = labels[tr], labels[te]
    rng_seed = cfg.run.seed
    mapped = stratified_split(y_tr, cfg.evaluate.mapping_fraction, rng_seed)
    mapping = majority_mapping(clusters[tr][mapped], y_tr[mapped], k)
    rows: dict[str, dict[str, float]] = {}
    rows["majority mapping"] = classification_scores(y_te, mapping[clusters[te]])
    rows["kNN (k=5)" if cfg.evaluate.knn_k == 5 else f"kNN (k={cfg.evaluate.knn_k})"] = (
        classification_scores(y_te, knn_predict(h_all[tr], y_tr, h_all[te], cfg.evaluate.knn_k))
    )
    probe = stratified_split(y_tr, cfg.evaluate.probe_fraction, rng_seed)
    rows["linear probe"] = classification_scores(
        y_te,
        linear_probe(
            h_all[tr][probe],
            y_tr[probe],
            h_all[te],
            epochs=cfg.evaluate.probe_epochs,
            lr=cfg.evaluate.probe_lr,
            seed=rng_seed,
        ),
    )
    if cfg.evaluate.baselines:
        net = train_supervised_cnn(cfg, x_tr, y_tr, fabric, cfg.evaluate.baseline_epochs)
        with torch.no_grad():
            pred = torch.cat(
                [
                    net(x_all[torch.from_numpy(te[s : s + 1024])].to(device)).argmax(1).cpu()
                    for s in range(0, len(te), 1024)
                ]
            ).numpy()
        rows["supervised CNN (baseline)"] = classification_scores(y_te, pred)
        f_all = encode(net[0], x_all, device)
        km_b = KMeansClustering(k, random_state=cfg.run.seed, n_init=5).fit(f_all[tr])
        map_b = majority_mapping(km_b.labels_[mapped], y_tr[mapped], km_b.n_clusters_)
        from sklearn.metrics import pairwise_distances_argmin

        rows["features + KMeans (baseline)"] = classification_scores(
            y_te, map_b[pairwise_distances_argmin(f_all[te], km_b.cluster_centers_)]
        )
    return rows


def metrics_markdown(m: dict) -> str:
    paper = m.get("paper_mnist") or {}
    lines = [
        f"Metrics on the {m['n_eval']} '{m['eval_split']}' images of {m['dataset']}; "
        f"k = {m['k']} clusters (elbow: {m['elbow_k']}"
        + (f", silhouette: {m['silhouette_k']}" if m.get("silhouette_k") else "")
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


def _write_assignments(path: Path, ids, split, clusters, dist) -> None:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["id", "split", "cluster", *[f"distance_{j}" for j in range(dist.shape[1])]])
    for i in range(len(ids)):
        w.writerow([ids[i], split[i], int(clusters[i]), *[f"{v:.5f}" for v in dist[i]]])
    atomic_write_text(path, buf.getvalue())


# --------------------------------------------------------------------------- assign


def assign(run_dir: str | Path, paths: list[str], out: str | Path | None = None) -> list[dict]:
    """Assign image files to the strata of a finished run; writes ``out`` (CSV) if given."""
    from medcl.data import read_image
    from medcl.data._folder import _convert_channels, _resize_images
    from medcl.stratify_config import StratifyConfig

    run = Path(run_dir)
    needed = ("model.pt", "model.json", "prototypes.npy", "config.yaml")
    if not run.is_dir() or not all((run / name).is_file() for name in needed):
        raise MedclError(
            f"Run directory '{run}' has no trained model ({', '.join(needed)}); run "
            "`medcl stratify CONFIG.yaml --out DIR` first."
        )
    if not paths:
        raise MedclError("Give at least one image file to assign.")
    for p in paths:
        if Path(p).is_dir():
            raise MedclError(f"'{p}' is a folder; give image files, e.g. {p}/*.png.")
        if not Path(p).is_file():
            raise MedclError(f"Image file '{p}' does not exist.")
    try:
        cfg = StratifyConfig.model_validate(RunDir(run).load_config_dict() or {})
    except ValueError:
        raise DamagedFile(run / "config.yaml", "not a stratify config") from None
    info = RunDir(run).read_json("model.json")
    try:
        k = int(info["k"])
        channels = int(info["channels"])
        image_size = (int(info["image_size"][0]), int(info["image_size"][1]))
    except (TypeError, KeyError, ValueError, IndexError):
        raise DamagedFile(run / "model.json", "not k, channels and image_size") from None
    prototypes = load_npy(run / "prototypes.npy")
    if prototypes.shape != (k, cfg.model.latent_dim) or not np.isfinite(prototypes).all():
        raise DamagedFile(run / "prototypes.npy", f"not {k} finite prototypes")
    state = load_torch(run / "model.pt")
    images = []
    for p in paths:
        img, _ = read_image(p)
        images.append(img)
    # The folder loader's conversions: grey <-> RGB (luminance weights), antialiased resize.
    x = np.concatenate(
        [
            _resize_images(_convert_channels(im[None], channels, Path(p)), image_size)
            for im, p in zip(images, paths, strict=True)
        ]
    )
    model = build_model(cfg, channels, image_size)
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError):
        raise DamagedFile(run / "model.pt", "its tensors do not fit the saved config") from None
    h = encode(model.encoder, torch.from_numpy(x), torch.device("cpu"))
    z = _normalize(h) if cfg.cluster.normalize else h
    bank = bank_clusters = None
    if cfg.cluster.assign == "knn":
        bank = load_npy(run / "train_latents.npy")
        bank_clusters = load_npy(run / "train_clusters.npy")
    clusters, dist = assign_latents(z, prototypes, bank, bank_clusters, cfg)  # type: ignore[arg-type]
    rows = [
        {"path": str(p), "cluster": int(c), "distance": float(dd[c])}
        for p, c, dd in zip(paths, clusters, dist, strict=True)
    ]
    if out is not None:
        _write_assignments(
            Path(out),
            np.array(paths, dtype=object),
            np.full(len(paths), "new"),
            clusters,
            dist,
        )
    return rows
