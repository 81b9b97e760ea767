"""Team mode on real servers: `zooflow server up --auth` starts PostgreSQL, an MLflow server
(with its basic-auth app) and a Prefect server on it, on 127.0.0.1; two clients with their own
project folders (two machines: no file lock is shared) run the smoke pipeline at the same time,
on a model without a champion and then with one. Everything lands on the servers, exactly one
version is champion, a user without permission on the model cannot move its alias, and the
promotion log names who moved it."""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

import pytest

from tests.cli import assert_one_clear_message
from tests.conftest import make_project
from tests.servers import free_port

# Long (real PostgreSQL, MLflow and Prefect servers, four pipeline runs): marked, and kept in `make test`.
pytestmark = pytest.mark.slow

NAME = "classification-vgg16-transfer"
RUN = ("run", "classification", "--model", "vgg16-transfer", "--profile", "smoke")


def zooflow(root: Path, *args: str, env: dict | None = None, wait: bool = True):
    """``zooflow ARGS`` as its own process in project ``root`` (a team member's shell)."""
    environment = {**os.environ, "ZOOFLOW_HOME": str(root), "ZOOFLOW_CONFIG_DIR": str(root / "configs"),
                   "ZOOFLOW_OFFLINE": "1", "PATH": f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}",
                   **(env or {})}
    for key in ("MLFLOW_TRACKING_URI", "PREFECT_API_URL", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        if key not in (env or {}):
            environment.pop(key, None)
    process = subprocess.Popen([sys.executable, "-m", "zooflow", *args], cwd=root, env=environment, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if not wait:
        return process
    output, _ = process.communicate(timeout=600)
    return process.returncode, output


def exported(output: str) -> dict[str, str]:
    """The ``export KEY=VALUE`` lines `zooflow server up` printed."""
    lines = [line.strip().removeprefix("export ") for line in output.splitlines() if line.strip().startswith("export ")]
    return dict(line.split("=", 1) for line in lines)


def rest(url: str, path: str, user: str | None = None, password: str | None = None, body: dict | None = None) -> dict:
    request = urllib.request.Request(f"{url}{path}", data=json.dumps(body).encode() if body is not None else None,
                                     headers={"Content-Type": "application/json"})
    if user:
        request.add_header("Authorization", "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode())
    return json.loads(urllib.request.urlopen(request, timeout=30).read() or b"{}")


@pytest.fixture(scope="module")
def team():
    """The servers, started from project A by `zooflow server up --auth`; projects A and B are
    the two clients. PostgreSQL runs as an unprivileged account when the tests run as root, so
    the projects live in a folder that account can traverse (pytest's tmp folders are private)."""
    top = Path(tempfile.mkdtemp(prefix="zooflow-team-"))
    top.chmod(0o755)
    clients = [make_project(top / name, policy={"threshold": 0.0, "margin": 0.01}) for name in ("a", "b")]
    ports = {"--postgres-port": free_port(), "--mlflow-port": free_port(), "--prefect-port": free_port()}
    code, output = zooflow(clients[0], "server", "up", "--auth", *[str(x) for pair in ports.items() for x in pair])
    try:
        assert code == 0, output
        secrets = json.loads((clients[0] / ".zooflow" / "server" / "secrets.json").read_text())
        env = {**exported(output), "MLFLOW_TRACKING_PASSWORD": secrets["mlflow_admin_password"]}
        yield clients, env, output
    finally:
        zooflow(clients[0], "server", "down")
        shutil.rmtree(top, ignore_errors=True)


def test_server_up_prints_the_exports_and_keeps_secrets_private(team):
    clients, env, output = team
    assert env["MLFLOW_TRACKING_URI"].startswith("http://127.0.0.1:")
    assert env["PREFECT_API_URL"].startswith("http://127.0.0.1:") and env["PREFECT_API_URL"].endswith("/api")
    assert env["MLFLOW_TRACKING_USERNAME"] == "admin"
    folder = clients[0] / ".zooflow" / "server"
    assert oct((folder / "secrets.json").stat().st_mode & 0o777) == "0o600"
    assert env["MLFLOW_TRACKING_PASSWORD"] not in output  # never printed
    code, status = zooflow(clients[0], "server", "status")
    assert code == 0 and status.count("answering") == 3, status
    # the MLflow server keeps its runs in PostgreSQL, not in a file of its own
    assert (folder / "postgres" / "data" / "PG_VERSION").exists()
    assert not list(folder.rglob("*.db"))
    # idempotent: a second `up` starts nothing new
    pids = json.loads((folder / "state.json").read_text())["pids"]
    code, again = zooflow(clients[0], "server", "up", "--auth", *_ports_of(folder))
    assert code == 0 and json.loads((folder / "state.json").read_text())["pids"] == pids, again
    # down and at once up again: the ports' closed connections (TIME_WAIT) do not count as taken
    assert zooflow(clients[0], "server", "down")[0] == 0
    assert zooflow(clients[0], "server", "status")[0] == 1
    code, again = zooflow(clients[0], "server", "up", "--auth", *_ports_of(folder))
    assert code == 0 and json.loads((folder / "state.json").read_text())["pids"] != pids, again
    code, status = zooflow(clients[0], "server", "status")
    assert code == 0 and status.count("answering") == 3, status


def _ports_of(folder: Path) -> list[str]:
    ports = json.loads((folder / "state.json").read_text())["ports"]
    return ["--postgres-port", str(ports["postgres"]), "--mlflow-port", str(ports["mlflow"]),
            "--prefect-port", str(ports["prefect"])]


def test_two_clients_race_without_and_with_a_champion_and_exactly_one_wins(team):
    clients, env, _ = team
    url = env["MLFLOW_TRACKING_URI"]
    admin = ("admin", env["MLFLOW_TRACKING_PASSWORD"])
    for round_, expected_versions in ((1, 2), (2, 4)):  # round 1: no champion yet; round 2: one exists
        processes = [zooflow(root, *RUN, env=env, wait=False) for root in clients]
        outputs = [process.communicate(timeout=900)[0] for process in processes]
        for process, output in zip(processes, outputs):
            assert process.returncode == 0, output
        model = rest(url, f"/api/2.0/mlflow/registered-models/get?name={NAME}", *admin)["registered_model"]
        champions = [a for a in model["aliases"] if a["alias"] == "champion"]
        assert len(champions) == 1, (round_, model["aliases"])
        found = rest(url, f"/api/2.0/mlflow/model-versions/search?filter=name%3D%27{NAME}%27", *admin)
        assert len(found["model_versions"]) == expected_versions
        winner = next(v for v in found["model_versions"] if v["version"] == champions[0]["version"])
        best = max(float(_tag(v, "primary_metric_value")) for v in found["model_versions"])
        assert float(_tag(winner, "primary_metric_value")) == best
        for version in found["model_versions"]:  # a tie never wins: every non-champion scored no better
            if version["version"] != winner["version"]:
                assert _tag(version, "promotion.decision") != "champion" or \
                    float(_tag(version, "primary_metric_value")) < float(_tag(winner, "primary_metric_value"))

    # Every run, its card and its promotion-log row are on the servers, made by the admin.
    experiments = rest(url, "/api/2.0/mlflow/experiments/get-by-name?experiment_name=zooflow-classification", *admin)
    runs = rest(url, "/api/2.0/mlflow/runs/search", *admin,
                body={"experiment_ids": [experiments["experiment"]["experiment_id"]]})["runs"]
    assert len(runs) == 4 and all(run["info"]["status"] == "FINISHED" for run in runs)
    for run in runs:
        files = rest(url, f"/api/2.0/mlflow/artifacts/list?run_id={run['info']['run_id']}&path=card", *admin)
        assert any(entry["path"].endswith("model_card.md") for entry in files.get("files", [])), files
    log = rest(url, "/api/2.0/mlflow/experiments/get-by-name?experiment_name=zooflow-promotions", *admin)
    rows = rest(url, "/api/2.0/mlflow/runs/search", *admin,
                body={"experiment_ids": [log["experiment"]["experiment_id"]]})["runs"]
    assert len(rows) == 4 and {_run_tag(row, "who") for row in rows} == {"admin"}
    flow_runs = rest(env["PREFECT_API_URL"], "/flow_runs/filter", body={})
    assert len([run for run in flow_runs if run["state_type"] == "COMPLETED"]) >= 4


def _tag(version: dict, key: str) -> str:
    return next((tag["value"] for tag in version.get("tags", []) if tag["key"] == key), "")


def _run_tag(run: dict, key: str) -> str:
    return next((tag["value"] for tag in run["data"].get("tags", []) if tag["key"] == key), "")


def test_a_user_without_permission_cannot_move_the_alias_and_the_log_names_who_did(team, monkeypatch):
    from mlflow.server import get_app_client

    clients, env, _ = team
    url = env["MLFLOW_TRACKING_URI"]
    admin = ("admin", env["MLFLOW_TRACKING_PASSWORD"])
    for key in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        monkeypatch.setenv(key, env[key])
    users = get_app_client("basic-auth", tracking_uri=url)  # MLflow's own admin client, as the admin
    users.create_user("bob", "Bob-pass-1234567890")
    bob = {**env, "MLFLOW_TRACKING_USERNAME": "bob", "MLFLOW_TRACKING_PASSWORD": "Bob-pass-1234567890"}
    before = _champion(url, admin)
    other = next(str(v) for v in range(1, 5) if str(v) != before)

    code, output = zooflow(clients[1], "promote", NAME, other, "--reason", "bob thinks so", env=bob)
    assert code == 1 and "not allowed" in output and "'bob'" in output, output
    assert_one_clear_message(output, url)
    assert _champion(url, admin) == before  # the 403 moved nothing

    code, output = zooflow(clients[1], "models", env={**bob, "MLFLOW_TRACKING_PASSWORD": "wrong"})
    assert code == 1 and "did not accept the password of user 'bob'" in output, output

    # What an admin grants a reviewer: the model, and the promotion log that records each move.
    users.grant_user_permission("bob", "registered_model", NAME, "EDIT")
    log = rest(url, "/api/2.0/mlflow/experiments/get-by-name?experiment_name=zooflow-promotions", *admin)
    users.grant_user_permission("bob", "experiment", log["experiment"]["experiment_id"], "EDIT")
    code, output = zooflow(clients[1], "promote", NAME, other, "--reason", "bob may now", env=bob)
    assert code == 0, output
    assert _champion(url, admin) == other
    code, history = zooflow(clients[1], "log", NAME, env=bob)
    assert code == 0 and "bob" in history, history
    rows = rest(url, "/api/2.0/mlflow/runs/search", *admin, body={"experiment_ids": [log["experiment"]["experiment_id"]],
                                                                 "order_by": ["attributes.start_time DESC"]})["runs"]
    assert (_run_tag(rows[0], "who"), _run_tag(rows[0], "account"), _run_tag(rows[0], "version")) == ("bob", "bob", other)


def _champion(url: str, admin: tuple[str, str]) -> str:
    model = rest(url, f"/api/2.0/mlflow/registered-models/get?name={NAME}", *admin)["registered_model"]
    return next(a["version"] for a in model["aliases"] if a["alias"] == "champion")


def test_a_taken_port_starts_nothing_and_an_open_address_is_warned_of(tmp_path):
    top = Path(tempfile.mkdtemp(prefix="zooflow-team-"))
    top.chmod(0o755)
    root = top / "c"
    root.mkdir()
    (root / "data.dvc").write_text("")
    try:
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            code, output = zooflow(root, "server", "up", "--host", "0.0.0.0", "--postgres-port", str(free_port()),
                                   "--mlflow-port", str(port), "--prefect-port", str(free_port()))
        assert code == 1 and f"port {port}" in output, output
        assert "without --auth anyone who reaches 0.0.0.0" in output  # an open registry is said out loud
        assert_one_clear_message(output, "mlflow")
        assert not (root / ".zooflow" / "server" / "postgres" / "data").exists()
        code, output = zooflow(root, "server", "status")
        assert code == 1
    finally:
        shutil.rmtree(top, ignore_errors=True)
