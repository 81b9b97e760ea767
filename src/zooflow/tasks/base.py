"""The task contract: the one surface every task module exposes, so flows never branch on a
task's name. A task is a stateless object; per-run facts travel in a ``RunContext``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pandas as pd
import torch
from torch import nn

from zooflow.config import RunConfig
from zooflow.training.engine import Step


@dataclass(frozen=True)
class RunContext:
    """What a task needs to do anything: the resolved config, the facts of its data that the
    model depends on (``info``, e.g. the class names) and where the data lives."""

    cfg: RunConfig
    info: dict[str, Any]
    data_root: Path

    @property
    def folder(self) -> Path:
        """The task's own data folder, ``data/<folder>``."""
        return self.data_root / self.cfg.data.folder


class Task(Protocol):
    name: str
    primary_metric: str
    goal: str  # "max" or "min"
    baseline_description: str  # what ``baseline`` predicts, for the card
    mixed_precision: bool      # the engine's bf16 autocast on CUDA
    channels_last: bool        # convnets: channels_last memory on CUDA

    def data_info(self, cfg: RunConfig, data_root: Path) -> dict[str, Any]:
        """JSON-able facts of the data the model is built from (stored with the model)."""

    def manifest(self, ctx: RunContext) -> pd.DataFrame:
        """One row per sample, with a ``path`` column and what validation needs."""

    def import_data(self, source: Path, target: Path):
        """Write a user's dataset in this task's real format into ``target`` (a staging folder:
        ``data/importer.import_dataset`` validates it, swaps it in and records the version);
        an ``Imported`` (classes, skipped junk, conversions, notes). Refuses symlinks, unsafe
        names and paths that would leave ``target`` (``data/safety.py``)."""

    def expectations(self, ctx: RunContext) -> list:
        """Great Expectations expectations for the manifest."""

    def loaders(self, ctx: RunContext):
        """The run's batches, a ``training.engine.Loaders`` (train, and val for validation and
        selection); datasets, augmentation and collate live inside. Shuffling draws from the global
        RNG (no private generator), whose state the checkpoint carries, so a resumed run sees the
        batches an uninterrupted one would."""

    def build_model(self, ctx: RunContext, pretrained: bool = True) -> nn.Module:
        """The architecture of ``ctx.cfg``; ``pretrained=False`` skips loading weights (used
        when weights come from a checkpoint or a registered version next)."""

    def optimizers(self, model: nn.Module, ctx: RunContext) -> dict[str, torch.optim.Optimizer]:
        """The optimisers by name: one (over the parameter groups the config gives a learning
        rate; the rest frozen) or one per network for models whose step takes turns (GANs)."""

    def training_step(self, model: nn.Module, batch, ctx: RunContext, device: torch.device, optimizers) -> Step:
        """One batch: a ``Step`` with the mean loss (the engine does backward, accumulation,
        clipping and the update) and the batch's figures, or, for a step that updates its
        networks itself (several optimisers), no loss and its losses as figures."""

    def validation_step(self, model: nn.Module, batch, ctx: RunContext, device: torch.device) -> Step:
        """One validation batch (run without gradients): a ``Step`` with its loss, if any, and the
        figures ``select_metric`` may name (e.g. ``accuracy`` as a count of correct samples)."""

    def after_training(self, model: nn.Module, ctx: RunContext) -> None:
        """Finish the trained (or, with ``epochs: 0``, pretrained) model, e.g. an anomaly
        detector's threshold picked on validation data. ``TaskDefaults`` does nothing."""

    def predict_split(self, model: nn.Module, ctx: RunContext) -> Any:
        """The model's outputs over the held-out split (whatever ``score`` and ``examples`` need),
        computed once per evaluation."""

    def score(self, predictions: Any, ctx: RunContext) -> dict[str, float]:
        """Metrics from ``predict_split``'s outputs; includes ``primary_metric``."""

    def baseline(self, ctx: RunContext) -> dict[str, float]:
        """The same metrics for a trivial predictor, on the very samples ``predict_split``
        scores: one dict of metrics, or ``{name: metrics}`` for several named baselines (then
        ``baseline_description`` is ``{name: sentence}``; see ``evaluation/baselines.py``)."""

    def examples(self, model: nn.Module, ctx: RunContext, predictions: Any, folder: Path) -> list[Path]:
        """Figures (PNG) or pages (HTML) for the model card, written into ``folder``."""

    def predict(self, model: nn.Module, ctx: RunContext, raw) -> pd.DataFrame:
        """The task's answer for raw input (image bytes/arrays, text, video, a seed...): what
        the registered pyfunc (``registry/pyfunc.py``) serves, preprocessing included."""

    def input_example(self, ctx: RunContext) -> pd.DataFrame:
        """A raw-input example (at least two rows) for the model signature."""

    def metric_labels(self, info: dict[str, Any]) -> list[str]:
        """The labels that name per-class metrics (``accuracy_class_<label>``...), so the run can
        keep the map from a label that had to change to be an MLflow key back to the label."""

    def serving_packages(self, cfg: RunConfig) -> tuple[str, ...]:
        """The packages (PyPI names) a served model of ``cfg`` needs beyond the common ones
        (``registry/pyfunc.SERVING_PACKAGES``), e.g. a tokenizer or PyAV; pinned at logging."""

    def not_comparable(self, champion_info: dict[str, Any], info: dict[str, Any]) -> str | None:
        """Why a champion built from ``champion_info`` cannot be scored against a new model on
        the data of ``info`` (e.g. "predicts other classes (['a', 'b'])"), or None when it can."""


class TaskDefaults:
    """What most tasks share: fp32 steps, no finishing after training."""

    mixed_precision = False
    channels_last = False

    def after_training(self, model: nn.Module, ctx: RunContext) -> None:
        """Nothing to finish."""

    def serving_packages(self, cfg: RunConfig) -> tuple[str, ...]:
        """None beyond the common ones."""
        return ()

    def metric_labels(self, info: dict[str, Any]) -> list[str]:
        """The class names of the data (every task so far names per-class metrics by them)."""
        return [str(label) for label in info.get("classes") or []]


def other_classes(champion_info: dict[str, Any], info: dict[str, Any]) -> str | None:
    """``not_comparable`` for tasks whose models are defined by their class names."""
    if champion_info.get("classes") != info.get("classes"):
        return f"predicts other classes ({champion_info.get('classes')})"
    return None


def evaluate(task: Task, model: nn.Module, ctx: RunContext) -> dict[str, float]:
    """Metrics of ``model`` on the held-out split: ``score(predict_split(...))``."""
    return task.score(task.predict_split(model, ctx), ctx)
