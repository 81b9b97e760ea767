"""The Pascal VOC detection layout: reading it, describing it for validation, serving it to training.

The task's data folder holds exactly one ``VOCdevkit/VOC<year>/`` with:

- ``JPEGImages/<id>.jpg`` (``.jpeg``/``.png`` accepted too),
- ``Annotations/<id>.xml``: the image's size and its objects (class name, box, difficult, truncated),
- ``ImageSets/Main/train.txt`` and ``val.txt``: the image ids of each split, one per line,
- optionally ``classes.txt``: the class set, one per line (absent: the 20 VOC classes).

Box coordinates are kept as VOC writes them: 1-based, inclusive pixel numbers, so a box that
covers a whole 500-pixel-wide image is ``xmin=1, xmax=500``. ``VOCObject.box()`` turns them into
the continuous 0-based coordinates the models and metrics use (``(0, ..., 500, ...)``).

Annotations are parsed with ``defusedxml``: an XML that declares a DTD or entities (the
"billion laughs" expansion bomb, or an external entity that would read ``/etc/passwd`` into a
label) is refused, never expanded.

``manifest`` never raises for bad data: each problem is a row whose ``error`` says what is wrong
and whose flag column is False, and the expectations require every flag. Each problem fails
exactly one flag, so validation names it once: a missing XML is ``has_annotation`` (``xml_ok``
stays True), a missing image is ``has_image`` (``decodes`` stays True), an image that does not
decode is ``decodes`` (``size_matches`` stays True), and a file in no split is ``listed`` only
(it is not read at all).

The folder, class set and split rules are those of every VOC task (``zooflow.data.voc_layout``):
this module's ``LAYOUT`` names detection's parts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
from torch.utils.data import Dataset

from zooflow.data import images, safety, voc_layout
from zooflow.data.images import MAX_SIDE
from zooflow.data.voc_layout import (  # noqa: F401 - the layout's names, as detection's modules and tests use them
    CLASSES_FILE, DEVKIT, IMAGES, SPLITS, VOC_CLASSES, Scan, find_image, plain_file_name)
from zooflow.errors import InputRejected

ANNOTATIONS = "Annotations"
SPLIT_FOLDER = "ImageSets/Main"
BOX_TAGS = ("xmin", "ymin", "xmax", "ymax")


class AnnotationError(InputRejected):
    """An annotation file (or split list) that cannot be read; the message names the file, the
    object number when it is about one object, and what is wrong."""


@dataclass(frozen=True)
class VOCObject:
    """One annotated object, its box as written in the XML (1-based inclusive pixel numbers)."""

    label: str
    xmin: float
    ymin: float
    xmax: float
    ymax: float
    difficult: bool
    truncated: bool

    def box(self) -> tuple[float, float, float, float]:
        """The box in continuous 0-based pixel coordinates: pixel 1 starts at 0, pixel ``xmax``
        ends at ``xmax``."""
        return (self.xmin - 1, self.ymin - 1, self.xmax, self.ymax)


@dataclass(frozen=True)
class Annotation:
    """One ``Annotations/<id>.xml``: the image file it describes, its size and its objects."""

    filename: str
    width: int
    height: int
    objects: tuple[VOCObject, ...]


LAYOUT = voc_layout.Layout(task="detection", labels=ANNOTATIONS, label_suffix=".xml", label_kind="annotation",
                           labels_hold="their boxes", split_folder=SPLIT_FOLDER, default_classes=VOC_CLASSES,
                           default_source="the 20 VOC classes", error=AnnotationError)

# -- the folder, the class set, the splits ----------------------------------------------------

voc_root = LAYOUT.voc_root
read_classes = LAYOUT.read_classes
split_file = LAYOUT.split_file
id_problem = LAYOUT.id_problem
read_split = LAYOUT.read_split


# -- one annotation ----------------------------------------------------------------------------

def _text(element, tag: str, where: str, required: bool = True) -> str | None:
    """The stripped text of ``element``'s child ``tag``; missing is an error when required."""
    child = element.find(tag)
    if child is None or child.text is None or not child.text.strip():
        if required:
            raise AnnotationError(f"{where}: <{tag}> is missing or empty")
        return None
    return child.text.strip()


