"""Detection metrics: Pascal VOC average precision (the primary metric), COCO-style mAP, and the
trivial mean-box detector the model card compares with.

Per image, a ground truth is ``dict(boxes=Tensor[G, 4] xyxy pixels, labels=Tensor[G] int64,
difficult=Tensor[G] bool)`` and a detection set is ``dict(boxes=Tensor[N, 4] xyxy pixels,
scores=Tensor[N], labels=Tensor[N] int64)``; labels are class indices into ``classes``. Lists of
them hold one entry per image, in the same order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torchvision.ops import box_iou

from zooflow.evaluation.keys import metric_key_map
from zooflow.quiet import silenced_prints

# Same-class IoU at or above which a detection overlapping a "difficult" truth is left out of
# the COCO evaluation (VOC's own threshold for a match).
DIFFICULT_IOU = 0.5


@dataclass
class ClassCurve:
    """One class's precision-recall curve at one IoU threshold. ``recall`` and ``precision`` have
    one point per scored detection (detections ignored for sitting on a difficult truth have
    none); ``positives`` counts the non-difficult truths, ``detections`` all detections of the
    class. ``ap`` is NaN for a class without positives."""

    label: str
    ap: float
    recall: np.ndarray = field(repr=False)
    precision: np.ndarray = field(repr=False)
    positives: int
    detections: int


def voc_average_precision(recall: np.ndarray, precision: np.ndarray) -> float:
    """Area under the precision-recall curve, VOC2010+ style ("all-point" interpolation): the
    precision at each recall is the best precision at that recall or any higher one, summed over
    every recall step. (VOC2007's 11-point average samples recall at 0, 0.1, ..., 1 instead.)"""
    recall = np.concatenate(([0.0], np.asarray(recall, dtype=np.float64), [1.0]))
    precision = np.concatenate(([0.0], np.asarray(precision, dtype=np.float64), [0.0]))
    # The envelope: non-increasing from the right, so a later, better precision lifts earlier points.
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    steps = np.flatnonzero(recall[1:] != recall[:-1])
    return float(np.sum((recall[steps + 1] - recall[steps]) * precision[steps + 1]))


def _as_boxes(boxes) -> torch.Tensor:
    """``boxes`` as a float (K, 4) tensor, also when empty and shaped (0,)."""
    return torch.as_tensor(boxes).detach().cpu().to(torch.float32).reshape(-1, 4)


def _as_vector(values, dtype) -> torch.Tensor:
    """``values`` as a flat CPU tensor of ``dtype``."""
    return torch.as_tensor(values).detach().cpu().to(dtype).reshape(-1)


def _difficult(truth: dict) -> torch.Tensor:
    """The truth's difficult flags; all False when the key is missing."""
    labels = _as_vector(truth["labels"], torch.int64)
    if "difficult" not in truth:
        return torch.zeros(len(labels), dtype=torch.bool)
    return _as_vector(truth["difficult"], torch.bool)


def _best_same_class_truth(detection: dict, truth: dict) -> tuple[np.ndarray, np.ndarray]:
    """For each detection of one image: the IoU with its best-overlapping truth of the same class
    and that truth's index in the image (-1 and index 0 when the image has no truth of that
    class)."""
    det_boxes, det_labels = _as_boxes(detection["boxes"]), _as_vector(detection["labels"], torch.int64)
    true_boxes, true_labels = _as_boxes(truth["boxes"]), _as_vector(truth["labels"], torch.int64)
    if len(det_boxes) == 0 or len(true_boxes) == 0:
        return np.full(len(det_boxes), -1.0), np.zeros(len(det_boxes), dtype=np.int64)
    iou = box_iou(det_boxes, true_boxes)  # continuous coordinates: no VOC-2007-style "+1" pixel
    iou[det_labels[:, None] != true_labels[None, :]] = -1.0  # another class's truth never matches
    # NumPy for the reduction: torch's threaded max costs milliseconds on such small matrices.
    iou = iou.double().numpy()
    index = iou.argmax(axis=1)
    return iou[np.arange(len(index)), index], index


def voc_curves(detections: Sequence[dict], truths: Sequence[dict], classes: Sequence[str],
               iou_threshold: float = 0.5) -> list[ClassCurve]:
    """Per class, the VOC precision-recall curve and AP, matching as the VOC devkit does.

    All detections of a class, over all images, are taken by descending score (ties keep image
    order, then detection order). Each is compared with the truth of its class in its image that
    it overlaps most. When that IoU is at least ``iou_threshold``: a non-difficult truth not yet
    matched makes it a true positive (and is now matched), an already matched one a false
    positive (a duplicate), and a difficult truth makes it ignored (neither). Below the
    threshold, or with no truth of its class in the image, it is a false positive. Positives are
    the non-difficult truths; a class without any has AP NaN and empty curves.
    """
    if len(detections) != len(truths):
        raise ValueError(f"{len(detections)} detection sets for {len(truths)} images")
    count = len(classes)
    # Flatten every image's detections, remembering which global truth each one overlaps most.
    labels, scores, ious, hits, hit_difficult = [], [], [], [], []
    true_labels, true_difficult = [], []
    offset = 0
    for detection, truth in zip(detections, truths):
        best, index = _best_same_class_truth(detection, truth)
        difficult = _difficult(truth).numpy()
        labels.append(_as_vector(detection["labels"], torch.int64).numpy())
        scores.append(_as_vector(detection["scores"], torch.float64).numpy())
        ious.append(best)
        hits.append(index + offset)
        hit_difficult.append(difficult[index] if len(difficult) else np.zeros(len(index), dtype=bool))
        true_labels.append(_as_vector(truth["labels"], torch.int64).numpy())
        true_difficult.append(difficult)
        offset += len(difficult)
    labels, scores, ious, hits, hit_difficult, true_labels, true_difficult = (
        np.concatenate(parts) if parts else np.zeros(0) for parts in
        (labels, scores, ious, hits, hit_difficult, true_labels, true_difficult))
    for name, values in (("detection", labels), ("truth", true_labels)):
        if len(values) and (values.min() < 0 or values.max() >= count):
            raise ValueError(f"a {name} label is outside 0..{count - 1} ({count} classes)")

    curves = []
    for class_index, label in enumerate(classes):
        positives = int(np.sum((true_labels == class_index) & ~true_difficult.astype(bool)))
        mine = np.flatnonzero(labels == class_index)
        if positives == 0:
            # Nothing to recall: every detection would be a FP and AP is undefined. VOC leaves such
            # a class out of the mean too.
            curves.append(ClassCurve(label, float("nan"), np.zeros(0), np.zeros(0), 0, len(mine)))
            continue
        order = mine[np.argsort(-scores[mine], kind="stable")]
        overlapping = ious[order] >= iou_threshold
        ignored = overlapping & hit_difficult[order].astype(bool)
        order, overlapping = order[~ignored], overlapping[~ignored]
        # Greedy matching in score order: the first (highest-scored) detection on a truth takes it,
        # every later one on the same truth is a duplicate.
        true_positive = np.zeros(len(order), dtype=bool)
        candidates = np.flatnonzero(overlapping)
        _, first = np.unique(hits[order[candidates]], return_index=True)
        true_positive[candidates[first]] = True
        tp = np.cumsum(true_positive)
        fp = np.cumsum(~true_positive)
        recall = tp / positives
        precision = tp / np.maximum(tp + fp, 1)
        curves.append(ClassCurve(label, voc_average_precision(recall, precision), recall, precision,
                                 positives, len(mine)))
    return curves


def mean_ap(curves: Sequence[ClassCurve]) -> float:
    """Mean AP over the classes that have positives (NaN when none has)."""
    values = [curve.ap for curve in curves if not np.isnan(curve.ap)]
    return float(np.mean(values)) if values else float("nan")


def _without_difficult(detection: dict, truth: dict) -> tuple[dict, dict]:
    """One image's detections and truths for COCO evaluation with VOC's difficult semantics.

    COCO has no "difficult": its nearest flag, ``iscrowd``, is not the same thing. A crowd
    region's overlap is intersection over the *detection's* area (not over the union), so any
    small box inside a large difficult truth would be excused, several detections may hide in one
    crowd region, and a crowd is only considered after the non-crowd truths. Instead the
    difficult truths are removed, and so is each detection that VOC would ignore: one whose best
    same-class overlap with a difficult truth is at least 0.5 IoU and better than with any
    non-difficult truth. (Detections near a difficult truth with IoU below 0.5 stay, and count
    as false positives, as in VOC.)
    """
    difficult = _difficult(truth)
    true_boxes, true_labels = _as_boxes(truth["boxes"]), _as_vector(truth["labels"], torch.int64)
    det_boxes = _as_boxes(detection["boxes"])
    det_labels = _as_vector(detection["labels"], torch.int64)
    det_scores = _as_vector(detection["scores"], torch.float32)
    keep = torch.ones(len(det_boxes), dtype=torch.bool)
    if difficult.any() and len(det_boxes):
        iou = box_iou(det_boxes, true_boxes)
        iou[det_labels[:, None] != true_labels[None, :]] = -1.0
        iou, hard = iou.numpy(), difficult.numpy()  # NumPy reductions: see _best_same_class_truth
        on_difficult = iou[:, hard].max(axis=1)
        on_normal = iou[:, ~hard].max(axis=1) if (~hard).any() else np.full_like(on_difficult, -1.0)
        keep = torch.from_numpy(~((on_difficult >= DIFFICULT_IOU) & (on_difficult > on_normal)))
    return (dict(boxes=det_boxes[keep], scores=det_scores[keep], labels=det_labels[keep]),
            dict(boxes=true_boxes[~difficult], labels=true_labels[~difficult]))


def _number(value: torch.Tensor) -> float:
    """A torchmetrics result as a float; its -1 ("no data to score") becomes NaN."""
    number = float(value)
    return float("nan") if number == -1 else number


def coco_map(detections: Sequence[dict], truths: Sequence[dict], classes: Sequence[str]) -> dict[str, float]:
    """COCO-style mAP averaged over IoU 0.50:0.05:0.95 (``map_50_95``), at 0.5 (``map_coco_50``,
    101-point interpolation, so it differs a little from VOC's ``map_50``) and at 0.75
    (``map_75``), by pycocotools through torchmetrics. Difficult truths are handled as VOC does
    (see :func:`_without_difficult`). COCO keeps the 100 best-scored detections per image."""
    from torchmetrics.detection import MeanAveragePrecision  # slow import; only when scoring

    if len(detections) != len(truths):
        raise ValueError(f"{len(detections)} detection sets for {len(truths)} images")
    nan = float("nan")
    if not truths:
        return {"map_50_95": nan, "map_coco_50": nan, "map_75": nan}
    metric = MeanAveragePrecision(box_format="xyxy", iou_type="bbox", backend="pycocotools")
    # COCO's rule keeps each image's 100 best detections (see the docstring); that is the metric's
    # definition, not a problem to warn about on every evaluation of an SSD (which keeps 200).
    metric.warn_on_many_detections = False
    predictions, targets = zip(*(_without_difficult(d, t) for d, t in zip(detections, truths)))
    metric.update(list(predictions), list(targets))
    # pycocotools prints its 12-line summary on stdout, which Prefect logs at every evaluation
    # (twice: model and baseline); the figures that matter are returned and logged as metrics.
    with silenced_prints():
        result = metric.compute()
    return {"map_50_95": _number(result["map"]), "map_coco_50": _number(result["map_50"]),
            "map_75": _number(result["map_75"])}


def scores(detections: Sequence[dict], truths: Sequence[dict], classes: Sequence[str]) -> dict[str, float]:
    """The card's detection metrics as plain floats: ``map_50`` (VOC mean AP at IoU 0.5 over the
    classes with positives: the primary metric), the :func:`coco_map` keys, ``ap50_<class>`` per
    class with positives (class name through :func:`~zooflow.evaluation.keys.metric_key_map`) and
    ``detections_per_image``."""
    curves = voc_curves(detections, truths, classes)
    keys = metric_key_map(classes)  # class names are user data: make them valid, distinct metric keys
    metrics = {"map_50": mean_ap(curves)} | coco_map(detections, truths, classes)
    metrics |= {f"ap50_{keys[curve.label]}": float(curve.ap) for curve in curves if not np.isnan(curve.ap)}
    counts = [len(_as_boxes(detection["boxes"])) for detection in detections]
    metrics["detections_per_image"] = float(np.mean(counts)) if counts else float("nan")
    return metrics


def mean_box_baseline(train_truths: Sequence[dict], train_sizes: Sequence[tuple[int, int]],
                      eval_sizes: Sequence[tuple[int, int]], classes: Sequence[str]) -> list[dict]:
    """The trivial detector: on every evaluated image, one box, score 1, of the training set's
    most frequent class (ties: lowest index), placed at that class's mean training box.

    Boxes are averaged in relative coordinates (x / width, y / height of their image, sizes given
    as ``(height, width)``) and scaled to each evaluated image's size; difficult truths are left
    out, as they are out of the score. Any real detector must beat its AP.
    """
    if len(train_truths) != len(train_sizes):
        raise ValueError(f"{len(train_sizes)} sizes for {len(train_truths)} training images")
    relative, labels = [], []
    for truth, (height, width) in zip(train_truths, train_sizes):
        keep = ~_difficult(truth)
        scale = torch.tensor([width, height, width, height], dtype=torch.float64)
        relative.append(_as_boxes(truth["boxes"])[keep].double() / scale)
        labels.append(_as_vector(truth["labels"], torch.int64)[keep])
    labels = torch.cat(labels) if labels else torch.zeros(0, dtype=torch.int64)
    if len(labels) == 0:
        raise ValueError("no non-difficult training box to average")
    majority = int(torch.bincount(labels, minlength=len(classes)).argmax())  # argmax: first of the ties
    mean = torch.cat(relative)[labels == majority].mean(dim=0)
    baseline = []
    for height, width in eval_sizes:
        box = mean * torch.tensor([width, height, width, height], dtype=torch.float64)
        baseline.append(dict(boxes=box.float().reshape(1, 4), scores=torch.ones(1),
                             labels=torch.tensor([majority], dtype=torch.int64)))
    return baseline
