"""Chapter 2 metrics: VOC AP worked out by hand (all-point, not 11-point), difficult truths ignored
as the VOC devkit does (by VOC and COCO scoring alike), mAP@[.5:.95] separating loose boxes from
tight ones, the mean-box baseline, and the card's figures (class names escaped)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from zooflow.tasks.detection import figures
from zooflow.tasks.detection.metrics import (coco_map, mean_box_baseline, scores, voc_average_precision,
                                             voc_curves)


def truth(boxes, labels, difficult=None):
    boxes = torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)
    difficult = [False] * len(boxes) if difficult is None else difficult
    return dict(boxes=boxes, labels=torch.tensor(labels, dtype=torch.int64),
                difficult=torch.tensor(difficult, dtype=torch.bool))


def detected(boxes, scores, labels):
    return dict(boxes=torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
                scores=torch.tensor(scores, dtype=torch.float32), labels=torch.tensor(labels, dtype=torch.int64))


def eleven_point(recall, precision):
    """VOC2007's 11-point AP, only to show the cases below tell it apart from all-point AP."""
    recall, precision = np.asarray(recall), np.asarray(precision)
    return np.mean([precision[recall >= t].max() if (recall >= t).any() else 0.0 for t in np.linspace(0, 1, 11)])


A1, A2, B1 = [0, 0, 10, 10], [20, 20, 30, 30], [0, 0, 10, 10]


def test_hand_computed_ap_three_positives_five_detections():
    # Image A holds a1, a2; image B holds b1: 3 positives. Detections by score:
    #   0.9 A on a1 -> TP;  0.8 B far from b1 -> FP;  0.7 A on a1 again -> FP (duplicate);
    #   0.6 B on b1 (IoU 0.9) -> TP;  0.5 A on a2 -> TP.
    # precision 1/1, 1/2, 1/3, 2/4, 3/5; recall 1/3, 1/3, 1/3, 2/3, 3/3.
    # Envelope (best precision at this recall or beyond): 1 up to recall 1/3, then 3/5.
    # All-point AP = 1/3 * 1 + 1/3 * 3/5 + 1/3 * 3/5 = 11/15.  (11-point: (4 * 1 + 7 * 3/5) / 11 = 41/55.)
    truths = [truth([A1, A2], [0, 0]), truth([B1], [0])]
    detections = [detected([A1, A1, A2], [0.9, 0.7, 0.5], [0, 0, 0]),
                  detected([[50, 50, 60, 60], [1, 0, 10, 10]], [0.8, 0.6], [0, 0])]
    (curve,) = voc_curves(detections, truths, ["cat"])
    assert curve.label == "cat" and curve.positives == 3 and curve.detections == 5
    assert curve.precision == pytest.approx([1, 1 / 2, 1 / 3, 2 / 4, 3 / 5], abs=1e-9)
    assert curve.recall == pytest.approx([1 / 3, 1 / 3, 1 / 3, 2 / 3, 1], abs=1e-9)
    assert curve.ap == pytest.approx(11 / 15, abs=1e-9)
    assert eleven_point(curve.recall, curve.precision) == pytest.approx(41 / 55)  # the other method differs


def test_hand_computed_ap_with_missed_positives_is_all_point_not_eleven_point():
    # 4 positives (2 per image); by score: TP, FP, TP, and two truths never found.
    # precision 1, 1/2, 2/3; recall 1/4, 1/4, 2/4.
    # All-point AP = 1/4 * 1 + 1/4 * 2/3 = 5/12.  11-point: recall >= 0, .1, .2 -> 1; .3, .4, .5 -> 2/3;
    # .6 ... 1 -> 0; (3 + 2) / 11 = 5/11.
    truths = [truth([A1, A2], [0, 0]), truth([A1, A2], [0, 0])]
    detections = [detected([A1, [40, 40, 50, 50]], [0.9, 0.8], [0, 0]), detected([A2], [0.7], [0])]
    (curve,) = voc_curves(detections, truths, ["cat"])
    assert curve.precision == pytest.approx([1, 1 / 2, 2 / 3], abs=1e-9)
    assert curve.recall == pytest.approx([1 / 4, 1 / 4, 1 / 2], abs=1e-9)
    assert curve.ap == pytest.approx(5 / 12, abs=1e-9)
    assert voc_average_precision(curve.recall, curve.precision) == pytest.approx(5 / 12, abs=1e-9)
    assert eleven_point(curve.recall, curve.precision) == pytest.approx(5 / 11)


