"""Which task models need retraining because their data changed since their champion was trained.

A champion's lineage names the task data it was trained on (the version's ``task_data_md5``
tag: the hash of ``data/<folder>``'s entries in DVC's listing). When the task's current data
version differs, or there is no champion yet, the model is due; the reason travels with the run
it starts (its ``trigger`` tag) and into the log, so a retrain always says why it happened.
"""

from __future__ import annotations

from dataclasses import dataclass

from zooflow import config, settings
from zooflow.data import store


@dataclass(frozen=True)
class Due:
    """One task model and why it should (``due``) or need not be retrained."""

    task: str
    model: str
    due: bool
    reason: str


def check(profile: str, tasks: list[str] | None = None) -> list[Due]:
    """Every (task, model) of ``profile`` (only ``tasks`` when given), each with its verdict."""
    from zooflow.registry import versions

    root = settings.project_root()
    found = []
    for task, model in config.all_runs(profile):
        if tasks and task not in tasks:
            continue
        cfg = config.resolve(task, model, profile)
        current = store.version(root, cfg.data.folder).task_md5
        champion = versions.by_alias(cfg.registered_name, versions.CHAMPION)
        if champion is None:
            found.append(Due(task, model, True, f"{cfg.registered_name} has no champion yet"))
            continue
        trained_on = champion.tags.get("task_data_md5", "")
        if trained_on == current:
            found.append(Due(task, model, False, f"champion v{champion.version} was trained on the current "
                                                  f"data/{cfg.data.folder} ({current[:12]})"))
        else:
            found.append(Due(task, model, True, f"data/{cfg.data.folder} changed: champion v{champion.version} was "
                                                f"trained on {trained_on[:12] or 'an unrecorded version'}, the data "
                                                f"is now {current[:12]}"))
    return found
