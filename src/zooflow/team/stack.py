"""``zooflow server up|down|status``: a team's servers on one host - PostgreSQL, an MLflow
tracking server on it (runs, registry, promotion log; artifacts in one shared folder) and a
Prefect server on it (flow runs, schedules, work pools) - started from and kept in the
project's ``.zooflow/server/`` folder.

The servers run detached (they outlive the command) and listen on the given host only
(127.0.0.1 by default). Secrets (the database role's password, the MLflow admin's password and
the CSRF key of MLflow's basic-auth app) are made once, kept in ``secrets.json`` (mode 0600),
and passed to the servers through their environment, never on a command line others can read.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

from zooflow import settings, watchdog
from zooflow.errors import UserError
from zooflow.ports import require_free
from zooflow.team import postgres

STARTUP_SECONDS = 240  # first start migrates both schemas: ~10-20 s each on 2 cores, more under load
ADMIN = "admin"        # the MLflow basic-auth app's first user


@dataclass
class Ports:
    postgres: int = 5433
    mlflow: int = 5000
    prefect: int = 4200


@dataclass
class State:
    """What ``up`` started, so ``down`` and ``status`` find it again (``state.json``)."""

    host: str = "127.0.0.1"
    ports: Ports = field(default_factory=Ports)
    auth: bool = False
    # name -> (pid, start time): the pair names one process for good (a pid is recycled), so a
    # stale state file never makes `down` signal somebody else's process
    pids: dict[str, tuple[int, str]] = field(default_factory=dict)

    @property
    def mlflow_url(self) -> str:
        return f"http://{self.host}:{self.ports.mlflow}"

    @property
    def prefect_url(self) -> str:
        return f"http://{self.host}:{self.ports.prefect}/api"


def home() -> Path:
    return settings.project_root() / ".zooflow" / "server"


def _load_state() -> State | None:
    path = home() / "state.json"
    if not path.exists():
        return None
    raw = json.loads(path.read_text())
    return State(host=raw["host"], ports=Ports(**raw["ports"]), auth=raw["auth"],
                 pids={name: tuple(process) for name, process in raw["pids"].items()})


def _save_state(state: State) -> None:
    home().mkdir(parents=True, exist_ok=True)
    (home() / "state.json").write_text(json.dumps(asdict(state), indent=2))


def team_secrets() -> dict[str, str]:
    """The team servers' secrets, made on first use and kept private to this account."""
    path = home() / "secrets.json"
    if path.exists():
        return json.loads(path.read_text())
    home().mkdir(parents=True, exist_ok=True)
    made = {"database_password": secrets.token_urlsafe(24), "mlflow_admin_password": secrets.token_urlsafe(18),
            "mlflow_flask_secret": secrets.token_urlsafe(32)}
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as out:
        json.dump(made, out, indent=2)
    return made


def _cluster(state: State) -> postgres.Cluster:
    return postgres.Cluster(home() / "postgres", state.ports.postgres, team_secrets()["database_password"])


def _answers(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=3)
        return True
    except urllib.error.HTTPError:
        return True  # it answered (e.g. 401 from an auth app)
    except OSError:
        return False


def _health(state: State) -> dict[str, str]:
    return {"mlflow": f"{state.mlflow_url}/health", "prefect": f"{state.prefect_url}/health"}


def _alive(process: tuple[int, str] | None) -> bool:
    return process is not None and watchdog.still_running(*process)


def _auth_config(state: State, cluster: postgres.Cluster) -> Path:
    """MLflow's basic-auth settings: users and permissions in their own database, and every
    user may read every experiment and model but change only what they were granted."""
    path = home() / "mlflow-auth.ini"
    path.write_text("[mlflow]\n"
                    "default_permission = READ\n"
                    f"database_uri = {cluster.url('mlflow_auth', 'psycopg')}\n"
                    f"admin_username = {ADMIN}\n"
                    "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
                    # A password check costs tens of ms of CPU; a run makes hundreds of requests.
                    "auth_cache_ttl_seconds = 60\n")
    path.chmod(0o600)
    return path


def _tool_environment(extra: dict[str, str]) -> dict[str, str]:
    """This interpreter's tools first on PATH (MLflow's server execs uvicorn), and nothing of
    the caller's own team settings leaking into the servers."""
    environment = {key: value for key, value in os.environ.items()
                   if not key.startswith(("MLFLOW_TRACKING_", "PREFECT_API_"))}
    environment["PATH"] = f"{Path(sys.executable).parent}:{environment.get('PATH', '')}"
    return {**environment, **extra}


def _launch(name: str, command: list[str], environment: dict[str, str]) -> tuple[int, str]:
    logs = home() / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    with open(logs / f"{name}.log", "ab") as log:
        process = subprocess.Popen(command, env=_tool_environment(environment), stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, cwd=home(), start_new_session=True)
    return process.pid, watchdog.start_time(process.pid)


