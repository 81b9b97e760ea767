"""Metric keys built from user labels are valid MLflow keys, readable, and distinct."""

import numpy as np
import pytest
import torch
from mlflow.utils.validation import _validate_metric_name

from zooflow.evaluation import anomaly, classification
from zooflow.evaluation.keys import metric_key, metric_key_map

NASTY = ["a<b", "x`y", "spaces ok", "ポジティブ", "a/b", "a_b", "a:b", "<script>alert(1)</script>", "..", ".",
         "../etc", "a//b", "", "tab\there", "new\nline", "e\u0301", "\u00e9", "x" * 400, "x" * 401, "100%", "dog.jpg"]


@pytest.mark.parametrize("label", NASTY)
def test_every_key_is_valid_alone_and_after_a_prefix(label):
    key = metric_key(label)
    _validate_metric_name(key)
    _validate_metric_name(f"precision_{key}")
    assert len(f"precision_{key}") <= 250


def test_readable_labels_keep_their_text():
    assert [metric_key(label) for label in ["spaces ok", "ポジティブ", "dog.jpg", "cat-1", "a_b"]] == \
        ["spaces ok", "ポジティブ", "dog.jpg", "cat-1", "a_b"]
    assert metric_key("a<b") == "a_b" and metric_key("x`y") == "x_y" and metric_key(7) == "7"


def test_the_map_is_injective_and_valid_labels_keep_their_key():
    keys = metric_key_map(NASTY)
    assert list(keys) == list(dict.fromkeys(NASTY))
    assert len(set(keys.values())) == len(keys)
    assert keys["a_b"] == "a_b"  # never renamed because "a<b" sanitises onto it
    for key in keys.values():
        _validate_metric_name(key)


def test_the_map_does_not_depend_on_label_order():
    assert metric_key_map(NASTY) == metric_key_map(list(reversed(NASTY)))
    assert metric_key_map([1, "1"]) == {1: "1", "1": "1_2"}


def test_a_suffix_never_lands_on_another_label():
    keys = metric_key_map(["a<b", "a>b", "a_b_2"])
    assert keys["a_b_2"] == "a_b_2" and len(set(keys.values())) == 3


def test_keys_log_to_a_real_tracking_store(tmp_path):
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    try:
        with mlflow.start_run() as run:
            mlflow.log_metrics({f"f1_{key}": 0.5 for key in metric_key_map(NASTY).values()})
        logged = mlflow.get_run(run.info.run_id).data.metrics
    finally:
        mlflow.set_tracking_uri(None)
    assert len(logged) == len(dict.fromkeys(NASTY))


def test_classification_scores_use_sanitised_distinct_keys():
    classes = ["a<b", "a>b", "ポジティブ"]
    metrics = classification.scores(torch.tensor([0, 1, 2, 2]), torch.tensor([0, 1, 2, 1]), classes)
    for key in metrics:
        _validate_metric_name(key)
    assert {"precision_a_b", "precision_a_b_2", "recall_ポジティブ", "f1_a_b_2"} <= set(metrics)
    assert len(metrics) == 2 + 3 * len(classes)


def test_anomaly_per_label_metrics_use_sanitised_keys():
    digits = np.array(["0", "0", "0", "x/y", "x/y", "7", "7"])
    scores = torch.tensor([0.1, 0.2, 0.15, 0.9, 0.8, 0.7, 0.05])
    found = anomaly.metrics(scores, digits, ["0"], threshold=0.5)
    assert {"auroc_class_x_y", "detected_class_x_y", "auroc_class_7"} <= set(found)
    for key in found:
        _validate_metric_name(key)
