"""Team mode: MLFLOW_TRACKING_URI points at an MLflow server (here one started on 127.0.0.1),
and the same pipeline registers, promotes and documents through it - no code changes."""

import json
import sys
import urllib.request

import pytest

from flows.pipeline import train_task
from tests import servers
from tests.servers import free_port


@pytest.fixture
def mlflow_server(tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = servers.start([sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
                            "--workers", "1", "--backend-store-uri", f"sqlite:///{tmp_path / 'team.db'}",
                            "--artifacts-destination", str(tmp_path / "team-artifacts")], f"{url}/health")
    yield url, tmp_path
    servers.stop(server)


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
