"""Chapter 4 groundwork: OKS metrics on a hand-built COCO keypoints set (2 images, 3 people and a
crowd), the mean-pose baseline, and the card's figures. The ground truth's own keypoints score AP 1,
far-off ones 0, none 0 without crashing; a larger OKS area forgives small errors."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from zooflow.tasks.pose import figures
from zooflow.tasks.pose.metrics import mean_pose, mean_pose_baseline, scores
from zooflow.tasks.pose.skeleton import COCO_KEYPOINTS

# A standing person as (x, y) shares of its bbox, in COCO keypoint order.
TEMPLATE = np.array([(0.5, 0.08), (0.55, 0.05), (0.45, 0.05), (0.62, 0.07), (0.38, 0.07), (0.75, 0.22),
                     (0.25, 0.22), (0.85, 0.4), (0.15, 0.4), (0.9, 0.55), (0.1, 0.55), (0.62, 0.55),
                     (0.38, 0.55), (0.64, 0.77), (0.36, 0.77), (0.66, 0.97), (0.34, 0.97)])
EARS = [COCO_KEYPOINTS.index("left_ear"), COCO_KEYPOINTS.index("right_ear")]


def _person(annotation_id, image_id, bbox, area, jitter, absent=()):
    x0, y0, w, h = bbox
    keypoints = np.zeros((17, 3))
    keypoints[:, :2] = (TEMPLATE + jitter) * (w, h) + (x0, y0)
    keypoints[:, 2] = 2
    keypoints[list(absent)] = 0
    return {"id": annotation_id, "image_id": image_id, "category_id": 1, "bbox": list(bbox), "area": area,
            "iscrowd": 0, "num_keypoints": int((keypoints[:, 2] > 0).sum()),
            "keypoints": [round(float(v), 2) for v in keypoints.reshape(-1)]}


def _dataset():
    """Image 10: a medium and a large person; image 20: a person without ears, and a crowd."""
    rng = np.random.default_rng(0)
    people = [_person(1, 10, (100, 50, 80, 200), 3000, rng.normal(0, 0.03, (17, 2))),
              _person(2, 10, (300, 60, 100, 250), 12000, rng.normal(0, 0.03, (17, 2))),
              _person(3, 20, (50, 40, 60, 150), 2000, rng.normal(0, 0.03, (17, 2)), absent=EARS)]
    crowd = {"id": 4, "image_id": 20, "category_id": 1, "bbox": [200, 100, 150, 120], "area": 9000, "iscrowd": 1,
             "num_keypoints": 0, "keypoints": [0] * 51}
    return {"images": [{"id": 10, "file_name": "a.jpg", "width": 640, "height": 480},
                       {"id": 20, "file_name": "b.jpg", "width": 640, "height": 480}],
            "annotations": people + [crowd],
            "categories": [{"id": 1, "name": "person", "keypoints": list(COCO_KEYPOINTS), "skeleton": []}]}


def _results(dataset, shift=0.0, image_ids=None):
    return [{"image_id": a["image_id"], "category_id": 1, "score": 1.0,
             "keypoints": [v + shift if i % 3 != 2 else v for i, v in enumerate(a["keypoints"])]}
            for a in dataset["annotations"] if a["num_keypoints"] and (image_ids is None or a["image_id"] in image_ids)]


def test_perfect_results_score_one_and_leave_inputs_alone():
    dataset = _dataset()
    results = _results(dataset)
    before = copy.deepcopy((dataset, results))
    metrics = scores(dataset, results)
    assert set(metrics) == {"oks_ap", "oks_ap50", "oks_ap75", "oks_ap_medium", "oks_ap_large", "oks_ar"}
    assert all(value == pytest.approx(1.0) for value in metrics.values()), metrics
    assert (dataset, results) == before  # pycocotools writes into what it reads: copies only


def test_far_off_results_score_zero_and_no_results_zero():
    dataset = _dataset()
    far = scores(dataset, _results(dataset, shift=300.0))
    assert far["oks_ap"] < 0.01 and far["oks_ar"] < 0.01
    empty = scores(dataset, [])
    assert empty == {name: 0.0 for name in empty} and "oks_ap" in empty and "oks_ap_large" in empty


def test_image_ids_restrict_what_is_scored():
    dataset = _dataset()
    good_first = _results(dataset, image_ids={10}) + _results(dataset, shift=300.0, image_ids={20})
    assert scores(dataset, good_first, image_ids=[10])["oks_ap"] == pytest.approx(1.0)
    assert scores(dataset, good_first, image_ids=[20])["oks_ap"] < 0.01
    assert scores(dataset, _results(dataset, image_ids={10}), image_ids=[20])["oks_ap"] == 0.0
    with pytest.raises(ValueError, match="not among"):
        scores(dataset, [], image_ids=[99])


def test_no_data_is_never_minus_one():
    dataset = _dataset()
    metrics = scores(dataset, _results(dataset), image_ids=[20])  # only a medium person (area 2000)
    assert "oks_ap_large" not in metrics and metrics["oks_ap_medium"] == pytest.approx(1.0)
    assert all(value >= 0 for value in metrics.values())
    crowd_only = _dataset()
    crowd_only["annotations"] = crowd_only["annotations"][3:]
    with pytest.raises(ValueError, match="no person"):
        scores(crowd_only, [])
    with pytest.raises(ValueError, match="not images"):
        scores(dataset, [{"image_id": 99, "category_id": 1, "score": 1.0, "keypoints": [0] * 51}])


def test_bbox_area_is_more_lenient_for_slightly_off_predictions():
    dataset = _dataset()
    for annotation in dataset["annotations"]:
        annotation["area"] = 300  # a thin stick figure's visible pixels, far below its box
    slightly_off = _results(dataset, shift=4.0)
    strict = scores(dataset, slightly_off)["oks_ap"]
    lenient = scores(dataset, slightly_off, area_override="bbox")["oks_ap"]
    assert 0 <= strict < lenient <= 1, (strict, lenient)
    with pytest.raises(ValueError, match="area_override"):
        scores(dataset, slightly_off, area_override="segmentation")


def test_mean_pose_baseline():
    dataset = _dataset()
    people = [a for a in dataset["annotations"] if a["num_keypoints"]]
    relative = []
    for a in people:
        x0, y0, w, h = a["bbox"]
        keypoints = np.array(a["keypoints"], dtype=float).reshape(17, 3)
        relative.append(np.where(keypoints[:, 2:] > 0, (keypoints[:, :2] - (x0, y0)) / (w, h), np.nan))
    expected = np.nanmean(np.stack(relative), axis=0)  # ears: only the two people who have them
    np.testing.assert_allclose(mean_pose(dataset)[:, :2], expected, atol=1e-4)

    results = mean_pose_baseline(dataset, dataset, image_ids=None)
    assert len(results) == 3 and all(r["score"] == 1.0 for r in results)  # no pose for the crowd
    for result, a in zip(results, people):
        x0, y0, w, h = a["bbox"]
        placed = np.array(result["keypoints"]).reshape(17, 3)
        np.testing.assert_allclose(placed[:, :2], expected * (w, h) + (x0, y0), atol=0.01)
        assert (placed[:, 2] == 1).all()
    ap = scores(dataset, results)["oks_ap"]
    assert 0 < ap < 1

    assert [r["image_id"] for r in mean_pose_baseline(dataset, dataset, image_ids=[20])] == [20]
    earless = _dataset()
    earless["annotations"] = [a for a in earless["annotations"] if a["id"] == 3]
    placed = np.array(mean_pose_baseline(earless, dataset)[0]["keypoints"]).reshape(17, 3)
    assert (placed[EARS] == 0).all() and (np.delete(placed, EARS, axis=0)[:, 2] == 1).all()


def test_figures(tmp_path):
    dataset = _dataset()
    truth = np.array([a["keypoints"] for a in dataset["annotations"][:2]]).reshape(-1, 17, 3)
    predicted = torch.tensor(truth, dtype=torch.float32) + 3
    predicted[..., 2] = 0.4  # peak values, not COCO visibility: the neck must still be drawn
    predicted[1, :5] = 0     # a head not found
    images = [np.full((480, 640, 3), 120, dtype=np.uint8), np.zeros((480, 640, 3), dtype=np.uint8)]
    path = figures.skeletons(images, [truth, np.zeros((0, 17, 3))], [predicted, torch.zeros(0, 17, 3)],
                             tmp_path / "skeletons.png")
    assert path.stat().st_size > 0 and path.read_bytes()[:4] == b"\x89PNG"
    assert figures._people(predicted)[:, 1, 2].tolist() == [2.0, 2.0]  # the neck counts as given

    heat = torch.rand(19, 60, 80, requires_grad=True)
    paf = torch.rand(38, 60, 80, dtype=torch.float16) * 2 - 1
    for maps in ((heat, paf), (heat.detach().numpy(), paf.float().numpy())):
        out = figures.map_overlays(images[0], *maps, tmp_path / f"maps-{type(maps[0]).__name__}.png")
        assert out.stat().st_size > 0 and out.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match="pafs"):
        figures.map_overlays(images[0], heat, paf[:19], tmp_path / "bad.png")

    page = figures.ap_table_html({"oks_ap": 0.41, "<script>x</script>": 0.5}, {"oks_ap": 0.1, "oks_ap_large": 0.2},
                                 tmp_path / "ap.html").read_text()
    assert "&lt;script&gt;x&lt;/script&gt;" in page and "<script>" not in page
    assert "0.410" in page and "0.100" in page and "\u2013" in page  # the model has no large AP
