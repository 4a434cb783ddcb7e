"""Typed, validated configuration: YAML files plus ``key=value`` overrides.

One model per stage; :class:`Config` holds them all. Unknown keys and bad values are
reported as one :class:`~medcl.errors.MedclError` sentence naming the key. Modules never
take this object: stages unpack it into explicit arguments.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar, overload

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from medcl.errors import MedclError

M = TypeVar("M", bound=BaseModel)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class IntensityConfig(_Section):
    """``data.intensity``: how stored pixel values become intensities in [0, 1]."""

    scale: Literal["auto", "type", "percentile", "window"] = Field(
        "auto",
        description="auto: 8-bit by 255, anything else (16-bit, float, DICOM, NIfTI) by its "
        "percentiles; type: by the stored type's range; percentile: always by percentiles; "
        "window: the fixed range data.intensity.window, or without it each DICOM file's own "
        "window (its VOI LUT, or WindowCenter/WindowWidth)",
    )
    percentiles: tuple[float, float] = Field(
        (0.5, 99.5), description="the percentiles that map to 0 and 1"
    )
    per: Literal["image", "dataset"] = Field(
        "image", description="percentiles of each file, or of all files together"
    )
    window: tuple[float, float] | None = Field(
        None, description="[lo, hi] stored values (CT: Hounsfield units) mapped to [0, 1]"
    )

    @field_validator("percentiles")
    @classmethod
    def _percentiles(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not 0 <= v[0] < v[1] <= 100:
            raise ValueError("must be two percentiles 0 <= low < high <= 100, e.g. [0.5, 99.5]")
        return v

    @field_validator("window")
    @classmethod
    def _window(cls, v: tuple[float, float] | None) -> tuple[float, float] | None:
        if v is not None and not v[0] < v[1]:
            raise ValueError("must be [low, high] with low < high, e.g. [-1000, 400]")
        return v

    @model_validator(mode="after")
    def _window_and_scale(self) -> IntensityConfig:
        if self.window is not None and self.scale == "auto":
            self.__dict__["scale"] = "window"  # a window given is the window to use
        if self.window is not None and self.scale != "window":
            raise ValueError(
                f"data.intensity.window is set but data.intensity.scale is {self.scale}; "
                "unset one of them"
            )
        return self


class DataConfig(_Section):
    layout: Literal["folder", "isic2017", "mmwhs", "dsb2018"] = Field(
        "folder",
        description="folder: data.dataset or data.images/masks; isic2017, mmwhs, dsb2018: the "
        "release's own files under data.root",
    )
    root: str | None = Field(
        None, description="the data set's folder for layout isic2017/mmwhs/dsb2018"
    )
    extra_images: list[str] = Field(
        [], description="isic2017: folders of unlabeled images added to train for pretraining"
    )
    normalize: Literal["unit", "zscore"] = Field(
        "unit",
        description="zscore: the encoder standardises each image (after augmentation, on [0, 1])",
    )
    dataset: str | None = Field(
        None, description="built-in data set name: dsb2018 (nuclei) or brain-aal (MRI)"
    )
    images: str | None = Field(None, description="folder (or file) of images or volumes")
    masks: str | None = Field(None, description="folder of masks paired by file name")
    mask_suffix: str = Field("", description="mask stem suffix, e.g. _segmentation")
    intensity: IntensityConfig = Field(
        IntensityConfig(), description="how stored values become [0, 1] (data.images)"
    )
    store: Literal["exact", "source"] = Field(
        "exact",
        description="how decoded images are cached: exact keeps every value bit for bit "
        "(resized images as float32); source rounds them to their file's depth (8-bit files: "
        "uint8, a quarter of the size, within half a grey level); data.images and isic2017",
    )
    on_unreadable: Literal["skip", "error"] = Field(
        "skip",
        description="a file of data.images (or its mask) that cannot be read: skip it and say "
        "so in one line, or error (list them all and stop)",
    )
    label_values: list[int] | None = Field(None, description="mask values, remapped to 0..C-1")
    label_groups: dict[str, list[int]] | None = Field(
        None,
        description="class name -> stored mask values forming it (an atlas's codes); every "
        "other value is background; instead of label_values and class_names",
    )
    class_names: list[str] | None = None
    image_size: tuple[int, int] = (64, 32)
    channels: int | None = None
    volume_axis: int = 2
    split_csv: str | None = None
    val_fraction: float = 0.15
    test_fraction: float = 0.2
    split_seed: int = 0
    folds: int | None = Field(
        None, ge=3, description="k-fold cross-validation over volumes (test, val, train parts)"
    )
    fold: int = Field(0, ge=0, description="which fold when data.folds is set, 0..folds-1")

    @field_validator("val_fraction", "test_fraction")
    @classmethod
    def _fraction(cls, v: float) -> float:
        if not 0 <= v < 1:
            raise ValueError("must be in [0, 1)")
        return v

    @model_validator(mode="after")
    def _one_label_map(self) -> DataConfig:
        if self.label_groups is not None and (
            self.label_values is not None or self.class_names is not None
        ):
            key = "data.label_values" if self.label_values is not None else "data.class_names"
            raise ValueError(
                f"set either data.label_groups or {key}, not both: the groups name the "
                "classes and list their stored values"
            )
        return self

    @model_validator(mode="after")
    def _fold_in_range(self) -> DataConfig:
        if self.folds is not None and self.fold >= self.folds:
            raise ValueError(
                f"data.fold is {self.fold}; with data.folds={self.folds} use 0 to {self.folds - 1}"
            )
        return self


class ModelConfig(_Section):
    channels: list[int] = Field(
        [16, 32, 64, 128], description="UNet widths per level (at least two, each >= 1)"
    )
    num_res_units: int = Field(0, ge=0, description="residual sub-units per block (0: plain)")
    norm: Literal["instance", "batch"] = "instance"

    @field_validator("channels")
    @classmethod
    def _widths(cls, v: list[int]) -> list[int]:
        if len(v) < 2 or any(c < 1 for c in v):
            raise ValueError(
                "must list at least two positive widths, one per UNet level, e.g. [16, 32, 64]"
            )
        return v


class FeaturesConfig(_Section):
    kind: Literal["vae", "beta-vae", "ae"] = "beta-vae"
    beta: float = Field(4.0, ge=0, description="KL weight for kind=beta-vae (vae: 1, ae: 0)")
    latent_dim: int = Field(64, ge=2)
    epochs: int = Field(40, ge=1)
    batch_size: int = Field(32, ge=2)
    lr: float = Field(1e-3, gt=0)


class KRangeSection(_Section):
    """How k is chosen, shared by every job's ``cluster`` section: fixed, or read from a curve
    over ``k_min..k_max``. Checked here (:meth:`_k_range`) and against the number of images
    by :func:`check_k_for`, for every job alike."""

    # the smallest k_max - k_min a curve needs: UFC's elbow reads at least two points
    _min_span: ClassVar[int] = 0

    k: int | None = Field(None, ge=2, description="fixed k; null = elbow of the curve")
    k_min: int = Field(2, ge=2)
    k_max: int = Field(30, ge=2)

    @model_validator(mode="after")
    def _k_range(self) -> KRangeSection:
        if self.k_max - self.k_min < self._min_span:
            relation = "smaller than" if self._min_span else "at most"
            raise ValueError(
                f"cluster.k_min={self.k_min} must be {relation} cluster.k_max={self.k_max}"
            )
        return self


def check_k_for(c: KRangeSection, n: int, what: str = "images", spare: int = 0) -> None:
    """Refuse a k that ``n`` clustered items cannot give (one sentence naming the key).

    ``spare``: how many items more than k the section's ``method`` needs (spectral
    clustering: 1, its graph has ``n`` eigenvectors and the k-th must not be the last).
    """
    if spare and c.k is not None and c.k > n - spare:
        raise MedclError(
            f"cluster.k={c.k} needs at least {c.k + spare} {what} with "
            f"cluster.method={getattr(c, 'method', '')}, and there are {n}; choose cluster.k "
            f"<= {n - spare} or another cluster.method."
        )
    if c.k is not None and c.k > n:
        raise MedclError(
            f"cluster.k={c.k} is larger than the number of {what} ({n}); choose "
            f"k <= {n} or leave cluster.k unset."
        )
    if c.k is None and c.k_min > n - 1:
        raise MedclError(
            f"cluster.k_min={c.k_min} leaves no k to try with {n} {what}; choose "
            f"cluster.k_min <= {n - 1}."
        )


class ClusterConfig(KRangeSection):
    _min_span: ClassVar[int] = 1

    method: Literal["ward", "kmeans", "dbscan"] = "ward"


class PretrainConfig(_Section):
    epochs: int = Field(50, ge=1)
    batch_size: int = Field(32, ge=2)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    warmup_epochs: int = Field(3, ge=0)
    temperature: float = Field(0.1, gt=0)
    variant: Literal["ufc", "supcon"] = Field("ufc", description="UFC's loss form")
    proj_hidden: int = Field(2048, ge=1)
    proj_out: int = Field(256, ge=1)
    aug_strength: float = Field(1.0, ge=0)
    moco_momentum: float = Field(0.999, ge=0, le=1, description="MoCo key-encoder momentum")
    queue_size: int = Field(4096, ge=1, description="MoCo negatives; keep below #train images")
    byol_momentum: float = Field(0.996, ge=0, le=1, description="BYOL target momentum at start")
    glcl_partitions: int = Field(4, ge=1, description="GLCL partitions per volume")
    glcl_local_weight: float = Field(
        0.0, ge=0, description="GLCL local decoder loss weight (0: global loss only)"
    )
    glcl_local_regions: int = Field(3, ge=1, description="GLCL local loss: regions per side")
    pcl_threshold: float = Field(0.1, gt=0, le=1, description="PCL positive position gap")
    ld_embed_dim: int = Field(32, ge=1, description="LD per-pixel embedding size")
    ld_clusters: int = Field(16, ge=2, description="LD clustering-head clusters (M)")
    ld_instance_weight: float = Field(1.0, ge=0, description="LD instance-level term weight")


class FinetuneConfig(_Section):
    steps: int = Field(200, ge=1, description="optimiser steps, the same for every fraction")
    epochs: int | None = Field(
        None, ge=1, description="if set, replaces steps: epochs x ceil(n_labelled / batch_size)"
    )
    min_steps: int | None = Field(
        None, ge=1, description="with epochs: at least this many steps (few labels)"
    )
    max_steps: int | None = Field(
        None, ge=1, description="with epochs: at most this many steps (many labels)"
    )
    batch_size: int = Field(16, ge=1)
    lr: float = Field(1e-2, gt=0)
    encoder_lr_scale: float = Field(
        1.0, gt=0, le=1, description="the encoder trains at lr x this (the decoder at lr)"
    )
    weight_decay: float = Field(1e-4, ge=0)
    eval_every: int = Field(20, ge=1, description="steps between validation Dice checks")

    @model_validator(mode="after")
    def _step_bounds(self) -> FinetuneConfig:
        if (self.min_steps or self.max_steps) and self.epochs is None:
            raise ValueError(
                "finetune.min_steps / max_steps bound finetune.epochs; set finetune.epochs too"
            )
        if self.min_steps and self.max_steps and self.min_steps > self.max_steps:
            raise ValueError(
                f"finetune.min_steps={self.min_steps} is above finetune.max_steps={self.max_steps}"
            )
        return self


# What Lightning Fabric accepts as precision (its older spellings too).
PRECISIONS = ("32-true", "bf16-mixed", "16-mixed", "bf16-true", "16-true", "64-true",
              "32", "bf16", "16", "64")  # fmt: skip


class RunBase(_Section):
    """What every job's ``run`` section holds: where it computes, with how many threads, and
    whether batches are assembled ahead."""

    device: str = Field("auto", description="auto, cpu, cuda, cuda:1, mps")
    num_threads: int | None = Field(None, ge=1)
    prefetch: bool = Field(
        True,
        description="assemble and augment the next training batch on a worker thread while "
        "the model computes the current one (the same results, bit for bit)",
    )


class RunConfig(RunBase):
    methods: list[str] = ["random", "simclr", "ufc"]
    label_fractions: list[float] = [0.05, 0.1, 0.2, 1.0]
    seeds: list[int] = [0, 1, 2]
    devices: int = Field(
        1, ge=1, description="processes for pretraining; > 1 runs DDP (one per GPU)"
    )
    num_nodes: int = Field(
        1,
        ge=1,
        description="machines for pretraining, run.devices processes on each; > 1 needs a "
        "launcher that starts every process (srun or torchrun; see the README)",
    )
    precision: str | None = Field(None, description="null = bf16-mixed on GPU, 32-true on CPU")
    decode_workers: int | None = Field(
        None,
        ge=1,
        description="processes that decode image files into the cache; null: this machine's "
        "CPUs, at most 8 (or MEDCL_DECODE_WORKERS); 1: no pool",
    )
    seeds_per_method: dict[str, list[int]] = Field(
        {},
        description="seeds of the named methods instead of run.seeds, e.g. {moco: [0, 1, 2]}: "
        "a budget can keep every seed for the main comparison and fewer for the rest",
    )

    def seeds_for(self, method: str) -> list[int]:
        """The seeds that ``method`` runs with."""
        return list(self.seeds_per_method.get(method, self.seeds))

    def all_seeds(self) -> list[int]:
        """Every seed some method runs with, in order of first mention."""
        return list(
            dict.fromkeys([*self.seeds, *(s for v in self.seeds_per_method.values() for s in v)])
        )

    @model_validator(mode="after")
    def _seeds_per_method_names_methods(self) -> RunConfig:
        for name, seeds in self.seeds_per_method.items():
            if name not in self.methods:
                raise ValueError(
                    f"run.seeds_per_method names '{name}', which is not in run.methods "
                    f"{self.methods}; name only methods that run"
                )
            if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
                raise ValueError(
                    f"run.seeds_per_method.{name} is {seeds}; list distinct seeds >= 0, at "
                    "least one"
                )
        return self

    @field_validator("label_fractions")
    @classmethod
    def _fractions(cls, v: list[float]) -> list[float]:
        for f in v:
            if not 0 < f <= 1:
                raise ValueError(f"label fraction {f} is outside (0, 1]; use e.g. 0.05 for 5%")
        return v

    @field_validator("methods", "label_fractions", "seeds")
    @classmethod
    def _one_each(cls, v: list) -> list:
        if not v:
            raise ValueError("is empty; list at least one")
        repeated = sorted({x for x in v if v.count(x) > 1}, key=str)
        if repeated:
            raise ValueError(f"lists {repeated[0]} more than once; list each once")
        return v

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, v: list[int]) -> list[int]:
        for s in v:
            if s < 0:
                raise ValueError(f"seed {s} is negative; seeds are whole numbers >= 0")
        return v

    @field_validator("precision")
    @classmethod
    def _precision(cls, v: str | None) -> str | None:
        if v is not None and v not in PRECISIONS:
            raise ValueError(f"is not a precision; use one of {', '.join(PRECISIONS)} or null")
        return v


class PriorConfig(_Section):
    """``medcl segment-prior``: one LD cluster guided towards a structure by reference masks."""

    structure: list[int] | None = Field(
        None, description="classes that form the structure (null: every foreground class)"
    )
    references: int = Field(5, ge=1, description="reference masks, from the training split")
    cluster: int = Field(0, ge=0, description="the cluster that the prior guides")
    weight: float = Field(1.0, ge=0, description="weight of the prior KL term")
    epochs: int = Field(60, ge=1)
    batch_size: int = Field(32, ge=2)
    lr: float = Field(1e-3, gt=0)
    seed: int = 0


class Config(_Section):
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    features: FeaturesConfig = FeaturesConfig()
    cluster: ClusterConfig = ClusterConfig()
    pretrain: PretrainConfig = PretrainConfig()
    finetune: FinetuneConfig = FinetuneConfig()
    run: RunConfig = RunConfig()
    prior: PriorConfig = PriorConfig()


def _explain(err: ValidationError, source: str, root: type[BaseModel] | None = None) -> MedclError:
    """One sentence for the first validation error; ``root`` is the config model (``Config``)."""
    first = err.errors()[0]
    key = ".".join(str(p) for p in first["loc"])
    if first["type"] == "extra_forbidden":
        section = key.rsplit(".", 1)[0] if "." in key else ""
        model: Any = root or Config
        for part in section.split(".") if section else []:
            model = model.model_fields[part].annotation
        known = ", ".join(model.model_fields)
        return MedclError(f"Unknown config key '{key}' in {source}; known keys here: {known}.")
    if not key or (first["type"] == "value_error" and isinstance(first.get("input"), dict)):
        msg = first["msg"].removeprefix("Value error, ")  # a check across fields
        return MedclError(f"Config in {source}: {msg}.")
    value = first.get("input")
    msg = first["msg"].removeprefix("Value error, ")
    if isinstance(value, dict | list) and len(repr(value)) > 80:
        value = f"{repr(value)[:77]}..."
    return MedclError(f"Config key '{key}' in {source} has a bad value {value!r}: {msg}.")


def _set(tree: dict, dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = tree
    for p in parts[:-1]:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise MedclError(f"Override '{dotted}' goes inside '{p}', which is not a section.")
    node[parts[-1]] = value


def _parse_value(raw: str) -> Any:
    """YAML value, except that '3e-4' (a string to YAML 1.1) is the number it looks like."""
    if raw == "":
        return None
    value = yaml.safe_load(raw)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def parse_overrides(items: list[str]) -> dict:
    """``["pretrain.epochs=5", "run.seeds=[0,1]"]`` -> nested dict (values parsed as YAML)."""
    tree: dict = {}
    for item in items:
        if "=" not in item:
            raise MedclError(
                f"Argument '{item}' is not a config file or a key=value override "
                "(for example pretrain.epochs=10)."
            )
        key, raw = item.split("=", 1)
        if not key:
            raise MedclError(f"Override '{item}' has no key before '='.")
        _set(tree, key.strip(), _parse_value(raw))
    return tree


def _merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for k, v in extra.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def read_yaml(path: str | Path) -> dict:
    p = Path(path)
    if not p.is_file():
        raise MedclError(f"Config file '{p}' does not exist; give the path to a YAML file.")
    try:
        tree = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as e:
        raise MedclError(f"Config file '{p}' is not valid YAML: {str(e).splitlines()[0]}.") from e
    if not isinstance(tree, dict):
        raise MedclError(f"Config file '{p}' must hold a mapping of sections (data:, run:, ...).")
    return tree


def load_validated(
    model: type[M],
    path: str | Path | None = None,
    overrides: list[str] | None = None,
    base: dict | None = None,
) -> M:
    """Build a validated ``model`` from its defaults, ``base``, a YAML file and overrides."""
    tree = _merge(base or {}, read_yaml(path) if path else {})
    tree = _merge(tree, parse_overrides(overrides or []))
    source = f"'{path}'" if path else "the overrides"
    if overrides and path:
        source = f"'{path}' or the overrides"
    try:
        return model.model_validate(tree)
    except ValidationError as e:
        raise _explain(e, source, model) from None


@overload
def load_config(
    path: str | Path | None = None,
    overrides: list[str] | None = None,
    base: dict | None = None,
) -> Config: ...


@overload
def load_config(
    path: str | Path | None, overrides: list[str] | None, base: dict | None, schema: type[M]
) -> M: ...


def load_config(path=None, overrides=None, base=None, schema=Config):
    """Build a validated config of one job from defaults, ``base``, a YAML file and overrides.

    ``schema`` is the job's config model: :class:`Config` (UFC pipeline, benchmark,
    segment-prior) or :class:`medcl.stratify_config.StratifyConfig`. The one loader of every job.
    """
    return load_validated(schema, path, overrides, base)


def packaged_config(name: str) -> str | None:
    """Path of a config shipped with medcl (``medcl/configs/NAME.yaml``), if there is one.

    Example:
        >>> packaged_config("demo").endswith("configs/demo.yaml"), packaged_config("nope")
        (True, None)
    """
    from importlib import resources

    if name in OVERLAYS:
        raise MedclError(
            f"'{name}' is not a whole config: it is applied on top of another by "
            f"`{OVERLAYS[name]}`; run that instead (key=value overrides go after it)."
        )
    candidate = resources.files("medcl").joinpath(f"configs/{name}.yaml")
    return str(candidate) if "/" not in name and candidate.is_file() else None


# packaged files that only hold changes to another config, and the command that applies them
OVERLAYS = {"demo-quick": "medcl demo --quick"}


def to_dict(cfg: Config) -> dict:
    return cfg.model_dump(mode="json")
