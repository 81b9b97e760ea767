"""Task configs: ``configs/<task>.yaml`` -> strict, typed pydantic objects.

A task file declares its data checks, its promotion policy, its retraining schedule and its
models; each model has ``defaults`` plus one block per profile (``smoke`` / ``demo`` /
``book``). Resolving (task, model, profile) merges the two blocks into one ``RunConfig``.
Every level forbids unknown keys, and the error names the file and the key.
"""

from __future__ import annotations

import hashlib
import json
import os
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, model_validator
from zooflow.errors import UserError

PROFILES = ("smoke", "demo", "book")


class ConfigError(UserError, ValueError):
    """A task config that cannot be used; the message names the file and the key."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataChecks(Strict):
    """What validation demands of the task's data."""

    folder: str = Field(description="sub-folder of data/ that holds this task's dataset")
    min_images_per_class: int = 5   # per class and split (images or texts)
    min_side: int = 8                # images
    max_side: int = 10_000
    max_chars: int = 100_000         # texts
    min_japanese_share: float | None = Field(None, description="texts: least share of Japanese script")


class Policy(Strict):
    """When a new model version may become ``champion``."""

    threshold: float = Field(description="the primary metric must reach at least this")
    margin: float = Field(0.0, ge=0, description="and beat the champion's by at least this")
    gpu_required_profiles: tuple[str, ...] = ("book",)


class Schedule(Strict):
    cron: str = "0 3 * * 1"
    timezone: str = "UTC"


class RunConfig(Strict):
    """Everything one training run needs, resolved and frozen; logged with every run."""

    task: str
    module: str
    model: str
    profile: Literal["smoke", "demo", "book"]
    architecture: str
    description: str
    limitations: tuple[str, ...]
    pretrained: str = Field(description="imagenet | <path to a state_dict> | none")
    input_size: int = 0
    resize: int = 0
    width: float = 1.0
    hidden: int = 0
    epochs: int = Field(ge=0, description="0: train nothing, evaluate and register the pretrained model as it is")
    batch_size: int = Field(ge=1)
    momentum: float = 0.9
    lr: dict[str, float] = Field(description="learning rate per parameter group; groups not named stay frozen")
    optimizer: Literal["sgd", "adam", "adamw"] = "sgd"
    seed: int = 0
    num_workers: int = 0
    max_batches: int | None = Field(None, description="cap on batches per epoch (smoke runs)")
    max_eval_samples: int | None = Field(None, description="score an even spread of this many samples (smoke runs)")
    max_train_samples: int | None = Field(None, description="train on an even spread of at most this many samples "
                                                            "(demo and smoke runs on full-size data)")
    max_select_samples: int | None = Field(None, description="adversarial training: pick the kept checkpoint on "
                                                             "an even spread of at most this many validation samples")
    tokenizer: str = "book"
    max_length: int = 256
    min_freq: int = 10
    embedding_dim: int = 0
    latent_dim: int = Field(20, description="GANs: size of z")
    betas: tuple[float, float] = Field((0.9, 0.999), description="Adam's betas (GANs: the book's (0.0, 0.9))")
    normal_labels: tuple[str, ...] = Field((), description="GANs: the labels the model learns (generators: the "
                                                           "digits to draw; anomaly: the normal digits)")
    search_steps: int = Field(0, description="AnoGAN: Adam steps of the latent search per image")
    search_lr: float = 0.0
    feature_weight: float = Field(0.1, description="anomaly score = (1-w) pixel residual + w feature residual")
    select_every: int = Field(1, ge=1, description="validate every N epochs (and at the last)")
    select_metric: str | None = Field(None, description="keep the weights that score best on this validation "
                                                        "figure (e.g. fid, auroc, accuracy); unset: keep the last")
    select_goal: Literal["min", "max"] = Field("max", description="whether select_metric is better low or high")
    ema_decay: float | None = Field(None, gt=0, lt=1, description="train with an exponential moving average of "
                                                                  "the weights (decay per step) and validate and "
                                                                  "keep the average")
    select_anomalies_per_class: int = Field(20, ge=0, description="anomaly: the checkpoint-selection set is every "
                                                                   "validation normal and this many of each "
                                                                   "anomalous class (0: all)")
    reconstruction_weight: float = Field(0.0, ge=0, description="EfficientGAN: weight of the mean |x - G(E(x))| "
                                                                 "term in G and E's loss (0: the book's loss)")
    grad_clip_norm: float | None = Field(None, gt=0, description="clip the gradients' global L2 norm to this "
                                                                "(the book's SSD: 2.0); unset: no clipping")
    lr_schedule: Literal["none", "step", "cosine", "poly"] = Field(
        "none", description="learning rate per epoch: step (x lr_gamma every lr_step_epochs), cosine (down to 0 at "
                            "the last), poly ((1 - epoch/epochs) ** lr_poly_power)")
    lr_step_epochs: int | None = Field(None, ge=1, description="step schedule: epochs between two drops")
    lr_gamma: float = Field(0.1, gt=0, description="step schedule: the factor of each drop")
    lr_poly_power: float = Field(0.9, gt=0, description="poly schedule: the power (PSPNet: 0.9)")
    accumulate_batches: int = Field(1, ge=1, description="sum the gradients of N batches before each update "
                                                         "(a batch N times larger in memory of one)")
    discriminator_batchnorm: bool = Field(False, description="GANs: batch norm in D (the DCGAN paper's; the "
                                                            "book's D has none)")
    data: DataChecks
    policy: Policy

    @model_validator(mode="after")
    def _coherent(self) -> "RunConfig":
        if self.lr_schedule == "step" and self.lr_step_epochs is None:
            raise ValueError("lr_schedule 'step' needs lr_step_epochs")
        if self.epochs == 0 and self.pretrained == "none":
            raise ValueError("epochs 0 evaluates the pretrained model as it is, but pretrained is 'none'")
        return self

    @model_validator(mode="before")
    @classmethod
    def _older_versions(cls, values: Any) -> Any:
        """Configs stored with versions registered before ``module`` existed still load."""
        if isinstance(values, dict) and "module" not in values and "task" in values:
            values = {**values, "module": values["task"]}
        return values

    def digest(self) -> str:
        """A short, stable hash of the resolved config (a model version's ``config_hash``)."""
        text = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def registered_name(self) -> str:
        """The MLflow registered model name, ``<task>-<model>``."""
        return f"{self.task}-{self.model}"


