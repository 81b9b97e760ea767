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
"""

from __future__ import annotations

import hashlib
import math
import os
import stat
import unicodedata
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch
from torch.utils.data import Dataset

from zooflow.data import images, safety
from zooflow.data.images import MAX_SIDE
from zooflow.data.safety import ImportRejected
from zooflow.errors import InputRejected

VOC_CLASSES: tuple[str, ...] = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "diningtable", "dog",
    "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor")
SPLITS = ("train", "val")
CLASSES_FILE = "classes.txt"
DEVKIT = "VOCdevkit"
IMAGES = "JPEGImages"
ANNOTATIONS = "Annotations"
SPLIT_FOLDER = "ImageSets/Main"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".JPG", ".JPEG", ".PNG")  # the order an id's image is looked for
MAX_ID = 128
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


# -- the folder, the class set, the splits ----------------------------------------------------

def voc_root(folder: Path) -> Path:
    """The single ``VOCdevkit/VOC*`` folder under a task's data folder."""
    devkit = Path(folder) / DEVKIT
    if devkit.is_symlink() or not devkit.is_dir():
        raise ImportRejected(f"{folder}: no {DEVKIT}/ folder; a Pascal VOC dataset is "
                             f"{DEVKIT}/VOC<year>/{{{IMAGES},{ANNOTATIONS},{SPLIT_FOLDER}}}")
    found = sorted(entry.name for entry in os.scandir(devkit)
                   if entry.name.startswith("VOC") and entry.is_dir(follow_symlinks=False))
    if len(found) != 1:
        what = "no VOC<year> folder" if not found else f"{len(found)} VOC folders ({', '.join(found)})"
        raise ImportRejected(f"{devkit}: holds {what}; the task's data is exactly one {DEVKIT}/VOC<year>/ folder")
    return devkit / found[0]


def read_classes(root: Path) -> list[str]:
    """The class set of the VOC folder ``root``, in label order: its ``classes.txt`` (each name
    a safe name, no duplicates, at least one) or, without one, the 20 VOC classes."""
    path = Path(root) / CLASSES_FILE
    if not path.exists() and not path.is_symlink():
        return list(VOC_CLASSES)
    try:
        text = safety.read_bytes(path).decode("utf-8-sig")  # a BOM from a Windows editor is harmless
    except UnicodeDecodeError as error:
        raise ImportRejected(f"{path}: not UTF-8 ({error.reason} at byte {error.start})") from None
    classes: list[str] = []
    first_line: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), 1):
        name = line.strip()
        if not name:
            continue
        safety.check_name(name, f"{path} line {number}", kind="class name")
        if name in first_line:
            raise ImportRejected(f"{path} line {number}: the class {name!r} is declared twice "
                                 f"(first on line {first_line[name]})")
        first_line[name] = number
        classes.append(name)
    if not classes:
        raise ImportRejected(f"{path}: declares no class; list one class per line (or remove the file to use "
                             f"the 20 VOC classes)")
    return classes


def split_file(root: Path, split: str) -> Path:
    """Where the ids of ``split`` are listed."""
    return Path(root) / SPLIT_FOLDER / f"{split}.txt"


def id_problem(image_id: str) -> str:
    """Why ``image_id`` cannot name a file in ``JPEGImages/``/``Annotations/`` ("" if it can)."""
    if len(image_id) > MAX_ID:
        return f"the image id {image_id[:40]!r}... is longer than {MAX_ID} characters"
    if any(unicodedata.category(char) == "Cc" for char in image_id):
        return f"the image id {image_id!r} holds a control character"
    if "/" in image_id or "\\" in image_id or ".." in image_id or image_id.startswith("."):
        return (f"the image id {image_id!r} is not a plain file name (no '/', '\\', '..' or leading '.'): "
                "ids name JPEGImages/<id>.jpg and Annotations/<id>.xml")
    if any(char.isspace() for char in image_id):
        # "2008_000008  1" is a line of a per-class list (aeroplane_train.txt), not of a split list.
        return (f"the image id {image_id!r} holds a space; a split list has one id per line (per-class lists "
                "such as aeroplane_train.txt, with a second column, are not split lists)")
    return ""


