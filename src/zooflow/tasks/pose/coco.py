"""The COCO keypoints layout of chapter 4: reading it, describing it for validation, serving it to training.

The task's data folder holds:

- ``annotations/person_keypoints_train.json`` and ``annotations/person_keypoints_val.json``, in
  COCO's keypoints format: ``"images"`` (``{id, file_name, width, height}``), ``"annotations"``
  (one per person: ``{id, image_id, category_id, keypoints, num_keypoints, bbox, area, iscrowd,
  segmentation}``) and ``"categories"`` (the ``person`` category, whose ``keypoints`` are COCO's 17
  names in :data:`~zooflow.tasks.pose.skeleton.COCO_KEYPOINTS` order, and its ``skeleton``);
- ``train/`` and ``val/``: the images of each split. An image's ``file_name`` is a plain file name
  inside its split's folder (COCO 2017 names its folders ``train2017/``, ``val2017/``: the importer
  renames them).

A person's ``keypoints`` are 51 numbers, ``(x, y, v)`` for each of the 17 keypoints: ``v = 0``
not labelled, ``1`` labelled but hidden, ``2`` labelled and visible; a labelled keypoint lies on
a pixel of the image, ``0 <= x < width`` and ``0 <= y < height``. ``num_keypoints`` counts the
labelled ones. ``bbox`` is ``[x, y, w, h]`` in pixels. ``iscrowd = 1`` marks a group of people
annotated as one region (an RLE ``segmentation``), never as keypoints; ``segmentation`` is
optional for the others (polygons or RLE). The loss skips the pixels of crowds and of people
with no labelled keypoint (:class:`PoseDataset`'s ``ignore`` mask).

``manifest`` never raises for bad data. It has one row per annotation JSON (``kind``
"annotations"), per image entry ("image"), per annotation ("person"), and per file that no
image entry names ("file"). Each fault fails exactly one flag on the row that has it (the checks
that depend on a failed one are skipped), and ``error`` names the JSON file and the annotation
id or image:

- ``json_ok``: the JSON file is there, is a plain file under ``MAX_JSON_BYTES``, parses, and has
  ``images``, ``annotations`` and ``categories`` lists (otherwise its split has no other rows);
- ``categories_ok``: it declares a ``person`` category with COCO's 17 keypoint names in order;
- ``fields_ok``: an image or annotation entry is an object with its fields of the right types
  (ids integers, ``file_name`` a string, ``width``/``height`` positive integers, ``iscrowd`` 0/1,
  ``num_keypoints`` an integer, ``area`` a number);
- ``unique_id``: no other image (annotation) of the same JSON has its id: pycocotools would
  silently keep only one of them;
- images: ``name_ok`` (``file_name`` is a plain name, not a link: refused before the file system
  is touched), ``has_file``, ``decodes`` (by :mod:`zooflow.data.images`' rules), ``size_matches``
  (the decoded size is the JSON's ``width`` x ``height``), ``one_split`` (no image of the other
  split has its id, its ``file_name`` or its bytes: a train/val leak);
- people: ``has_image`` (its ``image_id`` is an image of the same JSON: pycocotools would accept
  an orphan silently), ``is_person`` (its ``category_id`` is the person category's),
  ``keypoints_shape`` (51 finite numbers), ``visibility_ok`` (every ``v`` in {0, 1, 2}),
  ``keypoints_inside`` (every labelled keypoint on a pixel of the image), ``count_matches``
  (``num_keypoints`` = the labelled keypoints), ``bbox_ok`` (4 finite numbers, positive size,
  inside the image within ``BBOX_TOLERANCE`` pixels), ``segmentation_ok`` (absent, polygons of at
  least 3 points, or an RLE of the image's size);
- ``listed``: a file in a split folder (or another file in ``annotations/``) that nothing names.

A row's ``path`` is unique: the JSON file, ``<json>#image <id>``, ``<json>#annotation <id>`` (an
entry whose id is missing or repeated is ``<json>#images[<index>]``, ``#annotations[<index>]``),
or the unnamed file. The facts kept for the card and README: ``width``, ``height``,
``num_keypoints``, ``labelled`` and ``visible`` keypoints, ``iscrowd``, ``area``, the image's
``sha256``, ``bytes`` and decode ``converted`` steps, and ``keypoints_split``: the split of a
non-crowd person with labelled keypoints ("" on other rows), which the suite requires of both
splits.
"""

