"""The pose demo set: deterministic, in the real COCO keypoints format (pycocotools reads it),
with labels that agree with the drawn pixels: visible keypoints show their figure, covered ones
lie under a later figure, keypoints outside the image are unlabelled. Built at a reduced size:
every image has its own seed, so these are the first images of the full build."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from PIL import Image

from zooflow.data import scenes
from zooflow.tasks.pose.demo_data import (FACE, MIN_VISIBLE, PHOTOS, SHOULDERS, SPLITS, build_pose, hull, pose,
                                          scene)
from zooflow.tasks.pose.skeleton import COCO_KEYPOINTS

SMALL = (("train", 12), ("val", 4))
FACE_POINTS = [COCO_KEYPOINTS.index(name) for name in FACE]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pose") / "pose"
    return folder, build_pose(folder, SMALL)


@pytest.fixture(scope="module")
def photos():
    return [photo for (name, _), photo in zip(scenes.PHOTOS, scenes.photos()) if name in PHOTOS]


@pytest.fixture(scope="module")
def scenes_built(photos):
    """The builder's scenes of the reduced build, before JPEG: (background, image, people)."""
    return {image_id: scene(image_id, photos) for image_id in range(1, sum(size for _, size in SMALL) + 1)}


def load(folder, split):
    return json.loads((folder / "annotations" / f"person_keypoints_{split}.json").read_text())


def digests(folder):
    return {str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(folder.rglob("*")) if path.is_file()}


def test_two_builds_are_byte_identical(built, tmp_path):
    folder, counts = built
    again = tmp_path / "pose"
    (again / "stale").mkdir(parents=True)  # a previous build's leftovers must go
    (again / "stale" / "old.txt").write_text("left over")
    assert build_pose(again, SMALL) == counts
    first = digests(folder)
    assert len(first) == 16 + 2 + 1  # images, two annotation files, README
    assert first == digests(again)


def test_pycocotools_reads_both_files(built):
    from pycocotools.coco import COCO

    folder, counts = built
    for split, size in SMALL:
        coco = COCO(str(folder / "annotations" / f"person_keypoints_{split}.json"))
        assert len(coco.getImgIds()) == size == counts[f"{split}/images"]
        assert len(coco.getAnnIds()) == counts[f"{split}/people"] >= size  # everyone has a person
        assert coco.getCatIds() == [1]
        category = coco.loadCats(1)[0]
        assert category["keypoints"] == list(COCO_KEYPOINTS)
        assert len(category["skeleton"]) == 19
        assert all(1 <= a <= 17 and 1 <= b <= 17 for a, b in category["skeleton"])
        for image in coco.loadImgs(coco.getImgIds()):
            assert (folder / split / image["file_name"]).is_file()
            assert "/" not in image["file_name"]
            with Image.open(folder / split / image["file_name"]) as picture:
                assert picture.format == "JPEG" and picture.size == (image["width"], image["height"])


def test_annotations_follow_cocos_rules(built):
    folder, counts = built
    annotation_ids, image_ids = [], []
    for split, _ in SMALL:
        data = load(folder, split)
        sizes = {image["id"]: (image["width"], image["height"]) for image in data["images"]}
        image_ids += list(sizes)
        for record in data["annotations"]:
            annotation_ids.append(record["id"])
            width, height = sizes[record["image_id"]]
            assert record["category_id"] == 1 and record["iscrowd"] == 0
            keypoints = np.array(record["keypoints"]).reshape(17, 3)
            assert set(keypoints[:, 2].tolist()) <= {0, 1, 2}
            labelled = keypoints[:, 2] > 0
            assert record["num_keypoints"] == int(labelled.sum())
            assert (keypoints[~labelled] == 0).all()
            xs, ys = keypoints[labelled, 0], keypoints[labelled, 1]
            assert ((xs >= 0) & (xs < width) & (ys >= 0) & (ys < height)).all()
            assert (keypoints[:, 2] == 2).sum() >= MIN_VISIBLE
            left, top, box_width, box_height = record["bbox"]
            assert left >= 0 and top >= 0 and box_width > 0 and box_height > 0
            assert left + box_width <= width and top + box_height <= height
            assert 0 < record["area"] <= box_width * box_height
            # Visible keypoints lie on the visible pixels, so inside the box.
            visible = keypoints[:, 2] == 2
            assert ((keypoints[visible, 0] >= left) & (keypoints[visible, 0] < left + box_width)).all()
            assert ((keypoints[visible, 1] >= top) & (keypoints[visible, 1] < top + box_height)).all()
            (polygon,) = record["segmentation"]
            corners = np.array(polygon).reshape(-1, 2)
            assert len(corners) >= 3
            assert corners[:, 0].min() == left and corners[:, 0].max() == left + box_width
            assert corners[:, 1].min() == top and corners[:, 1].max() == top + box_height
        labels = [value for record in data["annotations"] for value in record["keypoints"][2::3]]
        assert counts[f"{split}/keypoints"] == sum(value > 0 for value in labels)
        assert counts[f"{split}/covered"] == sum(value == 1 for value in labels)
    assert len(set(annotation_ids)) == len(annotation_ids)  # unique across both files
    assert sorted(image_ids) == list(range(1, 17))