def _number(element, tag: str, where: str) -> float:
    """A finite number from ``element``'s child ``tag`` (VOC sometimes writes "273.5")."""
    text = _text(element, tag, where)
    try:
        value = float(text)
    except ValueError:
        raise AnnotationError(f"{where}: <{tag}> {text!r} is not a number") from None
    if not math.isfinite(value):
        raise AnnotationError(f"{where}: <{tag}> {text!r} is not a finite number")
    return value


def _whole_number(element, tag: str, where: str) -> int:
    value = _number(element, tag, where)
    if value != int(value):
        raise AnnotationError(f"{where}: <{tag}> {value:g} is not a whole number of pixels")
    return int(value)


def _flag(element, tag: str, where: str) -> bool:
    """A 0/1 flag such as ``<difficult>``; missing means 0."""
    text = _text(element, tag, where, required=False)
    if text is None:
        return False
    if text not in ("0", "1"):
        raise AnnotationError(f"{where}: <{tag}> {text!r} is not 0 or 1")
    return text == "1"


def _object(element, where: str) -> VOCObject:
    box = element.find("bndbox")
    if box is None:
        raise AnnotationError(f"{where}: <bndbox> is missing")
    return VOCObject(label=_text(element, "name", where), **{tag: _number(box, tag, where) for tag in BOX_TAGS},
                     difficult=_flag(element, "difficult", where), truncated=_flag(element, "truncated", where))


def _parse_xml(data: bytes, path: Path):
    """The XML's root element, refusing DTDs, entities and external references."""
    import defusedxml
    from defusedxml import ElementTree

    try:
        return ElementTree.fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except defusedxml.DTDForbidden:
        raise AnnotationError(f"{path}: the XML declares a DTD (<!DOCTYPE ...>), which may define entities; "
                              "DTDs and entities are refused (a VOC annotation needs none)") from None
    except defusedxml.EntitiesForbidden:
        raise AnnotationError(f"{path}: the XML declares entities (<!ENTITY ...>); entities are refused (they can "
                              "expand into gigabytes or read other files)") from None
    except defusedxml.ExternalReferenceForbidden:
        raise AnnotationError(f"{path}: the XML references an external resource; that is refused") from None
    except defusedxml.DefusedXmlException as error:
        raise AnnotationError(f"{path}: the XML uses a construct that is refused ({type(error).__name__})") from None
    except ElementTree.ParseError as error:
        raise AnnotationError(f"{path}: the XML does not parse: {error}") from None


def parse_annotation(path: Path) -> Annotation:
    """Read one ``Annotations/<id>.xml`` (a plain file: links are refused). Malformed XML, a
    missing tag, a non-number or a ``<filename>`` that is not a plain file name is an
    ``AnnotationError`` naming the file (and ``object <k>``, counted from 1, and the tag). Class
    names and box geometry are not judged here: the manifest reports them, all at once."""
    path = Path(path)
    try:
        data = safety.read_bytes(path)
    except AnnotationError:
        raise
    except InputRejected as error:
        raise AnnotationError(str(error)) from None
    root = _parse_xml(data, path)
    if root.tag != "annotation":
        raise AnnotationError(f"{path}: the root element is <{root.tag}>, not <annotation>")
    filename = _text(root, "filename", str(path))
    if not plain_file_name(filename):
        raise AnnotationError(f"{path}: <filename> {filename!r} is not a plain file name inside {IMAGES}/ "
                              "(no '/', '\\', '..' or absolute path)")
    size = root.find("size")
    if size is None:
        raise AnnotationError(f"{path}: <size> is missing")
    width, height = (_whole_number(size, tag, f"{path}: <size>") for tag in ("width", "height"))
    objects = tuple(_object(element, f"{path}: object {number}")
                    for number, element in enumerate(root.findall("object"), 1))
    return Annotation(filename=filename, width=width, height=height, objects=objects)


# -- the manifest --------------------------------------------------------------------------------