from __future__ import annotations

import json
import math
import os
import stat
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from zooflow.data import images, safety, voc_layout
from zooflow.data.images import MAX_SIDE
from zooflow.errors import InputRejected
from zooflow.quiet import silenced_prints
from zooflow.tasks.pose.skeleton import COCO_KEYPOINTS

SPLITS = ("train", "val")
ANNOTATIONS = "annotations"
TOP_LEVEL = ("images", "annotations", "categories")
PERSON = "person"
KEYPOINT_NUMBERS = 3 * len(COCO_KEYPOINTS)  # 51: (x, y, v) per keypoint
VISIBILITY = (0, 1, 2)
BBOX_TOLERANCE = 1.0  # pixels a box may pass the image's edge: COCO's boxes are float and rounded by tools
MAX_JSON_BYTES = 1 << 30  # COCO 2017's person_keypoints_train2017.json is 238 MB; four times that is no dataset
SHOWN = 3  # keypoints named in one error before "..."


class CocoError(InputRejected):
    """An annotation JSON or an image that cannot be used; the message names the file (and entry)."""


def annotation_name(split: str) -> str:
    """The annotation JSON of ``split``, inside ``annotations/``."""
    return f"person_keypoints_{split}.json"


def annotation_path(folder: Path, split: str) -> Path:
    return Path(folder) / ANNOTATIONS / annotation_name(split)


# -- reading a JSON --------------------------------------------------------------------------------------

def _no_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def read_json(path: Path, max_bytes: int = MAX_JSON_BYTES) -> dict:
    """A COCO annotation file as a dict: a plain file (no link) of at most ``max_bytes``, parsed by
    ``json.loads`` with no object hooks (NaN and Infinity refused), holding the ``images``,
    ``annotations`` and ``categories`` lists. Anything else is a ``CocoError`` naming the file."""
    path = Path(path)
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        raise CocoError(f"{path}: is missing") from None
    if stat.S_ISREG(info.st_mode) and info.st_size > max_bytes:
        raise CocoError(f"{path}: is {info.st_size} bytes, over the {max_bytes} byte limit for an annotation file")
    data = safety.read_bytes(path)  # refuses a link or anything that is not a plain file, by name
    try:
        dataset = json.loads(data, parse_constant=_no_constant)
    except UnicodeDecodeError as error:
        raise CocoError(f"{path}: is not UTF-8 text ({error.reason} at byte {error.start})") from None
    except json.JSONDecodeError as error:
        raise CocoError(f"{path}: is not valid JSON ({error.msg} at line {error.lineno}, column {error.colno})") \
            from None
    except (ValueError, RecursionError) as error:
        raise CocoError(f"{path}: is not valid JSON ({error})") from None
    if not isinstance(dataset, dict):
        raise CocoError(f"{path}: holds a JSON {type(dataset).__name__}, not the object of a COCO annotation file")
    missing = [key for key in TOP_LEVEL if not isinstance(dataset.get(key), list)]
    if missing:
        raise CocoError(f"{path}: has no {', '.join(repr(key) for key in missing)} list; a COCO keypoints file "
                        f"holds {', '.join(TOP_LEVEL)}")
    return dataset


