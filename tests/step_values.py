"""Step values for tests that call one step or the card builder directly: defaults for every
field, so a test names only what it is about."""

from __future__ import annotations

from zooflow.data.store import DataVersion
from zooflow.step_results import Evaluation, Promotion, Registered, Run, Trained, Validated


def data_version(tag_md5: str = "abc.dir", task_folder: str = "x", task_md5: str = "def", files: int = 1) -> DataVersion:
    return DataVersion(data_md5=tag_md5, task_folder=task_folder, task_md5=task_md5, files=files)


def validated(summary: str = "passed") -> Validated:
    return Validated(success=True, summary=summary, rows=1)


def trained(device: str = "cpu", seconds: float = 1.0, resumed_from_epoch: int = 0) -> Trained:
    return Trained(workdir="", device=device, train_seconds=seconds, resumed_from_epoch=resumed_from_epoch)


def evaluation(metrics: dict, primary: str = "accuracy", goal: str = "max", baseline: dict | None = None,
               baseline_note="a trivial predictor", figures=(), champion_version: str | None = None,
               champion_metrics: dict | None = None, champion_note: str = "no champion yet") -> Evaluation:
    return Evaluation(metrics=metrics, baseline=baseline or {}, baseline_note=baseline_note,
                      figures=tuple(str(f) for f in figures), primary_metric=primary, goal=goal,
                      champion_version=champion_version, champion_metrics=champion_metrics,
                      champion_note=champion_note)


def registered(name: str = "m", version: str = "1", model_uri: str = "models:/m/1") -> Registered:
    return Registered(name=name, version=version, model_uri=model_uri)


def promotion(alias: str = "champion", reasons=("r",), previous_version: str | None = None) -> Promotion:
    return Promotion(alias=alias, promoted=alias == "champion", reasons=tuple(reasons),
                     previous_version=previous_version)


def run_of(cfg, run_id: str = "r1") -> Run:
    """A Run for ``cfg`` (a resolved RunConfig), as ``start_run`` would hand on."""
    return Run(run_id=run_id, task=cfg.task, model=cfg.model, profile=cfg.profile, config=cfg.model_dump(mode="json"))
