"""What each stage reads: its config keys, its input images and its upstream stages.

One function per stage returns its :class:`~medcl.stages._done.Deps`. They are pure
functions of the config and the data, so the fingerprint of any stage, upstream ones
included, is known before anything runs. Execution settings (``run.device``,
``run.devices``, ``run.num_nodes``, ``run.num_threads``, ``run.decode_workers``,
``run.prefetch``) change where and how fast a stage runs, not what it computes, so they are
not dependencies; ``run.precision`` is.
"""

from __future__ import annotations

from typing import Any

from medcl.config import Config, to_dict
from medcl.data import ImageSet, split_fingerprint
from medcl.methods import METHODS
from medcl.methods import _accepted as accepted_settings
from medcl.stages._done import Deps

# Every method's hyperparameters: constructor argument name -> config key. Each method takes
# the arguments its __init__ names (medcl.methods.build_method), and its pretraining depends
# on those keys only (medcl.stages._deps).
SETTING_KEYS = {
    "num_res_units": "model.num_res_units",
    "norm": "model.norm",
    "local_weight": "pretrain.glcl_local_weight",
    "local_regions": "pretrain.glcl_local_regions",
    "temperature": "pretrain.temperature",
    "proj_hidden": "pretrain.proj_hidden",
    "proj_out": "pretrain.proj_out",
    "variant": "pretrain.variant",
    "momentum": "pretrain.moco_momentum",
    "queue_size": "pretrain.queue_size",
    "base_momentum": "pretrain.byol_momentum",
    "partitions": "pretrain.glcl_partitions",
    "threshold": "pretrain.pcl_threshold",
    "embed_dim": "pretrain.ld_embed_dim",
    "n_clusters": "pretrain.ld_clusters",
    "instance_weight": "pretrain.ld_instance_weight",
}

_ARCHITECTURE = ("model.*", "data.normalize", "run.precision")