def test_voc_average_precision_takes_the_envelope_from_the_right():
    # precision dips then recovers: the dip is lifted to 0.8; AP = 0.5 * 1 + 0.5 * 0.8 = 0.9.
    assert voc_average_precision(np.array([0.5, 0.5, 1.0]), np.array([1.0, 0.5, 0.8])) == pytest.approx(0.9)
    assert voc_average_precision(np.zeros(0), np.zeros(0)) == 0.0


def test_equal_scores_keep_image_order():
    # All 40 detections score 0.5; the 20 images without truth come first, so 20 FPs precede 20 TPs:
    # precision k / (20 + k) at recall k / 20, its envelope 1/2 everywhere -> AP 1/2 (TPs first: 1).
    truths = [truth([], [])] * 20 + [truth([A1], [0])] * 20
    detections = [detected([A1], [0.5], [0])] * 40
    (curve,) = voc_curves(detections, truths, ["cat"])
    assert curve.precision[:21] == pytest.approx([0] * 20 + [1 / 21]) and curve.ap == pytest.approx(0.5)


def test_a_detection_on_a_difficult_truth_is_ignored():
    # By score: FP (0.95), on the difficult truth (0.9: ignored), on the normal truth (0.8: TP).
    # Ignoring gives precision 0, 1/2 -> AP 1/2; a FP would give 1/3, a TP with 2 positives less still.
    with_difficult = [truth([A1, A2], [0, 0], [False, True])]
    detections = [detected([[50, 50, 60, 60], A2, A1], [0.95, 0.9, 0.8], [0, 0, 0])]
    (curve,) = voc_curves(detections, with_difficult, ["cat"])
    (plain,) = voc_curves([detected([[50, 50, 60, 60], A1], [0.95, 0.8], [0, 0])], [truth([A1], [0])], ["cat"])
    assert curve.positives == plain.positives == 1 and curve.detections == 3
    assert curve.ap == pytest.approx(plain.ap, abs=1e-12) == pytest.approx(0.5)
    assert curve.precision == pytest.approx(plain.precision) and curve.recall == pytest.approx(plain.recall)


def test_a_detection_merely_near_a_difficult_truth_is_a_false_positive():
    # IoU with the difficult truth is 25 / 175 < 0.5: not a match at all, so VOC counts a FP.
    detections = [detected([[25, 25, 35, 35], A1], [0.9, 0.8], [0, 0])]
    (curve,) = voc_curves(detections, [truth([A1, A2], [0, 0], [False, True])], ["cat"])
    assert curve.precision == pytest.approx([0, 1 / 2]) and curve.ap == pytest.approx(0.5)


def test_a_duplicate_and_a_wrong_class_detection_are_false_positives():
    truths = [truth([A1, A2], [0, 1])]
    detections = [detected([A1, A1, A2], [0.9, 0.8, 0.7], [0, 0, 0])]  # the third is a cat on the dog
    cat, dog = voc_curves(detections, truths, ["cat", "dog"])
    assert cat.precision == pytest.approx([1, 1 / 2, 1 / 3]) and cat.recall == pytest.approx([1, 1, 1])
    assert cat.ap == pytest.approx(1.0) and dog.ap == 0.0 and dog.detections == 0


def test_a_class_without_positives_has_nan_ap_and_stays_out_of_the_mean():
    truths = [truth([A1, A2], [0, 1], [False, True])]  # "dog" has only a difficult truth
    detections = [detected([A1, [40, 40, 50, 50]], [0.9, 0.8], [0, 1])]
    cat, dog = voc_curves(detections, truths, ["cat", "dog"])
    assert np.isnan(dog.ap) and len(dog.recall) == 0 and dog.positives == 0 and dog.detections == 1
    metrics = scores(detections, truths, ["cat", "dog"])
    assert metrics["map_50"] == 1.0 and "ap50_dog" not in metrics and metrics["ap50_cat"] == 1.0


