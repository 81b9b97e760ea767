"""What the Pascal VOC tasks share: the folder, the class set, the split lists and the manifest
pieces that do not depend on what a label file holds.

A VOC task's data folder holds exactly one ``VOCdevkit/VOC<year>/`` with ``JPEGImages/<id>.jpg``
(``.jpeg``/``.png`` accepted too), one label file per image in a folder of its own (detection's
``Annotations/<id>.xml``, segmentation's ``SegmentationClass/<id>.png``), the ids of each split
in ``ImageSets/<Main|Segmentation>/train.txt`` and ``val.txt``, and optionally ``classes.txt``.
A ``Layout`` names those parts for one task; its methods read them by the same rules for every
task: ids are plain file names (never a path), nothing is read through a link, and every
problem names the file and line.
"""

from __future__ import annotations

import hashlib
import math
import os
import stat
import unicodedata
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from zooflow.data import images, safety
from zooflow.data.imagefolder import parse_classes
from zooflow.data.safety import ImportRejected
from zooflow.errors import InputRejected

VOC_CLASSES: tuple[str, ...] = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "diningtable", "dog",
    "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor")
SPLITS = ("train", "val")
CLASSES_FILE = "classes.txt"
DEVKIT = "VOCdevkit"
IMAGES = "JPEGImages"
IMAGE_SETS = "ImageSets"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".JPG", ".JPEG", ".PNG")  # the order an id's image is looked for
MAX_ID = 128


@dataclass(frozen=True)
class Layout:
    """One task's view of a VOC folder: where its labels and split lists are, the class set
    without a ``classes.txt``, and the error a bad split list raises."""

    task: str  # "detection": in messages ("listed in no detection split")
    labels: str  # the folder of per-image label files, beside JPEGImages/
    label_suffix: str  # ".xml": a label file is <labels>/<id><label_suffix>
    label_kind: str  # "annotation": one label file, in messages
    labels_hold: str  # "their boxes": what the label files hold, in messages
    split_folder: str  # "ImageSets/Main"
    default_classes: tuple[str, ...]
    default_source: str  # "the 20 VOC classes": where the class set comes from without classes.txt
    error: type[InputRejected] = ImportRejected

    # -- the folder, the class set, the splits ------------------------------------------------

    def voc_root(self, folder: Path) -> Path:
        """The single ``VOCdevkit/VOC*`` folder under a task's data folder."""
        devkit = Path(folder) / DEVKIT
        if devkit.is_symlink() or not devkit.is_dir():
            raise ImportRejected(f"{folder}: no {DEVKIT}/ folder; a Pascal VOC dataset is "
                                 f"{DEVKIT}/VOC<year>/{{{IMAGES},{self.labels},{self.split_folder}}}")
        found = sorted(entry.name for entry in os.scandir(devkit)
                       if entry.name.startswith("VOC") and entry.is_dir(follow_symlinks=False))
        if len(found) != 1:
            what = "no VOC<year> folder" if not found else f"{len(found)} VOC folders ({', '.join(found)})"
            raise ImportRejected(f"{devkit}: holds {what}; the task's data is exactly one {DEVKIT}/VOC<year>/ folder")
        return devkit / found[0]

    def read_classes(self, root: Path) -> list[str]:
        """The class set of the VOC folder ``root``, in label order: its ``classes.txt`` (each
        name a safe name, no duplicates, at least one) or, without one, the default classes."""
        path = Path(root) / CLASSES_FILE
        if not path.exists() and not path.is_symlink():
            return list(self.default_classes)
        classes = parse_classes(path, safety.read_bytes(path))
        if not classes:
            raise ImportRejected(f"{path}: declares no class; list one class per line (or remove the file to use "
                                 f"{self.default_source})")
        return classes

    def class_source(self, root: Path) -> str:
        """Where ``read_classes`` took the class set from, for messages."""
        return CLASSES_FILE if (Path(root) / CLASSES_FILE).exists() else self.default_source

    def split_file(self, root: Path, split: str) -> Path:
        """Where the ids of ``split`` are listed."""
        return Path(root) / self.split_folder / f"{split}.txt"

    def id_problem(self, image_id: str) -> str:
        """Why ``image_id`` cannot name an image and its label file ("" if it can)."""
        if len(image_id) > MAX_ID:
            return f"the image id {image_id[:40]!r}... is longer than {MAX_ID} characters"
        if any(unicodedata.category(char) == "Cc" for char in image_id):
            return f"the image id {image_id!r} holds a control character"
        if "/" in image_id or "\\" in image_id or ".." in image_id or image_id.startswith("."):
            return (f"the image id {image_id!r} is not a plain file name (no '/', '\\', '..' or leading '.'): "
                    f"ids name {IMAGES}/<id>.jpg and {self.labels}/<id>{self.label_suffix}")
        if any(char.isspace() for char in image_id):
            # "2008_000008  1" is a line of a per-class list (aeroplane_train.txt), not of a split list.
            return (f"the image id {image_id!r} holds a space; a split list has one id per line (per-class lists "
                    "such as aeroplane_train.txt, with a second column, are not split lists)")
        return ""

    def split_lines(self, root: Path, split: str) -> tuple[list[str], list[str]]:
        """The ids of one split list, and every problem of that list (each naming the file and line)."""
        path = self.split_file(root, split)
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
            if problem := self.id_problem(image_id):
                problems.append(f"{path} line {number}: {problem}")
            elif image_id in first_line:
                problems.append(f"{path} line {number}: the id {image_id!r} is listed twice (first on line "
                                f"{first_line[image_id]})")
            else:
                first_line[image_id] = number
                ids.append(image_id)
        return ids, problems

    def read_split(self, root: Path, split: str) -> list[str]:
        """The image ids of ``<split_folder>/<split>.txt``, in file order (blank lines ignored);
        an unsafe or duplicated id is the layout's error naming the file and line."""
        ids, problems = self.split_lines(root, split)
        if problems:
            raise self.error(problems[0])
        return ids

    def scan(self, folder: Path, relative_to: Path | None = None) -> Scan:
        """The split lists and the entries of ``JPEGImages/`` and the label folder, read once."""
        root = self.voc_root(folder)
        found = Scan(root=root, base=Path(relative_to) if relative_to else Path(folder), layout=self)
        for split in SPLITS:
            found.split_ids[split], found.split_problems[split] = self.split_lines(root, split)
            found.split_sets[split] = set(found.split_ids[split])
        found.image_entries = entries(root / IMAGES)
        found.label_entries = entries(root / self.labels)
        return found