def read_split(folder: Path, split: str) -> dict:
    """The annotation JSON of ``split`` under the task folder ``folder`` (see ``read_json``)."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; the pose data has {', '.join(SPLITS)}")
    return read_json(annotation_path(folder, split))


def coco_index(dataset: dict, where: str = "annotations"):
    """pycocotools' ``COCO`` object of ``dataset`` (built in memory, its prints silenced); a
    ``CocoError`` naming ``where`` when an entry lacks a field pycocotools indexes by."""
    from pycocotools.coco import COCO

    coco = COCO()
    coco.dataset = dataset
    try:
        with silenced_prints():
            coco.createIndex()
    except (KeyError, TypeError) as error:
        raise CocoError(f"{where}: an entry lacks a field or has one of the wrong type ({error!r}); the manifest "
                        "names every such entry") from None
    return coco


def person_category(dataset: dict) -> tuple[int | None, str]:
    """The person category's id (None without a usable one) and, if it is not as COCO declares it,
    what is wrong ("" if nothing)."""
    people = [entry for entry in dataset["categories"] if isinstance(entry, dict) and entry.get("name") == PERSON]
    if not people:
        return None, f"declares no {PERSON!r} category"
    if len(people) > 1:
        return None, f"declares {len(people)} {PERSON!r} categories"
    category = people[0]
    if not _is_int(category.get("id")):
        return None, f"the {PERSON!r} category has no integer id"
    if list(category.get("keypoints") or []) != list(COCO_KEYPOINTS):
        return category["id"], (f"the {PERSON!r} category's keypoints are not COCO's 17 names in order "
                                f"({', '.join(COCO_KEYPOINTS[:3])}, ...)")
    return category["id"], ""


# -- checks of one entry ----------------------------------------------------------------------------------

def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _image_fields(entry) -> str:
    """Why an image entry cannot be used as one ("" if it can)."""
    if not isinstance(entry, dict):
        return f"is a JSON {type(entry).__name__}, not an object"
    problems = []
    if not _is_int(entry.get("id")):
        problems.append(f"its id {entry.get('id')!r} is not an integer")
    if not isinstance(entry.get("file_name"), str):
        problems.append("it has no string file_name")
    for key in ("width", "height"):
        if not _is_int(entry.get(key)) or entry[key] < 1:
            problems.append(f"its {key} {entry.get(key)!r} is not a positive integer")
    return "; ".join(problems)


def _annotation_fields(entry) -> str:
    """Why an annotation entry cannot be read ("" if it can; keypoints, bbox and segmentation have
    flags of their own)."""
    if not isinstance(entry, dict):
        return f"is a JSON {type(entry).__name__}, not an object"
    problems = [f"its {key} {entry.get(key)!r} is not an integer"
                for key in ("id", "image_id", "category_id", "num_keypoints") if not _is_int(entry.get(key))]
    if entry.get("iscrowd", 0) not in (0, 1) or isinstance(entry.get("iscrowd"), bool):
        problems.append(f"its iscrowd {entry.get('iscrowd')!r} is not 0 or 1")
    if "area" in entry and not _is_number(entry["area"]):
        problems.append(f"its area {entry['area']!r} is not a number")
    return "; ".join(problems)


def plain_name_problem(name: str) -> str:
    """Why an image's ``file_name`` cannot name a file directly inside its split folder ("" if it can)."""
    if voc_layout.plain_file_name(name) and not name.startswith("."):
        return ""
    return (f"its file_name {name!r} is not a plain file name inside its split folder (no '/', '\\', '..', "
            "leading '.', control characters or absolute path)")


def _keypoints_problems(keypoints, width: int | None, height: int | None) -> dict[str, str]:
    """The problems of a keypoints list, by flag (``keypoints_shape``, ``visibility_ok``,
    ``keypoints_inside``); the position is judged only for labelled keypoints with a valid ``v``,
    and only when the image's size is known."""
    if (not isinstance(keypoints, list) or len(keypoints) != KEYPOINT_NUMBERS
            or not all(_is_number(value) for value in keypoints)):
        size = (f"{len(keypoints)} values" if isinstance(keypoints, list) else "missing" if keypoints is None
                else f"a JSON {type(keypoints).__name__}")
        return {"keypoints_shape": f"keypoints is {size}, not {KEYPOINT_NUMBERS} finite numbers "
                                   f"(x, y, v for each of COCO's {len(COCO_KEYPOINTS)} keypoints)"}
    problems = {}
    triples = [keypoints[index:index + 3] for index in range(0, KEYPOINT_NUMBERS, 3)]
    bad_v = [f"{COCO_KEYPOINTS[k]!r} (v={v:g})" for k, (_, _, v) in enumerate(triples) if v not in VISIBILITY]
    if bad_v:
        problems["visibility_ok"] = (f"visibility of {', '.join(bad_v[:SHOWN])}{' ...' if len(bad_v) > SHOWN else ''}"
                                     " is not 0 (not labelled), 1 (hidden) or 2 (visible)")
    if width is not None and height is not None:
        outside = [f"keypoint {COCO_KEYPOINTS[k]!r} (x={x:g}, y={y:g})" for k, (x, y, v) in enumerate(triples)
                   if v in (1, 2) and not (0 <= x < width and 0 <= y < height)]
        if outside:
            many = f" and {len(outside) - 1} more" if len(outside) > 1 else ""
            problems["keypoints_inside"] = f"{outside[0]}{many} lies outside the {width}x{height} image"
    return problems


