"""Where runs go: the embedded SQLite store under mlflow/ by default, ``MLFLOW_TRACKING_URI``
(a team server) when set. One MLflow run spans every step of one pipeline run."""

from __future__ import annotations

import getpass
import json
import os
import subprocess
import urllib.request
from pathlib import Path

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from zooflow import locks, settings
from zooflow.errors import StoreUnavailable


_READY: set[str] = set()  # stores this process has opened (and, for SQLite, created) once


def connect() -> MlflowClient:
    """Point MLflow at this project's store and return a client."""
    uri = settings.tracking_uri()
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    if uri not in _READY:
        _open_store(uri)
        _READY.add(uri)
    return MlflowClient()


def _sqlite_file(uri: str) -> Path | None:
    return Path(uri.removeprefix("sqlite:///")) if uri.startswith("sqlite:///") else None


def _open_store(uri: str) -> None:
    """First contact with a store. A new SQLite store is created (MLflow runs its schema
    migrations) under a lock: two runs starting at once on a fresh project would otherwise
    migrate the same file together and leave it broken. A server is asked for its health
    with a short timeout, so an unreachable one is one clear message, not minutes of retries."""
    database = _sqlite_file(uri)
    if database is not None:
        with locks.held(database.with_name(database.name + ".lock")):
            try:
                client = MlflowClient()
                client.search_experiments(max_results=1)
                client.search_registered_models(max_results=1)
            except Exception as error:  # noqa: BLE001 - any failure here is about the store
                raise StoreUnavailable(f"the MLflow store {uri} cannot be opened: {_first_line(error)}. "
                                       f"Check that {database} is a readable MLflow database on a writable disk, "
                                       "or point MLFLOW_TRACKING_URI at another store.") from None
    elif uri.startswith(("http://", "https://")):
        try:
            urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=10)
        except OSError as error:
            raise StoreUnavailable(f"the MLflow tracking server {uri} does not answer ({_first_line(error)}). "
                                   "Check MLFLOW_TRACKING_URI, that the server is running, and the network.") from None
        try:  # /health answers anyone; a server with users refuses a wrong password here, before a run starts
            MlflowClient().search_experiments(max_results=1)
        except MlflowException as error:
            refused = refusal(error)
            if refused:
                raise StoreUnavailable(refused) from None
            raise


def _first_line(error: BaseException) -> str:
    text = str(getattr(error, "reason", None) or error).strip()
    return text.splitlines()[0][:300] if text else type(error).__name__


def require_writable() -> None:
    """Refuse to start a run on a store that cannot take it (a read-only file or folder),
    before anything is half-written."""
    uri = settings.tracking_uri()
    connect()
    database = _sqlite_file(uri)
    if database is None:
        return
    artifacts = settings.project_root() / "mlflow" / "artifacts"
    for path in (database, database.parent, artifacts if artifacts.exists() else artifacts.parent):
        if path.exists() and not os.access(path, os.W_OK):
            raise StoreUnavailable(f"the MLflow store {uri} is read-only here ({path} cannot be written). "
                                   "Check its permissions and mount, or point MLFLOW_TRACKING_URI at a writable store.")


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


def is_server(uri: str) -> bool:
    """True when ``uri`` is a tracking server (shared by clients on other machines)."""
    return uri.startswith(("http://", "https://"))


def who() -> str:
    """The user recorded on manual decisions and promotion log rows: the account the tracking
    server authenticated (``MLFLOW_TRACKING_USERNAME``, with MLflow's basic-auth app), else this
    machine's user."""
    if is_server(settings.tracking_uri()) and os.environ.get("MLFLOW_TRACKING_USERNAME"):
        return os.environ["MLFLOW_TRACKING_USERNAME"]
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


def refusal(error: BaseException) -> str | None:
    """A tracking server's refusal (401: who are you; 403: not allowed) as one plain sentence,
    or None when ``error`` is something else."""
    code = getattr(error, "error_code", None)
    if not isinstance(error, MlflowException) or code not in ("UNAUTHENTICATED", "PERMISSION_DENIED"):
        return None
    uri = settings.tracking_uri()
    user = os.environ.get("MLFLOW_TRACKING_USERNAME")
    if code == "UNAUTHENTICATED":
        return (f"the tracking server {uri} did not accept "
                + (f"the password of user '{user}'" if user else "an anonymous request")
                + ": set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD to your account on it")
    endpoint = str(error).split(" failed")[0].removeprefix("API request to endpoint ")
    return (f"the tracking server {uri} refused user '{user or who()}' ({endpoint}): that account has no "
            f"permission to change this experiment or model; ask its owner or an admin to grant it "
            f"(MLflow's basic-auth permissions)")
