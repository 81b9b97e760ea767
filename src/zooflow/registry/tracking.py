"""Where runs go: the embedded SQLite store under mlflow/ by default, ``MLFLOW_TRACKING_URI``
(a team server) when set. One MLflow run spans every step of one pipeline run."""

from __future__ import annotations

import getpass
import json
import subprocess
from pathlib import Path

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from zooflow import settings


def connect() -> MlflowClient:
    """Point MLflow at this project's store and return a client."""
    mlflow.set_tracking_uri(settings.tracking_uri())
    mlflow.set_registry_uri(settings.tracking_uri())
    return MlflowClient()


def experiment_id(name: str) -> str:
    """The experiment ``name``, created on first use (artifacts under mlflow/artifacts when
    the store is the embedded one)."""
    client = connect()
    found = client.get_experiment_by_name(name)
    if found:
        return found.experiment_id
    location = settings.artifact_root() if settings.tracking_uri().startswith("sqlite:") else None
    try:
        return client.create_experiment(name, artifact_location=location)
    except MlflowException:
        found = client.get_experiment_by_name(name)  # another run created it a moment ago
        if found is None:
            raise
        return found.experiment_id


def reap_dead_runs(experiment: str, tags: dict[str, str], by_run: str) -> list[str]:
    """Mark KILLED every RUNNING run of ``experiment`` with these ``tags`` whose process is
    gone (a ``kill -9``, a power cut): their state would otherwise say RUNNING forever.
    Returns the run ids it marked."""
    from zooflow import ownership

    client = connect()
    where = " and ".join([f"attributes.status = 'RUNNING'", *(f"tags.`{k}` = '{v}'" for k, v in tags.items())])
    reaped = []
    for run in client.search_runs([experiment], filter_string=where, max_results=200):
        if run.info.run_id != by_run and ownership.is_gone(run.data.tags):
            client.set_tag(run.info.run_id, "zooflow.killed_note",
                           f"process {run.data.tags.get(ownership.PID_TAG)} ended while RUNNING; marked KILLED by run {by_run}")
            client.set_terminated(run.info.run_id, status="KILLED")
            reaped.append(run.info.run_id)
    return reaped


def run_status(run_id: str) -> str:
    """An MLflow run's status (RUNNING, FINISHED, FAILED, KILLED), or '' when unknown."""
    if not run_id:
        return ""
    try:
        return connect().get_run(run_id).info.status
    except MlflowException:
        return ""


def git_state(root: Path) -> dict[str, str]:
    """The commit the code came from and whether the work tree had uncommitted changes."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True).stdout.strip()
    try:
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (subprocess.CalledProcessError, FileNotFoundError):
        return {"git_commit": "", "git_dirty": "unknown"}
    return {"git_commit": commit, "git_dirty": str(dirty).lower()}


def who() -> str:
    """The user recorded on manual decisions and promotion log rows."""
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry in some containers
        return "unknown"


class RunTracker:
    """Logs to one MLflow run by id, from any thread (Prefect runs tasks in worker threads,
    where MLflow's thread-local active run is not set)."""

    def __init__(self, run_id: str):
        self.run_id = run_id
        self.client = connect()

    def log_metrics(self, metrics: dict[str, float], step: int | None = None, prefix: str = "") -> None:
        for key, value in metrics.items():
            self.client.log_metric(self.run_id, f"{prefix}{key}", float(value), step=step or 0)

    def set_tags(self, tags: dict[str, object]) -> None:
        for key, value in tags.items():
            self.client.set_tag(self.run_id, key, str(value))

    def log_params(self, params: dict[str, object]) -> None:
        for key, value in params.items():
            self.client.log_param(self.run_id, key, str(value)[:6000])

    def log_json(self, payload: object, artifact_file: str) -> None:
        self.client.log_text(self.run_id, json.dumps(payload, indent=2, default=str), artifact_file)

    def log_text(self, text: str, artifact_file: str) -> None:
        self.client.log_text(self.run_id, text, artifact_file)

    def log_artifact(self, path: Path, folder: str | None = None) -> None:
        self.client.log_artifact(self.run_id, str(path), folder)
