"""Chapter 4 groundwork: decoding OpenPose's maps into people. Peaks (one per keypoint, even between
two cells), then the round trip: the targets drawn for known people at stride 8 decode back into
the same people, parts not swapped between neighbours, and COCO's keypoint AP (pycocotools) scores
the decoded people near 1 and shifted or random ones lower."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from zooflow.tasks.pose import skeleton as sk
from zooflow.tasks.pose.decode import Person, decode, find_peaks, to_coco_results
from zooflow.tasks.pose.targets import heatmaps, pafs

STRIDE, IMAGE = 8, 368
SIZE = (IMAGE // STRIDE, IMAGE // STRIDE)

# A standing person, arms a little apart, as COCO keypoint offsets (x, y) from the hips' centre.
POSE = {"nose": (0, -100), "left_eye": (6, -106), "right_eye": (-6, -106), "left_ear": (14, -102),
        "right_ear": (-14, -102), "left_shoulder": (25, -70), "right_shoulder": (-25, -70),
        "left_elbow": (35, -25), "right_elbow": (-35, -25), "left_wrist": (40, 15), "right_wrist": (-40, 15),
        "left_hip": (15, 10), "right_hip": (-15, 10), "left_knee": (18, 60), "right_knee": (-18, 60),
        "left_ankle": (20, 110), "right_ankle": (-20, 110)}


def centre(i):
    """Input-pixel coordinate of cell i's centre at stride 8."""
    return (i + 0.5) * STRIDE - 0.5


def person(x, y, scale=1.0, absent=(), hidden=()):
    """COCO keypoints [17, 3] of POSE centred at (x, y), scaled; `absent` parts v=0, `hidden` v=1."""
    keypoints = np.zeros((17, 3), dtype=np.float32)
    for k, name in enumerate(sk.COCO_KEYPOINTS):
        if name not in absent:
            dx, dy = POSE[name]
            keypoints[k] = (x + scale * dx, y + scale * dy, 1 if name in hidden else 2)
    return keypoints


def maps_of(coco_people):
    people = sk.coco_to_openpose(np.stack(coco_people))
    return pafs(people, SIZE, STRIDE, limb_width=8.0), heatmaps(people, SIZE, STRIDE, sigma=7.0)


# Three people side by side: neighbouring wrists 19-20 px apart; the third smaller, higher, with its
# left leg unlabelled and its right ear labelled but hidden.
CROWD = [person(70, 190), person(170, 200, scale=1.05),
         person(280, 160, scale=0.9, absent=("left_knee", "left_ankle"), hidden=("right_ear",))]


def assign(decoded, truth):
    """For each decoded person, the truth person whose labelled keypoints are nearest on average."""
    owners = []
    for found in decoded:
        errors = []
        for keypoints in truth:
            both = (keypoints[:, 2] > 0) & (found.keypoints[:, 2] > 0)
            errors.append(np.linalg.norm(found.keypoints[both, :2] - keypoints[both, :2], axis=1).mean())
        owners.append(int(np.argmin(errors)))
    return owners


def check_round_trip(decoded, truth, tolerance):
    assert len(decoded) == len(truth)
    owners = assign(decoded, truth)
    assert sorted(owners) == list(range(len(truth)))  # one decoded person per true one
    for found, owner in zip(decoded, owners):
        keypoints = truth[owner]
        labelled = keypoints[:, 2] > 0
        # Every labelled keypoint found, at its place (so no part was given to a neighbour) ...
        assert (found.keypoints[labelled, 2] > 0.5).all()
        errors = np.linalg.norm(found.keypoints[labelled, :2] - keypoints[labelled, :2], axis=1)
        assert errors.max() < tolerance, f"person {owner}: errors {errors.round(2)}"
        # ... and nothing where there is no keypoint.
        assert (found.keypoints[~labelled] == 0).all()
        assert 0.4 < found.score <= 1.0 + 1e-6


# --- peaks ----------------------------------------------------------------------------------------