def _read_split_lines(root: Path, split: str) -> tuple[list[str], list[str]]:
    """The ids of one split list, and every problem of that list (each naming the file and line)."""
    path = split_file(root, split)
    if not path.exists() and not path.is_symlink():
        return [], [f"{path}: is missing; a VOC dataset lists the ids of its {split} images there"]
    try:
        text = safety.read_bytes(path).decode("utf-8-sig")
    except UnicodeDecodeError as error:
        return [], [f"{path}: not UTF-8 ({error.reason} at byte {error.start})"]
    except InputRejected as error:
        return [], [str(error)]
    ids: list[str] = []
    problems: list[str] = []
    first_line: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), 1):
        image_id = line.strip()
        if not image_id:
            continue
        if problem := id_problem(image_id):
            problems.append(f"{path} line {number}: {problem}")
        elif image_id in first_line:
            problems.append(f"{path} line {number}: the id {image_id!r} is listed twice (first on line "
                            f"{first_line[image_id]})")
        else:
            first_line[image_id] = number
            ids.append(image_id)
    return ids, problems


def read_split(root: Path, split: str) -> list[str]:
    """The image ids of ``ImageSets/Main/<split>.txt``, in file order (blank lines ignored); an
    unsafe or duplicated id is an ``AnnotationError`` naming the file and line."""
    ids, problems = _read_split_lines(root, split)
    if problems:
        raise AnnotationError(problems[0])
    return ids


# -- one annotation ----------------------------------------------------------------------------

def plain_file_name(name: str) -> bool:
    """True if ``name`` names a file directly inside a folder (no separators, no '..', not
    absolute, no control characters)."""
    return (bool(name) and name not in (".", "..") and "/" not in name and "\\" not in name
            and ".." not in name and not any(unicodedata.category(char) == "Cc" for char in name)
            and not Path(name).is_absolute() and len(name) <= 255)


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


def find_image(names: set[str], image_id: str, filename: str = "") -> str | None:
    """The file in ``JPEGImages/`` (whose entries are ``names``) that holds ``image_id``'s image:
    the XML's ``<filename>`` when it is that id's file, else ``<id>.jpg`` (or .jpeg, .png)."""
    if filename and plain_file_name(filename) and Path(filename).stem == image_id and filename in names:
        return filename
    return next((image_id + suffix for suffix in IMAGE_SUFFIXES if image_id + suffix in names), None)


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
    row = {name: "" for name, kind in COLUMNS.items() if kind == "str"}
    row.update({name: math.nan for name, kind in COLUMNS.items() if kind == "float64"})
    row.update({name: 0 for name, kind in COLUMNS.items() if kind == "int64"})
    row.update({name: True for name in FLAGS}, difficult=False, truncated=False, train_without_objects=False,
               in_other_split=False)
    return row


def _entries(folder: Path) -> dict[str, bool]:
    """The entries of ``folder`` (name -> is a plain file), without following links; litter
    that the importer skips is left out; a missing folder has none."""
    if folder.is_symlink() or not folder.is_dir():
        return {}
    found = {}
    for name in os.listdir(folder):
        mode = os.lstat(folder / name).st_mode
        if not (stat.S_ISDIR(mode) and safety.is_junk(name, folder=True)) and not safety.is_junk(name):
            found[name] = stat.S_ISREG(mode)
    return found


def _inspect_image(path: Path, max_side: int) -> dict:
    """Decode one image fully: its size, hash and conversions, or why it cannot be used."""
    facts = {"width": 0, "height": 0, "decodes": False, "sha256": "", "bytes": 0, "converted": "", "problem": ""}
    try:
        data = safety.read_bytes(path)
    except InputRejected as error:
        facts["problem"] = str(error).removeprefix(f"{path}: ")
        return facts
    facts.update(sha256=hashlib.sha256(data).hexdigest(), bytes=len(data))
    try:
        decoded = images.decode(data, "RGB", max_side)
    except images.ImageRejected as error:
        facts["problem"] = str(error).removeprefix("image bytes: ")
    except Exception as error:  # noqa: BLE001 - a decoder failing on user bytes is a bad row, not a crash
        facts["problem"] = f"cannot decode: {type(error).__name__}: {error}"
    else:
        facts.update(width=decoded.image.width, height=decoded.image.height, decodes=True,
                     converted="; ".join(decoded.steps))
    return facts


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