def _bbox_problem(bbox, width: int | None, height: int | None) -> str:
    if not isinstance(bbox, list) or len(bbox) != 4 or not all(_is_number(value) for value in bbox):
        return f"bbox {bbox!r} is not [x, y, w, h] (4 finite numbers)"
    x, y, w, h = bbox
    if w <= 0 or h <= 0:
        return f"bbox [{x:g}, {y:g}, {w:g}, {h:g}] has a non-positive size"
    if width is not None and height is not None and (
            x < -BBOX_TOLERANCE or y < -BBOX_TOLERANCE or x + w > width + BBOX_TOLERANCE
            or y + h > height + BBOX_TOLERANCE):
        return f"bbox [{x:g}, {y:g}, {w:g}, {h:g}] reaches outside the {width}x{height} image"
    return ""


def rle_counts(text: str) -> list[int] | None:
    """The run lengths of COCO's compressed RLE string (pycocotools' ``rleFrString``, in Python so
    that a malformed string is refused instead of decoded into garbage); None if malformed."""
    counts: list[int] = []
    position = 0
    while position < len(text):
        value, shift, more = 0, 0, True
        while more:
            if position >= len(text):
                return None
            code = ord(text[position]) - 48
            if not 0 <= code < 64:
                return None
            value |= (code & 0x1F) << shift
            more = bool(code & 0x20)
            position += 1
            shift += 5
            if not more and code & 0x10:
                value |= -1 << shift
        if len(counts) > 2:
            value += counts[-2]
        if value < 0:
            return None
        counts.append(value)
    return counts


def _segmentation_problem(segmentation, width: int | None, height: int | None) -> str:
    if segmentation is None or segmentation == []:
        return ""
    if isinstance(segmentation, list):
        for polygon in segmentation:
            if (not isinstance(polygon, list) or len(polygon) < 6 or len(polygon) % 2
                    or not all(_is_number(value) for value in polygon)):
                return "segmentation holds a polygon that is not a list of at least 3 (x, y) points"
        return ""
    if not isinstance(segmentation, dict) or not isinstance(segmentation.get("size"), list):
        return "segmentation is neither polygons nor an RLE {size, counts}"
    size = segmentation["size"]
    if width is not None and height is not None and size != [height, width]:
        return f"the RLE segmentation's size {size!r} is not the image's [height, width] = [{height}, {width}]"
    if len(size) != 2 or not all(_is_int(value) and value > 0 for value in size):
        return f"the RLE segmentation's size {size!r} is not [height, width]"
    counts = segmentation.get("counts")
    if isinstance(counts, str):
        counts = rle_counts(counts)
        if counts is None:
            return "the RLE segmentation's counts string is not COCO's compressed RLE"
    elif not isinstance(counts, list) or not all(_is_int(value) and value >= 0 for value in counts):
        return "the RLE segmentation's counts are neither a string nor non-negative integers"
    if sum(counts) != size[0] * size[1]:
        return f"the RLE segmentation's runs cover {sum(counts)} pixels, not {size[0]}x{size[1]}"
    return ""


# -- the manifest --------------------------------------------------------------------------------------

COLUMNS = {
    "path": "str", "kind": "str", "split": "str", "image_id": "int64", "annotation_id": "int64", "image": "str",
    "width": "int64", "height": "int64", "num_keypoints": "int64", "labelled": "int64", "visible": "int64",
    "iscrowd": "int64", "area": "float64", "keypoints_split": "str",
    "json_ok": "bool", "categories_ok": "bool", "fields_ok": "bool", "unique_id": "bool",
    "name_ok": "bool", "has_file": "bool", "decodes": "bool", "size_matches": "bool", "one_split": "bool",
    "has_image": "bool", "is_person": "bool", "keypoints_shape": "bool", "visibility_ok": "bool",
    "keypoints_inside": "bool", "count_matches": "bool", "bbox_ok": "bool", "segmentation_ok": "bool",
    "listed": "bool",
    "error": "str", "sha256": "str", "bytes": "int64", "converted": "str",
}
FLAGS = ("json_ok", "categories_ok", "fields_ok", "unique_id", "name_ok", "has_file", "decodes", "size_matches",
         "one_split", "has_image", "is_person", "keypoints_shape", "visibility_ok", "keypoints_inside",
         "count_matches", "bbox_ok", "segmentation_ok", "listed")