def test_one_peak_per_keypoint_refined_between_cells():
    # Part 0 on a cell centre, part 1 exactly half-way between two cells (a tie), part 2 between four.
    people = np.zeros((1, 18, 3), dtype=np.float32)
    people[0, 0] = (83.5, 43.5, 2)            # cell (5, 10)
    people[0, 1] = (87.5, 123.5, 2)           # between cells (15, 10) and (15, 11)
    people[0, 2] = (167.5, 167.5, 2)          # between cells 20 and 21 both ways
    peaks = find_peaks(heatmaps(people, SIZE, STRIDE, 7.0))
    assert [len(p.xy) for p in peaks] == [1, 1, 1] + [0] * 15
    assert peaks[0].xy[0].tolist() == pytest.approx([10, 5]) and peaks[0].value[0] == 1.0
    assert peaks[1].xy[0].tolist() == pytest.approx([10.5, 15], abs=1e-4)
    assert peaks[2].xy[0].tolist() == pytest.approx([20.5, 20.5], abs=1e-4)
    coarse = find_peaks(heatmaps(people, SIZE, STRIDE, 7.0), refine=False)
    assert coarse[1].xy[0].tolist() == [10, 15] and coarse[2].xy[0].tolist() == [20, 20]


def test_peaks_of_two_people_close_together_stay_apart_and_weak_ones_go():
    people = np.zeros((3, 18, 3), dtype=np.float32)
    people[0, 4] = centre(10), centre(10), 2
    people[1, 4] = centre(12), centre(10), 2  # two cells away
    people[2, 4] = centre(30), centre(30), 2
    maps = heatmaps(people, SIZE, STRIDE, 7.0)
    maps[4, 25:35, 25:35] *= 0.05             # a faint third one, under the threshold
    peaks = find_peaks(maps, threshold=0.1)[4]
    assert sorted(peaks.xy[:, 0].tolist()) == pytest.approx([10, 12], abs=1e-3)


# --- the round trip -------------------------------------------------------------------------------

def test_round_trip_recovers_each_person_at_stride_8():
    paf, heat = maps_of(CROWD)
    decoded = decode(paf, heat, stride=STRIDE)
    check_round_trip(decoded, CROWD, tolerance=1.0)  # sub-cell refinement recovers the Gaussians' centres
    assert all(isinstance(found, Person) and found.keypoints.shape == (17, 3) for found in decoded)
    assert [found.score for found in decoded] == sorted((found.score for found in decoded), reverse=True)


def test_round_trip_within_one_stride_without_refinement_and_when_upsampled():
    paf, heat = maps_of(CROWD)
    check_round_trip(decode(paf, heat, stride=STRIDE, refine=False), CROWD, tolerance=STRIDE)
    check_round_trip(decode(paf, heat, stride=STRIDE, upsample=STRIDE, smooth_sigma=3.0), CROWD, tolerance=STRIDE)


def test_arms_reaching_across_a_neighbour_are_not_mixed_up():
    # Two people 80 px apart. A holds its left arm out to the right across B's chest; B holds its
    # left arm across its own body towards A, a little lower. The parts that must be paired are of
    # the same kind, and distance alone would pair them wrongly: B's left shoulder is nearer A's
    # left elbow than its own, A's left elbow nearer B's left wrist than its own. Only the PAFs
    # (the two arms' fields run 20+ px apart) tell them apart.
    a, b = person(120, 190), person(200, 190)
    shoulder, elbow, wrist = (sk.COCO_KEYPOINTS.index(f"left_{name}") for name in ("shoulder", "elbow", "wrist"))
    a[shoulder, :2], a[elbow, :2], a[wrist, :2] = (145, 120), (185, 120), (230, 112)
    b[shoulder, :2], b[elbow, :2], b[wrist, :2] = (225, 120), (190, 145), (150, 145)

    def gap(p, q):
        return float(np.linalg.norm(p[:2] - q[:2]))
    assert gap(b[shoulder], a[elbow]) < gap(b[shoulder], b[elbow])
    assert gap(a[elbow], b[wrist]) < gap(a[elbow], a[wrist])
    paf, heat = maps_of([a, b])
    check_round_trip(decode(paf, heat, stride=STRIDE), [a, b], tolerance=1.0)


