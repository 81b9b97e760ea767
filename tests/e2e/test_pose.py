"""Chapter 4 through the same Prefect flow as every task: the book's OpenPose and the MobileNetV2
OpenPose (smoke profiles) on the demo COCO keypoints folder - validated, trained, scored with
COCO's OKS AP against the mean-pose baseline, registered, promoted and carded; the champion
answers a real photograph of a person with one row per person found; and bad keypoint
annotations stop the flow at validation with the rows named."""

from __future__ import annotations

import io
import json
import shutil

import mlflow
import pandas as pd
import pytest
from PIL import Image

from flows.pipeline import train_task
from tests.conftest import make_project, mlflow_client as client, using_project
from zooflow.data import store
from zooflow.tasks.pose.skeleton import COCO_KEYPOINTS
from zooflow.validation.runner import ValidationFailed

MODELS = ["openpose", "mobilenet-openpose"]
VAL_JSON = "data/pose/annotations/person_keypoints_val.json"


@pytest.fixture(scope="module")
def pose_project(tmp_path_factory, prefect_server):
    # smoke networks are barely trained: any OKS AP passes
    root = make_project(tmp_path_factory.mktemp("pose") / "project", policy={"threshold": 0.0},
                        datasets=("pose",))
    with using_project(root):
        yield root, {model: train_task("pose", model, "smoke") for model in MODELS}


@pytest.mark.parametrize("model", MODELS)
def test_pose_models_run_the_whole_chain(pose_project, model):
    _, results = pose_project
    result = results[model]
    assert result["model"] == f"pose-{model}" and result["alias"] == "champion"
    run = client().get_run(result["run_id"])
    metrics = run.data.metrics
    assert {"train_loss", "train_paf_loss", "train_heatmap_loss", "val_loss", "val.oks_ap", "val.oks_ap50",
            "val.oks_ar", "baseline.oks_ap", "baseline.oks_ap50"} <= set(metrics)
    assert -1.0 <= metrics["val.oks_ap"] <= 1.0  # COCOeval's -1: nothing to score
    # the mean pose in every true box finds people (AP50 well above 0) but not their joints
    assert 0.0 < metrics["baseline.oks_ap50"] < 1.0 and metrics["baseline.oks_ap"] < 0.5
    assert run.data.tags["validation"] == "passed"
    card = mlflow.artifacts.load_text(f"runs:/{result['run_id']}/card/model_card.md")
    assert "mean pose" in card and "oks_ap" in card
    artifacts = {f.path.split("/")[-1] for f in client().list_artifacts(result["run_id"], "card")}
    assert {"validation_skeletons.png", "validation_maps.png", "oks_ap.html"} <= artifacts


def test_the_champion_answers_a_real_photograph_with_a_row_per_person(pose_project):
    """The registered pyfunc, loaded from the registry as a server would, takes JPEG bytes of a
    real photograph of a person (scikit-image's astronaut) and answers typed rows: the image's
    position, a person score and (x, y, score) for each of COCO's 17 keypoints, (0, 0, 0) where
    not found. A smoke network may find nobody: the frame is then empty but typed."""
    from skimage.data import astronaut

    root, _ = pose_project
    photo = io.BytesIO()
    Image.fromarray(astronaut()).resize((240, 200)).save(photo, format="JPEG")
    with using_project(root):
        served = mlflow.pyfunc.load_model("models:/pose-mobilenet-openpose@champion")
        answer = served.predict(pd.DataFrame({"image": [photo.getvalue()]}))
    columns = ["image", "score", *(f"{name}_{what}" for name in COCO_KEYPOINTS for what in ("x", "y", "score"))]
    assert list(answer.columns) == columns
    assert str(answer["image"].dtype) == "int64" and str(answer["nose_x"].dtype) == "float64"
    assert set(answer["image"]) <= {0}
    assert not answer.isna().any().any()
    for name in COCO_KEYPOINTS:
        missing = answer[f"{name}_score"] == 0
        assert (answer.loc[missing, [f"{name}_x", f"{name}_y"]] == 0).all().all()


def test_bad_keypoint_annotations_stop_at_validation_naming_the_rows(tmp_path, prefect_server, monkeypatch):
    """Three kinds of bad annotation in the validation JSON, committed as a data version: a
    visibility of 3, a keypoint outside its image, and two annotations sharing an id (which
    pycocotools would silently merge). Validation names each row; the flow stops before
    training and nothing is registered."""
    root = make_project(tmp_path / "project", datasets=("pose",))
    monkeypatch.setenv("ZOOFLOW_HOME", str(root))
    monkeypatch.setenv("ZOOFLOW_CONFIG_DIR", str(root / "configs"))
    file = root / VAL_JSON
    dataset = json.loads(file.read_text())
    first, second, third = dataset["annotations"][:3]
    labelled = [k for k in range(17) if first["keypoints"][3 * k + 2] > 0][0]
    first["keypoints"][3 * labelled + 2] = 3
    image = next(entry for entry in dataset["images"] if entry["id"] == second["image_id"])
    labelled = [k for k in range(17) if second["keypoints"][3 * k + 2] > 0][0]
    second["keypoints"][3 * labelled] = image["width"] + 40
    duplicate = dict(third)
    dataset["annotations"].append(duplicate)
    file.write_text(json.dumps(dataset))
    store.commit(root)
    with pytest.raises(ValidationFailed) as failed:
        train_task("pose", "mobilenet-openpose", "smoke")
    message = str(failed.value)
    assert f"annotation {first['id']}:" in message and "is not 0 (not labelled), 1 (hidden) or 2" in message
    assert f"annotation {second['id']}:" in message and "outside" in message
    assert f"the annotation id {third['id']} is used by 2 annotations" in message
    assert not client().search_registered_models()
    shutil.rmtree(root / ".zooflow", ignore_errors=True)