KINDS = ("annotations", "image", "person", "file")
NO_ID = -1  # image_id / annotation_id of a row without one


def _blank_row(**values) -> dict:
    row = voc_layout.blank_row(COLUMNS, FLAGS)
    row.update(image_id=NO_ID, annotation_id=NO_ID, num_keypoints=0, iscrowd=0)
    row.update(values)
    return row


class _Split:
    """What the manifest learns about one split before it writes the rows of its images and people."""

    def __init__(self, folder: Path, split: str, base: Path):
        self.folder, self.split, self.base = Path(folder), split, base
        self.json = ANNOTATIONS + "/" + annotation_name(split)  # as errors name it: relative to the task folder
        self.dataset: dict | None = None
        self.problem = ""
        try:
            self.dataset = read_split(folder, split)
        except InputRejected as error:
            self.problem = str(error).removeprefix(f"{annotation_path(folder, split)}: ")
        self.entries = voc_layout.entries(self.folder / split)  # name -> plain file, litter left out
        self.images: dict[int, dict] = {}  # first entry of each id whose fields are usable
        self.all_image_ids: set[int] = set()  # every integer image id, usable or not
        self.person_id: int | None = None
        self.image_rows: list[dict] = []

    def relative(self, path: Path) -> str:
        return Path(path).relative_to(self.base).as_posix()

    def where(self, what: str) -> str:
        return f"{self.json}#{what}"


def _json_row(split: _Split) -> dict:
    row = _blank_row(path=split.relative(annotation_path(split.folder, split.split)), kind="annotations",
                     split=split.split)
    if split.dataset is None:
        row.update(json_ok=False, error=f"{split.json}: {split.problem}")
        return row
    split.person_id, problem = person_category(split.dataset)
    if problem:
        row.update(categories_ok=False, error=f"{split.json}: {problem}")
    return row


def _image_rows(split: _Split, max_side: int) -> None:
    entries = split.dataset["images"]
    ids = Counter(entry.get("id") for entry in entries if isinstance(entry, dict) and _is_int(entry.get("id")))
    seen: set[int] = set()
    for index, entry in enumerate(entries):
        problem = _image_fields(entry)
        image_id = entry.get("id") if isinstance(entry, dict) and _is_int(entry.get("id")) else None
        what = f"image {image_id}" if image_id is not None and ids[image_id] == 1 else f"images[{index}]"
        row = _blank_row(path=split.relative(annotation_path(split.folder, split.split)) + f"#{what}",
                         kind="image", split=split.split)
        if image_id is not None:
            row["image_id"] = image_id
            split.all_image_ids.add(image_id)
        if problem:
            row.update(fields_ok=False, error=f"{split.where(what)}: {problem}")
            split.image_rows.append(row)
            continue
        name = entry["file_name"]
        row.update(width=entry["width"], height=entry["height"])
        label = row["where"] = f"{split.where(what)} ({split.split}/{name})"
        if ids[image_id] > 1:
            row.update(unique_id=False, error=f"{split.where(f'images[{index}]')}: the image id {image_id} is used by "
                                              f"{ids[image_id]} images (pycocotools would keep only the last)")
        if image_id not in seen:
            seen.add(image_id)
            split.images[image_id] = entry
        if problem := plain_name_problem(name):
            row.update(name_ok=False, error=f"{split.where(what)}: {problem}")
            split.image_rows.append(row)
            continue
        path = split.folder / split.split / name
        row["image"] = split.relative(path)
        problems = [row["error"]] if row["error"] else []
        if name not in split.entries:
            row["has_file"] = False
            problems.append(f"{label}: the file is missing")
        elif os.path.islink(path):
            row["name_ok"] = False
            problems.append(f"{label}: is a symbolic link; an image is a plain file inside {split.split}/")
        elif not split.entries[name]:
            row["has_file"] = False
            problems.append(f"{label}: is not a plain file")
        else:
            facts = voc_layout.inspect_image(path, max_side)
            row.update(sha256=facts["sha256"], bytes=facts["bytes"], converted=facts["converted"])
            if facts["problem"]:
                row["decodes"] = False
                problems.append(f"{label}: {facts['problem']}")
            elif (facts["width"], facts["height"]) != (entry["width"], entry["height"]):
                row["size_matches"] = False
                problems.append(f"{label}: the image is {facts['width']}x{facts['height']} but the JSON says "
                                f"{entry['width']}x{entry['height']}")
        row["error"] = "; ".join(problems)
        split.image_rows.append(row)


