"""Chapter 3 through the same Prefect flow as every task: the book's PSPNet and the MobileNetV2
pyramid-pooling model (smoke profiles) on the demo Pascal VOC segmentation folder - validated,
trained, scored with mIoU against the most-frequent-class baseline, registered, promoted and
carded; the champion answers a real photograph with a mask; and a bad mask stops the flow at
validation with the file named."""

from __future__ import annotations

import io
import shutil

import mlflow
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from flows.pipeline import train_task
from tests.conftest import make_project, mlflow_client as client, using_project
from zooflow.data import store
from zooflow.tasks.segmentation.voc import mask_image
from zooflow.validation.runner import ValidationFailed

MODELS = ["pspnet", "mobilenetv2-psp"]
VOC = "data/segmentation/VOCdevkit/VOC2012"


@pytest.fixture(scope="module")
def segmentation_project(tmp_path_factory, prefect_server):
    # smoke segmenters are barely trained: any mIoU passes
    root = make_project(tmp_path_factory.mktemp("segmentation") / "project", policy={"threshold": 0.0},
                        datasets=("segmentation",))
    with using_project(root):
        yield root, {model: train_task("segmentation", model, "smoke") for model in MODELS}


@pytest.mark.parametrize("model", MODELS)
def test_segmenters_run_the_whole_chain(segmentation_project, model):
    _, results = segmentation_project
    result = results[model]
    assert result["model"] == f"segmentation-{model}" and result["alias"] == "champion"
    run = client().get_run(result["run_id"])
    metrics = run.data.metrics
    assert {"train_loss", "train_main_loss", "val_loss", "val.miou", "val.pixel_accuracy",
            "baseline.miou", "baseline.pixel_accuracy"} <= set(metrics)
    assert ("train_aux_loss" in metrics) == (model == "pspnet"), "only PSPNet has the auxiliary head"
    assert 0.0 <= metrics["val.miou"] <= 1.0
    # the baseline answers "background" everywhere: its IoU is background's alone, the rest 0
    assert metrics["baseline.iou_face"] == 0.0 and metrics["baseline.iou_background"] > 0.8
    assert run.data.tags["validation"] == "passed"
    card = mlflow.artifacts.load_text(f"runs:/{result['run_id']}/card/model_card.md")
    assert "most frequent class" in card and "miou" in card
    artifacts = {f.path.split("/")[-1] for f in client().list_artifacts(result["run_id"], "card")}
    assert {"validation_masks.png", "iou_per_class.png", "iou_per_class.html"} <= artifacts


def test_the_champion_answers_a_real_photograph_with_a_mask(segmentation_project):
    """The registered pyfunc, loaded from the registry as a server would, takes JPEG bytes of a
    real photograph (scikit-image's astronaut) and answers a palette PNG of its size whose pixel
    values are class ids, and the shares of each class that add up to 1."""
    from skimage.data import astronaut

    root, _ = segmentation_project
    photo = io.BytesIO()
    Image.fromarray(astronaut()).resize((200, 150)).save(photo, format="JPEG")
    with using_project(root):
        served = mlflow.pyfunc.load_model("models:/segmentation-mobilenetv2-psp@champion")
        answer = served.predict(pd.DataFrame({"image": [photo.getvalue()]}))
    classes = (root / VOC / "classes.txt").read_text().split()
    assert list(answer.columns) == ["image", "mask", *(f"share.{name}" for name in classes)]
    assert len(answer) == 1 and answer["image"].tolist() == [0]
    mask = Image.open(io.BytesIO(answer["mask"][0]))
    assert mask.format == "PNG" and mask.mode == "P" and mask.size == (200, 150)
    values = np.array(mask)
    assert values.max() < len(classes)
    shares = answer[[f"share.{name}" for name in classes]].to_numpy()[0]
    assert shares.sum() == pytest.approx(1.0)
    assert shares == pytest.approx(np.bincount(values.ravel(), minlength=len(classes)) / values.size)


def test_a_bad_mask_stops_at_validation_naming_the_file(tmp_path, prefect_server, monkeypatch):
    """A mask with a value that is no class id (and not 255), committed as a data version:
    validation names the PNG, the flow stops before training, and nothing is registered."""
    root = make_project(tmp_path / "project", datasets=("segmentation",))
    monkeypatch.setenv("ZOOFLOW_HOME", str(root))
    monkeypatch.setenv("ZOOFLOW_CONFIG_DIR", str(root / "configs"))
    mask_file = sorted((root / VOC / "SegmentationClass").glob("*.png"))[3]
    values = np.array(Image.open(mask_file))
    values[:4, :4] = 17  # six classes: 17 is neither an id nor 255
    mask_image(values).save(mask_file)
    store.commit(root)
    with pytest.raises(ValidationFailed) as failed:
        train_task("segmentation", "mobilenetv2-psp", "smoke")
    assert f"SegmentationClass/{mask_file.name}" in str(failed.value)
    assert "17" in str(failed.value)
    assert not client().search_registered_models()
    shutil.rmtree(root / ".zooflow", ignore_errors=True)