def config_values(tree: dict, patterns: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """``{"finetune.steps": 200, ...}`` for dotted keys, ``section.*`` meaning every key."""
    out: dict[str, Any] = {}
    for pattern in patterns:
        section, _, name = pattern.partition(".")
        values = tree.get(section) or {}
        if name == "*":
            out.update({f"{section}.{k}": v for k, v in values.items()})
        else:
            out[pattern] = values.get(name)
    return out


def _method_keys(method: str) -> set[str]:
    """The pretrain.* keys that ``method``'s constructor does not take (another method's)."""
    wanted = accepted_settings(METHODS[method]) if METHODS[method].pretrains else set()
    return {key for arg, key in SETTING_KEYS.items() if arg not in wanted}


def fraction_label(fraction: float) -> str:
    return f"{fraction * 100:g}% labels"


def features_deps(cfg: Config, data: ImageSet) -> Deps:
    keys = config_values(to_dict(cfg), ["features.*", "model.channels", "run.precision"])
    return Deps("features", keys, {"train split": split_fingerprint(data, "train")})


def cluster_deps(cfg: Config, data: ImageSet) -> Deps:
    keys = config_values(to_dict(cfg), ["cluster.*"])
    return Deps("cluster", keys, {}, {"features": features_deps(cfg, data).fingerprint})


def pretrain_deps(cfg: Config, data: ImageSet, method: str, seed: int) -> Deps:
    other = _method_keys(method)
    keys = {
        k: v
        for k, v in config_values(to_dict(cfg), ["pretrain.*", *_ARCHITECTURE]).items()
        if k not in other or k.startswith("model.")
    }
    upstream = {}
    if METHODS[method].uses_pseudo_labels:
        upstream["cluster"] = cluster_deps(cfg, data).fingerprint
    return Deps(
        f"pretrain {method} seed {seed}",
        {"method": method, "seed": seed, **keys},
        {"train split": split_fingerprint(data, "train")},
        upstream,
    )


def finetune_deps(cfg: Config, data: ImageSet, method: str, fraction: float, seed: int) -> Deps:
    keys = config_values(to_dict(cfg), ["finetune.*", *_ARCHITECTURE])
    upstream = {}
    if METHODS[method].pretrains:
        upstream[f"pretrain {method} seed {seed}"] = pretrain_deps(
            cfg, data, method, seed
        ).fingerprint
    return Deps(
        f"finetune {method} {fraction_label(fraction)} seed {seed}",
        {"method": method, "fraction": fraction, "seed": seed, **keys},
        {
            "train split": split_fingerprint(data, "train"),
            "val split": split_fingerprint(data, "val"),
        },
        upstream,
    )


def evaluate_deps(cfg: Config, data: ImageSet, method: str, fraction: float, seed: int) -> Deps:
    up = finetune_deps(cfg, data, method, fraction, seed)
    return Deps(
        f"evaluate {method} {fraction_label(fraction)} seed {seed}",
        {},
        {"test split": split_fingerprint(data, "test")},
        {up.stage: up.fingerprint},
    )


def segment_prior_deps(cfg: Config, data: ImageSet) -> Deps:
    other = _method_keys("ld")
    tree = to_dict(cfg)
    pretrain = {
        k: v
        for k, v in config_values(tree, ["pretrain.*"]).items()
        if k not in other and k not in ("pretrain.epochs", "pretrain.batch_size", "pretrain.lr")
    }
    keys = {**config_values(tree, ["prior.*", *_ARCHITECTURE]), **pretrain}
    return Deps("segment-prior training", keys, {"train split": split_fingerprint(data, "train")})


# warm-up options added after runs existed, off by default: off, their keys are left out of
# the record, so a run directory from before them is still current
_OFF_BY_DEFAULT_VIEWS = {
    "elastic": ("warmup.elastic", "warmup.elastic_sigma"),
    "erase": ("warmup.erase", "warmup.erase_scale"),
}


def stratify_warmup_deps(cfg: Any, data: ImageSet) -> Deps:
    """``medcl stratify``'s warm-up (``cfg`` is a :class:`~medcl.stratify_config.StratifyConfig`)."""
    keys = config_values(cfg.model_dump(mode="json"), ["model.*", "warmup.*", "run.seed"])
    for option, its_keys in _OFF_BY_DEFAULT_VIEWS.items():
        if not getattr(cfg.warmup, option):  # off: the views of the runs from before its keys
            for key in its_keys:
                keys.pop(key)
    return Deps("stratify warm-up", keys, {"train split": split_fingerprint(data, "train")})


def _stratify_splits(cfg: Any, data: ImageSet) -> dict[str, str]:
    """Fingerprints of the splits that are encoded, assigned and evaluated."""
    splits = dict.fromkeys(["train", cfg.data.eval_split, "val", "test"])
    return {f"{s} split": split_fingerprint(data, s) for s in splits}


def stratify_refine_deps(cfg: Any, data: ImageSet) -> Deps:
    """SCAN's refinement of the warm-up's encoder; its head's k is read by ``refine.k_rule``
    with the clustering settings (``cluster.*``, less the clustering's own k, its rule and
    what only later stages read)."""
    keys = config_values(cfg.model_dump(mode="json"), ["refine.*", "cluster.*", "run.seed"])
    for key in ("cluster.k", "cluster.k_rule", "cluster.assign", "cluster.temperature"):
        keys.pop(key)
    up = stratify_warmup_deps(cfg, data)
    return Deps("stratify refinement", keys, {}, {up.stage: up.fingerprint})


def stratify_embed_deps(cfg: Any, data: ImageSet) -> Deps:
    """The latents of every image, by the warm-up's encoder or, with ``refine.epochs`` > 0,
    the refined one. Off, the refinement's keys are nowhere in the records, so run
    directories from before it are reused."""
    refined = cfg.refine.epochs > 0
    up = (stratify_refine_deps if refined else stratify_warmup_deps)(cfg, data)
    return Deps("stratify embeddings", {}, _stratify_splits(cfg, data), {up.stage: up.fingerprint})


def stratify_cluster_deps(cfg: Any, data: ImageSet) -> Deps:
    """Clustering and prototypes: the training latents in the space of ``cluster.normalize``."""
    keys = config_values(cfg.model_dump(mode="json"), ["cluster.*", "run.seed"])
    for key in ("cluster.assign", "cluster.temperature"):  # read by later stages only
        keys.pop(key)
    up = stratify_embed_deps(cfg, data)
    return Deps("stratify clustering", keys, {}, {up.stage: up.fingerprint})


def stratify_decoder_deps(cfg: Any, data: ImageSet) -> Deps:
    """The conditional decoder: on the prototypes, from the warm-up's frozen encoder."""
    tree = cfg.model_dump(mode="json")
    keys = config_values(tree, ["decoder.*", "cluster.normalize", "cluster.temperature"])
    ups = [stratify_warmup_deps(cfg, data), stratify_cluster_deps(cfg, data)]
    return Deps("stratify decoder", keys, {}, {u.stage: u.fingerprint for u in ups})


def stratify_evaluate_deps(cfg: Any, data: ImageSet) -> Deps:
    """Assignments and metrics (the baselines train here), against the labels if any."""
    keys = config_values(
        cfg.model_dump(mode="json"), ["evaluate.*", "cluster.assign", "data.*", "run.seed"]
    )
    keys.pop("evaluate.tsne_points")  # the report's
    ups = [stratify_embed_deps(cfg, data), stratify_decoder_deps(cfg, data)]
    return Deps("stratify evaluation", keys, {}, {u.stage: u.fingerprint for u in ups})


def stratify_report_deps(cfg: Any, data: ImageSet) -> Deps:
    up = stratify_evaluate_deps(cfg, data)
    keys = {"evaluate.tsne_points": cfg.evaluate.tsne_points}
    return Deps("stratify report", keys, {}, {up.stage: up.fingerprint})