def _person_rows(split: _Split) -> list[dict]:
    entries = split.dataset["annotations"]
    ids = Counter(entry.get("id") for entry in entries if isinstance(entry, dict) and _is_int(entry.get("id")))
    rows = []
    for index, entry in enumerate(entries):
        annotation_id = entry.get("id") if isinstance(entry, dict) and _is_int(entry.get("id")) else None
        what = f"annotation {annotation_id}" if annotation_id is not None and ids[annotation_id] == 1 \
            else f"annotations[{index}]" + (f" (id {annotation_id})" if annotation_id is not None else "")
        row = _blank_row(path=split.relative(annotation_path(split.folder, split.split)) + f"#{what}",
                         kind="person", split=split.split)
        if annotation_id is not None:
            row["annotation_id"] = annotation_id
        if problem := _annotation_fields(entry):
            row.update(fields_ok=False, error=f"{split.where(what)}: {problem}")
            rows.append(row)
            continue
        row.update(image_id=entry["image_id"], num_keypoints=entry["num_keypoints"], iscrowd=entry.get("iscrowd", 0),
                   area=float(entry.get("area", math.nan)))
        problems: dict[str, str] = {}
        if ids[annotation_id] > 1:
            problems["unique_id"] = (f"the annotation id {annotation_id} is used by {ids[annotation_id]} annotations "
                                     "(pycocotools would keep only the last)")
        image = split.images.get(entry["image_id"])
        width = height = None
        if entry["image_id"] not in split.all_image_ids:
            problems["has_image"] = f"its image_id {entry['image_id']} is no image of {split.json}"
        elif image is not None:  # (an image entry with unusable fields is that entry's fault)
            width, height = image["width"], image["height"]
            row.update(width=width, height=height)
            if plain_name_problem(image["file_name"]) == "":
                row["image"] = split.relative(split.folder / split.split / image["file_name"])
        if split.person_id is not None and entry["category_id"] != split.person_id:
            problems["is_person"] = (f"its category_id {entry['category_id']} is not the {PERSON!r} category's "
                                     f"({split.person_id})")
        keypoints = entry.get("keypoints")
        found = _keypoints_problems(keypoints, width, height)
        problems.update(found)
        if "keypoints_shape" not in found:
            values = keypoints[2::3]
            row.update(labelled=sum(1 for v in values if v > 0), visible=sum(1 for v in values if v == 2))
            if row["labelled"] and not entry.get("iscrowd"):
                row["keypoints_split"] = split.split
            if "visibility_ok" not in found and row["labelled"] != entry["num_keypoints"]:
                problems["count_matches"] = (f"num_keypoints is {entry['num_keypoints']} but {row['labelled']} "
                                             "keypoints are labelled (v > 0)")
        if problem := _bbox_problem(entry.get("bbox"), width, height):
            problems["bbox_ok"] = problem
        if problem := _segmentation_problem(entry.get("segmentation"), width, height):
            problems["segmentation_ok"] = problem
        row.update({flag: False for flag in problems})
        row["error"] = "; ".join(f"{split.where(what)}: {problem}" for problem in problems.values())
        rows.append(row)
    return rows


