"""Bad data stops the real Prefect flow at validation: nothing is trained or registered, the
GX result is logged to the MLflow run, and the error names the offending file."""

import shutil

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from flows.pipeline import train_task
from zooflow import settings
from zooflow.data import store
from zooflow.validation.runner import ValidationFailed


def first_image(folder):
    return sorted(p for p in folder.iterdir() if p.suffix == ".jpg")[0]


def corrupt_jpeg(data):
    victim = first_image(data / "train" / "face")
    victim.write_bytes(victim.read_bytes()[:400])
    return [f"classification/train/face/{victim.name}", "decodes=False", "cannot decode"]


def undeclared_class(data):
    target = data / "train" / "cats" / "cat_001.jpg"
    target.parent.mkdir()
    shutil.copyfile(first_image(data / "train" / "face"), target)
    # a fresh image so the leak check stays quiet: flip one byte of the payload
    payload = bytearray(target.read_bytes())
    payload[-10] ^= 0xFF
    target.write_bytes(bytes(payload))
    return ["classification/train/cats/cat_001.jpg", "label='cats'"]


def leaked_image(data):
    source = first_image(data / "train" / "nonface")
    shutil.copyfile(source, data / "val" / "nonface" / "copy_of_train.jpg")
    return ["classification/val/nonface/copy_of_train.jpg", f"classification/train/nonface/{source.name}",
            "in_other_split=True"]


def empty_class(data):
    shutil.rmtree(data / "val" / "nonface")
    (data / "val" / "nonface").mkdir()
    return ["no rows with split_label='val/nonface'"]


@pytest.mark.parametrize("break_data", [corrupt_jpeg, undeclared_class, leaked_image, empty_class],
                         ids=lambda f: f.__name__)
def test_bad_data_stops_the_flow_before_training(project, prefect_server, break_data):
    expected = break_data(project / "data" / "classification")
    store.commit(project)  # the bad data is a new, recorded data version

    with pytest.raises(ValidationFailed) as error:
        train_task("classification", "vgg16-transfer", "smoke")
    message = str(error.value)
    for fragment in expected:
        assert fragment in message, message

    mlflow.set_tracking_uri(settings.tracking_uri())
    client = MlflowClient()
    assert client.search_registered_models() == []  # nothing registered
    experiment = client.get_experiment_by_name("zooflow-classification")
    [run] = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FAILED"
    assert run.data.tags["validation"] == "failed"
    assert "train_loss" not in run.data.metrics  # nothing trained
    logged = {a.path for a in client.list_artifacts(run.info.run_id, "validation")}
    assert {"validation/gx_result.json", "validation/failures.txt", "validation/manifest.csv"} <= logged
    assert not (project / ".zooflow" / "checkpoints").exists()