COLUMNS = {
    "path": "str", "image_id": "str", "split": "str", "image": "str", "label": "str",
    "xmin": "float64", "ymin": "float64", "xmax": "float64", "ymax": "float64",
    "difficult": "bool", "truncated": "bool", "width": "int64", "height": "int64",
    "xml_width": "int64", "xml_height": "int64", "decodes": "bool", "xml_ok": "bool", "listed": "bool",
    "has_image": "bool", "has_annotation": "bool", "box_ok": "bool", "label_known": "bool",
    "size_matches": "bool", "objects": "int64", "train_without_objects": "bool", "in_other_split": "bool",
    "error": "str", "sha256": "str", "bytes": "int64", "converted": "str",
}
FLAGS = ("xml_ok", "has_image", "has_annotation", "listed", "decodes", "box_ok", "label_known", "size_matches")


def _blank_row() -> dict:
    """A row with every flag passing and nothing known; the callers fill in what they find."""
    return voc_layout.blank_row(COLUMNS, FLAGS)


def _number_text(value: float) -> str:
    return f"{value:g}"


def _box_problems(item: VOCObject, width: int, height: int) -> list[str]:
    """What is wrong with one box inside a ``width`` x ``height`` image (VOC's 1-based pixels)."""
    problems = []
    for low, high in (("xmin", "xmax"), ("ymin", "ymax")):
        if getattr(item, low) >= getattr(item, high):
            problems.append(f"{low} {_number_text(getattr(item, low))} >= {high} {_number_text(getattr(item, high))}")
    inside = 1 <= item.xmin and item.xmax <= width and 1 <= item.ymin and item.ymax <= height
    if not inside:
        corners = ", ".join(_number_text(getattr(item, tag)) for tag in BOX_TAGS)
        problems.append(f"box ({corners}) leaves the {width}x{height} image (VOC pixels run from 1 to the width "
                        "and height)")
    return problems


def _read_listed(scan: Scan, image_id: str, max_side: int) -> dict:
    """Everything about one listed id that does not depend on its split: the annotation (or why
    it cannot be read), its image file and that image's facts."""
    name = f"{image_id}.xml"
    annotation_path = scan.root / ANNOTATIONS / name
    facts = {"annotation_path": annotation_path, "has_annotation": name in scan.label_entries,
             "annotation": None, "xml_problem": ""}
    if facts["has_annotation"]:
        try:
            facts["annotation"] = parse_annotation(annotation_path)
        except InputRejected as error:
            facts["xml_problem"] = str(error).removeprefix(f"{annotation_path}: ")
    filename = facts["annotation"].filename if facts["annotation"] else ""
    image_name = find_image(set(scan.image_entries), image_id, filename)
    facts["image_path"] = scan.root / IMAGES / (image_name or f"{image_id}.jpg")
    facts["has_image"] = image_name is not None
    facts["image"] = voc_layout.inspect_image(facts["image_path"], max_side) if image_name else None
    return facts


def _image_problems(scan: Scan, image_id: str, split: str, facts: dict, leaks: list[str]) -> tuple[dict, list[str]]:
    """The image-level columns and problems shared by every row of one listed id in one split."""
    image = facts["image"] or {}
    annotation: Annotation | None = facts["annotation"]
    values = {"image_id": image_id, "split": split, "image": scan.relative(facts["image_path"]),
              "has_image": facts["has_image"], "has_annotation": facts["has_annotation"],
              "xml_ok": not facts["xml_problem"], "decodes": bool(image.get("decodes", True)),
              "width": image.get("width", 0), "height": image.get("height", 0), "sha256": image.get("sha256", ""),
              "bytes": image.get("bytes", 0), "converted": image.get("converted", ""),
              "xml_width": annotation.width if annotation else 0, "xml_height": annotation.height if annotation else 0,
              "objects": len(annotation.objects) if annotation else 0, "in_other_split": bool(leaks)}
    listed_in = f"listed in {SPLIT_FOLDER}/{split}.txt"
    problems = []
    if not facts["has_annotation"]:
        problems.append(f"{listed_in} but {ANNOTATIONS}/{image_id}.xml is missing")
    if facts["xml_problem"]:
        problems.append(facts["xml_problem"] if facts["xml_problem"].startswith("the XML")
                        else f"the annotation cannot be used: {facts['xml_problem']}")
    if not facts["has_image"]:
        problems.append(f"{listed_in} but {IMAGES}/{image_id}.jpg is missing")
    elif image.get("problem"):
        values["decodes"] = False
        problems.append(f"{IMAGES}/{facts['image_path'].name}: {image['problem']}")
    if annotation and values["decodes"] and facts["has_image"]:
        values["size_matches"] = (annotation.width, annotation.height) == (values["width"], values["height"])
        if not values["size_matches"]:
            problems.append(f"the XML says {annotation.width}x{annotation.height} but the image is "
                            f"{values['width']}x{values['height']}")
    else:
        values["size_matches"] = True
    values["train_without_objects"] = split == "train" and annotation is not None and not annotation.objects
    if values["train_without_objects"]:
        problems.append("a train image without any object (nothing to learn from; move it to val or annotate it)")
    problems += leaks
    return values, problems


