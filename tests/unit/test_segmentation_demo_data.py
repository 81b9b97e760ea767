"""The segmentation demo set: deterministic, in the real Pascal VOC layout (torchvision reads it and
sees our masks), with masks made of the pasted pixels, a 255 border along every boundary, and a
manifest that passes every flag. Built at a reduced size: the full build is the same code."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from PIL import Image

from zooflow.data import scenes
from zooflow.tasks.segmentation import voc
from zooflow.tasks.segmentation.demo_data import BORDER, CLASSES, SPLITS, bold, build_segmentation, with_border

SMALL = (("train", 12), ("val", 4))


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    folder = tmp_path_factory.mktemp("segmentation") / "segmentation"
    return folder, build_segmentation(folder, SMALL)


def voc_root(folder):
    return folder / "VOCdevkit" / "VOC2012"


def split_ids(folder, split):
    return (voc_root(folder) / "ImageSets" / "Segmentation" / f"{split}.txt").read_text().split()


def digests(folder):
    return {str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(folder.rglob("*")) if path.is_file()}


def test_two_builds_are_byte_identical(built, tmp_path):
    folder, counts = built
    again = tmp_path / "segmentation"
    (again / "stale").mkdir(parents=True)  # a previous build's leftovers must go
    (again / "stale" / "old.txt").write_text("left over")
    assert build_segmentation(again, SMALL) == counts
    first = digests(folder)
    assert len(first) == 2 * 16 + 5  # images, masks, 3 image sets, classes, README
    assert first == digests(again)


def test_torchvision_reads_the_layout_and_sees_our_masks(built):
    from torchvision.datasets import VOCSegmentation

    folder, _ = built
    for split, length in SMALL:
        theirs = VOCSegmentation(str(folder), year="2012", image_set=split, download=False)
        ours = voc.VOCSegmentation(folder, split, list(CLASSES))
        assert len(theirs) == len(ours) == length
        for index in range(length):
            image, target = theirs[index]
            our_image, our_mask = ours[index]
            assert target.mode == "P" and image.size == target.size == (our_mask.shape[1], our_mask.shape[0])
            assert (np.asarray(target) == our_mask.numpy()).all()
            assert (np.asarray(image).transpose(2, 0, 1) == our_image.numpy()).all()


def test_layout_classes_and_manifest(built):
    folder, counts = built
    assert (voc_root(folder) / "classes.txt").read_text().splitlines() == list(CLASSES)
    assert CLASSES == ("background", "face", "zero", "one", "two", "three")
    assert SPLITS == (("train", 320), ("val", 96))  # the detection demo's sizes
    train, val = split_ids(folder, "train"), split_ids(folder, "val")
    assert train == [f"demo_{number:05d}" for number in range(12)] and split_ids(folder, "trainval") == train + val
    table = voc.manifest(folder, voc.read_classes(voc_root(folder)))
    assert len(table) == 16 and all(table[flag].all() for flag in voc.FLAGS) and not table["in_other_split"].any()
    assert table["mask_mode"].eq("P").all() and ((table["width"] >= 240) & (table["height"] <= 320)).all()
    assert sum(counts.values()) >= 16
    readme = (folder / "README.md").read_text()
    for credit in ("Labeled Faces in the Wild", "MNIST", "CC BY-SA 3.0", "scikit-image", "255"):
        assert credit in readme


def test_every_mask_has_objects_an_ignore_border_and_vocs_palette(built):
    folder, _ = built
    palette = voc.voc_palette()
    for image_id in split_ids(folder, "train") + split_ids(folder, "val"):
        with Image.open(voc_root(folder) / "SegmentationClass" / f"{image_id}.png") as mask:
            assert mask.getpalette() == palette
            values = np.asarray(mask)
        present = set(np.unique(values).tolist())
        assert present <= {*range(len(CLASSES)), voc.IGNORE} and present & set(range(1, len(CLASSES)))
        assert voc.IGNORE in present and 0 in present
        # every labelled object pixel next to background sits inside the ignore band, never touches it
        objects = (values > 0) & (values != voc.IGNORE)
        background = values == 0
        assert not (objects[:, 1:] & background[:, :-1]).any() and not (objects[1:] & background[:-1]).any()


def test_with_border_marks_both_sides_of_each_boundary_but_not_the_image_edge():
    labels = np.zeros((10, 12), dtype=np.uint8)
    labels[3:7, 0:5] = 2  # touches the left edge
    marked = with_border(labels)
    ring = np.zeros_like(labels, dtype=bool)
    ring[3 - BORDER:7 + BORDER, 0:5 + BORDER] = True
    ring[3 + BORDER:7 - BORDER, 0:5 - BORDER] = False
    assert ((marked == voc.IGNORE) == ring).all()
    assert (marked[4:6, 0:4] == 2).all() and marked[0, 0] == 0


def test_mask_is_the_pasted_pixels_later_over_earlier():
    """A face is its whole pasted square; a digit is its ink above the threshold (faint ink and
    holes are background); a digit pasted later covers the face where its ink is."""
    from zooflow.tasks.segmentation.demo_data import _labels

    face = scenes.Pasted("face", left=2, top=2, alpha=np.ones((6, 6)), colour=np.zeros((6, 6, 3)))
    ink = np.zeros((5, 5))
    ink[1:4, 1:4] = 0.9
    ink[2, 2] = 0.0  # a hole
    ink[0, 0] = scenes.INK_ALPHA  # faint: not the digit's
    two = scenes.Pasted("two", left=5, top=5, alpha=ink)
    canvas = Image.new("RGB", (12, 12))
    placed = [scenes.on_image(obj, 12, 12) for obj in (face, two)]
    labels, owner = _labels([face, two], placed, canvas)
    expected = np.zeros((12, 12), dtype=np.uint8)
    expected[2:8, 2:8] = CLASSES.index("face")
    expected[6:9, 6:9] = CLASSES.index("two")
    expected[7, 7] = CLASSES.index("face")  # the hole shows the face under it
    assert (labels == expected).all()
    assert owner[7, 7] == 0 and owner[6, 6] == 1 and owner[0, 0] == -1


def test_bold_digits_keep_their_ink_and_widen_each_stroke_by_one_pixel_a_side():
    digit = np.zeros((1, 7, 7), dtype=np.uint8)
    digit[0, 1:6, 3] = 200  # a vertical stroke one pixel wide
    digit[0, 3, 3] = 255
    thick = bold(digit)[0]
    assert (thick >= digit[0]).all(), "no ink is lost"
    assert np.array_equal(np.flatnonzero(thick[3]), [2, 3, 4]) and (thick[3, 2:5] == 255).all()
    assert (thick[0, 2:5] == 200).all() and thick[0, 1] == 0 and (thick[6] == 200).sum() == 3
    assert thick[0, 0] == 0 and (thick[:, 0] == 0).all(), "nothing beyond one pixel"
