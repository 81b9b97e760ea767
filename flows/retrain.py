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
import asyncio
import inspect
import os
from pathlib import Path

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


def deployment_name(task: str, model: str, profile: str) -> str:
    """The name of a task model's scheduled deployment (of the ``train-task`` flow)."""
    return f"{task}-{model}-{profile}"


def code_root() -> Path:
    """The checkout holding ``flows/`` and ``src/``: what a worker runs the flows from."""
    return Path(__file__).resolve().parents[1]


def worker_env() -> dict[str, str]:
    """What a flow run started by a worker needs to find this project: its home (data, configs)
    and its tracking store, recorded in each deployment so a worker on any machine writes to the
    store the deployment was made for, never to a store of its own."""
    from zooflow import settings
    from zooflow.config import config_dir

    return {"ZOOFLOW_HOME": str(settings.project_root()), "ZOOFLOW_CONFIG_DIR": str(config_dir()),
            "MLFLOW_TRACKING_URI": settings.tracking_uri(), "ZOOFLOW_OFFLINE": os.environ.get("ZOOFLOW_OFFLINE", "1")}


def deploy_to_pool(profile: str, pool: str) -> list[str]:
    """Register one ``train-task`` deployment per (task, model) of ``profile`` on work pool
    ``pool`` (a process pool, created when missing), with its task's cron schedule; any
    ``zooflow worker --pool POOL`` then runs them. Returns the deployment names."""
    from prefect import flow as prefect_flow
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists

    async def ensure_pool() -> None:
        async with get_client() as client:
            try:
                await client.create_work_pool(WorkPoolCreate(name=pool, type="process"))
            except ObjectAlreadyExists:
                pass

    asyncio.run(ensure_pool())
    source = prefect_flow.from_source(source=str(code_root()), entrypoint="flows/pipeline.py:train_task")
    env = worker_env()
    names = []
    for task, model in all_runs(profile):
        name = deployment_name(task, model, profile)
        source.deploy(name=name, work_pool_name=pool, cron=load_task_file(task).schedule.cron,
                      parameters={"task": task, "model": model, "profile": profile}, tags=["zooflow", task, profile],
                      job_variables={"env": env}, build=False, push=False, print_next_steps=False)
        names.append(f"train-task/{name}")
    return names


def next_runs(profile: str, count: int = 2) -> list[dict]:
    """Each (task, model) of ``profile`` with its cron and the next ``count`` times it fires (UTC)."""
    from prefect.server.schemas.schedules import CronSchedule

    rows = []
    for task, model in all_runs(profile):
        schedule = load_task_file(task).schedule
        dates = CronSchedule(cron=schedule.cron, timezone=schedule.timezone).get_dates(n=count)
        if inspect.isawaitable(dates):  # a coroutine in Prefect 3's server schemas
            dates = asyncio.run(dates)
        rows.append({"deployment": f"train-task/{deployment_name(task, model, profile)}", "cron": schedule.cron,
                     "next": [date.strftime("%Y-%m-%d %H:%M %Z") for date in dates]})
    return rows


def deployments(profile: str) -> list:
    """One deployment per (task, model) with the task's schedule."""
    found = []
    for task, model in all_runs(profile):
        schedule = load_task_file(task).schedule
        found.append(train_task.to_deployment(name=deployment_name(task, model, profile), cron=schedule.cron,
                                              parameters={"task": task, "model": model, "profile": profile},
                                              tags=["zooflow", task, profile]))
    return found


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--profile", default="demo")
    serve(*deployments(parser.parse_args().profile))