def test_labels_outside_the_classes_are_refused():
    with pytest.raises(ValueError, match="outside"):
        voc_curves([detected([A1], [0.9], [2])], [truth([A1], [0])], ["cat", "dog"])


CLASSES = ["cat", "a/b", "ghost"]  # "a/b" needs a safe metric key; "ghost" never appears
PERFECT_TRUTHS = [truth([[10, 10, 110, 110], [200, 50, 260, 150]], [0, 1]),
                  truth([[0, 0, 100, 100]], [0]),
                  truth([[30, 40, 90, 200], [120, 120, 220, 220]], [1, 1], [False, True])]


def perfect_detections(truths):
    """Every non-difficult truth found exactly, in a scrambled score order."""
    found = []
    for index, item in enumerate(truths):
        keep = ~item["difficult"]
        count = int(keep.sum())
        found.append(dict(boxes=item["boxes"][keep].clone(), labels=item["labels"][keep].clone(),
                          scores=torch.linspace(0.9, 0.6, count) - 0.05 * index))
    return found


def test_perfect_detections_score_one_everywhere():
    metrics = scores(perfect_detections(PERFECT_TRUTHS), PERFECT_TRUTHS, CLASSES)
    assert metrics["map_50"] == 1.0 and metrics["map_50_95"] == 1.0
    assert metrics["map_coco_50"] == metrics["map_50"] and metrics["map_75"] == 1.0  # COCO agrees with VOC
    assert metrics["ap50_cat"] == 1.0 and metrics["ap50_a_b"] == 1.0 and "ap50_ghost" not in metrics
    assert metrics["detections_per_image"] == pytest.approx(4 / 3)
    assert all(type(value) is float for value in metrics.values())


def test_loose_boxes_pass_at_half_iou_but_not_on_average():
    # Each 100 x 100 box shifted 24 px: IoU 76 / 124 = 0.613, a match at 0.50, 0.55, 0.60 only -> 3/10.
    truths = [truth([[0, 0, 100, 100]], [0]), truth([[50, 50, 150, 150]], [0])]
    shifted = [detected([[24, 0, 124, 100]], [0.9], [0]), detected([[50, 74, 150, 174]], [0.8], [0])]
    metrics = scores(shifted, truths, ["cat"])
    assert metrics["map_50"] == 1.0 and metrics["map_coco_50"] == 1.0
    assert metrics["map_50_95"] < 0.5 and metrics["map_50_95"] == pytest.approx(0.3, abs=1e-6)
    assert metrics["map_75"] == 0.0


def test_no_detections_score_zero():
    empty = [detected([], [], []) for _ in PERFECT_TRUTHS]
    metrics = scores(empty, PERFECT_TRUTHS, CLASSES)
    assert metrics["map_50"] == 0.0 and metrics["map_50_95"] == 0.0 and metrics["detections_per_image"] == 0.0


def test_scoring_prints_nothing(capsys):
    # pycocotools' summary on stdout would land in every flow's log, twice per evaluation.
    scores(perfect_detections(PERFECT_TRUTHS), PERFECT_TRUTHS, CLASSES)
    assert capsys.readouterr().out == ""


def test_coco_map_ignores_a_detection_on_a_difficult_truth():
    # The top-scored extra detection sits on image 2's difficult truth: ignored, mAP stays 1.
    detections = perfect_detections(PERFECT_TRUTHS)
    extra = detections[2]
    detections[2] = dict(boxes=torch.cat([torch.tensor([[121.0, 120, 220, 220]]), extra["boxes"]]),
                         scores=torch.cat([torch.tensor([0.99]), extra["scores"]]),
                         labels=torch.cat([torch.tensor([1]), extra["labels"]]))
    assert coco_map(detections, PERFECT_TRUTHS, CLASSES)["map_50_95"] == 1.0
    assert scores(detections, PERFECT_TRUTHS, CLASSES)["map_50"] == 1.0
    # The same detection with no truth under it is a top-scored false positive: the case can fail.
    no_difficult = [dict(item) for item in PERFECT_TRUTHS]
    no_difficult[2] = truth([[30, 40, 90, 200]], [1])
    assert coco_map(detections, no_difficult, CLASSES)["map_50_95"] < 1.0


