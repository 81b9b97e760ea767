"""Retraining: on each task's cron schedule, and when a task's data changed.

    PREFECT_API_URL=http://127.0.0.1:4200/api python -m flows.retrain --profile demo

Each (task, model) gets a deployment with the cron of its task config; a new version only
becomes ``champion`` when the promotion policy says so, so a scheduled retrain never pushes a
worse model live.

``retrain_on_new_data`` (``zooflow retrain``, or ``zooflow data import ... --retrain``) runs the
pipeline of every task model whose champion was trained on other data than the task's current
version (``zooflow/retraining.py``), and logs why each one ran or did not.
"""

from __future__ import annotations

import argparse

from prefect import flow, get_run_logger, serve

from flows.pipeline import train_task
from zooflow.config import all_runs, load_task_file


@flow(name="retrain-on-new-data", log_prints=True)
def retrain_on_new_data(profile: str = "demo", tasks: list[str] | None = None) -> list[dict]:
    """Run ``train-task`` for each task model of ``profile`` (only ``tasks`` when given) whose
    data changed since its champion was trained, or that has no champion; the summary rows of
    the runs, each with the ``trigger`` that started it."""
    from zooflow import retraining

    from zooflow.errors import UserError

    logger = get_run_logger()
    rows, failed = [], []
    for verdict in retraining.check(profile, tasks):
        if not verdict.due:
            logger.info("%s-%s: up to date (%s)", verdict.task, verdict.model, verdict.reason)
            continue
        logger.info("%s-%s: retraining (%s)", verdict.task, verdict.model, verdict.reason)
        try:
            row = train_task(verdict.task, verdict.model, profile, trigger=verdict.reason)
        except Exception as error:  # one model's bad data or failure must not stop the others' retrains
            logger.error("%s-%s: the retrain failed: %s", verdict.task, verdict.model, error)
            failed.append(f"{verdict.task}-{verdict.model}: {error}")
            continue
        rows.append({**row, "trigger": verdict.reason})
    if failed:
        raise UserError(f"{len(failed)} retrain(s) failed ({len(rows)} succeeded):\n" + "\n".join(failed))
    return rows


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
