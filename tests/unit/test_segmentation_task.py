"""Chapter 3's pieces that need no training: the mIoU figures against a matrix worked out by
hand, the augmentation's treatment of the 255 border and of padding, the served mask, and the
card's figures."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import tv_tensors

from zooflow.tasks.segmentation import figures, metrics, transforms
from zooflow.tasks.segmentation.task import mask_png
from zooflow.tasks.segmentation.voc import IGNORE, voc_palette

CLASSES = ["background", "cat", "dog"]


def test_confusion_counts_pixels_by_truth_and_prediction_and_skips_255():
    truth = torch.tensor([[0, 0, 1, 1], [2, 2, IGNORE, IGNORE]])
    predicted = torch.tensor([[0, 1, 1, 1], [2, 0, 2, 0]])
    matrix = metrics.confusion(predicted, truth, 3)
    # rows: truth 0 -> predicted 0, 1; truth 1 -> 1, 1; truth 2 -> 2, 0; the two 255 pixels not counted
    assert matrix.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]


def test_scores_match_a_matrix_worked_out_by_hand():
    # truth 0: 50 pixels, 40 right, 10 called 1; truth 1: 30 pixels, 20 right, 5 called 0, 5 called 2;
    # truth 2: 20 pixels, 10 right, 10 called 0.
    matrix = torch.tensor([[40, 10, 0], [5, 20, 5], [10, 0, 10]])
    found = metrics.scores(matrix, CLASSES)
    iou = {"background": 40 / (50 + 55 - 40), "cat": 20 / (30 + 30 - 20), "dog": 10 / (20 + 15 - 10)}
    assert found["iou_background"] == pytest.approx(40 / 65)
    assert found["iou_cat"] == pytest.approx(0.5)
    assert found["iou_dog"] == pytest.approx(0.4)
    assert found["miou"] == pytest.approx(sum(iou.values()) / 3)
    assert found["pixel_accuracy"] == pytest.approx(70 / 100)
    assert found["mean_class_accuracy"] == pytest.approx((40 / 50 + 20 / 30 + 10 / 20) / 3)


def test_a_class_in_neither_truth_nor_prediction_is_left_out_of_the_mean():
    matrix = torch.tensor([[8, 2, 0], [1, 9, 0], [0, 0, 0]])
    found = metrics.scores(matrix, CLASSES)
    assert "iou_dog" not in found
    assert found["miou"] == pytest.approx((8 / 11 + 9 / 12) / 2)
    assert math.isnan(metrics.class_ious(matrix)[2])


def test_a_class_predicted_but_absent_from_the_truth_scores_zero():
    matrix = torch.tensor([[8, 0, 2], [0, 10, 0], [0, 0, 0]])
    assert metrics.scores(matrix, CLASSES)["iou_dog"] == 0.0


def test_summing_per_image_matrices_equals_one_matrix_over_all_pixels():
    generator = torch.Generator().manual_seed(0)
    truths = [torch.randint(0, 3, (5, 7), generator=generator) for _ in range(4)]
    answers = [torch.randint(0, 3, (5, 7), generator=generator) for _ in range(4)]
    summed = sum(metrics.confusion(a, t, 3) for a, t in zip(answers, truths))
    whole = metrics.confusion(torch.cat([a.ravel() for a in answers]), torch.cat([t.ravel() for t in truths]), 3)
    assert torch.equal(summed, whole)


def test_the_most_frequent_class_baseline_scores_only_that_class():
    matrix = metrics.constant_confusion(torch.tensor([90, 6, 4]), 0)
    found = metrics.scores(matrix, CLASSES)
    assert found["pixel_accuracy"] == pytest.approx(0.9)
    assert found["iou_background"] == pytest.approx(0.9) and found["iou_cat"] == 0 and found["iou_dog"] == 0
    assert found["miou"] == pytest.approx(0.3)


def test_every_pixel_ignored_is_an_error_not_a_zero():
    with pytest.raises(ValueError, match="no scored pixels"):
        metrics.scores(torch.zeros(3, 3, dtype=torch.int64), CLASSES)


def test_shapes_must_agree():
    with pytest.raises(ValueError, match="differs"):
        metrics.confusion(torch.zeros(4, 4), torch.zeros(4, 5), 3)


def _pair(height=60, width=80):
    image = tv_tensors.Image(torch.randint(0, 256, (3, height, width), dtype=torch.uint8))
    mask = torch.zeros(height, width, dtype=torch.int64)
    mask[10:30, 20:50] = 1
    mask[9, 20:50] = IGNORE
    return image, tv_tensors.Mask(mask)


def test_training_pads_the_mask_with_255_and_never_invents_a_class():
    torch.manual_seed(0)
    augment = transforms.training(128, scale_min=0.3, scale_max=0.5, rotation=30, flip=True)
    for _ in range(5):
        image, mask = augment(*_pair())
        assert image.shape == (3, 128, 128) and image.dtype == torch.float32
        assert mask.shape == (128, 128) and mask.dtype == torch.int64
        assert set(mask.unique().tolist()) <= {0, 1, IGNORE}
        # a 60x80 image scaled to a short side of at most 64 fills less than the 128 square: padding is 255
        assert (mask == IGNORE).float().mean() > 0.5


def test_evaluation_resizes_image_and_mask_to_the_square_keeping_class_ids():
    image, mask = transforms.evaluation(96)(*_pair())
    assert image.shape == (3, 96, 96) and mask.shape == (96, 96)
    assert set(mask.unique().tolist()) <= {0, 1, IGNORE} and (mask == 1).any()


def test_a_served_mask_is_a_palette_png_of_class_ids_in_vocs_colours():
    values = np.array([[0, 1, 2], [2, 1, 0]], dtype=np.uint8)
    decoded = Image.open(io.BytesIO(mask_png(values)))
    assert decoded.format == "PNG" and decoded.mode == "P"
    assert np.array_equal(np.array(decoded), values)
    assert decoded.getpalette()[:9] == voc_palette()[:9]


def test_card_figures_are_written_and_name_classes_literally(tmp_path):
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (40, 50, 3), dtype=np.uint8) for _ in range(2)]
    truths = [np.where(rng.random((40, 50)) > 0.5, 1, 0).astype(np.uint8) for _ in range(2)]
    truths[0][0] = IGNORE
    classes = ["background", "$cat$", "<dog>"]
    paths = [figures.overlays(images, truths, truths, classes, tmp_path / "masks.png"),
             figures.iou_bars([0.9, 0.5, float("nan")], [0.8, 0.0, 0.0], classes, tmp_path / "bars.png"),
             figures.iou_table_html([0.9, 0.5, float("nan")], [0.8, 0.0, 0.0], classes, tmp_path / "iou.html")]
    for path in paths[:2]:
        assert Image.open(path).size[0] > 100
    table = paths[2].read_text()
    assert "&lt;dog&gt;" in table and "<dog>" not in table and "<td>-</td>" in table


def test_an_overlay_tints_objects_and_leaves_background_and_255_untouched():
    image = np.full((2, 2, 3), 100, dtype=np.uint8)
    mask = np.array([[0, 1], [IGNORE, 2]], dtype=np.uint8)
    shown = figures.overlay(image, mask)
    assert np.allclose(shown[0, 0], 100 / 255) and np.allclose(shown[1, 0], 100 / 255)
    assert not np.allclose(shown[0, 1], 100 / 255) and not np.allclose(shown[0, 1], shown[1, 1])
