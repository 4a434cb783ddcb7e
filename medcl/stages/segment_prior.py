"""``medcl segment-prior``: masks of a structure from a few reference masks, none of the targets'.

Local discrimination (pixel embeddings + a clustering head on a UNet) is trained on the
training images without their masks; one cluster is guided towards the structure by the KL
divergence between the statistics (location, area, spread) of its soft masks and those of a
few reference masks drawn from the training split. The guided cluster's maps on the test
images are the predicted masks, scored against the test masks when there are any. For
comparison, the same Dice is reported for two references that need no training: an
intensity threshold from 2-means clustering of the pixel intensities (bright = structure),
and the pixel-wise average of the reference masks.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from medcl.config import Config, to_dict
from medcl.data import ImageSet, TwoViews
from medcl.errors import MedclError
from medcl.evaluate import dice_scores
from medcl.losses import mask_statistics
from medcl.methods import LD, Batch, build_method
from medcl.rundir import RunDir, atomic_save_npy, atomic_torch_save, atomic_write_text
from medcl.stages._common import build_encoder, groups_for, load_data, say, seed_all, to_device
from medcl.stages._deps import segment_prior_deps
from medcl.stages.pretrain import method_settings
from medcl.train import make_fabric, set_threads, train_loop


def structure_masks(data: ImageSet, structure: list[int] | None) -> np.ndarray:
    """``(N, H, W)`` bool: pixels whose class is in ``structure`` (None: any foreground)."""
    classes = list(range(1, data.num_classes)) if structure is None else structure
    bad = [c for c in classes if not 0 < c < data.num_classes]
    if bad:
        raise MedclError(
            f"prior.structure={classes} names class {bad[0]}, but the data set's foreground "
            f"classes are 1..{data.num_classes - 1} ({', '.join(data.class_names[1:])})."
        )
    return np.isin(data.masks, classes)


def pick_references(data: ImageSet, gt: np.ndarray, n: int, seed: int) -> np.ndarray:
    """``n`` training images with a mask that shows the structure, drawn with ``seed``."""
    train = data.indices("train")
    usable = train[data.has_mask[train] & gt[train].any(axis=(1, 2))]
    if len(usable) < n:
        raise MedclError(
            f"prior.references={n} but only {len(usable)} training images have a mask showing "
            "the structure; lower prior.references or check prior.structure."
        )
    return np.sort(np.random.default_rng(seed).choice(usable, size=n, replace=False))


def intensity_baseline(images: np.ndarray) -> np.ndarray:
    """2-means on pixel intensities (scikit-learn); the brighter cluster is the structure."""
    from sklearn.cluster import KMeans

    x = images.mean(axis=1)  # (N, H, W)
    sample = np.random.default_rng(0).choice(x.size, size=min(x.size, 200_000), replace=False)
    km = KMeans(2, n_init=3, random_state=0).fit(x.reshape(-1, 1)[sample])
    bright = int(np.argmax(km.cluster_centers_[:, 0]))
    return (km.predict(x.reshape(-1, 1)) == bright).reshape(x.shape)


@torch.no_grad()
def infer(model, images: np.ndarray, fabric, batch_size: int = 64, embeddings: bool = False):
    """Cluster maps ``(N, H, W)`` and guided-cluster probabilities of ``images``; with
    ``embeddings``, also the pixel embeddings ``(N, D, H, W)`` (large: ask for a few images)."""
    model.eval()
    maps, probs, embs = [], [], []
    for s in range(0, len(images), batch_size):
        emb, assign, _ = model.net(to_device(fabric, images[s : s + batch_size]))
        maps.append(assign.argmax(1).cpu().numpy())
        probs.append(assign[:, model.prior_cluster].cpu().numpy())
        if embeddings:
            embs.append(emb.cpu().numpy())
    out = (np.concatenate(maps), np.concatenate(probs))
    return (*out, np.concatenate(embs)) if embeddings else out


def run_segment_prior(cfg: Config, out: str | Path) -> dict:
    """Train (or resume), predict the test masks, score them, and write the report."""
    t0 = time.perf_counter()
    run = RunDir(out)
    run.lock()
    # written again below; removed first so that a run that stops part-way never leaves the
    # masks and Dice of an earlier config beside the new config.yaml
    run.retract("results.json", "model.pt", "masks", "report.md", "report.html")
    run.save_config(to_dict(cfg))
    set_threads(cfg.run.num_threads)
    fabric = make_fabric(cfg.run.device, cfg.run.precision)
    data = load_data(cfg, cache_dir=run.path / "cache")
    pr = cfg.prior
    if pr.cluster >= cfg.pretrain.ld_clusters:
        raise MedclError(
            f"prior.cluster={pr.cluster} but the clustering head has pretrain.ld_clusters="
            f"{cfg.pretrain.ld_clusters} clusters; choose prior.cluster < {cfg.pretrain.ld_clusters}."
        )
    gt = structure_masks(data, pr.structure)
    refs = pick_references(data, gt, pr.references, pr.seed)
    ref_stats = mask_statistics(torch.as_tensor(gt[refs], dtype=torch.float32))
    mean, var = ref_stats.mean(0), ref_stats.var(0, unbiased=False)
    say(
        f"{pr.references} reference masks from the training split ({', '.join(data.ids[refs][:5])}"
        f"{', ...' if len(refs) > 5 else ''}); structure covers {100 * float(mean[2]):.0f}% "
        "of an image on average"
    )

    seed_all(pr.seed)
    model = build_method("ld", build_encoder(cfg, data.channels), **method_settings(cfg))
    assert isinstance(model, LD)
    model.set_prior(mean, var, pr.cluster, pr.weight)
    train_idx = data.indices("train")
    images = data.images[train_idx]
    augment = TwoViews(data.image_size, strength=cfg.pretrain.aug_strength)

    def prepare(idx: np.ndarray) -> Batch:
        # the step's only random draws, so run.prefetch may run it ahead (train_loop)
        x = to_device(fabric, images, idx)
        return Batch(torch.stack([x, augment.aug(x)], dim=1))  # view 0 un-augmented: the prior's

    def step_loss(batch: Batch, net: torch.nn.Module) -> torch.Tensor:
        return net(batch)

    history = train_loop(
        fabric=fabric,
        module=model,
        step_loss=step_loss,
        n_items=len(images),
        epochs=pr.epochs,
        batch_size=min(pr.batch_size, len(images)),
        lr=pr.lr,
        weight_decay=cfg.pretrain.weight_decay,
        warmup_epochs=min(cfg.pretrain.warmup_epochs, pr.epochs - 1),
        seed=pr.seed,
        checkpoint=run.path / "checkpoint.pt",
        desc="segment-prior",
        log=lambda **r: run.log(stage="segment-prior", **r, **model.last_terms),
        checkpoint_every=5,
        fingerprint=segment_prior_deps(cfg, data).fingerprint,
        lr_key="prior.lr",
        prepare=prepare,
        prefetch=cfg.run.prefetch,
    )
    atomic_torch_save(model.state_dict(), run.path / "model.pt")

    test = data.indices("test")
    cluster_maps, probs = infer(model, data.images[test], fabric)
    pred = cluster_maps == pr.cluster
    atomic_save_npy(run.file("masks", "test_masks.npy"), pred)
    atomic_write_text(run.file("masks", "test_ids.txt"), "\n".join(data.ids[test]) + "\n")
    results: dict = {
        "references": data.ids[refs].tolist(),
        "structure": pr.structure,
        "loss": history,
        "n_test": int(len(test)),
        "seconds": round(time.perf_counter() - t0, 1),
    }
    mean_ref = gt[refs].mean(0) >= 0.5
    for split, idx, maps in (("val", data.indices("val"), None), ("test", test, cluster_maps)):
        scored = idx[data.has_mask[idx]]
        if not len(scored):
            continue
        if maps is None:
            maps = infer(model, data.images[scored], fabric)[0]
        else:
            maps = maps[data.has_mask[idx]]
        groups = groups_for(data, scored)

        def dice(p, scored=scored, groups=groups):
            return dice_scores(p.astype(int), gt[scored].astype(int), 2, groups)["dice"]

        # Settings are chosen on the validation Dice; the test Dice is reported.
        results["dice" if split == "test" else "val_dice"] = {
            "prior-guided LD": dice(maps == pr.cluster),
            "2-means intensity threshold": dice(intensity_baseline(data.images[scored])),
            "mean of the reference masks": dice(np.broadcast_to(mean_ref, maps.shape)),
        }
    results["guided_cluster_share"] = float(pred.mean())
    run.write_json("results.json", results)
    _report(run, cfg, data, test, model, fabric, cluster_maps, probs, gt, pred, results)
    return results


def _report(run, cfg, data, test, model, fabric, cluster_maps, probs, gt, pred, results) -> None:
    from medcl.report._local import cluster_map_figure, prior_mask_figure, similarity_figure
    from medcl.report._report import _save, write_pages

    show = np.linspace(0, len(test) - 1, num=min(6, len(test))).round().astype(int)
    images = data.images[test][show]
    lines = []
    val = results.get("val_dice") or {}
    for name, d in (results.get("dice") or {}).items():
        v = f"{100 * val[name]:.1f}" if name in val else ""
        lines.append(f"| {name} | {v} | {100 * d:.1f} |")
    text = f"Reference masks (training split): {', '.join(results['references'])}.\n\n" + (
        "Test Dice % of the structure"
        + (" (per volume)" if data.is_volumetric else "")
        + ":\n\n| masks from | validation Dice % | test Dice % |\n|---|---|---|\n"
        + "\n".join(lines)
        + "\n"
        if lines
        else "The test images have no masks, so no Dice.\n"
    )
    sections = [
        ("Results", text, None),
        (
            "Prior-guided masks beside the ground truth",
            f"Cluster {cfg.prior.cluster} (guided) on test images.",
            _save(
                prior_mask_figure(images, probs[show], pred[show], gt[test][show]),
                run.file("plots", "prior_masks.png"),
            ),
        ),
        (
            "Cluster maps",
            "One colour per cluster of the clustering head.",
            _save(
                cluster_map_figure(images, cluster_maps[show], cfg.pretrain.ld_clusters),
                run.file("plots", "cluster_maps.png"),
            ),
        ),
        (
            "Similarity maps",
            "Cosine similarity of every pixel's embedding to the embedding at the marked pixel.",
            _save(
                similarity_figure(images[:3], infer(model, images[:3], fabric, embeddings=True)[2]),
                run.file("plots", "similarity.png"),
            ),
        ),
    ]
    write_pages(run, "medcl segment-prior report", sections, to_dict(cfg))
