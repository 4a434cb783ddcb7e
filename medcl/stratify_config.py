"""Typed config of ``medcl stratify`` (the contrastive autoencoder of Ferrante et al.).

Same conventions as :mod:`medcl.config`, and built from its parts: its sections are
:mod:`medcl.config` sections, ``cluster`` extends the choice of k every job shares
(:class:`~medcl.config.KRangeSection`, checked there), ``run`` extends
:class:`~medcl.config.RunBase`, and it is loaded by the one loader,
:func:`medcl.config.load_config`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, PositiveInt, model_validator

from medcl.config import KRangeSection, RunBase, _Section, load_config


class StratifyDataConfig(_Section):
    dataset: Literal["mnist-5k", "dsb2018", "medmnist", "folder"] = Field(
        "mnist-5k",
        description="built-in real MNIST digits, the built-in dsb2018 nuclei (scored against "
        "their appearance groups), a MedMNIST .npz file, or a folder of images without labels "
        "(data.images)",
    )
    medmnist_path: str | None = Field(None, description="the MedMNIST .npz file (dataset=medmnist)")
    images: str | None = Field(
        None, description="dataset=folder: the folder of images (no labels; all of them train)"
    )
    image_size: tuple[PositiveInt, PositiveInt] = Field(
        (28, 28),
        description="dataset=folder or dsb2018: [height, width] every image is resized to",
    )
    channels: Literal[1, 3] | None = Field(
        None, description="dataset=folder: 1 or 3 channels; default the first image's"
    )
    val_fraction: float = Field(
        0.0, ge=0, lt=1, description="mnist-5k: part of the train split held out as 'val'"
    )
    split_seed: int = Field(
        0, ge=0, description="seed of the validation draw (dsb2018: of its group split)"
    )
    test_seed: int = Field(
        0,
        ge=0,
        description="mnist-5k: seed of the stratified 1,000-digit test draw (0: the built-in "
        "split; another seed gives another train/test partition of the same 5,000 digits)",
    )
    drop: dict[str, float] = Field(
        {},
        description="class name -> fraction of that class's images removed from every split, "
        "e.g. {'8': 0.5}: class-imbalanced resamples of labelled data (seeded by test_seed)",
    )
    eval_split: Literal["test", "val"] = Field("test", description="split the metrics are on")
    max_train: int | None = Field(None, ge=8, description="use at most this many train images")

    @model_validator(mode="after")
    def _folder_needs_images(self) -> StratifyDataConfig:
        if self.dataset == "folder" and not self.images:
            raise ValueError("data.dataset=folder needs data.images, the folder of images")
        if self.images and self.dataset != "folder":
            raise ValueError(
                f"data.images is for data.dataset=folder, not {self.dataset}; set "
                "data.dataset=folder or unset data.images"
            )
        for key in ("val_fraction", "test_seed"):
            if getattr(self, key) and self.dataset != "mnist-5k":
                raise ValueError(
                    f"data.{key} draws a split of the built-in digits (data.dataset=mnist-5k), "
                    f"not of {self.dataset}; unset data.{key}"
                    + (" (dsb2018 has its own val split)" if self.dataset == "dsb2018" else "")
                )
        for name, fraction in self.drop.items():
            if not 0 < fraction < 1:
                raise ValueError(
                    f"data.drop['{name}']={fraction} must be a fraction between 0 and 1 "
                    "(exclusive): the part of that class's images to remove"
                )
        return self


class StratifyModelConfig(_Section):
    widths: list[PositiveInt] = Field(
        [32, 64, 128], min_length=1, description="encoder conv channels"
    )
    latent_dim: int = Field(128, ge=2)
    projector: list[PositiveInt] = Field(
        [512, 512, 128], min_length=1, description="projector widths"
    )
    norm: Literal["none", "batch"] = Field(
        "none", description="after each encoder conv: none (the paper) or BatchNorm"
    )


class WarmupConfig(_Section):
    """Phase 1: NT-Xent on the projector + alpha x reconstruction MSE, LARS."""

    epochs: int = Field(50, ge=1)
    batch_size: int = Field(256, ge=2)
    start_lr: float = Field(0.01, gt=0)
    peak_lr: float = Field(0.25, gt=0)
    final_lr: float = Field(0.05, ge=0)
    warmup_epochs: int = Field(10, ge=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float = Field(1e-6, ge=0)
    eta: float = Field(0.001, gt=0, description="LARS trust coefficient")
    temperature: float = Field(0.5, gt=0, description="NT-Xent temperature")
    alpha: float = Field(0.1, ge=0, description="weight of the reconstruction MSE")
    aug_p: float = Field(0.5, ge=0, le=1, description="probability of each augmentation")
    rotation: float = Field(30.0, ge=0, description="maximum rotation, degrees")
    flip: bool = Field(True, description="random horizontal flips")
    crop_scale: tuple[float, float] = Field((0.5, 1.0), description="rescaled-crop area range")
    blur_sigma: tuple[float, float] = (0.1, 1.0)
    noise_std: float = Field(0.05, ge=0)
    elastic: float = Field(
        0.0,
        ge=0,
        description="strength of a random elastic warp after the rotation (kornia's alpha: "
        "2 moves pixels by about 1.4 px on average at elastic_sigma 4); 0: none",
    )
    elastic_sigma: float = Field(
        4.0, gt=0, description="smoothness of the elastic warp's displacement field, pixels"
    )
    erase: float = Field(
        0.0,
        ge=0,
        le=1,
        description="probability that a view has one random rectangle set to 0, last, after "
        "the crop (random erasing, Zhong et al. 2020): the latents learn to ignore a missing "
        "stroke; 0: none, the paper's views",
    )
    erase_scale: tuple[float, float] = Field(
        (0.02, 0.1), description="area range of the erased rectangle, shares of the image"
    )

    @model_validator(mode="after")
    def _ranges(self) -> WarmupConfig:
        lo, hi = self.crop_scale
        if not 0 < lo <= hi <= 1:
            raise ValueError(
                f"warmup.crop_scale={[lo, hi]} must be [low, high] with 0 < low <= high <= 1 "
                "(shares of the image area), e.g. [0.5, 1.0]"
            )
        lo, hi = self.erase_scale
        if not 0 < lo <= hi < 1:
            raise ValueError(
                f"warmup.erase_scale={[lo, hi]} must be [low, high] with 0 < low <= high < 1 "
                "(shares of the image area), e.g. [0.02, 0.1]"
            )
        lo, hi = self.blur_sigma
        if not 0 < lo <= hi:
            raise ValueError(
                f"warmup.blur_sigma={[lo, hi]} must be [low, high] with 0 < low <= high, e.g. "
                "[0.1, 1.0]"
            )
        return self


class RefineConfig(_Section):
    """Between the warm-up and the embeddings: SCAN's refinement of the warm-up's encoder
    (Van Gansbeke et al. 2020), not in the paper. A linear head of k clusters (k by
    ``refine.k_rule`` on the warm-up's latents) is put on the encoder and the whole network
    is trained so that each training image and one of its nearest neighbours share a
    confident cluster (with an entropy term on the batch's mean assignment), then on its own
    confident clusters (self-labelling). The head is dropped; the refined encoder's latents
    are what every later stage uses."""

    epochs: int = Field(
        0,
        ge=0,
        description="epochs of SCAN's clustering step; 0: no refinement, the warm-up's "
        "encoder is used as it is",
    )
    self_label_epochs: int = Field(50, ge=0, description="epochs of the self-labelling step")
    k_rule: Literal["elbow", "silhouette", "stability", "eigengap"] = Field(
        "stability",
        description="how the head's k is read from the warm-up's latents (with the cluster "
        "section's method, k range and rule settings); its own key, so that trying another "
        "cluster.k_rule or a fixed cluster.k reruns only the clustering",
    )
    neighbours: int = Field(
        20, ge=1, description="nearest training latents (cosine) an image is paired with"
    )
    entropy_weight: float = Field(
        5.0, ge=0, description="weight of the entropy of the mean assignment (SCAN's lambda)"
    )
    threshold: float = Field(
        0.99, gt=0, lt=1, description="self-labelling: the confidence an image needs to count"
    )
    lr: float = Field(1e-4, gt=0, description="Adam's learning rate, constant")
    weight_decay: float = Field(1e-4, ge=0)
    batch_size: int = Field(128, ge=2)


class StratifyClusterConfig(KRangeSection):
    method: Literal["kmeans", "ward", "spectral", "merge"] = Field(
        "kmeans",
        description="kmeans (the paper), ward (medcl.cluster.WardClustering), spectral "
        "(scikit-learn, on a 10-nearest-neighbour graph), or merge (spectral into 30 groups, "
        "then merged two at a time along the same graph, medcl.cluster.graph_merges; on the "
        "digits' validation variants worse than spectral, and the stability rule then reads "
        "k = 3: set cluster.k with it)",
    )
    assign: Literal["prototype", "knn"] = Field(
        "prototype",
        description="how images outside the clustered training set get a stratum: nearest "
        "prototype (the paper) or the majority stratum of their evaluate.knn_k nearest "
        "training latents",
    )
    k_rule: Literal["elbow", "silhouette", "stability", "eigengap"] = Field(
        "elbow",
        description="how k is chosen when k is null: the knee of the within-cluster distance "
        "curve (the paper); the highest mean cosine silhouette of the method's partitions; "
        "the largest k whose every cluster is found again on subsamples (stability); or the "
        "largest gap of the neighbourhood graph's spectrum (eigengap)",
    )
    k_max: int = Field(20, ge=2)
    stability_threshold: float = Field(
        0.68,
        gt=0,
        le=1,
        description="k_rule=stability: a cluster counts as found again when its best-match "
        "Jaccard on another subsample reaches this (median over pairs of subsamples)",
    )
    stability_resamples: int = Field(
        16,
        ge=2,
        description="k_rule=stability: random subsamples of 80 percent of the training "
        "latents, each partitioned for every k",
    )
    normalize: bool = Field(True, description="cluster L2-normalised latents (cosine geometry)")
    temperature: float = Field(0.1, gt=0, description="soft assignment softmax temperature")


class DecoderConfig(_Section):
    """Phase 2: the prototype-conditioned decoder, reconstruction only, encoder frozen."""

    epochs: int = Field(20, ge=1)
    batch_size: int = Field(128, ge=2)
    lr: float = Field(1e-3, gt=0)
    conditioning: Literal["film", "concat"] = "film"


class StratifyEvalConfig(_Section):
    mapping_fraction: float = Field(
        1.0, gt=0, le=1, description="labelled part of the train split for majority mapping"
    )
    knn_k: int = Field(5, ge=1)
    probe_fraction: float = Field(0.2, gt=0, le=1, description="train labels for the probe")
    probe_epochs: int = Field(200, ge=1)
    probe_lr: float = Field(3e-4, gt=0)
    baselines: bool = Field(True, description="train the supervised CNN baselines")
    baseline_epochs: int = Field(15, ge=1)
    baseline_lr: float = Field(1e-3, gt=0)
    tsne_points: int = Field(1000, ge=10, description="points in the t-SNE plot")


class StratifyRunConfig(RunBase):
    seed: int = Field(0, ge=0)


class StratifyConfig(_Section):
    data: StratifyDataConfig = StratifyDataConfig()
    model: StratifyModelConfig = StratifyModelConfig()
    warmup: WarmupConfig = WarmupConfig()
    refine: RefineConfig = RefineConfig()
    cluster: StratifyClusterConfig = StratifyClusterConfig()
    decoder: DecoderConfig = DecoderConfig()
    evaluate: StratifyEvalConfig = StratifyEvalConfig()
    run: StratifyRunConfig = StratifyRunConfig()

    @model_validator(mode="after")
    def _check(self) -> StratifyConfig:
        if self.data.dataset == "medmnist" and not self.data.medmnist_path:
            raise ValueError("dataset=medmnist needs data.medmnist_path, the .npz file")
        return self


def load_stratify_config(
    path: str | Path | None = None, overrides: list[str] | None = None, base: dict | None = None
) -> StratifyConfig:
    """Build a validated :class:`StratifyConfig` from defaults, ``base``, a YAML file and overrides."""
    return load_config(path, overrides, base, StratifyConfig)
