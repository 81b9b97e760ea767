"""MNIST-format data that are not digits: class names come from classes.txt (checked like every
importer's), and every metric key, figure label and data fact uses them."""

import numpy as np
import pytest
import torch
from PIL import Image

from zooflow import config
from zooflow.data import mnist
from zooflow.data.safety import ImportRejected
from zooflow.evaluation import anomaly as scoring
from zooflow.tasks import anomaly as anomaly_task
from zooflow.tasks.anomaly import TASK
from zooflow.tasks.base import RunContext

FASHION = ["T-shirt_top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


def fashion_source(folder, per_label=(30, 12), classes=FASHION, where="raw"):
    """A tiny Fashion-MNIST-like download: idx files under raw/ and a classes.txt (``where``:
    beside them, at the top, or nowhere when None)."""
    rng = np.random.default_rng(3)
    pairs = []
    for count in per_label:
        labels = np.tile(np.arange(10, dtype=np.uint8), count)
        images = (rng.random((len(labels), 28, 28)) * 60 + labels[:, None, None] * 19).astype(np.uint8)
        pairs.append((images, labels))
    for split, (images, labels) in zip(("train", "test"), pairs):
        mnist.write_idx(folder / "raw" / mnist.FILES[split][0], images)
        mnist.write_idx(folder / "raw" / mnist.FILES[split][1], labels)
    if where is not None:
        home = folder / "raw" if where == "raw" else folder
        (home / "classes.txt").write_text("".join(f"{name}\n" for name in classes))
    return folder


def context(data_root, profile="smoke"):
    cfg = config.resolve("anomaly", "efficientgan", profile)
    return RunContext(cfg=cfg, info=TASK.data_info(cfg, data_root), data_root=data_root)


@pytest.fixture
def fashion(tmp_path):
    """A data root whose anomaly folder holds the imported Fashion-like set."""
    imported = TASK.import_data(fashion_source(tmp_path / "download"), tmp_path / "data" / "anomaly")
    assert imported.classes == tuple(FASHION)
    return tmp_path / "data"


def test_class_names_come_from_classes_txt_and_are_kept(fashion):
    assert (fashion / "anomaly" / "classes.txt").read_text().splitlines() == FASHION
    ctx = context(fashion)
    assert ctx.info["classes"] == FASHION
    assert ctx.info["normal_labels"] == ["7", "8"]  # the config's label ids, unchanged


def test_without_classes_txt_the_names_are_the_label_ids(tmp_path):
    TASK.import_data(fashion_source(tmp_path / "download", where=None), tmp_path / "data" / "anomaly")
    assert not (tmp_path / "data" / "anomaly" / "classes.txt").exists()
    assert context(tmp_path / "data").info["classes"] == [str(d) for d in range(10)]


def test_classes_txt_at_the_top_of_the_source_counts_too(tmp_path):
    TASK.import_data(fashion_source(tmp_path / "download", where="top"), tmp_path / "a")
    assert mnist.class_names(tmp_path / "a") == FASHION
    both = fashion_source(tmp_path / "both")
    (both / "classes.txt").write_text("\n".join(FASHION))
    with pytest.raises(ImportRejected, match="two class lists"):
        TASK.import_data(both, tmp_path / "b")


@pytest.mark.parametrize("lines,named", [
    (FASHION[:9], "declares 9 class names"),
    (FASHION[:9] + ["../x"], "line 10: the class name '../x' is not allowed"),
    (FASHION[:8] + ["Bag", "Bag"], "the class 'Bag' is declared twice"),
])
def test_a_bad_classes_txt_is_refused_by_name(tmp_path, lines, named):
    source = fashion_source(tmp_path / "download", classes=lines)
    with pytest.raises(ImportRejected, match="classes.txt") as refused:
        TASK.import_data(source, tmp_path / "target")
    assert named in str(refused.value)
    assert not (tmp_path / "target").exists()


def test_image_folders_may_be_named_by_class_name(tmp_path):
    source = tmp_path / "pngs"
    rng = np.random.default_rng(4)
    for split in ("train", "test"):
        for label, name in enumerate(FASHION):
            folder = source / split / (name if label % 2 else str(label))  # names and ids both work
            folder.mkdir(parents=True)
            for index in range(2):
                Image.fromarray(rng.integers(0, 256, (28, 28), dtype=np.uint8)).save(folder / f"{index}.png")
    (source / "classes.txt").write_text("\n".join(FASHION) + "\n")
    assert TASK.import_data(source, tmp_path / "target").classes == tuple(FASHION)
    assert np.bincount(mnist.load_split(tmp_path / "target", "test").labels).tolist() == [2] * 10
    (source / "train" / "Trouser").rename(source / "train" / "Trousers")
    with pytest.raises(mnist.IdxFormatError, match="train/Trousers: label folders must be named 0-9 or a class name"):
        TASK.import_data(source, tmp_path / "again")


def test_metric_keys_and_figure_labels_use_the_class_names(fashion, monkeypatch):
    ctx = context(fashion)
    labels = np.array([7, 7, 8, 8, 0, 0, 9, 9])
    found = scoring.metrics(torch.tensor([1.0, 2, 1.5, 2.5, 9, 8, 7, 3]), labels, [7, 8], 5.0, ctx.info["classes"])
    assert {"auroc_class_T-shirt_top", "detected_class_T-shirt_top", "auroc_class_Ankle boot"} <= set(found)
    assert not any("digit" in key for key in found)

    shown = {}
    monkeypatch.setattr(anomaly_task.gan_figures, "score_histogram",
                        lambda groups, threshold, path, title: shown.setdefault("legend", list(groups)) and path)
    monkeypatch.setattr(anomaly_task.gan_figures, "residual_examples",
                        lambda images, reconstructions, scores, titles, path: shown.setdefault("titles", titles) and path)
    images = torch.zeros(len(labels), 1, 28, 28)
    predictions = {"images": images, "reconstructions": images, "scores": torch.arange(8.0), "digits": labels,
                   "threshold": 4.0}
    TASK.examples(None, ctx, predictions, fashion / "card")
    assert shown["legend"] == ["normal (Sneaker, Bag)", "anomalous (other classes)"]
    assert shown["titles"] == ["T-shirt_top", "Sneaker (normal)", "Bag (normal)", "Ankle boot"]


def test_baselines_score_the_very_samples_the_model_scores(fashion, monkeypatch):
    ctx = context(fashion)  # smoke: max_eval_samples 64 of the 120 test images
    assert len(TASK.digits(ctx, "test")) > ctx.cfg.max_eval_samples
    monkeypatch.setattr(type(TASK), "_scores", lambda self, model, images, ctx: (images.flatten(1).mean(1), images))
    predictions = TASK.predict_split(_Model(), ctx)
    scored = []
    real_metrics = scoring.metrics
    monkeypatch.setattr(anomaly_task.scoring, "metrics",
                        lambda scores, labels, *rest: scored.append((len(scores), labels.copy())) or real_metrics(scores, labels, *rest))
    found = TASK.baseline(ctx)
    assert set(found) == {"mean_image", "pca"}
    assert len(scored) == 2
    for count, labels in scored:
        assert count == ctx.cfg.max_eval_samples and np.array_equal(labels, predictions["digits"])


class _Model(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("threshold", torch.tensor(0.0))
