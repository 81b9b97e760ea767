"""The small, typed values the pipeline's steps hand each other (``steps.py``): frozen
dataclasses, so a step cannot change what an earlier one found and a misspelt field is an
AttributeError at once, not a KeyError three steps later. The data step's value is
``data.store.DataVersion``; the promotion decision's reasons come from ``registry.policy``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Run:
    """The MLflow run every step logs to, and the config ``start_run`` resolved for it."""

    run_id: str
    task: str
    model: str
    profile: str
    config: dict[str, Any]                                # RunConfig as JSON: every step reads this copy
    overrides: dict[str, Any] = field(default_factory=dict)  # --set and --seed
    book_pretrained: str | None = None                   # the book profile's pretrained setting at start


@dataclass(frozen=True)
class Validated:
    success: bool
    summary: str
    rows: int


@dataclass(frozen=True)
class Trained:
    workdir: str           # weights, run context and card figures of this run
    device: str            # "cpu", "cuda:<name>" or policy.NOT_TRAINED
    train_seconds: float
    resumed_from_epoch: int


@dataclass(frozen=True)
class Evaluation:
    metrics: dict[str, float]
    baseline: dict[str, Any]          # metrics, or {name: metrics} for named baselines
    baseline_note: Any                # a sentence, or {name: sentence}
    figures: tuple[str, ...]
    primary_metric: str
    goal: str                         # "max" or "min"
    champion_version: str | None
    champion_metrics: dict[str, float] | None
    champion_note: str

    @property
    def primary_value(self) -> float:
        return self.metrics[self.primary_metric]


@dataclass(frozen=True)
class Registered:
    name: str
    version: str
    model_uri: str


@dataclass(frozen=True)
class Promotion:
    alias: str                        # "champion" or "challenger"
    promoted: bool
    reasons: tuple[str, ...]
    previous_version: str | None


@dataclass(frozen=True)
class CardFiles:
    markdown: str
    html: str