def test_coco_map_keeps_a_duplicate_whose_best_overlap_is_a_normal_truth():
    # The second detection overlaps the normal cat (IoU 1, already matched) and a difficult cat (IoU
    # 0.82): its best truth is the normal one, so it is a duplicate FP for VOC and COCO alike.
    # TP, FP, TP (the far cat): precision 1, 1/2, 2/3; recall 1/2, 1/2, 1 -> AP 1/2 + 1/2 * 2/3 = 5/6.
    truths = [truth([[10, 10, 110, 110], [10, 10, 110, 132], [200, 200, 250, 250]], [0, 0, 0],
                    [False, True, False])]
    detections = [detected([[10, 10, 110, 110], [10, 10, 110, 110], [200, 200, 250, 250]], [0.95, 0.9, 0.8],
                           [0, 0, 0])]
    assert scores(detections, truths, ["cat"])["map_50"] == pytest.approx(5 / 6)
    # COCO, every IoU threshold alike: 101 recall points, 51 at precision 1 and 50 at 2/3.
    assert coco_map(detections, truths, ["cat"])["map_50_95"] == pytest.approx((51 + 50 * 2 / 3) / 101, abs=1e-6)


def test_coco_map_without_truths_is_nan():
    result = coco_map([detected([A1], [0.9], [0])], [truth([], [])], ["cat"])
    assert all(np.isnan(value) for value in result.values())
    assert all(np.isnan(value) for value in coco_map([], [], ["cat"]).values())


def test_mean_box_baseline_is_the_majority_class_mean_box_scaled_per_image():
    # cat boxes, relative: [0, 0, .5, .5] and [.25, .25, .75, .75] -> mean [.125, .125, .625, .625].
    # dog has more boxes only when its difficult ones count.
    train = [truth([[0, 0, 100, 50], [0, 0, 10, 10]], [0, 1]),
             truth([[50, 50, 150, 150], [0, 0, 20, 20], [5, 5, 9, 9]], [0, 1, 1], [False, True, True])]
    baseline = mean_box_baseline(train, [(100, 200), (200, 200)], [(100, 200), (400, 100)], ["cat", "dog"])
    assert len(baseline) == 2
    for found, (height, width) in zip(baseline, [(100, 200), (400, 100)]):
        assert found["labels"].tolist() == [0] and found["scores"].tolist() == [1.0]
        expected = torch.tensor([[0.125 * width, 0.125 * height, 0.625 * width, 0.625 * height]])
        assert torch.allclose(found["boxes"], expected)
    with pytest.raises(ValueError):
        mean_box_baseline([truth([A1], [0], [True])], [(10, 10)], [(10, 10)], ["cat"])


NASTY = ["<script>alert(1)</script>", "$\\frac$", "a&b"]


def test_figures_write_files_and_escape_class_names(tmp_path):
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (60, 80, 3), dtype=np.uint8) for _ in range(3)]
    truths = [truth([[5, 5, 40, 40], [30, 10, 70, 50]], [0, 1], [False, True]), truth([[1, 1, 20, 20]], [2]),
              truth([[10, 10, 50, 50]], [0])]
    detections = [detected([[6, 5, 40, 41], [0, 0, 5, 5]], [0.9, 0.2], [0, 2]), detected([[1, 1, 20, 20]], [0.7], [1]),
                  detected([], [], [])]
    curves = voc_curves(detections, truths, NASTY)
    baseline = voc_curves(mean_box_baseline(truths, [(60, 80)] * 3, [(60, 80)] * 3, NASTY), truths, NASTY)
    for written in [figures.prediction_pairs(images, truths, detections, NASTY, tmp_path / "pairs.png", max_images=2),
                    figures.pr_curves(curves, tmp_path / "pr.png"), figures.ap_bars(curves, tmp_path / "ap.png")]:
        data = written.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and 0 < len(data) < 400_000
    page = figures.ap_table_html(curves, baseline, tmp_path / "ap.html").read_text(encoding="utf-8")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "a&amp;b" in page
    assert "<script" not in page.lower() and "http" not in page and "src=" not in page
    assert page.count("<tr>") == 1 + len(NASTY)  # the header and one row per class; the mean row has its own class
