"""Task configs: ``configs/<task>.yaml`` -> strict, typed pydantic objects.

A task file declares its data checks, its promotion policy, its retraining schedule and its
models; each model has ``defaults`` plus one block per profile (``smoke`` / ``demo`` /
``book``). Resolving (task, model, profile) merges the two blocks into one ``RunConfig``.
What only one task reads sits in a block's ``params:`` mapping, typed by the task module's own
class (``tasks/params.py``) and merged key by key: defaults, then profile, then overrides.
Every level forbids unknown keys, and the error names the file and the key.
"""

from __future__ import annotations

import hashlib
import json
import os
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (BaseModel, ConfigDict, Field, SerializeAsAny, ValidationError, ValidationInfo, create_model,
                      field_validator, model_validator)

from zooflow.errors import UserError
from zooflow.tasks.params import FLAT_KEYS_BEFORE_PARAMS, TaskParams, params_class

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
    approval: Literal["none", "required"] = Field(
        "none", description="required: a version that passes becomes `candidate`, and `champion` only when a "
                            "person approves it (`zooflow review NAME VERSION --approve`)")
    approval_wait: int = Field(
        0, ge=0, description="with approval required: seconds the pipeline flow stays paused for the review "
                             "(resumed by `zooflow review` or the Prefect UI); 0: it ends at once, the candidate waits")


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
    epochs: int = Field(ge=0, description="0: train nothing, evaluate and register the pretrained model as it is")
    batch_size: int = Field(ge=1)
    momentum: float = 0.9
    weight_decay: float = Field(0.0, ge=0, description="L2 penalty of the optimiser (the book's SSD: 5e-4)")
    lr: dict[str, float] = Field(description="learning rate per parameter group; groups not named stay frozen")
    optimizer: Literal["sgd", "adam", "adamw"] = "sgd"
    seed: int = 0
    num_workers: int = 0
    max_batches: int | None = Field(None, description="cap on batches per epoch (smoke runs)")
    max_eval_samples: int | None = Field(None, description="score an even spread of this many samples (smoke runs)")
    max_train_samples: int | None = Field(None, description="train on an even spread of at most this many samples "
                                                            "(demo and smoke runs on full-size data)")
    betas: tuple[float, float] = Field((0.9, 0.999), description="Adam's betas (GANs: the book's (0.0, 0.9))")
    select_every: int = Field(1, ge=1, description="validate every N epochs (and at the last)")
    select_metric: str | None = Field(None, description="keep the weights that score best on this validation "
                                                        "figure (e.g. fid, auroc, accuracy); unset: keep the last")
    select_goal: Literal["min", "max"] = Field("max", description="whether select_metric is better low or high")
    ema_decay: float | None = Field(None, gt=0, lt=1, description="train with an exponential moving average of "
                                                                  "the weights (decay per step) and validate and "
                                                                  "keep the average")
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
    devices: int = Field(1, ge=1, description="train on N devices: N > 1 runs the training step under torchrun as "
                                              "DistributedDataParallel, one process per device (each takes "
                                              "batch_size / N samples per batch; the global batch stays batch_size)")
    concurrency_limit: str | None = Field(None, description="the Prefect global concurrency limit training takes "
                                                            "`devices` slots of, so runs queue for the GPUs "
                                                            "(`prefect gcl create NAME --limit SLOTS`); unset: none")
    params: SerializeAsAny[TaskParams] = Field(
        default_factory=dict, validate_default=True,
        description="the task module's own parameters (tasks/params.py), e.g. input_size or tokenizer")
    data: DataChecks
    policy: Policy

    @field_validator("params", mode="before")
    @classmethod
    def _typed_params(cls, value: Any, info: ValidationInfo) -> Any:
        """The ``params`` mapping as its task module's class (``module`` is validated before it)."""
        module = info.data.get("module")
        if module is None:  # module itself is missing or invalid: that error is the one to read
            raise ValueError("cannot check params without a valid module")
        expected = params_class(module)
        if type(value) is expected:
            return value
        if isinstance(value, TaskParams):  # another task's: re-checked key by key, so a stray key is named
            value = value.model_dump()
        return expected.model_validate(value)

    @model_validator(mode="after")
    def _coherent(self) -> "RunConfig":
        if self.lr_schedule == "step" and self.lr_step_epochs is None:
            raise ValueError("lr_schedule 'step' needs lr_step_epochs")
        if self.epochs == 0 and self.pretrained == "none":
            raise ValueError("epochs 0 evaluates the pretrained model as it is, but pretrained is 'none'")
        if self.batch_size % self.devices:
            raise ValueError(f"batch_size {self.batch_size} does not split evenly over devices {self.devices}: each "
                             f"device takes batch_size / devices samples, so make batch_size a multiple of devices")
        return self

    @model_validator(mode="before")
    @classmethod
    def _older_versions(cls, values: Any) -> Any:
        """Configs stored with versions registered before ``module`` or ``params`` existed still
        load (``run_context.json`` of a registered version, a run's ``resolved_config.json``)."""
        if isinstance(values, dict) and "module" not in values and "task" in values:
            values = {**values, "module": values["task"]}
        if isinstance(values, dict) and "params" not in values:
            values = _flat_params_moved(values)
        return values

    def digest(self) -> str:
        """A short, stable hash of the resolved config (a model version's ``config_hash``)."""
        text = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def registered_name(self) -> str:
        """The MLflow registered model name, ``<task>-<model>``."""
        return f"{self.task}-{self.model}"


