"""Bring a user's own dataset into data/ as a new data version."""

from __future__ import annotations

import shutil
from pathlib import Path

from zooflow.data.imagefolder import CLASSES_FILE, SPLITS, write_classes


def import_imagefolder(source: Path, target: Path) -> list[str]:
    """Copy an ImageFolder dataset (``train/<class>/``, ``val/<class>/``, e.g. the book's
    hymenoptera_data) into ``target``, declaring its class set from ``train/`` unless the
    source declares one. Returns the classes."""
    source = Path(source)
    missing = [split for split in SPLITS if not (source / split).is_dir()]
    if missing:
        raise FileNotFoundError(f"{source} is not an ImageFolder dataset: no {', '.join(missing)} folder(s)")
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target, ignore=shutil.ignore_patterns(".*"))
    if (target / CLASSES_FILE).is_file():
        return [line.strip() for line in (target / CLASSES_FILE).read_text().splitlines() if line.strip()]
    classes = sorted(p.name for p in (source / "train").iterdir() if p.is_dir() and not p.name.startswith("."))
    write_classes(target, classes)
    return classes
