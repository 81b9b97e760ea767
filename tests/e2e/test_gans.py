"""Chapters 5-6 through the same Prefect flow as every task: DCGAN, SAGAN, AnoGAN and
EfficientGAN (smoke profiles) on the demo MNIST idx files - validated, trained, scored against
their baselines, registered, promoted and carded; then served from the registry."""

import io

import mlflow
import pandas as pd
import pytest
import yaml
from PIL import Image

from flows.pipeline import train_task
from tests.conftest import make_project, using_project
from zooflow import settings
from zooflow.data import mnist, store
from zooflow.validation.runner import ValidationFailed

MODELS = [("generation", "dcgan"), ("generation", "sagan"), ("anomaly", "anogan"), ("anomaly", "efficientgan")]


def set_threshold(root, task, value):
    file = root / "configs" / f"{task}.yaml"
    raw = yaml.safe_load(file.read_text())
    raw["policy"]["threshold"] = value
    file.write_text(yaml.safe_dump(raw, sort_keys=False))


@pytest.fixture(scope="module")
def gan_project(tmp_path_factory, prefect_server):
    root = make_project(tmp_path_factory.mktemp("gans") / "project", datasets=("generation", "anomaly"))
    set_threshold(root, "generation", 1.0e6)   # any FID passes: smoke generators are barely trained
    set_threshold(root, "anomaly", 0.0)
    with using_project(root):
        yield root, {pair: train_task(*pair, "smoke") for pair in MODELS}


@pytest.mark.parametrize("task,model", MODELS)
def test_gans_run_the_whole_chain(gan_project, task, model):
    _, results = gan_project
    result = results[(task, model)]
    assert result["model"] == f"{task}-{model}" and result["alias"] == "champion"
    mlflow.set_tracking_uri(settings.tracking_uri())
    run = mlflow.get_run(result["run_id"])
    metrics = run.data.metrics
    assert {"train_d_loss", "train_g_loss", "train_d_real", "train_d_fake", "selected_epoch"} <= set(metrics)
    card = mlflow.artifacts.load_text(f"runs:/{result['run_id']}/card/model_card.md")
    artifacts = {f.path.split("/")[-1] for f in mlflow.MlflowClient().list_artifacts(result["run_id"], "card")}
    if task == "generation":
        assert {"val_fid", "val.fid", "val.confident_share", "baseline.fid"} <= set(metrics)
        assert "untrained generator" in card and "real_vs_generated.png" in artifacts
        if model == "sagan":
            assert {"attention_generator_1.png", "attention_generator_2.png"} <= artifacts
    else:
        assert {"val_auroc", "val.auroc", "val.average_precision", "val.auroc_class_1",
                "baseline.mean_image.auroc", "baseline.pca.auroc"} <= set(metrics)
        assert "mean normal training image" in card and "PCA with 8 components" in card
        assert {"score_histogram.png", "residual_maps.png"} <= artifacts


def test_generator_served_from_the_registry_draws_pngs_for_a_seed(gan_project):
    mlflow.set_tracking_uri(settings.tracking_uri())
    served = mlflow.pyfunc.load_model("models:/generation-sagan@champion")
    first = served.predict(pd.DataFrame({"seed": [11], "count": [3]}))
    again = served.predict(pd.DataFrame({"seed": [11], "count": [3]}))
    assert len(first) == 3 and list(first["image"]) == list(again["image"])
    assert Image.open(io.BytesIO(first["image"][0])).size == (32, 32)


def test_anomaly_model_served_from_the_registry_scores_digit_images(gan_project):
    root, _ = gan_project
    mlflow.set_tracking_uri(settings.tracking_uri())
    served = mlflow.pyfunc.load_model("models:/anomaly-efficientgan@champion")
    test = mnist.load_split(root / "data" / "anomaly", "test")
    pngs = []
    for index in (0, 1):
        buffer = io.BytesIO()
        Image.fromarray(test.images[index]).save(buffer, format="PNG")
        pngs.append(buffer.getvalue())
    answer = served.predict(pd.DataFrame({"image": pngs}))
    assert list(answer.columns) == ["score", "is_anomaly", "threshold"] and len(answer) == 2
    assert answer["score"].gt(0).all() and answer["threshold"].notna().all()
    assert (answer["is_anomaly"] == (answer["score"] >= answer["threshold"])).all()


def test_bad_idx_labels_stop_the_flow_before_training(gan_project):
    root, _ = gan_project
    labels_file = root / "data" / "anomaly" / mnist.RAW / "t10k-labels-idx1-ubyte"
    original = labels_file.read_bytes()
    try:
        broken = bytearray(original)
        broken[8 + 2] = 10
        labels_file.write_bytes(bytes(broken))
        store.commit(root)  # a new data version: the flow accepts it, validation must not
        with pytest.raises(ValidationFailed, match=r"t10k-images-idx3-ubyte#2: label='10'"):
            train_task("anomaly", "efficientgan", "smoke")
        mlflow.set_tracking_uri(settings.tracking_uri())
        versions = mlflow.MlflowClient().search_model_versions("name='anomaly-efficientgan'")
        assert len(versions) == 1  # nothing new registered
    finally:
        labels_file.write_bytes(original)
        store.commit(root)
