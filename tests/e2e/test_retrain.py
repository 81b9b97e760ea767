"""Retraining on new data, through the real flows and CLI: a model with no champion is trained;
with its champion trained on the current data, nothing runs; after ``zooflow data import
--retrain`` brings a new data version, the model is retrained, the run says why (its
``trigger`` tag), the champion is re-scored on the new data, and the policy decides."""

from __future__ import annotations

import shutil

import pytest
import yaml

from flows.retrain import retrain_on_new_data
from tests.cli import run_cli
from tests.conftest import make_project, mlflow_client as client, using_project

MODEL = "vgg16-transfer"
NAME = f"classification-{MODEL}"


@pytest.fixture(scope="module")
def project(tmp_path_factory, prefect_server):
    root = make_project(tmp_path_factory.mktemp("retrain") / "project", policy={"threshold": 0.0})
    task_file = root / "configs" / "classification.yaml"
    raw = yaml.safe_load(task_file.read_text())
    raw["models"] = {MODEL: raw["models"][MODEL]}  # one model keeps the test short
    task_file.write_text(yaml.safe_dump(raw, sort_keys=False))
    with using_project(root):
        yield root


def test_a_model_without_a_champion_is_trained_then_nothing_runs(project):
    with using_project(project):
        first = retrain_on_new_data("smoke", ["classification"])
        assert [(row["model"], row["alias"]) for row in first] == [(NAME, "champion")]
        assert first[0]["trigger"] == f"{NAME} has no champion yet"
        assert client().get_run(first[0]["run_id"]).data.tags["trigger"] == first[0]["trigger"]
        assert retrain_on_new_data("smoke", ["classification"]) == []  # trained on the current data


def test_an_import_with_retrain_trains_on_the_new_data_and_says_why(project, tmp_path, monkeypatch):
    monkeypatch.setenv("ZOOFLOW_HOME", str(project))
    monkeypatch.setenv("ZOOFLOW_CONFIG_DIR", str(project / "configs"))
    from zooflow.registry import versions

    with using_project(project):
        if versions.by_alias(NAME, versions.CHAMPION) is None:  # this test run alone
            retrain_on_new_data("smoke", ["classification"])
        champion = versions.by_alias(NAME, versions.CHAMPION)
    source = tmp_path / "new_faces"
    shutil.copytree(project / "data" / "classification", source)
    for image in sorted((source / "train" / "face").iterdir())[:10]:  # a new data version: fewer faces
        image.unlink()
    code, output = run_cli("data", "import", "classification", source, "--retrain", "--profile", "smoke")
    assert code == 0, output
    assert NAME in output
    with using_project(project):
        versions = client().search_model_versions(f"name='{NAME}'")
        newest = max(versions, key=lambda v: int(v.version))
        assert int(newest.version) == int(champion.version) + 1
        run = client().get_run(newest.run_id)
    trigger = run.data.tags["trigger"]
    assert trigger.startswith(f"data/classification changed: champion v{champion.version} was trained on "
                              f"{champion.tags['task_data_md5'][:12]}")
    assert run.data.tags["task_data_md5"] != champion.tags["task_data_md5"]
    assert "champion.accuracy" in run.data.metrics  # the champion, re-scored on the new data
    assert newest.tags["promotion.decision"] in ("champion", "challenger")
    with using_project(project):
        assert retrain_on_new_data("smoke", ["classification"]) == []
