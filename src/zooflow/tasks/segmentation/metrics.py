"""Segmentation metrics from one confusion matrix accumulated over a split.

The matrix counts pixels: row = true class, column = predicted class; pixels whose truth is
``IGNORE`` (255, VOC's border) are not counted at all. From it:

- ``iou_<class>`` = true positives / (true positives + false positives + false negatives);
- ``miou``: the mean IoU over the classes that occur in the split's truth or predictions (a class
  absent from both has no IoU: it is left out of the mean and of the per-class figures, as in
  the VOC benchmark);
- ``pixel_accuracy``: correct pixels / scored pixels;
- ``mean_class_accuracy``: the mean per-class recall over the classes in the truth.

Counting uses torchmetrics' ``multiclass_confusion_matrix`` (``ignore_index`` drops the 255
pixels); adding matrices image by image gives the same figures as one matrix over the whole
split, without holding every mask in memory.
"""

from __future__ import annotations

import torch
from torchmetrics.functional.classification import multiclass_confusion_matrix

from zooflow.tasks.segmentation.voc import IGNORE


def confusion(predicted: torch.Tensor, truth: torch.Tensor, num_classes: int) -> torch.Tensor:
    """The ``num_classes`` x ``num_classes`` pixel counts (int64, on the CPU) of ``predicted``
    class ids against ``truth`` (same shape; ``IGNORE`` pixels of ``truth`` left out)."""
    if predicted.shape != truth.shape:
        raise ValueError(f"prediction shape {tuple(predicted.shape)} differs from the mask's {tuple(truth.shape)}")
    matrix = multiclass_confusion_matrix(predicted.reshape(-1).long(), truth.reshape(-1).long(), num_classes,
                                         ignore_index=IGNORE, validate_args=False)
    return matrix.to(device="cpu", dtype=torch.int64)


def constant_confusion(truth_counts: torch.Tensor, predicted_class: int) -> torch.Tensor:
    """The matrix of a predictor that answers ``predicted_class`` for every pixel, from the
    number of scored pixels of each true class (``truth_counts``, length = number of classes)."""
    counts = torch.as_tensor(truth_counts, dtype=torch.int64)
    matrix = torch.zeros(len(counts), len(counts), dtype=torch.int64)
    matrix[:, predicted_class] = counts
    return matrix


def class_ious(matrix: torch.Tensor) -> torch.Tensor:
    """Per-class IoU (float64); NaN for a class in neither the truth nor the predictions."""
    matrix = matrix.to(torch.float64)
    hits = matrix.diag()
    union = matrix.sum(0) + matrix.sum(1) - hits
    return torch.where(union > 0, hits / union.clamp(min=1), torch.full_like(hits, float("nan")))


def scores(matrix: torch.Tensor, classes: list[str]) -> dict[str, float]:
    """``miou``, ``pixel_accuracy``, ``mean_class_accuracy`` and ``iou_<class>`` for each class
    with an IoU (see the module docstring)."""
    matrix = matrix.to(torch.float64)
    total = matrix.sum()
    if total == 0:
        raise ValueError("no scored pixels: every pixel of the split's masks is ignore (255)")
    ious = class_ious(matrix)
    present = ~ious.isnan()
    truth = matrix.sum(1)
    recalls = matrix.diag()[truth > 0] / truth[truth > 0]
    figures = {"miou": float(ious[present].mean()), "pixel_accuracy": float(matrix.diag().sum() / total),
               "mean_class_accuracy": float(recalls.mean())}
    figures.update({f"iou_{name}": float(iou) for name, iou in zip(classes, ious.tolist()) if iou == iou})
    return figures
