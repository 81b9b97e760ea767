"""Team mode: MLFLOW_TRACKING_URI points at an MLflow server (here one started on 127.0.0.1),
and the same pipeline registers, promotes and documents through it - no code changes."""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from flows.pipeline import train_task


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def mlflow_server(tmp_path):
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", f"sqlite:///{tmp_path / 'team.db'}",
         "--artifacts-destination", str(tmp_path / "team-artifacts")],
        env={**os.environ, "PATH": f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}"},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while True:
        try:
            urllib.request.urlopen(f"{url}/health", timeout=2)
            break
        except OSError:
            assert server.poll() is None, "mlflow server exited"
            assert time.time() < deadline, "mlflow server did not come up"
            time.sleep(1)
    yield url, tmp_path
    server.terminate()
    server.wait(timeout=30)


def test_pipeline_registers_through_a_tracking_server(lenient_project, prefect_server, mlflow_server, monkeypatch):
    url, folder = mlflow_server
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
    result = train_task("classification", "vgg16-transfer", "smoke")
    assert result["alias"] == "champion"
    answer = json.loads(urllib.request.urlopen(
        f"{url}/api/2.0/mlflow/registered-models/get?name=classification-vgg16-transfer").read())
    assert {"alias": "champion", "version": "1"} in answer["registered_model"]["aliases"]
    assert not (lenient_project / "mlflow" / "mlflow.db").exists()  # nothing went to the embedded store
    assert list((folder / "team-artifacts").rglob("model_card.md"))  # artifacts went to the server's storage
