"""The detection demo set: deterministic, in the real Pascal VOC layout (torchvision reads it),
with boxes inside their images, both splits covering every class and no image in both."""

from __future__ import annotations

import hashlib
import xml.etree.ElementTree as ET
from collections import Counter

import pytest
from PIL import Image

from zooflow.tasks.detection.demo_data import CLASSES, build_detection


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    folder = tmp_path_factory.mktemp("detection") / "detection"
    return folder, build_detection(folder)


def voc_root(folder):
    return folder / "VOCdevkit" / "VOC2012"


def split_ids(folder, split):
    return (voc_root(folder) / "ImageSets" / "Main" / f"{split}.txt").read_text().split()


def objects(folder, image_id):
    """(size, objects) of one annotation, read with the standard library."""
    root = ET.parse(voc_root(folder) / "Annotations" / f"{image_id}.xml").getroot()
    size = tuple(int(root.findtext(f"size/{tag}")) for tag in ("width", "height", "depth"))
    found = []
    for element in root.findall("object"):
        box = tuple(int(element.findtext(f"bndbox/{tag}")) for tag in ("xmin", "ymin", "xmax", "ymax"))
        found.append({"name": element.findtext("name"), "box": box, "truncated": int(element.findtext("truncated")),
                      "difficult": int(element.findtext("difficult"))})
    return size, found


def digests(folder):
    return {str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(folder.rglob("*")) if path.is_file()}


def test_two_builds_are_byte_identical(built, tmp_path):
    folder, counts = built
    again = tmp_path / "detection"
    (again / "stale").mkdir(parents=True)  # a previous build's leftovers must go
    (again / "stale" / "old.txt").write_text("left over")
    assert build_detection(again) == counts
    first, second = digests(folder), digests(again)
    assert len(first) == 2 * (320 + 96) + 5  # images, annotations, 3 image sets, classes, README
    assert first == second


def test_torchvision_reads_the_layout(built):
    from torchvision.datasets import VOCDetection

    folder, _ = built
    for split, length in (("train", 320), ("val", 96)):
        dataset = VOCDetection(str(folder), year="2012", image_set=split, download=False)
        assert len(dataset) == length
        image, target = dataset[0]
        annotation = target["annotation"]
        assert annotation["filename"] == f"{split_ids(folder, split)[0]}.jpg"
        assert (int(annotation["size"]["width"]), int(annotation["size"]["height"])) == image.size
        assert annotation["object"]
        for element in annotation["object"]:
            assert element["name"] in CLASSES
            box = [int(element["bndbox"][tag]) for tag in ("xmin", "ymin", "xmax", "ymax")]
            assert 1 <= box[0] < box[2] <= image.width and 1 <= box[1] < box[3] <= image.height


def test_classes_and_ids(built):
    folder, _ = built
    assert (voc_root(folder) / "classes.txt").read_text().splitlines() == list(CLASSES)
    train, val = split_ids(folder, "train"), split_ids(folder, "val")
    assert train == [f"demo_{number:05d}" for number in range(320)]
    assert val == [f"demo_{number:05d}" for number in range(320, 416)]
    assert not set(train) & set(val)
    assert split_ids(folder, "trainval") == train + val
    readme = (folder / "README.md").read_text()
    for credit in ("Labeled Faces in the Wild", "MNIST", "CC BY-SA 3.0", "scikit-image"):
        assert credit in readme


def test_boxes_sizes_and_flags(built):
    folder, counts = built
    seen = Counter()
    flags = Counter()
    for split in ("train", "val"):
        for image_id in split_ids(folder, split):
            (width, height, depth), found = objects(folder, image_id)
            with Image.open(voc_root(folder) / "JPEGImages" / f"{image_id}.jpg") as image:
                assert (image.size, image.mode) == ((width, height), "RGB")
            assert depth == 3 and 240 <= width <= 320 and 240 <= height <= 320
            assert 1 <= len(found) <= 4
            if split == "train":
                assert any(not element["difficult"] for element in found), image_id
            for element in found:
                xmin, ymin, xmax, ymax = element["box"]
                assert 1 <= xmin < xmax <= width and 1 <= ymin < ymax <= height, image_id
                assert element["name"] in CLASSES
                seen[f"{split}/{element['name']}"] += 1
                flags["truncated"] += element["truncated"]
                flags["difficult"] += element["difficult"]
                flags["objects"] += 1
    assert dict(seen) == counts
    for name in CLASSES:
        assert counts[f"train/{name}"] >= 30 and counts[f"val/{name}"] >= 10, name
    # about 10 % cut by the border, some of them too little visible to count
    assert 0.05 * flags["objects"] <= flags["truncated"] <= 0.2 * flags["objects"]
    assert 0 < flags["difficult"] < flags["truncated"] + 0.1 * flags["objects"]


def test_box_is_the_visible_ink_in_voc_numbers():
    """A digit's box is the tight box of its ink above the threshold (not its pasted square),
    cut by the border and by a later object, in 1-based inclusive pixel numbers; cut thin or
    mostly hidden, it is difficult."""
    import numpy as np

    from zooflow.tasks.detection.demo_data import _describe, _Object, _on_image

    alpha = np.zeros((40, 40))
    alpha[10:30, 10:30] = 1.0  # the ink: rows and columns 10-29 of the pasted square
    alpha[5, 15] = 0.1  # too faint to count

    def record(left, top, hide_rows=0):
        digit = _Object("two", left=left, top=top, alpha=alpha)
        on_image = _on_image(digit, 200, 200)
        visible = on_image.copy()
        visible[:top + 10 + hide_rows] = 0  # a later opaque object over the ink's top rows
        return _describe(digit, on_image, visible)

    # whole: continuous columns 60..79, rows 60..79 -> VOC 61..80
    assert record(50, 50) == {"name": "two", "truncated": 0, "difficult": 0, "box": (61, 61, 80, 80)}
    # 3 ink columns beyond the left border: 17 wide, 85 % visible
    assert record(-13, 100) == {"name": "two", "truncated": 1, "difficult": 0, "box": (1, 111, 17, 130)}
    # 5 beyond: 15 wide is a side cut under 16 pixels
    assert record(-15, 100) == {"name": "two", "truncated": 1, "difficult": 1, "box": (1, 111, 15, 130)}
    # 12 of 20 rows hidden by a later object: 40 % visible
    assert record(50, 50, hide_rows=12) == {"name": "two", "truncated": 0, "difficult": 1, "box": (61, 73, 80, 80)}
    # 8 rows hidden: 60 % visible, but 12 rows high is a side cut under 16 pixels
    assert record(50, 50, hide_rows=8)["difficult"] == 1
    assert record(50, 50, hide_rows=4) == {"name": "two", "truncated": 0, "difficult": 0, "box": (61, 65, 80, 80)}
