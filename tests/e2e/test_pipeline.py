"""The smoke profile through the real Prefect flow, twice, against a real MLflow store; then
the registered champion is loaded and served from the registry and answers a real JPEG."""

import base64
import json
import os
import subprocess
import sys
import urllib.request

import mlflow
import numpy as np
import pytest
from mlflow.tracking import MlflowClient
from PIL import Image

from flows.pipeline import train_task
from tests import servers, step_values
from tests.conftest import make_project, using_project
from tests.servers import free_port
from zooflow import settings, steps
from zooflow.config import resolve
from zooflow.registry import versions

NAME = "classification-vgg16-transfer"


@pytest.fixture(scope="module")
def trained(tmp_path_factory, prefect_server):
    """A lenient-policy project where the smoke pipeline ran twice (the second time with an
    override that changes nothing it trains: ``--set num_workers=0``)."""
    root = make_project(tmp_path_factory.mktemp("e2e") / "project", policy={"threshold": 0.0, "margin": 0.01})
    with using_project(root):
        first = train_task("classification", "vgg16-transfer", "smoke")
        second = train_task("classification", "vgg16-transfer", "smoke", overrides={"num_workers": 0})
        yield root, first, second


def client() -> MlflowClient:
    mlflow.set_tracking_uri(settings.tracking_uri())
    return MlflowClient()


def test_first_version_becomes_champion_with_full_lineage(trained):
    root, first, _ = trained
    assert (first["model"], first["version"], first["alias"]) == (NAME, "1", "champion")
    version = client().get_model_version_by_alias(NAME, "champion")
    tags = version.tags
    assert str(version.version) == "1"
    assert tags["validation"] == "passed" and tags["device"] == "cpu" and tags["profile"] == "smoke"
    assert len(tags["git_commit"]) == 40 and tags["config_hash"] and tags["run_id"] == first["run_id"]
    assert tags["data_version"].count(":") == 1 and tags["data_md5"].endswith(".dir")
    assert float(tags["primary_metric_value"]) == pytest.approx(first["value"], abs=1e-4)
    assert tags["promotion.decision"] == "champion"
    run = client().get_run(first["run_id"])
    assert run.info.status == "FINISHED"
    assert {"train_loss", "val_accuracy", "val.accuracy", "baseline.accuracy"} <= set(run.data.metrics)
    assert not list((root / ".zooflow" / "checkpoints").glob("*"))  # finished: nothing left to resume


def test_second_run_that_does_not_beat_the_champion_stays_challenger(trained):
    _, first, second = trained
    assert (second["version"], second["alias"]) == ("2", "challenger")
    challenger = client().get_model_version(NAME, "2")
    assert "FAIL: does not beat champion v1" in challenger.tags["promotion.reasons"]
    assert str(client().get_model_version_by_alias(NAME, "champion").version) == "1"
    run = client().get_run(second["run_id"])
    assert run.data.metrics["champion.accuracy"] == pytest.approx(first["value"], abs=1e-4)  # re-scored


def test_promotion_log_keeps_every_decision(trained):
    log = versions.promotion_log(NAME)
    assert [(row["version"], row["alias"], row["kind"]) for row in log] == [("2", "challenger", "policy"),
                                                                            ("1", "champion", "policy")]
    assert all(row["who"] and row["reason"] for row in log)


def test_model_card_is_logged_with_decision_and_baseline(trained):
    _, first, second = trained
    card = mlflow.artifacts.load_text(f"runs:/{second['run_id']}/card/model_card.md")
    assert "# Model card: classification-vgg16-transfer v2" in card
    assert "does not beat champion v1" in card and "majority class" in card
    assert "Trained from random initialisation" in card
    assert "- Overrides of the task file: `num_workers=0`" in card
    first_card = mlflow.artifacts.load_text(f"runs:/{first['run_id']}/card/model_card.md")
    assert "- Overrides of the task file: none" in first_card
    assert client().get_run(second["run_id"]).data.tags["override.num_workers"] == "0"
    files = {a.path for a in client().list_artifacts(second["run_id"], "card")}
    assert {"card/model_card.html", "card/confusion_matrix.png", "card/validation_predictions.png"} <= files