@dataclass
class _Scan:
    """What the manifest learns about a VOC folder before it writes rows."""

    root: Path
    base: Path
    split_ids: dict[str, list[str]] = field(default_factory=dict)
    split_sets: dict[str, set[str]] = field(default_factory=dict)
    split_problems: dict[str, list[str]] = field(default_factory=dict)
    image_entries: dict[str, bool] = field(default_factory=dict)
    annotation_entries: dict[str, bool] = field(default_factory=dict)

    def relative(self, path: Path) -> str:
        """``path`` as the manifest names it (relative to ``base``, with '/')."""
        return Path(path).relative_to(self.base).as_posix()

    def splits_of(self, image_id: str) -> list[str]:
        return [split for split in SPLITS if image_id in self.split_sets[split]]


def _scan(folder: Path, relative_to: Path | None) -> _Scan:
    root = voc_root(folder)
    scan = _Scan(root=root, base=Path(relative_to) if relative_to else Path(folder))
    for split in SPLITS:
        scan.split_ids[split], scan.split_problems[split] = _read_split_lines(root, split)
        scan.split_sets[split] = set(scan.split_ids[split])
    scan.image_entries = _entries(root / IMAGES)
    scan.annotation_entries = _entries(root / ANNOTATIONS)
    return scan


def _read_listed(scan: _Scan, image_id: str, max_side: int) -> dict:
    """Everything about one listed id that does not depend on its split: the annotation (or why
    it cannot be read), its image file and that image's facts."""
    name = f"{image_id}.xml"
    annotation_path = scan.root / ANNOTATIONS / name
    facts = {"annotation_path": annotation_path, "has_annotation": name in scan.annotation_entries,
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
    facts["image"] = _inspect_image(facts["image_path"], max_side) if image_name else None
    return facts


def _leaks(scan: _Scan, listed: dict[str, dict]) -> dict[str, list[str]]:
    """For each listed id, why it is in the other split too: listed in both, or the same image
    bytes under an id of the other split."""
    reasons: dict[str, list[str]] = defaultdict(list)
    both = scan.split_sets["train"] & scan.split_sets["val"]
    for image_id in both:
        reasons[image_id].append(f"the id {image_id!r} is listed in both {SPLIT_FOLDER}/train.txt and val.txt")
    by_hash: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for image_id, facts in listed.items():
        if facts["image"] and facts["image"]["sha256"]:
            for split in scan.splits_of(image_id):
                by_hash[facts["image"]["sha256"]].append((split, image_id))
    for holders in by_hash.values():
        for split, image_id in holders:
            others = sorted({other for other_split, other in holders if other_split != split and other != image_id})
            if others:
                shown = ", ".join(f"{IMAGES}/{listed[other]['image_path'].name}" for other in others[:3])
                reasons[image_id].append(f"the same image bytes as {shown} (other split)")
    return reasons


def _image_problems(scan: _Scan, image_id: str, split: str, facts: dict, leaks: list[str]) -> tuple[dict, list[str]]:
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


def _object_rows(scan: _Scan, facts: dict, shared: dict, problems: list[str], classes: set[str],
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


def _listed_rows(scan: _Scan, split: str, image_id: str, facts: dict, leaks: list[str], classes: set[str],
                 class_source: str) -> list[dict]:
    """The rows of one listed id in one split: its objects, or one image row when there is no
    usable object (no objects, no readable XML, no image)."""
    shared, problems = _image_problems(scan, image_id, split, facts, leaks)
    if facts["annotation"] and facts["annotation"].objects and facts["has_image"]:
        return _object_rows(scan, facts, shared, problems, classes, class_source)
    path = facts["annotation_path"] if facts["has_annotation"] else facts["image_path"]
    return [{**_blank_row(), **shared, "path": scan.relative(path), "error": "; ".join(problems)}]


def _unlisted_rows(scan: _Scan, listed: dict[str, dict]) -> list[dict]:
    """A row per file in ``JPEGImages/`` or ``Annotations/`` that no split uses (not read: the
    task folder must hold exactly the listed data)."""
    used_images = {facts["image_path"].name for facts in listed.values() if facts["has_image"]}
    used_annotations = {f"{image_id}.xml" for image_id, facts in listed.items() if facts["has_annotation"]}
    no_split = f"is in no split ({SPLIT_FOLDER}/train.txt, val.txt)"
    rows = []
    for folder, entries, used in ((IMAGES, scan.image_entries, used_images),
                                  (ANNOTATIONS, scan.annotation_entries, used_annotations)):
        for name in sorted(set(entries) - used):
            what = "" if entries[name] else " (not a plain file)"
            rows.append({**_blank_row(), "path": scan.relative(scan.root / folder / name),
                         "image_id": Path(name).stem, "listed": False,
                         "image": scan.relative(scan.root / folder / name) if folder == IMAGES else "",
                         "error": f"{folder}/{name}{what} {no_split}"})
    return rows


def _split_problem_rows(scan: _Scan) -> list[dict]:
    """A row per problem of a split list (missing, unreadable, an unsafe or repeated id)."""
    rows = []
    for split, problems in scan.split_problems.items():
        path = split_file(scan.root, split)
        for problem in problems:
            rows.append({**_blank_row(), "path": scan.relative(path), "split": split, "listed": False,
                         "error": problem.removeprefix(f"{path}: ").removeprefix(f"{path} ")})
    return rows


def manifest(folder: Path, classes: list[str], relative_to: Path | None = None,
             max_side: int = MAX_SIDE) -> pd.DataFrame:
    """One row per object of the listed images, plus a row for each listed image without a
    usable object row, each file in no split and each problem of a split list; the columns are
    ``COLUMNS`` (see the module docstring for the flags). Paths are relative to ``relative_to``
    (default: ``folder``). Never raises for bad data, only for a folder that is not a VOC
    dataset at all (``voc_root``)."""
    scan = _scan(folder, relative_to)
    class_source = (f"{CLASSES_FILE}" if (scan.root / CLASSES_FILE).exists() else "the 20 VOC classes")
    known = set(classes)
    listed_ids = list(dict.fromkeys(scan.split_ids["train"] + scan.split_ids["val"]))
    listed = {image_id: _read_listed(scan, image_id, max_side) for image_id in listed_ids}  # each image read once
    leaks = _leaks(scan, listed)
    rows = []
    for split in SPLITS:
        for image_id in scan.split_ids[split]:
            rows += _listed_rows(scan, split, image_id, listed[image_id], leaks.get(image_id, []), known,
                                 class_source)
    rows += _unlisted_rows(scan, listed) + _split_problem_rows(scan)
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

class VOCDetection(Dataset):
    """One split of a VOC folder as (image, target) pairs: the image a ``tv_tensors.Image``
    (uint8, CHW), the target ``{"boxes": BoundingBoxes (XYXY, 0-based pixels), "labels": int64
    class indices into ``classes``, "difficult": bool}``. Difficult objects are left out unless
    ``keep_difficult`` (training leaves them out; evaluation keeps them and ignores them).
    ``transform(image, target)`` follows the torchvision transforms v2 convention."""

    def __init__(self, folder: Path, split: str, classes: list[str], transform=None, keep_difficult: bool = False):
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; a VOC folder has {', '.join(SPLITS)}")
        self.root = voc_root(folder)
        self.split = split
        self.classes = list(classes)
        self.class_index = {name: index for index, name in enumerate(self.classes)}
        self.transform = transform
        self.keep_difficult = keep_difficult
        self.image_ids = read_split(self.root, split)
        self._image_names = {name for name, plain in _entries(self.root / IMAGES).items() if plain}
        self._annotations: dict[int, Annotation] = {}

    def __len__(self) -> int:
        return len(self.image_ids)

    def annotation(self, index: int) -> Annotation:
        """The parsed ``Annotations/<id>.xml`` of the ``index``-th image (every object kept)."""
        if index not in self._annotations:
            self._annotations[index] = parse_annotation(self.root / ANNOTATIONS / f"{self.image_ids[index]}.xml")
        return self._annotations[index]

    def image_path(self, index: int) -> Path:
        """The image file of the ``index``-th id."""
        image_id = self.image_ids[index]
        name = find_image(self._image_names, image_id, self.annotation(index).filename)
        if name is None:
            raise AnnotationError(f"{self.root / IMAGES / (image_id + '.jpg')}: is missing but listed in "
                                  f"{split_file(self.root, self.split)}")
        return self.root / IMAGES / name

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
