"""Chapter 4 groundwork: the OpenPose skeleton on COCO keypoints (part order, neck, limbs and their
PAF channels, the left/right swap of a flip) and the training targets (Gaussian heatmaps with their
background channel, count-averaged part affinity fields, the loss mask), checked against values
worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from zooflow.tasks.pose import skeleton as sk
from zooflow.tasks.pose.targets import cell_to_pixel, flip_maps, heatmaps, loss_mask, pafs, pixel_to_cell

STRIDE, SIZE = 8, (46, 46)  # a 368 x 368 input at the network's stride
SIGMA, WIDTH = 7.0, 8.0


def centre(i):
    """Input-pixel coordinate of cell i's centre at stride 8."""
    return (i + 0.5) * STRIDE - 0.5


def people_with(*parts_per_person):
    """OpenPose people [N, 18, 3] from {part name: (x, y[, v])} dicts (v = 2 unless given)."""
    people = np.zeros((len(parts_per_person), len(sk.PARTS), 3), dtype=np.float32)
    for n, parts in enumerate(parts_per_person):
        for name, value in parts.items():
            people[n, sk.PARTS.index(name)] = (*value, 2)[:3]
    return people


# --- skeleton -------------------------------------------------------------------------------------

def test_part_orders_and_cmu_limb_layout():
    assert len(sk.COCO_KEYPOINTS) == 17 and len(sk.PARTS) == 18 and sk.HEATMAP_CHANNELS == 19
    assert sk.PARTS[:5] == ("nose", "neck", "right_shoulder", "right_elbow", "right_wrist")
    assert sk.PARTS[14:] == ("right_eye", "left_eye", "right_ear", "left_ear")
    assert [sk.PARTS[p] for p in sk.COCO_TO_OPENPOSE] == list(sk.COCO_KEYPOINTS)
    assert sorted(sk.COCO_TO_OPENPOSE) == [p for p in range(18) if p != sk.NECK]
    # CMU's demo tables (1-based parts; PAF channels counted after the 19 heatmaps): limb by limb,
    # the same pair of parts owns the same two channels here.
    limb_seq = [[2, 3], [2, 6], [3, 4], [4, 5], [6, 7], [7, 8], [2, 9], [9, 10], [10, 11], [2, 12], [12, 13],
                [13, 14], [2, 1], [1, 15], [15, 17], [1, 16], [16, 18], [3, 17], [6, 18]]
    map_idx = [[31, 32], [39, 40], [33, 34], [35, 36], [41, 42], [43, 44], [19, 20], [21, 22], [23, 24], [25, 26],
               [27, 28], [29, 30], [47, 48], [49, 50], [53, 54], [51, 52], [55, 56], [37, 38], [45, 46]]
    assert len(sk.LIMBS) == 19 and len(sk.PAF_CHANNELS) == 19
    for (a, b), (cx, cy) in zip(limb_seq, map_idx):
        limb = sk.LIMBS.index((a - 1, b - 1))
        assert sk.PAF_CHANNELS[limb] == (cx - 19, cy - 19)
    assert sorted(sk.ASSEMBLY_ORDER) == list(range(19)) and set(sk.ASSEMBLY_ORDER[-2:]) == set(sk.REDUNDANT_LIMBS)
    assert {sk.PARTS[p] for limb in sk.REDUNDANT_LIMBS for p in sk.LIMBS[limb]} == {
        "right_shoulder", "right_ear", "left_shoulder", "left_ear"}


def test_tree_limbs_span_all_parts_from_the_neck_in_assembly_order():
    reached = {sk.NECK}
    for limb in sk.ASSEMBLY_ORDER[:-2]:
        a, b = sk.LIMBS[limb]
        assert a in reached and b not in reached  # a tree, grown outward from the neck
        reached.add(b)
    assert reached == set(range(18))


def test_coco_openpose_round_trip_keeps_the_17_keypoints():
    rng = np.random.default_rng(0)
    coco = np.concatenate([rng.uniform(0, 368, (5, 17, 2)), rng.integers(0, 3, (5, 17, 1))], axis=-1)
    parts = sk.coco_to_openpose(coco)
    assert parts.shape == (5, 18, 3) and parts.dtype == np.float32
    np.testing.assert_allclose(sk.openpose_to_coco(parts), coco.astype(np.float32))
    np.testing.assert_allclose(sk.openpose_to_coco(sk.coco_to_openpose(coco[0])), coco[0].astype(np.float32))
    assert parts[0, sk.PARTS.index("left_wrist")].tolist() == pytest.approx(
        coco[0, sk.COCO_KEYPOINTS.index("left_wrist")].tolist())
    with pytest.raises(ValueError, match=r"\[\.\.\., 17, 3\]"):
        sk.coco_to_openpose(np.zeros((2, 18, 3)))