# What the task file decides; every other RunConfig field a model's defaults or profile may set.
_TASK_LEVEL = {"task", "module", "model", "profile", "architecture", "description", "limitations", "data", "policy"}

TrainingOverrides = create_model(
    "TrainingOverrides", __base__=Strict,
    __doc__="One profile block (or the model's defaults): every RunConfig training field, optional; none unknown.",
    **{name: (field.annotation | None, None) for name, field in RunConfig.model_fields.items() if name not in _TASK_LEVEL})


class ModelSpec(Strict):
    architecture: str
    description: str = ""
    limitations: tuple[str, ...] = ()
    defaults: TrainingOverrides = TrainingOverrides()
    profiles: dict[Literal["smoke", "demo", "book"], TrainingOverrides]


class TaskFile(Strict):
    task: str
    module: str = Field("", description="the task module (tasks/<module>.py) when it differs from the task name, "
                                        "e.g. sentiment-ja uses the sentiment module")
    data: DataChecks
    policy: Policy
    schedule: Schedule = Schedule()
    models: dict[str, ModelSpec]


def _error_text(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"])
        if item["type"] == "extra_forbidden":
            lines.append(f"unknown key '{item['loc'][-1]}' at {where}")
        elif where:
            lines.append(f"{where}: {item['msg']}")
        else:  # a rule over several keys (a model validator): its own words say which
            lines.append(item["msg"].removeprefix("Value error, "))
    return "; ".join(lines)


def config_dir() -> Path:
    """``$ZOOFLOW_CONFIG_DIR`` (a team's own task configs), else the packaged ``configs/``."""
    override = os.environ.get("ZOOFLOW_CONFIG_DIR")
    return Path(override) if override else Path(str(resources.files("zooflow") / "configs"))


def config_path(task: str) -> Path:
    """The YAML file of a task."""
    return config_dir() / f"{task}.yaml"


def _read_yaml(path: Path) -> dict:
    """The mapping at the top of a YAML file; a syntax error or any other top level (empty file,
    a list, a scalar) is a ConfigError naming the file and, where YAML knows it, line and column."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        # YAML counts lines and columns from 0; editors count from 1.
        where = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ConfigError(f"{path}{where}: not valid YAML: {problem}") from None
    except UnicodeDecodeError as error:
        raise ConfigError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start})") from None
    if not isinstance(raw, dict):
        found = "an empty file" if raw is None else f"a {type(raw).__name__}"
        raise ConfigError(f"{path}: expected a mapping of keys (task, models, ...) at the top level, found {found}")
    return raw


def load_task_file(task: str, path: Path | None = None) -> TaskFile:
    """Read and validate one task's YAML file."""
    path = path or config_path(task)
    if not path.exists():
        known = sorted(p.stem for p in path.parent.glob("*.yaml"))
        raise ConfigError(f"no config for task '{task}' ({path}); known tasks: {', '.join(known)}")
    raw = _read_yaml(path)
    try:
        return TaskFile.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(f"{path}: {_error_text(error)}") from None


def resolve(task: str, model: str, profile: str, path: Path | None = None,
            overrides: dict[str, Any] | None = None) -> RunConfig:
    """Merge a model's defaults with one profile (and optional overrides) into a RunConfig."""
    task_file = load_task_file(task, path)
    if model not in task_file.models:
        raise ConfigError(f"task '{task}' has no model '{model}'; models: {', '.join(task_file.models)}")
    spec = task_file.models[model]
    if profile not in spec.profiles:
        raise ConfigError(f"model '{model}' has no profile '{profile}'; profiles: {', '.join(spec.profiles)}")
    merged: dict[str, Any] = spec.defaults.model_dump(exclude_none=True)
    merged.update(spec.profiles[profile].model_dump(exclude_none=True))
    for key, value in (overrides or {}).items():
        # a dict override (``--set lr.head=1e-3``) changes those entries and keeps the others
        both_dicts = isinstance(value, dict) and isinstance(merged.get(key), dict)
        merged[key] = {**merged[key], **value} if both_dicts else value
    if "input_size" in merged:
        merged.setdefault("resize", merged["input_size"])
    try:
        return RunConfig(task=task, module=task_file.module or task, model=model, profile=profile,
                         architecture=spec.architecture,
                         description=spec.description, limitations=spec.limitations,
                         data=task_file.data, policy=task_file.policy, **merged)
    except ValidationError as error:
        raise ConfigError(f"{path or config_path(task)} [{model}/{profile}]: {_error_text(error)}") from None


def book_pretrained(task: str, model: str) -> str | None:
    """The ``pretrained`` setting of a model's ``book`` profile (what the book starts from), or
    None when the task file has no book profile for it. Read once when a run starts, so the card
    says what the task file said then."""
    try:
        return resolve(task, model, "book").pretrained
    except (ConfigError, OSError, ValueError):
        return None


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """``--set`` arguments (``key=value``) as config overrides. Values are read as YAML
    (``3``, ``1e-4``, ``true``, ``[0.5, 0.999]``, ``{head: 1e-3}``); ``a.b=v`` sets entry ``b``
    of the dict field ``a`` (e.g. ``lr.head=1e-3``). Checked like a profile block in a task
    file: an unknown key or a value of the wrong type is a ConfigError naming the argument."""
    overrides: dict[str, Any] = {}
    for pair in pairs:
        key, equals, text = pair.partition("=")
        key = key.strip()
        if not equals or not key:
            raise ConfigError(f"--set {pair!r}: expected key=value, e.g. --set epochs=3")
        try:
            value = yaml.safe_load(text) if text.strip() else ""
        except yaml.YAMLError:
            raise ConfigError(f"--set {pair!r}: the value is not valid YAML") from None
        field, dot, entry = key.partition(".")
        if dot:
            overrides.setdefault(field, {})
            if not isinstance(overrides[field], dict):
                raise ConfigError(f"--set {pair!r}: {field} was set to a single value before")
            overrides[field][entry] = value
        else:
            overrides[key] = value
    try:  # the checked values, typed as the config declares them ("1e-3" -> 0.001)
        return TrainingOverrides.model_validate(overrides).model_dump(mode="json", exclude_none=True)
    except ValidationError as error:
        raise ConfigError(f"--set: {_error_text(error)}") from None


def all_runs(profile: str) -> list[tuple[str, str]]:
    """Every (task, model) pair that has the given profile, across all task files."""
    pairs = []
    for file in sorted(config_dir().glob("*.yaml")):
        task_file = load_task_file(file.stem, file)
        pairs += [(task_file.task, name) for name, spec in task_file.models.items() if profile in spec.profiles]
    return pairs
