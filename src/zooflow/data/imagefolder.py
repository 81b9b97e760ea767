"""ImageFolder datasets (``<split>/<class>/<image>``) with a declared class set.

``classes.txt`` beside the split folders lists the classes, one per line, in label order. It is
the contract validation checks the folders against: a class folder that is not declared, or a
declared class with no images, is an error rather than a silently different label space.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
from PIL import Image, UnidentifiedImageError
from torchvision.datasets import ImageFolder
from torchvision.datasets.folder import IMG_EXTENSIONS

from zooflow.data.labelled import add_split_facts, labelled_files

SPLITS = ("train", "val")
CLASSES_FILE = "classes.txt"


def read_classes(folder: Path) -> list[str]:
    """The declared class set of an ImageFolder dataset, in label order."""
    path = Path(folder) / CLASSES_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: it declares the class set (one class per line); "
                                "`zooflow data import` writes it from the train/ folders")
    classes = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if len(classes) < 2 or len(set(classes)) != len(classes):
        raise ValueError(f"{path}: needs at least two distinct classes, got {classes}")
    return classes


def write_classes(folder: Path, classes: list[str]) -> None:
    """Declare the class set of a dataset."""
    (Path(folder) / CLASSES_FILE).write_text("".join(f"{name}\n" for name in classes))


def _inspect(path: Path) -> dict:
    """Decode one image fully; its facts, or why it cannot be used."""
    data = path.read_bytes()
    facts = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(),
             "width": 0, "height": 0, "mode": "", "decodes": False, "error": ""}
    if path.suffix.lower() not in IMG_EXTENSIONS:
        facts["error"] = f"not an image file extension ({path.suffix or 'none'})"
        return facts
    try:
        with Image.open(path) as image:
            image.load()  # forces a full decode: truncated or corrupt files fail here
            facts.update(width=image.width, height=image.height, mode=image.mode, decodes=True)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        facts["error"] = f"cannot decode: {error}"
    return facts


def manifest(folder: Path, splits: tuple[str, ...] = SPLITS, relative_to: Path | None = None) -> pd.DataFrame:
    """One row per file under ``<folder>/<split>/<class>/``, with what validation needs.

    Columns: path, split, label, split_label, width, height, mode, bytes, sha256, decodes,
    error, class_count (images of that label in that split), in_other_split (the same bytes
    also appear in another split: a leak).
    """
    base = Path(relative_to) if relative_to else Path(folder)
    rows = [{"path": str(file.relative_to(base)), "split": split, "label": label, **_inspect(file)}
            for split, label, file in labelled_files(folder, splits, f"{'/'.join(splits)}/<class>/<image>")]
    columns = ["path", "split", "label", "width", "height", "mode", "bytes", "sha256", "decodes", "error"]
    table = add_split_facts(pd.DataFrame(rows, columns=columns))
    return table


class DeclaredImageFolder(ImageFolder):
    """torchvision's ImageFolder, with labels numbered by ``classes.txt`` instead of by the
    folders that happen to exist (so a split missing a class keeps the same label ids)."""

    def __init__(self, folder: Path, split: str, transform=None):
        self.declared = read_classes(folder)
        super().__init__(str(Path(folder) / split), transform=transform)

    def find_classes(self, directory):
        return list(self.declared), {name: index for index, name in enumerate(self.declared)}