def _flat_params_moved(values: dict) -> dict:
    """An old flat config with its task-specific keys moved into ``params``. Every old config
    carried all of them whatever its task (a GAN's had ``tokenizer: book``), so the keys its task
    module does not declare were unused defaults and are dropped."""
    if not any(key in values for key in FLAT_KEYS_BEFORE_PARAMS):
        return values
    try:
        declared = params_class(values.get("module")).model_fields
    except ValueError:  # no such module: leave the keys where they are, to be named as unknown
        return values
    params = {key: values[key] for key in FLAT_KEYS_BEFORE_PARAMS if key in values and key in declared}
    rest = {key: value for key, value in values.items() if key not in FLAT_KEYS_BEFORE_PARAMS}
    return {**rest, "params": params}


# What the task file decides; every other RunConfig field a model's defaults or profile may set.
_TASK_LEVEL = {"task", "module", "model", "profile", "architecture", "description", "limitations", "data", "policy"}


@cache
def _params_block(module: str) -> type[Strict]:
    """A ``params:`` block of one task module's models: its keys, each optional (a profile sets
    some, the defaults others); their ranges are checked once merged, in ``resolve``."""
    declared = params_class(module)
    return create_model(f"{declared.__name__}Block", __base__=Strict,
                        **{name: (field.annotation | None, None) for name, field in declared.model_fields.items()})


class _TrainingBlock(Strict):
    params: dict[str, Any] | None = Field(None, description="the task module's parameters (tasks/params.py)")

    @field_validator("params", mode="before")
    @classmethod
    def _known_params(cls, value: Any, info: ValidationInfo) -> Any:
        """Checked against the task module's keys when the caller knows the module (a task file
        passes it as the validation context; ``--set`` alone does not, ``resolve`` checks it)."""
        module = (info.context or {}).get("module")
        if module is None or not isinstance(value, dict):
            return value
        return _params_block(module).model_validate(value).model_dump(exclude_unset=True)


TrainingOverrides = create_model(
    "TrainingOverrides", __base__=_TrainingBlock,
    __doc__="One profile block (or the model's defaults): every RunConfig training field, optional; none unknown.",
    **{name: (field.annotation | None, None) for name, field in RunConfig.model_fields.items()
       if name not in _TASK_LEVEL | {"params"}})


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


