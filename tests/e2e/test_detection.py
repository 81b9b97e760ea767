"""Chapter 2 through the same Prefect flow as every task: SSD300 and the MobileNetV2 SSDLite
(smoke profiles) on the demo Pascal VOC folder - validated, trained, scored with VOC and COCO
mAP against the mean-box baseline, registered, promoted and carded; the champion answers a real
photograph with boxes; and a broken VOC folder stops at validation with the file named."""

from __future__ import annotations

import io
import shutil

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from flows.pipeline import train_task
from tests.conftest import make_project, mlflow_client as client, using_project
from zooflow.data import store
from zooflow.validation.runner import ValidationFailed

MODELS = ["ssd300", "ssdlite-mobilenetv2"]
VOC = "data/detection/VOCdevkit/VOC2012"


def set_threshold(root, value):
    file = root / "configs" / "detection.yaml"
    raw = yaml.safe_load(file.read_text())
    raw["policy"]["threshold"] = value
    file.write_text(yaml.safe_dump(raw, sort_keys=False))


@pytest.fixture(scope="module")
def detection_project(tmp_path_factory, prefect_server):
    root = make_project(tmp_path_factory.mktemp("detection") / "project", datasets=("detection",))
    set_threshold(root, 0.0)  # smoke detectors are barely trained: any mAP passes
    with using_project(root):
        yield root, {model: train_task("detection", model, "smoke") for model in MODELS}


@pytest.mark.parametrize("model", MODELS)
def test_detectors_run_the_whole_chain(detection_project, model):
    _, results = detection_project
    result = results[model]
    assert result["model"] == f"detection-{model}" and result["alias"] == "champion"
    run = client().get_run(result["run_id"])
    metrics = run.data.metrics
    assert {"train_loss", "train_loc_loss", "train_conf_loss", "val_loss", "val.map_50", "val.map_50_95",
            "baseline.map_50"} <= set(metrics)
    assert 0.0 <= metrics["val.map_50"] <= 1.0 and 0.0 <= metrics["baseline.map_50"] <= 1.0
    assert any(key.startswith("val.ap50_") for key in metrics)
    assert run.data.tags["validation"] == "passed"
    card = mlflow.artifacts.load_text(f"runs:/{result['run_id']}/card/model_card.md")
    assert "mean box" in card and "map_50" in card
    artifacts = {f.path.split("/")[-1] for f in client().list_artifacts(result["run_id"], "card")}
    assert {"validation_detections.png", "precision_recall.png", "ap_per_class.png",
            "ap_per_class.html"} <= artifacts


def test_the_champion_answers_a_real_photograph_with_boxes(detection_project):
    """The registered pyfunc, loaded from the registry as a server would, takes JPEG bytes of a
    real photograph (scikit-image's astronaut) and answers one row per box in its pixels."""
    from skimage.data import astronaut

    root, _ = detection_project
    photo = io.BytesIO()
    Image.fromarray(astronaut()).resize((400, 300)).save(photo, format="JPEG")
    with using_project(root):
        served = mlflow.pyfunc.load_model("models:/detection-ssdlite-mobilenetv2@champion")
        answer = served.predict(pd.DataFrame({"image": [photo.getvalue()]}))
    assert list(answer.columns) == ["image", "label", "score", "xmin", "ymin", "xmax", "ymax"]
    assert len(answer) >= 1 and set(answer["image"]) == {0}
    classes = (root / VOC / "classes.txt").read_text().split()
    assert set(answer["label"]) <= set(classes)
    boxes = answer[["xmin", "ymin", "xmax", "ymax"]].to_numpy()
    assert (boxes[:, 0] < boxes[:, 2]).all() and (boxes[:, 1] < boxes[:, 3]).all()
    assert boxes.min() >= 0 and boxes[:, [0, 2]].max() <= 400 and boxes[:, [1, 3]].max() <= 300
    assert np.all(np.diff(answer["score"].to_numpy()) <= 0), "the most confident detection comes first"


def test_a_broken_voc_folder_stops_at_validation_naming_the_file(tmp_path, prefect_server, monkeypatch):
    """A box outside its image, committed as a data version: validation names the XML and the
    object, the flow stops before training, and nothing is registered."""
    root = make_project(tmp_path / "project", datasets=("detection",))
    monkeypatch.setenv("ZOOFLOW_HOME", str(root))
    monkeypatch.setenv("ZOOFLOW_CONFIG_DIR", str(root / "configs"))
    annotation = sorted((root / VOC / "Annotations").glob("*.xml"))[0]
    text = annotation.read_text()
    start = text.index("<xmax>") + len("<xmax>")
    annotation.write_text(text[:start] + "99999" + text[text.index("</xmax>"):])
    store.commit(root)
    with pytest.raises(ValidationFailed) as failed:
        train_task("detection", "ssdlite-mobilenetv2", "smoke")
    assert f"{annotation.name}#object1" in str(failed.value)
    assert not client().search_registered_models()
    shutil.rmtree(root / ".zooflow", ignore_errors=True)


def test_batch_prediction_maps_each_box_back_to_its_image(detection_project, tmp_path, monkeypatch):
    """A detector answers several rows per image: each parquet row names the image file its box
    is in, not a position in a batch (a smoke detector may find nothing: the table is then empty
    but has its columns)."""
    from tests.cli import run_cli

    root, _ = detection_project
    monkeypatch.setenv("ZOOFLOW_HOME", str(root))
    monkeypatch.setenv("ZOOFLOW_CONFIG_DIR", str(root / "configs"))
    images = sorted((root / "data" / "detection" / "VOCdevkit" / "VOC2012" / "JPEGImages").glob("*.jpg"))[:5]
    folder = tmp_path / "photos"
    folder.mkdir()
    for image in images:
        shutil.copy(image, folder / image.name)
    code, output = run_cli("predict", "detection-ssdlite-mobilenetv2@champion", "--input", folder, "--output",
                           tmp_path / "boxes.parquet", "--batch-size", "2")
    assert code == 0, output
    table = pd.read_parquet(tmp_path / "boxes.parquet")
    assert "image" not in table and set(table["source"]) <= {str(folder / image.name) for image in images}
    assert {"label", "score", "xmin", "ymin", "xmax", "ymax", "model", "version"} <= set(table.columns)
