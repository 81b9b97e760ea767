"""Every task model's demo profile, one after another, in one Prefect flow (one process, so
the local Prefect API starts once)."""

from __future__ import annotations

import sys

from prefect import flow

from flows.pipeline import train_task
from zooflow.config import all_runs


@flow(name="demo-all-tasks", log_prints=True)
def demo_all(profile: str = "demo", seed: int | None = None) -> list[dict]:
    """Run ``train_task`` for every (task, model) that has ``profile`` (``seed`` replaces each
    config's seed); the summary rows."""
    return [train_task(task, model, profile, seed) for task, model in all_runs(profile)]


if __name__ == "__main__":
    for row in demo_all(*(sys.argv[1:2] or ["demo"])):
        print(row)