def _object_rows(scan: Scan, facts: dict, shared: dict, problems: list[str], classes: set[str],
                 class_source: str) -> list[dict]:
    """One row per object of a listed image whose XML parsed and whose image exists."""
    annotation: Annotation = facts["annotation"]
    width, height = ((shared["width"], shared["height"]) if shared["decodes"]
                     else (annotation.width, annotation.height))
    rows = []
    for number, item in enumerate(annotation.objects, 1):
        row = {**_blank_row(), **shared, "path": f"{scan.relative(facts['annotation_path'])}#object{number}",
               "label": item.label, "difficult": item.difficult, "truncated": item.truncated,
               **{tag: getattr(item, tag) for tag in BOX_TAGS}}
        own = _box_problems(item, width, height)
        row["box_ok"] = not own
        row["label_known"] = item.label in classes
        if not row["label_known"]:
            own.append(f"class {item.label!r} is not in {class_source}")
        row["error"] = "; ".join(problems + [f"object {number}: {text}" for text in own])
        rows.append(row)
    return rows


def _listed_rows(scan: Scan, split: str, image_id: str, facts: dict, leaks: list[str], classes: set[str],
                 class_source: str) -> list[dict]:
    """The rows of one listed id in one split: its objects, or one image row when there is no
    usable object (no objects, no readable XML, no image)."""
    shared, problems = _image_problems(scan, image_id, split, facts, leaks)
    if facts["annotation"] and facts["annotation"].objects and facts["has_image"]:
        return _object_rows(scan, facts, shared, problems, classes, class_source)
    path = facts["annotation_path"] if facts["has_annotation"] else facts["image_path"]
    return [{**_blank_row(), **shared, "path": scan.relative(path), "error": "; ".join(problems)}]


def _unlisted_rows(scan: Scan, listed: dict[str, dict]) -> list[dict]:
    """A row per file in ``JPEGImages/`` or ``Annotations/`` that no split uses."""
    used = {IMAGES: {facts["image_path"].name for facts in listed.values() if facts["has_image"]},
            ANNOTATIONS: {f"{image_id}.xml" for image_id, facts in listed.items() if facts["has_annotation"]}}
    return voc_layout.unlisted_rows(scan, used, _blank_row)


def manifest(folder: Path, classes: list[str], relative_to: Path | None = None,
             max_side: int = MAX_SIDE) -> pd.DataFrame:
    """One row per object of the listed images, plus a row for each listed image without a
    usable object row, each file in no split and each problem of a split list; the columns are
    ``COLUMNS`` (see the module docstring for the flags). Paths are relative to ``relative_to``
    (default: ``folder``). Never raises for bad data, only for a folder that is not a VOC
    dataset at all (``voc_root``)."""
    scan = LAYOUT.scan(folder, relative_to)
    class_source = LAYOUT.class_source(scan.root)
    known = set(classes)
    listed = {image_id: _read_listed(scan, image_id, max_side)  # each image read once
              for image_id in scan.listed_ids()}
    leaks = voc_layout.leaks(scan, listed)
    rows = []
    for split in SPLITS:
        for image_id in scan.split_ids[split]:
            rows += _listed_rows(scan, split, image_id, listed[image_id], leaks.get(image_id, []), known,
                                 class_source)
    rows += _unlisted_rows(scan, listed) + voc_layout.split_problem_rows(scan, _blank_row)
    table = pd.DataFrame(rows, columns=list(COLUMNS))
    return table.astype(COLUMNS)