@pytest.mark.parametrize(("left_v", "right_v", "neck_v"), [(2, 2, 2), (1, 2, 1), (2, 0, 0), (0, 1, 0), (0, 0, 0)])
def test_neck_only_when_both_shoulders_are_labelled(left_v, right_v, neck_v):
    coco = np.zeros((17, 3), dtype=np.float32)
    coco[sk.COCO_KEYPOINTS.index("left_shoulder")] = (120, 80, left_v)
    coco[sk.COCO_KEYPOINTS.index("right_shoulder")] = (80, 90, right_v)
    neck = sk.coco_to_openpose(coco)[sk.NECK]
    assert neck.tolist() == ([100, 85, neck_v] if neck_v else [0, 0, 0])


def test_flip_swaps_left_and_right_and_is_an_involution():
    assert all(sk.FLIP_PARTS[sk.FLIP_PARTS[p]] == p for p in range(18))
    assert all(sk.FLIP_LIMBS[sk.FLIP_LIMBS[k]] == k for k in range(19))
    for p, name in enumerate(sk.PARTS):
        mirrored = sk.PARTS[sk.FLIP_PARTS[p]]
        if name.startswith("left_"):
            assert mirrored == "right_" + name[5:]
        elif name.startswith("right_"):
            assert mirrored == "left_" + name[6:]
        else:
            assert mirrored == name
    for k, (a, b) in enumerate(sk.LIMBS):
        assert sk.LIMBS[sk.FLIP_LIMBS[k]] == (sk.FLIP_PARTS[a], sk.FLIP_PARTS[b])

    people = people_with({"left_shoulder": (300, 50), "right_shoulder": (250, 52), "nose": (10, 5, 1)})
    flipped = sk.flip_people(people, width=368)
    assert flipped[0, sk.PARTS.index("right_shoulder")].tolist() == [367 - 300, 50, 2]
    assert flipped[0, sk.PARTS.index("left_shoulder")].tolist() == [367 - 250, 52, 2]
    assert flipped[0, sk.PARTS.index("nose")].tolist() == [357, 5, 1]
    assert flipped[0, sk.PARTS.index("left_wrist")].tolist() == [0, 0, 0]  # absent parts stay absent
    np.testing.assert_array_equal(sk.flip_people(flipped, width=368), people)


# --- heatmaps -------------------------------------------------------------------------------------

def test_cell_centre_convention():
    assert cell_to_pixel(0, 8) == 3.5 and cell_to_pixel(45, 8) == 363.5  # symmetric in a 368-pixel image
    assert pixel_to_cell(cell_to_pixel(7.25, 8), 8) == pytest.approx(7.25)


def test_heatmap_peaks_at_the_keypoint_cell_with_the_right_gaussian():
    people = people_with({"right_elbow": (centre(20), centre(10))})
    maps = heatmaps(people, SIZE, STRIDE, SIGMA)
    assert maps.shape == (19, 46, 46) and maps.dtype == torch.float32
    elbow = maps[sk.PARTS.index("right_elbow")]
    assert elbow[10, 20] == 1.0 and divmod(int(elbow.argmax()), 46) == (10, 20)
    one_cell = math.exp(-STRIDE ** 2 / (2 * SIGMA ** 2))
    assert elbow[10, 21].item() == pytest.approx(one_cell) and elbow[9, 20].item() == pytest.approx(one_cell)
    assert elbow[11, 21].item() == pytest.approx(one_cell ** 2)                  # diagonal: d^2 = 2 * 8^2
    assert elbow[10, 23].item() == pytest.approx(math.exp(-24 ** 2 / (2 * SIGMA ** 2)))
    others = torch.cat([maps[:sk.PARTS.index("right_elbow")], maps[sk.PARTS.index("right_elbow") + 1:18]])
    assert others.abs().max() == 0


