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


def test_the_registry_mutex_serialises_clients_that_share_no_machine(mlflow_server, tmp_path, monkeypatch):
    """Two clients of one tracking server with different project folders (so no file lock is
    shared, as on two machines) take a model's registry lock: their critical sections never
    overlap, because the mutex lives in the server's database. A mutex left by a dead holder
    is broken once stale; the lock models never show as models."""
    import threading
    import time

    from zooflow.registry import versions

    url, _ = mlflow_server
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
    events, start = [], threading.Barrier(2)

    def client(home):
        start.wait()
        for _ in range(3):
            with versions.server_mutex("classification-x", poll=0.05):
                events.append(("enter", home))
                time.sleep(0.2)
                events.append(("exit", home))

    threads = [threading.Thread(target=client, args=(f"machine-{i}",)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert len(events) == 12
    for index in range(0, 12, 2):  # enter/exit pairs of the same holder, one after another
        assert events[index][0] == "enter" and events[index + 1] == ("exit", events[index][1])

    from zooflow.registry import tracking

    tracking.connect().create_registered_model(f"{versions.LOCK_PREFIX}classification-y")  # a dead holder's
    began = time.monotonic()
    with versions.server_mutex("classification-y", stale=1.0, poll=0.1):
        assert time.monotonic() - began < 30
    assert not [row for row in versions.list_models() if row["name"].startswith(versions.LOCK_PREFIX)]
    with pytest.raises(TimeoutError, match="stayed held"):
        with versions.server_mutex("classification-z"):
            with versions.server_mutex("classification-z", wait=0.5):
                pass