def expectations(classes: list[str]) -> list:
    """The Great Expectations suite of a VOC manifest: every flag holds on every row, no train
    image is empty, nothing leaks between splits, and both splits have rows. (``classes`` is
    what the manifest's ``label_known`` was computed against.)"""
    import great_expectations as gx  # slow import; serving a model never needs it

    must_hold = [gx.expectations.ExpectColumnValuesToBeInSet(column=column, value_set=[True]) for column in FLAGS]
    must_not = [gx.expectations.ExpectColumnValuesToBeInSet(column=column, value_set=[False])
                for column in ("train_without_objects", "in_other_split")]
    return must_hold + must_not + [
        gx.expectations.ExpectColumnDistinctValuesToContainSet(column="split", value_set=list(SPLITS))]


# -- the dataset ----------------------------------------------------------------------------------

class VOCDetection(voc_layout.SplitFiles, Dataset):
    """One split of a VOC folder as (image, target) pairs: the image a ``tv_tensors.Image``
    (uint8, CHW), the target ``{"boxes": BoundingBoxes (XYXY, 0-based pixels), "labels": int64
    class indices into ``classes``, "difficult": bool}``. Difficult objects are left out unless
    ``keep_difficult`` (training leaves them out; evaluation keeps them and ignores them).
    ``transform(image, target)`` follows the torchvision transforms v2 convention."""

    def __init__(self, folder: Path, split: str, classes: list[str], transform=None, keep_difficult: bool = False):
        super().__init__(folder, split, LAYOUT)
        self.classes = list(classes)
        self.class_index = {name: index for index, name in enumerate(self.classes)}
        self.transform = transform
        self.keep_difficult = keep_difficult
        self._annotations: dict[int, Annotation] = {}

    def annotation(self, index: int) -> Annotation:
        """The parsed ``Annotations/<id>.xml`` of the ``index``-th image (every object kept)."""
        if index not in self._annotations:
            self._annotations[index] = parse_annotation(self.label_path(index))
        return self._annotations[index]

    def image_path(self, index: int) -> Path:
        """The image file of the ``index``-th id: the one its XML names, else ``<id>.jpg``."""
        return self.find_image_path(index, self.annotation(index).filename)

    def image_size(self, index: int) -> tuple[int, int]:
        """(height, width) of the ``index``-th image, from its XML (validation checked that it
        matches the pixels), without decoding it."""
        annotation = self.annotation(index)
        return annotation.height, annotation.width

    def target(self, index: int, height: int, width: int) -> dict:
        """The boxes, class indices and difficult flags of the ``index``-th image."""
        from torchvision import tv_tensors

        annotation = self.annotation(index)
        kept = [item for item in annotation.objects if self.keep_difficult or not item.difficult]
        unknown = [(number, item.label) for number, item in enumerate(annotation.objects, 1)
                   if (self.keep_difficult or not item.difficult) and item.label not in self.class_index]
        if unknown:
            number, label = unknown[0]
            raise AnnotationError(f"{self.root / ANNOTATIONS / (self.image_ids[index] + '.xml')}: object {number}: "
                                  f"class {label!r} is not one of the {len(self.classes)} classes")
        boxes = torch.tensor([item.box() for item in kept], dtype=torch.float32).reshape(-1, 4)
        return {"boxes": tv_tensors.BoundingBoxes(boxes, format="XYXY", canvas_size=(height, width)),
                "labels": torch.tensor([self.class_index[item.label] for item in kept], dtype=torch.int64),
                "difficult": torch.tensor([item.difficult for item in kept], dtype=torch.bool)}

    def __getitem__(self, index: int):
        from torchvision import tv_tensors
        from torchvision.transforms.v2 import functional

        image = tv_tensors.Image(functional.pil_to_tensor(images.open_rgb(self.image_path(index))))
        height, width = image.shape[-2:]
        target = self.target(index, int(height), int(width))
        if self.transform is not None:
            return self.transform(image, target)
        return image, target
