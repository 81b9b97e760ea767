"""Pose metrics: COCO's keypoint average precision under object keypoint similarity (OKS), and the
trivial mean-pose predictor the model card compares with.

Ground truth is a COCO keypoints dataset dict (``images``, ``annotations``, ``categories``: the
val JSON as read by :func:`~zooflow.tasks.pose.coco.read_split`); results are COCO result dicts
(``image_id``, ``category_id``, ``keypoints`` as 51 numbers, ``score``), as
:func:`~zooflow.tasks.pose.decode.to_coco_results` makes them. pycocotools does the scoring.

OKS between a prediction and a true person is the mean over the person's labelled keypoints of
``exp(-d^2 / (2 * area * (2 * sigma_k)^2))``: ``d`` the pixel distance, ``sigma_k`` COCO's
per-keypoint spread, ``area`` the annotation's ``area`` field. COCO's ``area`` is the person's
segmentation area (a silhouette). The demo data's ``area`` is the visible pixel count of a thin
stick figure, several times smaller than a silhouette of the same height, so the same error in
pixels costs far more OKS there. ``area_override="bbox"`` scores with each person's bbox
``w * h`` instead; this also moves people between COCO's size ranges (medium ``32^2..96^2``,
large above), which are read from the same field.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from zooflow.quiet import silenced_prints
from zooflow.tasks.pose.coco import coco_index, person_category
from zooflow.tasks.pose.skeleton import COCO_KEYPOINTS

AREA_OVERRIDES = (None, "bbox")
# COCOeval's ``stats`` for keypoints, by position: AP@[.5:.95], AP@.5, AP@.75, AP medium, AP large,
# AR@[.5:.95] (then AR@.5, AR@.75, AR medium, AR large, which the card does not show).
STATS = {"oks_ap": 0, "oks_ap50": 1, "oks_ap75": 2, "oks_ap_medium": 3, "oks_ap_large": 4, "oks_ar": 5}
PRIMARY = "oks_ap"
SIZE_METRICS = ("oks_ap_medium", "oks_ap_large")
# Third value of each keypoint the mean-pose baseline places: a confidence, as decode's peak values
# are (COCOeval reads only x and y of a result); 0 for keypoints it has no mean for.
BASELINE_CONFIDENCE = 1.0


def _scored_people(annotations: Iterable[dict], person_id: int) -> list[dict]:
    """The annotations COCOeval scores (does not ignore): people, not crowds, with keypoints."""
    return [a for a in annotations if a.get("category_id") == person_id and not a.get("iscrowd")
            and a.get("num_keypoints", 0) > 0]


def _person_id(dataset: dict, what: str) -> int:
    person_id, problem = person_category(dataset)
    if person_id is None:
        raise ValueError(f"{what}: {problem}")
    return person_id


def _image_ids(dataset: dict, image_ids: Iterable[int] | None, what: str) -> list[int]:
    """``image_ids`` (all of ``dataset``'s images when None), checked to be images of it."""
    known = list(dict.fromkeys(entry["id"] for entry in dataset["images"]))
    if image_ids is None:
        return known
    wanted = list(dict.fromkeys(int(i) for i in image_ids))
    unknown = sorted(set(wanted) - set(known))
    if unknown:
        raise ValueError(f"{what}: image ids {unknown[:5]}{' ...' if len(unknown) > 5 else ''} are not among its "
                         f"{len(known)} images")
    return wanted


def _ground_truth(dataset: dict, area_override: str | None) -> dict:
    """A copy of ``dataset`` safe to hand to COCOeval, which writes an ``ignore`` flag into every
    annotation it reads; with ``area_override="bbox"``, each area is the bbox's ``w * h``."""
    if area_override not in AREA_OVERRIDES:
        raise ValueError(f"area_override must be one of {AREA_OVERRIDES}, got {area_override!r}")
    annotations = []
    for annotation in dataset["annotations"]:
        annotation = dict(annotation)
        if area_override == "bbox":
            annotation["area"] = float(annotation["bbox"][2]) * float(annotation["bbox"][3])
        annotations.append(annotation)
    return {**dataset, "annotations": annotations}


def _results_index(gt, results: list[dict]):
    """pycocotools' index of ``results`` (copied: loadRes writes ``id``, ``area`` and ``bbox`` into
    each). loadRes fails on an empty list (it reads ``anns[0]``), so no results get an empty index
    of the ground truth's images built directly."""
    from pycocotools.coco import COCO

    if results:
        copies = [{**result, "keypoints": [float(v) for v in result["keypoints"]]} for result in results]
        return gt.loadRes(copies)
    empty = COCO()
    empty.dataset = {"images": list(gt.dataset["images"]), "categories": list(gt.dataset["categories"]),
                     "annotations": []}
    empty.createIndex()
    return empty


def scores(ground_truth: dict, results: list[dict], image_ids: Iterable[int] | None = None,
           area_override: str | None = None) -> dict[str, float]:
    """COCO keypoint AP and AR of ``results`` against ``ground_truth``, on ``image_ids`` only (all of
    its images when None); results for other images of it are left out.

    Returns ``oks_ap`` (AP averaged over OKS 0.50:0.05:0.95, the primary metric), ``oks_ap50``,
    ``oks_ap75``, ``oks_ap_medium``, ``oks_ap_large`` and ``oks_ar`` (recall over the same
    thresholds), each in ``[0, 1]``; COCO keeps the 20 best-scored results per image. No results
    score 0.0 throughout.

    COCOeval's -1 means "nothing to score". For a size range (``oks_ap_medium``, ``oks_ap_large``)
    the key is left out rather than set to 0.0: no medium person is not a model that missed every
    medium person, and a card shows a missing value as such. For the overall metrics it happens only
    when the scored images hold no person with labelled keypoints (crowds and people without
    keypoints are ignored by COCO), which is a ``ValueError``: any number would mislead.
    ``area_override``: see the module docstring.
    """
    from pycocotools.cocoeval import COCOeval

    person_id = _person_id(ground_truth, "the ground truth")
    wanted = _image_ids(ground_truth, image_ids, "the ground truth")
    chosen = set(wanted)
    people = _scored_people((a for a in ground_truth["annotations"] if a.get("image_id") in chosen), person_id)
    if not people:
        raise ValueError(f"the {len(wanted)} scored images hold no person with labelled keypoints (not a crowd): "
                         "OKS AP is undefined")
    known = {entry["id"] for entry in ground_truth["images"]}
    strangers = sorted({r["image_id"] for r in results} - known)
    if strangers:
        raise ValueError(f"results for image ids {strangers[:5]}{' ...' if len(strangers) > 5 else ''}, which are "
                         "not images of the ground truth")
    for result in results:
        if len(result["keypoints"]) != 3 * len(COCO_KEYPOINTS):
            raise ValueError(f"a result for image {result['image_id']} has {len(result['keypoints'])} keypoint "
                             f"numbers, not {3 * len(COCO_KEYPOINTS)}")
    results = [r for r in results if r["image_id"] in chosen]

    with silenced_prints():  # pycocotools reports every step with print()
        gt = coco_index(_ground_truth(ground_truth, area_override), "the ground truth")
        evaluation = COCOeval(gt, _results_index(gt, results), "keypoints")
        evaluation.params.imgIds = wanted
        evaluation.params.catIds = [person_id]
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    metrics = {}
    for name, position in STATS.items():
        value = float(evaluation.stats[position])
        if value >= 0:
            metrics[name] = value
        elif name not in SIZE_METRICS:  # unreachable with people to score; kept as a guard
            raise RuntimeError(f"COCOeval had nothing to score for {name}")
    return metrics


def mean_pose(train_dataset: dict) -> np.ndarray:
    """The training people's mean pose, ``[17, 3]``: per keypoint, its position relative to the
    person's bbox (``(x - x0) / w``, ``(y - y0) / h``) averaged over the people who have it labelled,
    and 1 in the third column; ``(0, 0, 0)`` for a keypoint no one has labelled. People are the
    non-crowd persons with keypoints and a box of positive width and height."""
    person_id = _person_id(train_dataset, "the training set")
    total = np.zeros((len(COCO_KEYPOINTS), 2))
    count = np.zeros(len(COCO_KEYPOINTS))
    for annotation in _scored_people(train_dataset["annotations"], person_id):
        x0, y0, width, height = (float(v) for v in annotation["bbox"])
        if width <= 0 or height <= 0:
            continue
        keypoints = np.asarray(annotation["keypoints"], dtype=np.float64).reshape(len(COCO_KEYPOINTS), 3)
        labelled = keypoints[:, 2] > 0
        total[labelled] += (keypoints[labelled, :2] - (x0, y0)) / (width, height)
        count[labelled] += 1
    pose = np.zeros((len(COCO_KEYPOINTS), 3))
    seen = count > 0
    pose[seen, :2] = total[seen] / count[seen, None]
    pose[seen, 2] = 1.0
    return pose


def mean_pose_baseline(train_dataset: dict, val_dataset: dict,
                       image_ids: Iterable[int] | None = None) -> list[dict]:
    """The card's baseline, "a mean pose placed in each ground-truth box": :func:`mean_pose` of
    ``train_dataset`` scaled into the bbox of every person of ``val_dataset`` on ``image_ids`` (all
    of its images when None) that COCO scores (not a crowd, with keypoints), score 1. It is given
    the true boxes, so it measures what knowing where people are, but nothing of their pose, is
    worth. Keypoints no training person has labelled are ``(0, 0, 0)``."""
    pose = mean_pose(train_dataset)
    person_id = _person_id(val_dataset, "the validation set")
    chosen = set(_image_ids(val_dataset, image_ids, "the validation set"))
    seen = pose[:, 2] > 0
    results = []
    for annotation in _scored_people(val_dataset["annotations"], person_id):
        if annotation["image_id"] not in chosen:
            continue
        x0, y0, width, height = (float(v) for v in annotation["bbox"])
        keypoints = np.zeros_like(pose)
        keypoints[seen, :2] = pose[seen, :2] * (width, height) + (x0, y0)
        keypoints[seen, 2] = BASELINE_CONFIDENCE
        results.append({"image_id": annotation["image_id"], "category_id": person_id,
                        "keypoints": [round(float(v), 2) for v in keypoints.reshape(-1)], "score": 1.0})
    return results