def _leaks(splits: dict[str, _Split]) -> None:
    """Fail ``one_split`` on every image row that shares its id, file_name or bytes with an image
    of the other split, and say which."""
    train, val = splits["train"], splits["val"]
    if train.dataset is None or val.dataset is None:
        return
    for this, other in ((train, val), (val, train)):
        by_id = {row["image_id"]: row for row in other.image_rows if row["fields_ok"] and row["name_ok"]}
        by_name = {Path(row["image"]).name: row for row in other.image_rows if row["image"]}
        by_bytes = {row["sha256"]: row for row in other.image_rows if row["sha256"]}
        for row in this.image_rows:
            if not row["fields_ok"] or not row["name_ok"]:
                continue
            reasons = []
            if row["image_id"] in by_id:
                reasons.append(f"the same image id {row['image_id']}")
            if row["image"] and Path(row["image"]).name in by_name:
                reasons.append(f"the same file_name {Path(row['image']).name!r}")
            if row["sha256"] and row["sha256"] in by_bytes:
                reasons.append(f"the same bytes as {other.split}/{Path(by_bytes[row['sha256']]['image']).name}")
            if reasons:
                row["one_split"] = False
                leak = f"{row['where']}: {other.json} has an image with {' and '.join(reasons)}: a train/val leak"
                row["error"] = "; ".join(filter(None, [row["error"], leak]))


def _unlisted_rows(folder: Path, splits: dict[str, _Split], base: Path) -> list[dict]:
    """A row per file in a split folder that no image entry names, and per file in
    ``annotations/`` besides the two JSONs (neither is read)."""
    rows = []
    for split in splits.values():
        if split.dataset is None:
            continue  # its JSON's row says why; its files cannot be judged
        named = {entry["file_name"] for entry in split.dataset["images"]
                 if isinstance(entry, dict) and isinstance(entry.get("file_name"), str)}
        for name in sorted(set(split.entries) - named):
            path = folder / split.split / name
            rows.append(_blank_row(path=path.relative_to(base).as_posix(), kind="file", split=split.split,
                                   image=path.relative_to(base).as_posix(), listed=False,
                                   error=f"{split.split}/{name}: no image of {split.json} names it"))
    wanted = {annotation_name(split) for split in SPLITS}
    for name in sorted(set(voc_layout.entries(folder / ANNOTATIONS)) - wanted):
        path = folder / ANNOTATIONS / name
        rows.append(_blank_row(path=path.relative_to(base).as_posix(), kind="file", listed=False,
                               error=f"{ANNOTATIONS}/{name}: is not one of the task's annotation files "
                                     f"({', '.join(sorted(wanted))})"))
    return rows


def manifest(folder: Path, relative_to: Path | None = None, max_side: int = MAX_SIDE) -> pd.DataFrame:
    """The rows of the COCO keypoints folder ``folder`` (see the module docstring), with the
    columns ``COLUMNS``; ``path`` is relative to ``relative_to`` (default: ``folder``) and unique
    per row. Never raises for bad data."""
    folder = Path(folder)
    base = Path(relative_to) if relative_to else folder
    splits = {split: _Split(folder, split, base) for split in SPLITS}
    rows: list[dict] = []
    people: list[dict] = []
    for split in splits.values():
        split.person_id = None
        rows.append(_json_row(split))
        if split.dataset is not None:
            _image_rows(split, max_side)
            people += _person_rows(split)
    _leaks(splits)
    for split in splits.values():
        rows += split.image_rows
    rows += people + _unlisted_rows(folder, splits, base)
    return pd.DataFrame(rows, columns=list(COLUMNS)).astype(COLUMNS)


def expectations() -> list:
    """The Great Expectations suite of a pose manifest: every flag holds on every row, and both
    splits have people with labelled keypoints."""
    import great_expectations as gx  # slow import; serving a model never needs it

    must_hold = [gx.expectations.ExpectColumnValuesToBeInSet(column=column, value_set=[True]) for column in FLAGS]
    return must_hold + [gx.expectations.ExpectColumnDistinctValuesToContainSet(
        column="keypoints_split", value_set=list(SPLITS))]


# -- the dataset ----------------------------------------------------------------------------------------

def region_mask(annotation: dict, height: int, width: int) -> np.ndarray:
    """The pixels of ``annotation`` as a bool ``[height, width]`` array: its segmentation (polygons
    or RLE, through pycocotools) when it has one, else its bbox."""
    from pycocotools import mask as coco_mask

    segmentation = annotation.get("segmentation")
    if segmentation:
        if isinstance(segmentation, list):
            rle = coco_mask.merge(coco_mask.frPyObjects(segmentation, height, width))
        elif isinstance(segmentation.get("counts"), list):
            rle = coco_mask.frPyObjects(segmentation, height, width)
        else:
            rle = segmentation
        return coco_mask.decode(rle).astype(bool)
    region = np.zeros((height, width), dtype=bool)
    x, y, w, h = annotation["bbox"]
    left, top = max(0, math.floor(x)), max(0, math.floor(y))
    right, bottom = min(width, math.ceil(x + w)), min(height, math.ceil(y + h))
    region[top:bottom, left:right] = True
    return region