def test_the_files_are_the_builders_scenes(built, scenes_built):
    folder, _ = built
    for split, _ in SMALL:
        data = load(folder, split)
        for image in data["images"]:
            _, drawn, people = scenes_built[image["id"]]
            records = [record for record in data["annotations"] if record["image_id"] == image["id"]]
            assert [record["keypoints"] for record in records] == \
                [person.keypoints.ravel().tolist() for person in people]
            with Image.open(folder / split / image["file_name"]) as picture:
                decoded = np.asarray(picture.convert("RGB"), dtype=np.int64)
            assert np.abs(decoded - np.asarray(drawn, dtype=np.int64)).mean() < 6  # JPEG's loss only


def test_drawn_pixels_agree_with_the_labels(scenes_built):
    checked = {1: 0, 2: 0}
    for background, drawn, people in scenes_built.values():
        plain, canvas = np.asarray(background), np.asarray(drawn)
        anyone = np.zeros(plain.shape[:2], dtype=bool)
        for index, person in enumerate(people):
            anyone |= person.body | person.face
            later = np.zeros_like(anyone)
            for other in people[index + 1:]:
                later |= other.body | other.face
            for number, (x, y, v) in enumerate(person.keypoints.tolist()):
                if v == 2:  # the figure's own colour shows there: its body's, or a face point's
                    own = person.feature_colour if number in FACE_POINTS else person.colour
                    assert tuple(canvas[y, x]) == own
                    assert not later[y, x]
                elif v == 1:  # something drawn later covers it
                    assert later[y, x] or (number not in FACE_POINTS and person.face[y, x])
                if v:
                    checked[v] += 1
        assert (canvas[~anyone] == plain[~anyone]).all()  # the figures are all that is drawn
    assert checked[1] > 0 and checked[2] > 0


def test_people_overlap_hide_keypoints_and_are_cut_by_the_border(scenes_built):
    overlaps = covered = cut = 0
    for background, _, people in scenes_built.values():
        width, height = background.size
        for index, person in enumerate(people):
            mine = person.body | person.face
            overlaps += any((mine & (other.body | other.face)).any() for other in people[index + 1:])
            covered += int((person.keypoints[:, 2] == 1).sum())
            x, y = person.points[:, 0], person.points[:, 1]
            outside = (x < 0) | (x >= width) | (y < 0) | (y >= height)
            cut += bool(outside.any())
            assert (person.keypoints[outside] == 0).all()  # outside the image: unlabelled
            # ... but never a shoulder: the neck (OpenPose's root part) needs both
            assert (person.keypoints[list(SHOULDERS), 2] > 0).all()
    assert overlaps >= 2 and covered >= 3 and cut >= 2


def test_far_ear_of_a_head_in_profile_is_unlabelled_and_left_is_on_the_image_right():
    far_ears = 0
    for seed in range(200):
        person = pose(np.random.default_rng(seed))
        left, right = person.points[COCO_KEYPOINTS.index("left_shoulder")], \
            person.points[COCO_KEYPOINTS.index("right_shoulder")]
        assert left[0] > right[0]  # the figures face the camera
        assert person.drawn[[COCO_KEYPOINTS.index(name) for name in ("nose", "left_eye", "right_eye")]].all()
        far_ears += int((~person.drawn).sum())
        assert (~person.drawn).sum() <= 1  # at most one ear turned away
    assert far_ears > 0


def test_hull_of_a_rectangle_and_of_an_l_shape():
    mask = np.zeros((6, 8), dtype=bool)
    mask[1:4, 2:7] = True
    assert sorted(zip(hull(mask)[::2], hull(mask)[1::2])) == [(2, 1), (2, 4), (7, 1), (7, 4)]
    mask[4:6, 2:3] = True  # an L: the hull cuts the inner corner
    corners = set(zip(hull(mask)[::2], hull(mask)[1::2]))
    assert corners == {(2, 1), (7, 1), (7, 4), (3, 6), (2, 6)}


def test_readme_names_the_sources_and_the_counts(built):
    folder, counts = built
    readme = (folder / "README.md").read_text()
    for name in PHOTOS:
        assert f"`{name}`" in readme
    assert "astronaut" in readme and "`astronaut`" not in readme  # said to be left out, not used
    assert "skimage.data" in readme and "drawn by the builder" in readme
    for split, size in SMALL:
        assert f"| {split} | {size} | {counts[f'{split}/people']} | {counts[f'{split}/keypoints']} | " \
               f"{counts[f'{split}/covered']} (" in readme
    assert SPLITS == (("train", 320), ("val", 96))