def _error_text(error: ValidationError, module: str | None = None, within: tuple[str, ...] = ()) -> str:
    """One line per problem, each naming its key (``within``: where the validated mapping sits);
    ``module``: the task module, whose parameter names help with an unknown key."""
    lines = []
    for item in error.errors():
        loc = (*within, *item["loc"])
        where = ".".join(str(part) for part in loc)
        if item["type"] == "extra_forbidden":
            lines.append(f"unknown key '{loc[-1]}' at {where}{_params_hint(loc, module)}")
        elif where:
            lines.append(f"{where}: {item['msg']}")
        else:  # a rule over several keys (a model validator): its own words say which
            lines.append(item["msg"].removeprefix("Value error, "))
    return "; ".join(lines)


def _params_hint(loc: tuple, module: str | None) -> str:
    """For an unknown key: the keys a ``params:`` block may hold, or that the key is a parameter
    of the task now (files written before ``params`` existed set them beside ``epochs``)."""
    try:
        declared = list(params_class(module).model_fields) if module else []
    except ValueError:
        return ""
    if not declared:
        return ""
    if "params" in loc[:-1]:
        return f" ({module} params: {', '.join(declared)})"
    if loc[-1] in declared:
        return f" (a {module} parameter: set it under params:)"
    return ""


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
    module = raw.get("module") or raw.get("task")
    module = module if isinstance(module, str) else None  # a wrong type is TaskFile's error to name
    try:
        # The module in the context lets every model's params blocks be checked against its keys.
        return TaskFile.model_validate(raw, context={"module": module})
    except ValidationError as error:
        raise ConfigError(f"{path}: {_error_text(error, module)}") from None


def resolve(task: str, model: str, profile: str, path: Path | None = None,
            overrides: dict[str, Any] | None = None) -> RunConfig:
    """Merge a model's defaults with one profile (and optional overrides) into a RunConfig."""
    task_file = load_task_file(task, path)
    if model not in task_file.models:
        raise ConfigError(f"task '{task}' has no model '{model}'; models: {', '.join(task_file.models)}")
    spec = task_file.models[model]
    if profile not in spec.profiles:
        raise ConfigError(f"model '{model}' has no profile '{profile}'; profiles: {', '.join(spec.profiles)}")
    module = task_file.module or task
    merged: dict[str, Any] = spec.defaults.model_dump(exclude_none=True)
    block = spec.profiles[profile].model_dump(exclude_none=True)
    # params merge key by key (the defaults name the labels, a profile the sizes); any other
    # key of the profile replaces the defaults' (a profile's lr is the whole set of rates).
    params = {**merged.pop("params", {}), **block.pop("params", {})}
    merged.update(block, params=params)
    for key, value in _checked_overrides(overrides or {}, module).items():
        # a dict override (``--set lr.head=1e-3``) changes those entries and keeps the others
        both_dicts = isinstance(value, dict) and isinstance(merged.get(key), dict)
        merged[key] = {**merged[key], **value} if both_dicts else value
    try:
        return RunConfig(task=task, module=module, model=model, profile=profile, architecture=spec.architecture,
                         description=spec.description, limitations=spec.limitations,
                         data=task_file.data, policy=task_file.policy, **merged)
    except ValidationError as error:
        raise ConfigError(f"{path or config_path(task)} [{model}/{profile}]: {_error_text(error, module)}") from None


def _checked_overrides(overrides: dict[str, Any], module: str) -> dict[str, Any]:
    """``overrides`` with their ``params`` checked against the task module's keys: ``--set``
    cannot know the task, so ``params.tokenizer`` on a GAN is named here."""
    if not isinstance(overrides.get("params"), dict):
        return overrides
    try:
        params = _params_block(module).model_validate(overrides["params"]).model_dump(exclude_unset=True)
    except ValidationError as error:
        raise ConfigError(f"--set: {_error_text(error, module, within=('params',))}") from None
    except ValueError as error:  # a module with no parameter class
        raise ConfigError(f"--set: {error}") from None
    return {**overrides, "params": params}


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
    of the dict field ``a`` (e.g. ``lr.head=1e-3``, ``params.tokenizer=sudachi``). Checked like a
    profile block in a task file: an unknown key or a value of the wrong type is a ConfigError
    naming the argument (``params`` keys once the task is known, in ``resolve``)."""
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
