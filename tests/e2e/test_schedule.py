"""Scheduled retraining through a real work pool: ``zooflow schedule deploy`` registers the
deployments on a real Prefect server, a real ``zooflow worker`` process takes a triggered run
and the pipeline registers a version in the project's store (the deployment carries the
tracking URI: the worker writes where the deployment was made for)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
import yaml
from prefect.deployments import run_deployment
from prefect.settings import PREFECT_API_URL

from tests.cli import run_cli
from tests.conftest import make_project, using_project
from zooflow.registry import versions

MODEL = "vgg16-transfer"


@pytest.fixture()
def project(tmp_path, prefect_server, monkeypatch):
    root = make_project(tmp_path / "project", policy={"threshold": 0.0})
    task_file = root / "configs" / "classification.yaml"
    raw = yaml.safe_load(task_file.read_text())
    raw["models"] = {MODEL: raw["models"][MODEL]}
    task_file.write_text(yaml.safe_dump(raw, sort_keys=False))
    monkeypatch.setenv("ZOOFLOW_HOME", str(root))
    monkeypatch.setenv("ZOOFLOW_CONFIG_DIR", str(root / "configs"))
    return root


def test_a_deployment_runs_on_a_worker_and_registers_a_version(project, tmp_path):
    code, output = run_cli("schedule", "deploy", "--pool", "zoo", "--profile", "smoke")
    assert code == 0, output
    deployment = f"train-task/classification-{MODEL}-smoke"
    assert f"deployed {deployment} to pool zoo" in output
    code, output = run_cli("schedule", "list", "--profile", "smoke")
    assert code == 0 and f"classification-{MODEL}-smoke" in output and "0 3 * * 1" in output
    log = open(tmp_path / "worker.log", "w")
    worker = subprocess.Popen([sys.executable, "-m", "zooflow", "worker", "--pool", "zoo"], stdout=log,
                              stderr=subprocess.STDOUT, start_new_session=True,
                              env={**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value(),
                                   "MLFLOW_TRACKING_URI": "", "ZOOFLOW_HOME": "/nonexistent"})
    try:
        run = run_deployment(deployment, timeout=600)
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=60)
        log.close()
    assert run.state.is_completed(), (run.state, (tmp_path / "worker.log").read_text()[-3000:])
    with using_project(project):
        ref = versions.get(f"classification-{MODEL}", "1")
    assert ref.tags["profile"] == "smoke" and ref.tags["validation"] == "passed"


def test_without_a_prefect_server_the_commands_say_what_is_missing(monkeypatch):
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    done = subprocess.run([sys.executable, "-m", "zooflow", "worker", "--pool", "zoo"], capture_output=True, text=True,
                          timeout=120, env={k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"})
    assert done.returncode == 1 and "needs a Prefect server: set PREFECT_API_URL" in done.stdout