class PoseDataset(Dataset):
    """One split of a COCO keypoints folder: ``(image, target)`` per image entry, in JSON order.

    ``image`` is a ``tv_tensors.Image`` (uint8, 3xHxW). ``target`` holds ``"image_id"``;
    ``"keypoints"``, float32 ``[N, 17, 3]`` (x, y in pixels, v) of the N people that are not crowds
    and have labelled keypoints; ``"boxes"``, their boxes as ``tv_tensors.BoundingBoxes`` (XYXY,
    from COCO's XYWH); and ``"ignore"``, a bool ``tv_tensors.Mask`` ``[H, W]`` of the pixels the
    loss must skip: crowds and people with no labelled keypoint, from their segmentation (else
    their bbox). ``transform(image, target)`` follows the torchvision v2 convention: it moves the
    boxes and the mask with the image; the keypoints are a plain tensor it passes through
    unchanged (pose augmentations move them: :func:`~zooflow.tasks.pose.skeleton.flip_people`).
    Validate first: an image or annotation that the manifest flags may fail here with a
    ``CocoError`` naming it."""

    def __init__(self, folder: Path, split: str, transform=None, max_side: int = MAX_SIDE):
        self.folder = Path(folder)
        self.split = split
        self.transform = transform
        self.max_side = max_side
        self.dataset = read_split(folder, split)
        self.coco = coco_index(self.dataset, str(annotation_path(folder, split)))
        self.person_id, _ = person_category(self.dataset)
        self.image_ids = list(dict.fromkeys(entry["id"] for entry in self.dataset["images"]))

    def __len__(self) -> int:
        return len(self.image_ids)

    def image_path(self, index: int) -> Path:
        """The image file of the ``index``-th image (its ``file_name`` checked to be a plain name)."""
        entry = self.coco.imgs[self.image_ids[index]]
        if problem := plain_name_problem(entry["file_name"]):
            raise CocoError(f"{annotation_path(self.folder, self.split)}#image {entry['id']}: {problem}")
        return self.folder / self.split / entry["file_name"]

    def annotations(self, index: int) -> list[dict]:
        """The annotations of the ``index``-th image, of the person category, in JSON order."""
        found = self.coco.imgToAnns.get(self.image_ids[index], [])
        return [annotation for annotation in found if annotation.get("category_id") == self.person_id]

    def __getitem__(self, index: int):
        from torchvision import tv_tensors
        from torchvision.transforms.v2 import functional

        path = self.image_path(index)
        picture = images.open_rgb(safety.read_bytes(path), self.max_side)
        entry = self.coco.imgs[self.image_ids[index]]
        if (picture.width, picture.height) != (entry["width"], entry["height"]):
            raise CocoError(f"{path}: the image is {picture.width}x{picture.height} but "
                            f"{annotation_path(self.folder, self.split)} says {entry['width']}x{entry['height']}")
        height, width = picture.height, picture.width
        people = [a for a in self.annotations(index) if not a.get("iscrowd") and a["num_keypoints"] > 0]
        skipped = [a for a in self.annotations(index) if a.get("iscrowd") or a["num_keypoints"] == 0]
        keypoints = torch.tensor([a["keypoints"] for a in people], dtype=torch.float32).reshape(-1, 17, 3)
        boxes = torch.tensor([a["bbox"] for a in people], dtype=torch.float32).reshape(-1, 4)
        boxes[:, 2:] += boxes[:, :2]
        ignore = np.zeros((height, width), dtype=bool)
        for annotation in skipped:
            ignore |= region_mask(annotation, height, width)
        image = tv_tensors.Image(functional.pil_to_tensor(picture))
        target = {"image_id": self.image_ids[index], "keypoints": keypoints,
                  "boxes": tv_tensors.BoundingBoxes(boxes, format="XYXY", canvas_size=(height, width)),
                  "ignore": tv_tensors.Mask(torch.from_numpy(ignore))}
        if self.transform is not None:
            return self.transform(image, target)
        return image, target