def test_a_win_moves_the_champion_and_keeps_the_old_one_findable(trained):
    _, first, second = trained
    better = step_values.evaluation({"accuracy": first["value"] + 0.2}, champion_version="1",
                                    champion_metrics={"accuracy": first["value"]})
    run = step_values.run_of(resolve("classification", "vgg16-transfer", "smoke"), run_id=second["run_id"])
    decision = steps.promote(run, step_values.registered(NAME, "2"), better)
    assert decision.alias == "champion" and decision.previous_version == "1"
    assert str(client().get_model_version_by_alias(NAME, "champion").version) == "2"
    assert str(client().get_model_version_by_alias(NAME, "previous-champion").version) == "1"
    # and back by hand, logged with the reason
    subprocess.run([sys.executable, "-m", "zooflow", "promote", NAME, "1", "--reason", "rollback drill"], check=True,
                   env={**os.environ}, capture_output=True)
    assert str(client().get_model_version_by_alias(NAME, "champion").version) == "1"
    assert versions.promotion_log(NAME)[0]["reason"] == "manual: rollback drill"


def test_card_is_a_prefect_artifact_too(trained):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as prefect:
        found = prefect.read_artifacts(artifact_filter=ArtifactFilter(
            key=ArtifactFilterKey(any_=["card-classification-vgg16-transfer-v1"])))
    assert found and "# Model card: classification-vgg16-transfer v1" in found[0].data


def test_cli_lists_models_and_prints_cards(trained, monkeypatch):
    from rich.console import Console
    from typer.testing import CliRunner

    from zooflow import cli

    monkeypatch.setattr(cli, "console", Console(width=200))
    app = cli.app
    listing = CliRunner().invoke(app, ["models"])
    assert listing.exit_code == 0, listing.output
    assert NAME in listing.output and "previous-champion" in listing.output
    card = CliRunner().invoke(app, ["card", f"{NAME}/2"])
    assert card.exit_code == 0 and "# Model card: classification-vgg16-transfer v2" in card.output
    missing = CliRunner().invoke(app, ["card", f"{NAME}@nope"])
    assert missing.exit_code != 0 and "no version with alias 'nope'" in str(missing.exception)


def real_jpeg(root) -> bytes:
    return sorted((root / "data" / "classification" / "val" / "face").glob("*.jpg"))[0].read_bytes()


def test_champion_pyfunc_predicts_on_a_real_jpeg_and_an_array(trained):
    root, *_ = trained
    client()
    model = mlflow.pyfunc.load_model(f"models:/{NAME}@champion")
    import pandas as pd

    answer = model.predict(pd.DataFrame({"image": [real_jpeg(root)]}))
    assert answer["label"].iloc[0] in {"face", "nonface"}
    assert answer[["p_face", "p_nonface"]].sum(axis=1).iloc[0] == pytest.approx(1.0, abs=1e-5)
    array = np.asarray(Image.open(sorted((root / "data" / "classification" / "val" / "nonface").glob("*.jpg"))[0]))
    from_array = model.unwrap_python_model().predict(None, [array])  # raw arrays, in process
    assert from_array["label"].iloc[0] in {"face", "nonface"}


def test_mlflow_models_serve_answers_a_real_jpeg(trained):
    root, *_ = trained
    port = free_port()
    server = servers.start([sys.executable, "-m", "mlflow", "models", "serve", "-m", f"models:/{NAME}@champion",
                            "--env-manager", "local", "--host", "127.0.0.1", "--port", str(port)],
                           f"http://127.0.0.1:{port}/ping", env={"MLFLOW_TRACKING_URI": settings.tracking_uri()})
    try:
        body = json.dumps({"dataframe_split": {"columns": ["image"],
                                               "data": [[base64.b64encode(real_jpeg(root)).decode()]]}}).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=body,
                                         headers={"Content-Type": "application/json"})
        answer = json.loads(urllib.request.urlopen(request, timeout=60).read())
        [row] = answer["predictions"]
        assert row["label"] in {"face", "nonface"}
        assert row["p_face"] + row["p_nonface"] == pytest.approx(1.0, abs=1e-5)
    finally:
        servers.stop(server)


def test_epochs_zero_evaluates_and_registers_the_pretrained_model_as_it_is(trained):
    """``epochs: 0`` (the book's ECO chapter only runs inference): every step runs but training;
    the version says it was not trained, so the book profile's GPU rule does not apply to it."""
    from zooflow.registry.policy import NOT_TRAINED

    root, _, _ = trained
    with using_project(root):
        result = train_task("classification", "mobilenetv2-transfer", "smoke", overrides={"epochs": 0})
    version = client().get_model_version("classification-mobilenetv2-transfer", result["version"])
    assert version.tags["device"] == NOT_TRAINED and version.tags["pretrained"] == "imagenet"
    run = client().get_run(result["run_id"])
    assert run.info.status == "FINISHED" and "val.accuracy" in run.data.metrics
    assert not any(key.startswith("train_loss") for key in run.data.metrics)   # no epoch was trained
    card = client().download_artifacts(result["run_id"], "card/model_card.md")
    assert NOT_TRAINED in open(card, encoding="utf-8").read()