def test_heatmap_off_centre_keypoint_matches_the_formula_everywhere():
    x, y = 101.3, 57.8
    maps = heatmaps(people_with({"nose": (x, y)}), SIZE, STRIDE, SIGMA)
    ys, xs = np.meshgrid(centre(np.arange(46)), centre(np.arange(46)), indexing="ij")
    expected = np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * SIGMA ** 2))
    np.testing.assert_allclose(maps[0].numpy(), expected, atol=1e-6)


def test_two_people_take_the_max_not_the_sum():
    # Two left knees three cells apart: between them each Gaussian is exp(-12^2 / 2 sigma^2) ~ 0.23.
    a, b = (centre(10), centre(20)), (centre(13), centre(20))
    knee = sk.PARTS.index("left_knee")
    both = heatmaps(people_with({"left_knee": a}, {"left_knee": b}), SIZE, STRIDE, SIGMA)[knee]
    one = heatmaps(people_with({"left_knee": a}), SIZE, STRIDE, SIGMA)[knee]
    other = heatmaps(people_with({"left_knee": b}), SIZE, STRIDE, SIGMA)[knee]
    torch.testing.assert_close(both, torch.maximum(one, other))
    assert both[20, 10] == 1.0 and both[20, 13] == 1.0 and both.max() == 1.0
    assert both[20, 11].item() == pytest.approx(math.exp(-64 / (2 * SIGMA ** 2)))


def test_unlabelled_parts_draw_nothing_and_labelled_invisible_ones_do():
    maps = heatmaps(people_with({"nose": (100, 100, 0), "neck": (100, 150, 1)}), SIZE, STRIDE, SIGMA)
    assert maps[0].max() == 0 and maps[1].max() > 0.9


def test_background_is_one_minus_the_largest_part():
    maps = heatmaps(people_with({"nose": (100, 100), "neck": (110, 140)}), SIZE, STRIDE, SIGMA)
    torch.testing.assert_close(maps[18], 1 - maps[:18].amax(dim=0))
    assert maps[18].min() >= 0 and maps[18].max() == 1.0
    empty = heatmaps(np.zeros((0, 18, 3)), SIZE, STRIDE, SIGMA)
    assert empty[:18].max() == 0 and empty[18].min() == 1.0


# --- part affinity fields -------------------------------------------------------------------------

def limb_channels(first, second):
    limb = sk.LIMBS.index((sk.PARTS.index(first), sk.PARTS.index(second)))
    return sk.PAF_CHANNELS[limb]


def test_paf_is_the_unit_vector_along_the_limb_and_zero_away_from_it():
    # Right elbow -> right wrist, horizontal along row 20 from cell 10 to cell 30.
    people = people_with({"right_elbow": (centre(10), centre(20)), "right_wrist": (centre(30), centre(20))})
    fields = pafs(people, SIZE, STRIDE, WIDTH)
    assert fields.shape == (38, 46, 46) and fields.dtype == torch.float32
    cx, cy = limb_channels("right_elbow", "right_wrist")
    # Within 8 px of the segment: rows 19..21 (8 px away) along cells 10..30, plus the round ends.
    on = fields[cx] != 0
    assert on[19:22, 10:31].all() and not on[18].any() and not on[22].any()
    assert on[20, 9] and on[20, 31] and not on[20, 8] and not on[20, 32] and not on[19, 9]
    assert (fields[cx][on] == 1.0).all() and fields[cy].abs().max() == 0
    others = [c for c in range(38) if c not in (cx, cy)]
    assert fields[others].abs().max() == 0


def test_paf_of_a_slanted_limb_has_unit_length_and_its_direction():
    people = people_with({"neck": (100.0, 60.0), "left_hip": (160.0, 140.0)})
    cx, cy = limb_channels("neck", "left_hip")
    fields = pafs(people, SIZE, STRIDE, WIDTH)
    on = (fields[cx] != 0) | (fields[cy] != 0)
    assert on.sum() > 15
    torch.testing.assert_close(torch.hypot(fields[cx][on], fields[cy][on]), torch.ones(int(on.sum())))
    torch.testing.assert_close(fields[cx][on], torch.full((int(on.sum()),), 0.6))
    torch.testing.assert_close(fields[cy][on], torch.full((int(on.sum()),), 0.8))
    # The cell of the limb's middle is on it; a cell 30 px to the side of the middle is not.
    assert on[int(pixel_to_cell(100, 8) + 0.5), int(pixel_to_cell(130, 8) + 0.5)]
    assert not on[int(pixel_to_cell(100 - 18, 8) + 0.5), int(pixel_to_cell(130 + 24, 8) + 0.5)]