# -- files ----------------------------------------------------------------------------------------

def plain_file_name(name: str) -> bool:
    """True if ``name`` names a file directly inside a folder (no separators, no '..', not
    absolute, no control characters)."""
    return (bool(name) and name not in (".", "..") and "/" not in name and "\\" not in name
            and ".." not in name and not any(unicodedata.category(char) == "Cc" for char in name)
            and not Path(name).is_absolute() and len(name) <= 255)


def find_image(names: set[str], image_id: str, filename: str = "") -> str | None:
    """The file in ``JPEGImages/`` (whose entries are ``names``) that holds ``image_id``'s image:
    ``filename`` (detection: the XML's ``<filename>``) when it is that id's file, else
    ``<id>.jpg`` (or .jpeg, .png)."""
    if filename and plain_file_name(filename) and Path(filename).stem == image_id and filename in names:
        return filename
    return next((image_id + suffix for suffix in IMAGE_SUFFIXES if image_id + suffix in names), None)


def entries(folder: Path) -> dict[str, bool]:
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


def read_file(path: Path) -> tuple[bytes | None, dict]:
    """A plain file's bytes (``None`` when it cannot be read) and its facts: ``sha256``,
    ``bytes`` and, when unreadable, ``problem`` (without the path)."""
    facts = {"sha256": "", "bytes": 0, "problem": ""}
    try:
        data = safety.read_bytes(path)
    except InputRejected as error:
        facts["problem"] = str(error).removeprefix(f"{path}: ")
        return None, facts
    facts.update(sha256=hashlib.sha256(data).hexdigest(), bytes=len(data))
    return data, facts


def inspect_image(path: Path, max_side: int) -> dict:
    """Decode one image fully: its size, hash and conversions, or why it cannot be used."""
    data, read = read_file(path)
    facts = {"width": 0, "height": 0, "decodes": False, "converted": "", **read}
    if data is None:
        return facts
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


