"""Scheduled retraining: serve ``train-task`` deployments on each task's cron schedule.

    PREFECT_API_URL=http://127.0.0.1:4200/api python -m flows.retrain --profile demo

Each (task, model) gets a deployment with the cron of its task config; a new version only
becomes ``champion`` when the promotion policy says so, so a scheduled retrain never pushes a
worse model live.
"""

from __future__ import annotations

import argparse

from prefect import serve

from flows.pipeline import train_task
from zooflow.config import all_runs, load_task_file


def deployments(profile: str) -> list:
    """One deployment per (task, model) with the task's schedule."""
    found = []
    for task, model in all_runs(profile):
        schedule = load_task_file(task).schedule
        found.append(train_task.to_deployment(name=f"{task}-{model}-{profile}", cron=schedule.cron,
                                              parameters={"task": task, "model": model, "profile": profile},
                                              tags=["zooflow", task, profile]))
    return found


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--profile", default="demo")
    serve(*deployments(parser.parse_args().profile))
