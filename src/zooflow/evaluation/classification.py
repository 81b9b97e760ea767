"""Classification metrics with torchmetrics, and the card's figures."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; there is no display on training machines
import matplotlib.pyplot as plt
import numpy as np
import torch
from torchmetrics.classification import (MulticlassAccuracy, MulticlassConfusionMatrix, MulticlassF1Score,
                                         MulticlassPrecision, MulticlassRecall)

from zooflow import progress
from zooflow.evaluation.keys import metric_key_map


@torch.no_grad()
def predict_loader(model: torch.nn.Module, loader, device: torch.device | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Class probabilities and targets for every sample of ``loader``."""
    device = device or next(model.parameters()).device
    model.eval()
    probabilities, targets = [], []
    with progress.phase("scoring the held-out split", len(loader.dataset), "samples") as shown:
        for inputs, labels in loader:
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                logits = model(inputs.to(device))
            probabilities.append(logits.float().softmax(1).cpu())
            targets.append(labels)
            shown.advance(len(labels))
    return torch.cat(probabilities), torch.cat(targets)


def scores(predictions: torch.Tensor, targets: torch.Tensor, classes: list[str]) -> dict[str, float]:
    """accuracy, macro F1 and per-class precision / recall / F1 (keyed ``precision_<class>``,
    the class name through :func:`~zooflow.evaluation.keys.metric_key_map`). ``predictions``
    are probabilities (N, C) or class ids (N,)."""
    n = len(classes)
    keys = metric_key_map(classes)  # class names are user data: make them valid, distinct metric keys
    metrics = {"accuracy": MulticlassAccuracy(n, average="micro")(predictions, targets).item(),
               "macro_f1": MulticlassF1Score(n, average="macro")(predictions, targets).item()}
    for name, metric in (("precision", MulticlassPrecision), ("recall", MulticlassRecall), ("f1", MulticlassF1Score)):
        per_class = metric(n, average=None)(predictions, targets)
        metrics |= {f"{name}_{keys[label]}": value.item() for label, value in zip(classes, per_class)}
    return metrics


def probability_table(probabilities: np.ndarray, classes: list[str]):
    """What a served classifier answers: ``label``, its ``probability``, and ``p_<class>`` for all."""
    import pandas as pd

    table = pd.DataFrame(probabilities, columns=[f"p_{name}" for name in classes])
    table.insert(0, "label", [classes[i] for i in probabilities.argmax(1)])
    table.insert(1, "probability", probabilities.max(1))
    return table


def confusion_figure(predictions: torch.Tensor, targets: torch.Tensor, classes: list[str], path: Path) -> Path:
    """Confusion matrix (rows: true class, columns: predicted) as a PNG."""
    matrix = MulticlassConfusionMatrix(len(classes))(predictions, targets).numpy()
    size = max(3.0, 0.6 * len(classes) + 2)
    figure, axes = plt.subplots(figsize=(size, size))
    axes.imshow(matrix, cmap="Blues")
    axes.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    axes.set_yticks(range(len(classes)), classes)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    for (row, col), value in np.ndenumerate(matrix):
        axes.text(col, row, str(value), ha="center", va="center",
                  color="white" if value > matrix.max() / 2 else "black")
    axes.set_title("confusion matrix (validation)")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def prediction_grid(images: list[np.ndarray], true: list[str], predicted: list[str], confidence: list[float],
                    path: Path, columns: int = 6) -> Path:
    """Validation images titled with predicted (confidence) and true labels; red when wrong."""
    rows = max(1, -(-len(images) // columns))
    figure, axes = plt.subplots(rows, columns, figsize=(2 * columns, 2.3 * rows), squeeze=False)
    for axis in axes.flat:
        axis.axis("off")
    for axis, image, truth, guess, p in zip(axes.flat, images, true, predicted, confidence):
        axis.imshow(image)
        axis.set_title(f"{guess} ({p:.2f})\ntrue: {truth}", fontsize=8, color="green" if guess == truth else "red")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