def test_small_fragments_and_empty_maps_give_no_people():
    fragment = person(100, 200, absent=[n for n in sk.COCO_KEYPOINTS if n not in ("left_hip", "left_knee")])
    paf, heat = maps_of([fragment])
    assert decode(paf, heat, stride=STRIDE) == []                       # 2 parts < 3
    assert len(decode(paf, heat, stride=STRIDE, min_parts=2)) == 1
    assert decode(torch.zeros(38, *SIZE), torch.zeros(19, *SIZE), stride=STRIDE) == []
    with pytest.raises(ValueError, match=r"paf \[38, h, w\]"):
        decode(torch.zeros(19, *SIZE), torch.zeros(38, *SIZE))


def test_distance_prior_lowers_the_score_of_long_limbs():
    paf, heat = maps_of([person(180, 200)])
    (normal,) = decode(paf, heat, stride=STRIDE)
    # The body's limbs (40-80 px) are longer than half of a 60-pixel image: they are penalised.
    (small_image,) = decode(paf, heat, stride=STRIDE, image_height=60, min_score=0.0)
    assert small_image.score < normal.score - 0.05
    np.testing.assert_allclose(small_image.keypoints, normal.keypoints)


# --- COCO results and OKS AP ----------------------------------------------------------------------

def coco_truth(people, image_id=7):
    annotations = []
    for n, keypoints in enumerate(people, start=1):
        labelled = keypoints[keypoints[:, 2] > 0]
        x0, y0 = labelled[:, :2].min(axis=0) - 10
        x1, y1 = labelled[:, :2].max(axis=0) + 10
        annotations.append({"id": n, "image_id": image_id, "category_id": 1, "iscrowd": 0,
                            "keypoints": keypoints.reshape(-1).tolist(), "num_keypoints": int(len(labelled)),
                            "bbox": [float(x0), float(y0), float(x1 - x0), float(y1 - y0)],
                            "area": float((x1 - x0) * (y1 - y0))})
    truth = COCO()
    truth.dataset = {"images": [{"id": image_id, "width": IMAGE, "height": IMAGE}], "annotations": annotations,
                     "categories": [{"id": 1, "name": "person", "keypoints": list(sk.COCO_KEYPOINTS)}]}
    with contextlib.redirect_stdout(io.StringIO()):
        truth.createIndex()
    return truth


def keypoint_ap(truth, results):
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints as it goes
        evaluation = COCOeval(truth, truth.loadRes(results), "keypoints")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return float(evaluation.stats[0])  # AP at OKS 0.50:0.05:0.95


def test_coco_results_format():
    paf, heat = maps_of(CROWD)
    results = to_coco_results(decode(paf, heat, stride=STRIDE), image_id=7)
    assert len(results) == 3
    for result in results:
        assert set(result) == {"image_id", "category_id", "keypoints", "score"}
        assert result["image_id"] == 7 and result["category_id"] == 1 and len(result["keypoints"]) == 51
        assert all(isinstance(v, float) for v in result["keypoints"]) and isinstance(result["score"], float)


def test_cocoeval_scores_the_round_trip_near_one_and_worse_people_lower():
    truth = coco_truth(CROWD)
    paf, heat = maps_of(CROWD)
    decoded = decode(paf, heat, stride=STRIDE)
    exact = keypoint_ap(truth, to_coco_results(decoded, image_id=7))
    coarse = keypoint_ap(truth, to_coco_results(decode(paf, heat, stride=STRIDE, refine=False), image_id=7))
    assert exact > 0.9 and coarse > 0.9

    shifted = [Person(found.keypoints + np.array([12.0, 12.0, 0.0], dtype=np.float32), found.score)
               for found in decoded]
    rng = np.random.default_rng(0)
    garbage = [Person(np.concatenate([rng.uniform(0, IMAGE, (17, 2)), np.ones((17, 1))], axis=1), 0.9)
               for _ in range(3)]
    shifted_ap = keypoint_ap(truth, to_coco_results(shifted, image_id=7))
    garbage_ap = keypoint_ap(truth, to_coco_results(garbage, image_id=7))
    assert shifted_ap < exact - 0.3 and garbage_ap < 0.05
