"""Chapters 7-8 through the same Prefect flow: English (tweets) and Japanese (the project's
reviews), Transformer and BERT, smoke profiles; validation stops bad text files by name."""

import shutil

import mlflow
import pandas as pd
import pytest
from typer.testing import CliRunner

from flows.pipeline import train_task
from tests.conftest import make_project, using_project
from zooflow import settings
from zooflow.data import store
from zooflow.registry import versions
from zooflow.validation.runner import ValidationFailed


@pytest.fixture(scope="module")
def text_project(tmp_path_factory, prefect_server):
    root = make_project(tmp_path_factory.mktemp("text") / "project", policy={"threshold": 0.0},
                       datasets=("sentiment-en", "sentiment-ja"))
    with using_project(root):
        yield root, {(task, model): train_task(task, model, "smoke")
                     for task, model in (("sentiment", "transformer"), ("sentiment", "bert"),
                                         ("sentiment-ja", "transformer"), ("sentiment-ja", "bert"))}


@pytest.mark.parametrize("task,model", [("sentiment", "transformer"), ("sentiment", "bert"),
                                        ("sentiment-ja", "transformer"), ("sentiment-ja", "bert")])
def test_text_models_run_the_whole_chain(text_project, task, model):
    _, results = text_project
    result = results[(task, model)]
    assert result["model"] == f"{task}-{model}" and result["alias"] == "champion"
    mlflow.set_tracking_uri(settings.tracking_uri())
    run = mlflow.get_run(result["run_id"])
    assert {"val.accuracy", "val.balanced_accuracy", "val.roc_auc", "baseline.accuracy"} <= set(run.data.metrics)
    card = mlflow.artifacts.load_text(f"runs:/{result['run_id']}/card/model_card.md")
    assert "TF-IDF" in card and "attention (HTML)" in card
    attention = mlflow.artifacts.load_text(f"runs:/{result['run_id']}/card/attention.html")
    assert "layer 1 head 1" in attention


def test_text_pyfunc_takes_raw_strings(text_project):
    mlflow.set_tracking_uri(settings.tracking_uri())
    for name, texts in (("sentiment-bert", ["What a lovely day, I love it!", "Worst service ever."]),
                        ("sentiment-ja-transformer", ["とても良い映画でした。", "最悪の店でした。"])):
        answer = mlflow.pyfunc.load_model(f"models:/{name}@champion").predict(pd.DataFrame({"text": texts}))
        assert list(answer.columns[:2]) == ["label", "probability"] and len(answer) == 2
        assert set(answer["label"]) <= {"neg", "pos"}
        assert (answer[["p_neg", "p_pos"]].sum(axis=1) - 1).abs().max() < 1e-5


def test_explain_prints_attention(text_project):
    from zooflow.cli import app

    result = CliRunner().invoke(app, ["explain", "sentiment-transformer@champion", "I really loved this phone"])
    assert result.exit_code == 0, result.output
    assert "loved" in result.output and "layer 2 head 1" in result.output


def _break(root, how):
    folder = root / "data" / "sentiment-ja" / "train" / "pos"
    if how == "not_utf8":
        (folder / "sjis.txt").write_bytes("とても良い商品でした。".encode("shift_jis"))
        return "sentiment-ja/train/pos/sjis.txt"
    if how == "empty":
        (folder / "empty.txt").write_text("  \n")
        return "sentiment-ja/train/pos/empty.txt"
    (folder / "english.txt").write_text("This review is in English, not Japanese.")
    return "sentiment-ja/train/pos/english.txt"


@pytest.mark.parametrize("how", ["not_utf8", "empty", "not_japanese"])
def test_bad_text_files_are_stopped_by_name(text_project, how):
    root, _ = text_project
    backup = root.parent / "ja-backup"
    shutil.copytree(root / "data" / "sentiment-ja", backup, dirs_exist_ok=True)
    try:
        named = _break(root, how)
        store.commit(root)
        before = len(versions.list_models())
        with pytest.raises(ValidationFailed) as error:
            train_task("sentiment-ja", "transformer", "smoke")
        assert named in str(error.value)
        assert len(versions.list_models()) == before  # nothing registered
    finally:
        shutil.rmtree(root / "data" / "sentiment-ja")
        shutil.copytree(backup, root / "data" / "sentiment-ja")
        store.commit(root)