def _start_mlflow(state: State, cluster: postgres.Cluster) -> tuple[int, str]:
    postgres.ensure_database(cluster, "mlflow")
    artifacts = home() / "mlflow-artifacts"
    artifacts.mkdir(parents=True, exist_ok=True)
    environment = {"MLFLOW_BACKEND_STORE_URI": cluster.url("mlflow", "psycopg")}
    command = [sys.executable, "-m", "mlflow", "server", "--host", state.host, "--port", str(state.ports.mlflow),
               "--workers", "1", "--artifacts-destination", str(artifacts)]
    if state.auth:
        postgres.ensure_database(cluster, "mlflow_auth")
        known = team_secrets()
        environment |= {"MLFLOW_AUTH_CONFIG_PATH": str(_auth_config(state, cluster)),
                        "MLFLOW_AUTH_ADMIN_PASSWORD": known["mlflow_admin_password"],
                        "MLFLOW_FLASK_SERVER_SECRET_KEY": known["mlflow_flask_secret"]}
        command += ["--app-name", "basic-auth"]
    return _launch("mlflow", command, environment)


def _start_prefect(state: State, cluster: postgres.Cluster) -> tuple[int, str]:
    postgres.ensure_database(cluster, "prefect")
    environment = {"PREFECT_API_DATABASE_CONNECTION_URL": cluster.url("prefect", "asyncpg"),
                   "PREFECT_HOME": str(home() / "prefect-home"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                   "PREFECT_UI_API_URL": state.prefect_url}
    return _launch("prefect", [sys.executable, "-m", "prefect", "server", "start", "--host", state.host,
                               "--port", str(state.ports.prefect)], environment)


def up(host: str = "127.0.0.1", ports: Ports | None = None, auth: bool = False) -> State:
    """Start whatever of the three servers is not running (idempotent) and wait until each
    answers. Settings of a running set are kept: ``down`` first to change ports or auth."""
    known = _load_state()
    wanted = State(host=host, ports=ports or Ports(), auth=auth)
    if known and any(_alive(process) for process in known.pids.values()):
        if (known.host, asdict(known.ports), known.auth) != (wanted.host, asdict(wanted.ports), wanted.auth):
            raise UserError(f"the team servers already run with other settings (host {known.host}, ports "
                            f"{asdict(known.ports)}, auth {known.auth}): `zooflow server down` first")
        state = known
    else:
        state = wanted
    cluster = _cluster(state)
    starters = {"mlflow": _start_mlflow, "prefect": _start_prefect}
    missing = [name for name in starters if not _alive(state.pids.get(name))]
    database_down = not postgres.running(cluster)
    # Every port is checked before anything starts: a taken one leaves nothing half-started.
    for name in (["postgres"] if database_down else []) + missing:
        require_free(state.host, getattr(state.ports, name), f"the {name} server",
                     "stop what runs there or choose another port (zooflow server up --help)")
    if database_down:
        postgres.init(cluster)
        postgres.start(cluster)
    for name in missing:
        state.pids[name] = starters[name](state, cluster)
        _save_state(state)  # at once: a failure while the next one starts must leave this one findable
    _wait_until_answering(state)
    return state


def _wait_until_answering(state: State) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    waiting = dict(_health(state))
    while waiting:
        for name, url in list(waiting.items()):
            if _answers(url):
                del waiting[name]
            elif not _alive(state.pids.get(name)):
                raise UserError(f"the {name} server stopped while starting; its log: {home() / 'logs' / f'{name}.log'}")
        if waiting and time.monotonic() > deadline:
            raise UserError(f"{', '.join(waiting)} did not answer within {STARTUP_SECONDS} s; the logs: "
                            f"{home() / 'logs'}")
        time.sleep(0.5)


def _terminate(process: tuple[int, str] | None, timeout: float = 30) -> None:
    if not _alive(process):
        return
    pid = process[0]
    try:
        os.killpg(pid, signal.SIGTERM)  # the server and the workers it started (its own session)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while _alive(process) and time.monotonic() < deadline:
        time.sleep(0.2)
    if _alive(process):
        os.killpg(pid, signal.SIGKILL)


def down() -> None:
    """Stop the servers (their data stays in ``.zooflow/server`` for the next ``up``)."""
    state = _load_state()
    if state is None:
        return
    for name in ("prefect", "mlflow"):
        _terminate(state.pids.pop(name, None))
        _save_state(state)
    postgres.stop(_cluster(state))


@dataclass(frozen=True)
class Service:
    name: str
    url: str
    pid: int | None
    answering: bool


def status() -> list[Service]:
    """Each server: where it listens, its process and whether it answers now."""
    state = _load_state()
    if state is None:
        return []
    cluster = _cluster(state)
    rows = [Service("postgresql", f"postgresql://127.0.0.1:{state.ports.postgres}", None, postgres.running(cluster))]
    for name, url in (("mlflow", state.mlflow_url), ("prefect", state.prefect_url)):
        process = state.pids.get(name)
        rows.append(Service(name, url, process[0] if process else None,
                            _alive(process) and _answers(_health(state)[name])))
    return rows


def exports(state: State) -> list[str]:
    """The shell lines a team member runs to work against these servers."""
    lines = [f"export MLFLOW_TRACKING_URI={state.mlflow_url}", f"export PREFECT_API_URL={state.prefect_url}"]
    if state.auth:
        # A line to copy that reads the password from the private file: it is never printed.
        read = f"import json; print(json.load(open('{home() / 'secrets.json'}'))['mlflow_admin_password'])"
        lines += [f"export MLFLOW_TRACKING_USERNAME={ADMIN}",
                  f'export MLFLOW_TRACKING_PASSWORD="$(python3 -c "{read}")"']
    return lines