class SplitFiles:
    """One split of a VOC folder: its listed ids, and where each one's image and label file are.
    The tasks' datasets build on it (``VOCDetection``, ``VOCSegmentation``)."""

    def __init__(self, folder: Path, split: str, layout: Layout):
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; a VOC folder has {', '.join(SPLITS)}")
        self.layout = layout
        self.root = layout.voc_root(folder)
        self.split = split
        self.image_ids = layout.read_split(self.root, split)
        self._image_names = {name for name, plain in entries(self.root / IMAGES).items() if plain}

    def __len__(self) -> int:
        return len(self.image_ids)

    def label_path(self, index: int) -> Path:
        """The label file of the ``index``-th id (it may not exist: validation says so)."""
        return self.root / self.layout.labels / f"{self.image_ids[index]}{self.layout.label_suffix}"

    def find_image_path(self, index: int, filename: str = "") -> Path:
        """The image file of the ``index``-th id (``filename``: see ``find_image``); the layout's
        error, naming the file and the split list, when there is none."""
        image_id = self.image_ids[index]
        name = find_image(self._image_names, image_id, filename)
        if name is None:
            raise self.layout.error(f"{self.root / IMAGES / (image_id + '.jpg')}: is missing but listed in "
                                    f"{self.layout.split_file(self.root, self.split)}")
        return self.root / IMAGES / name


# -- the manifest pieces -----------------------------------------------------------------------------

@dataclass
class Scan:
    """What a manifest learns about a VOC folder before it writes rows."""

    root: Path
    base: Path
    layout: Layout
    split_ids: dict[str, list[str]] = field(default_factory=dict)
    split_sets: dict[str, set[str]] = field(default_factory=dict)
    split_problems: dict[str, list[str]] = field(default_factory=dict)
    image_entries: dict[str, bool] = field(default_factory=dict)
    label_entries: dict[str, bool] = field(default_factory=dict)

    def relative(self, path: Path) -> str:
        """``path`` as the manifest names it (relative to ``base``, with '/')."""
        return Path(path).relative_to(self.base).as_posix()

    def splits_of(self, image_id: str) -> list[str]:
        return [split for split in SPLITS if image_id in self.split_sets[split]]

    def listed_ids(self) -> list[str]:
        """Every listed id once, train's first, in file order."""
        return list(dict.fromkeys(self.split_ids["train"] + self.split_ids["val"]))


def blank_row(columns: dict[str, str], flags: tuple[str, ...]) -> dict:
    """A manifest row with every flag passing and nothing known ("", NaN, 0, False); the callers
    fill in what they find."""
    nothing = {"str": "", "float64": math.nan, "int64": 0, "bool": False}
    row = {name: nothing[kind] for name, kind in columns.items()}
    row.update({name: True for name in flags})
    return row


def leaks(scan: Scan, listed: dict[str, dict]) -> dict[str, list[str]]:
    """For each listed id, why it is in the other split too: listed in both, or the same image
    bytes under an id of the other split. ``listed`` maps each id to its facts: ``image_path``
    and ``image`` (``inspect_image``'s facts, or None)."""
    reasons: dict[str, list[str]] = defaultdict(list)
    both = scan.split_sets["train"] & scan.split_sets["val"]
    for image_id in both:
        reasons[image_id].append(f"the id {image_id!r} is listed in both {scan.layout.split_folder}/train.txt "
                                 "and val.txt")
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


def unlisted_rows(scan: Scan, used: dict[str, set[str]], blank_row: Callable[[], dict]) -> list[dict]:
    """A row per file in ``JPEGImages/`` or the label folder that no split uses (not read: the
    task folder must hold exactly the listed data). ``used``: the names each folder's listed ids
    use."""
    no_split = f"is in no split ({scan.layout.split_folder}/train.txt, val.txt)"
    rows = []
    for folder, found in ((IMAGES, scan.image_entries), (scan.layout.labels, scan.label_entries)):
        for name in sorted(set(found) - used[folder]):
            what = "" if found[name] else " (not a plain file)"
            rows.append({**blank_row(), "path": scan.relative(scan.root / folder / name),
                         "image_id": Path(name).stem, "listed": False,
                         "image": scan.relative(scan.root / folder / name) if folder == IMAGES else "",
                         "error": f"{folder}/{name}{what} {no_split}"})
    return rows


def split_problem_rows(scan: Scan, blank_row: Callable[[], dict]) -> list[dict]:
    """A row per problem of a split list (missing, unreadable, an unsafe or repeated id)."""
    rows = []
    for split, problems in scan.split_problems.items():
        path = scan.layout.split_file(scan.root, split)
        for problem in problems:
            rows.append({**blank_row(), "path": scan.relative(path), "split": split, "listed": False,
                         "error": problem.removeprefix(f"{path}: ").removeprefix(f"{path} ")})
    return rows
