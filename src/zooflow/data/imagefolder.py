"""ImageFolder datasets (``<split>/<class>/<image>``) with a declared class set.

``classes.txt`` beside the split folders lists the classes, one per line, in label order. It is
the contract validation checks the folders against: a class folder that is not declared, or a
declared class with no images, is an error rather than a silently different label space.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
from torchvision.datasets import ImageFolder
from torchvision.datasets.folder import IMG_EXTENSIONS

from zooflow.data import images
from zooflow.data.images import MAX_SIDE
from zooflow.data.labelled import add_split_facts, inspect_files, labelled_files
from zooflow.data.safety import ImportRejected, check_name

SPLITS = ("train", "val")
CLASSES_FILE = "classes.txt"


def parse_classes(path: Path, raw: bytes) -> list[str]:
    """The class names of a ``classes.txt`` (``raw``, read from ``path``), one per line, blank
    lines skipped: UTF-8 (a BOM is harmless), each a safe name (``safety.check_name``: it
    becomes a folder, a metric key and card text), none twice; errors name the file and line.
    How many classes a task needs is the caller's rule."""
    try:
        text = raw.decode("utf-8-sig")  # a BOM from a Windows editor is harmless
    except UnicodeDecodeError as error:
        raise ImportRejected(f"{path}: not UTF-8 ({error.reason} at byte {error.start})") from None
    classes: list[str] = []
    first_line: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), 1):
        name = line.strip()
        if not name:
            continue
        check_name(name, f"{path} line {number}", kind="class name")
        if name in first_line:
            raise ImportRejected(f"{path} line {number}: the class {name!r} is declared twice "
                                 f"(first on line {first_line[name]})")
        first_line[name] = number
        classes.append(name)
    return classes


def read_classes(folder: Path) -> list[str]:
    """The declared class set of an ImageFolder dataset, in label order. Every name must be a
    safe name (``safety.check_name``: it becomes a folder, a metric key and card text); fewer
    than two classes, or a duplicate, is an error naming ``classes.txt`` and the line."""
    path = Path(folder) / CLASSES_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: it declares the class set (one class per line); "
                                "`zooflow data import` writes it from the train/ folders")
    if path.is_symlink():
        raise ImportRejected(f"{path}: is a symbolic link; classes.txt must be a plain file")
    classes = parse_classes(path, path.read_bytes())
    if len(classes) < 2:
        raise ImportRejected(f"{path}: declares {len(classes)} class(es) {classes}; a classifier needs at least two")
    return classes


def write_classes(folder: Path, classes: list[str]) -> None:
    """Declare the class set of a dataset."""
    (Path(folder) / CLASSES_FILE).write_text("".join(f"{name}\n" for name in classes), encoding="utf-8")


def _inspect(path: Path, max_side: int = MAX_SIDE) -> dict:
    """Decode one image fully; its facts, or why it cannot be used (never an exception: a bad
    file is a row that validation names)."""
    facts = {"bytes": 0, "sha256": "", "width": 0, "height": 0, "mode": "", "decodes": False, "error": "",
             "converted": ""}
    if path.is_symlink():
        facts["error"] = "a symbolic link (data/ holds plain files only)"
        return facts
    data = path.read_bytes()
    facts.update(bytes=len(data), sha256=hashlib.sha256(data).hexdigest())
    if path.suffix.lower() not in IMG_EXTENSIONS:
        facts["error"] = f"not an image file extension ({path.suffix or 'none'})"
        return facts
    if not data:
        facts["error"] = "an empty file (0 bytes)"
        return facts
    try:
        decoded = images.decode(data, "RGB", max_side)
    except images.ImageRejected as error:
        facts["error"] = str(error).removeprefix("image bytes: ")
    except Exception as error:  # noqa: BLE001 - a decoder failing on user bytes is a bad row, not a crash
        facts["error"] = f"cannot decode: {type(error).__name__}: {error}"
    else:
        facts.update(width=decoded.image.width, height=decoded.image.height, mode=decoded.stored_mode, decodes=True,
                     converted="; ".join(decoded.steps))
    return facts


def manifest(folder: Path, splits: tuple[str, ...] = SPLITS, relative_to: Path | None = None) -> pd.DataFrame:
    """One row per file under ``<folder>/<split>/<class>/``, with what validation needs.

    Columns: path, split, label, split_label, width, height (as the model sees it, after EXIF
    rotation), mode (as stored), bytes, sha256, decodes, error, converted (what ``images.decode``
    had to do, e.g. "16-bit->8-bit"), class_count (images of that label in that split),
    in_other_split (the same bytes also appear in another split: a leak).
    """
    rows = inspect_files(folder, splits, f"{'/'.join(splits)}/<class>/<image>", _inspect, relative_to)
    columns = ["path", "split", "label", "width", "height", "mode", "bytes", "sha256", "decodes", "error",
               "converted"]
    table = add_split_facts(pd.DataFrame(rows, columns=columns))
    return table


class DeclaredImageFolder(ImageFolder):
    """torchvision's ImageFolder, with labels numbered by ``classes.txt`` instead of by the
    folders that happen to exist (so a split missing a class keeps the same label ids), and
    images opened by ``images.open_rgb`` (EXIF rotation, 16-bit, CMYK, alpha handled on purpose)."""

    def __init__(self, folder: Path, split: str, transform=None):
        self.declared = read_classes(folder)
        super().__init__(str(Path(folder) / split), transform=transform, loader=images.open_rgb)

    def find_classes(self, directory):
        return list(self.declared), {name: index for index, name in enumerate(self.declared)}