def test_overlapping_limbs_are_averaged_not_summed():
    cx, cy = limb_channels("left_elbow", "left_wrist")
    row = centre(20)
    rightward = {"left_elbow": (centre(5), row), "left_wrist": (centre(25), row)}
    downward = {"left_elbow": (centre(15), centre(10)), "left_wrist": (centre(15), centre(30))}
    also_rightward = {"left_elbow": (centre(10), row), "left_wrist": (centre(30), row)}
    fields = pafs(people_with(rightward, downward, also_rightward), SIZE, STRIDE, WIDTH)
    # Where the two rightward limbs overlap alone: still unit length.
    assert fields[cx, 20, 20].item() == pytest.approx(1.0) and fields[cy, 20, 20].item() == 0.0
    # Where all three cover the cell: the mean of (1, 0), (0, 1) and (1, 0).
    assert fields[cx, 20, 15].item() == pytest.approx(2 / 3) and fields[cy, 20, 15].item() == pytest.approx(1 / 3)
    # Where only the downward one is.
    assert fields[cx, 12, 15].item() == 0.0 and fields[cy, 12, 15].item() == pytest.approx(1.0)
    # Where the rightward one at cell 5 alone lies.
    assert fields[cx, 20, 6].item() == pytest.approx(1.0)


def test_paf_needs_both_ends_labelled_and_apart():
    cx, cy = limb_channels("neck", "nose")
    missing = people_with({"neck": (100, 100), "nose": (100, 60, 0)})
    same_spot = people_with({"neck": (100, 100), "nose": (100, 100)})
    for people in (missing, same_spot):
        fields = pafs(people, SIZE, STRIDE, WIDTH)
        assert torch.isfinite(fields).all() and fields.abs().max() == 0
    assert pafs(np.zeros((0, 18, 3)), SIZE, STRIDE, WIDTH).abs().max() == 0


def test_targets_of_flipped_people_are_the_flipped_targets():
    rng = np.random.default_rng(1)
    people = np.concatenate([rng.uniform(0, 367, (3, 18, 2)), rng.integers(0, 3, (3, 18, 1))], axis=-1)
    flipped = sk.flip_people(people, width=368)
    heat, field = flip_maps(heatmaps(people, SIZE, STRIDE, SIGMA), pafs(people, SIZE, STRIDE, WIDTH))
    torch.testing.assert_close(heatmaps(flipped, SIZE, STRIDE, SIGMA), heat, atol=1e-5, rtol=0)
    torch.testing.assert_close(pafs(flipped, SIZE, STRIDE, WIDTH), field, atol=1e-5, rtol=0)


# --- loss mask ------------------------------------------------------------------------------------

def test_loss_mask_zeros_every_cell_touching_an_ignored_region():
    regions = np.zeros((368, 368), dtype=bool)
    regions[80:160, 200:240] = True  # exactly cells rows 10..19, cols 25..29
    regions[300, 9] = True           # one pixel: cell (37, 1) is touched, so skipped
    mask = loss_mask(SIZE, STRIDE, regions)
    assert mask.shape == (46, 46) and mask.dtype == torch.float32
    expected = torch.ones(46, 46)
    expected[10:20, 25:30] = 0
    expected[37, 1] = 0
    torch.testing.assert_close(mask, expected)
    assert loss_mask(SIZE, STRIDE, None).min() == 1.0


def test_loss_mask_of_an_image_smaller_or_larger_than_the_map():
    small = np.ones((20, 30), dtype=bool)        # covers cells rows 0..2, cols 0..3 partly
    mask = loss_mask((4, 5), 8, small)
    assert mask[:3, :4].max() == 0 and mask[3].min() == 1 and mask[:, 4].min() == 1
    large = np.zeros((50, 50), dtype=bool)
    large[45:, 45:] = True                       # beyond the 4 x 5 map's 32 x 40 pixels
    assert loss_mask((4, 5), 8, large).min() == 1
    with pytest.raises(ValueError, match="pixel mask"):
        loss_mask((4, 5), 8, np.zeros((2, 20, 30), dtype=bool))
