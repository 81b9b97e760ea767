"""What every "one folder per split, one sub-folder per label" dataset shares: walking its
files, and the per-split facts its validation needs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd


def labelled_files(folder: Path, splits: tuple[str, ...], layout: str) -> Iterator[tuple[str, str, Path]]:
    """(split, label, file) for every visible file under ``<folder>/<split>/<label>/``
    (images may sit in nested folders, so the walk is recursive)."""
    for split in splits:
        split_dir = Path(folder) / split
        if not split_dir.is_dir():
            raise FileNotFoundError(f"{split_dir} is missing: this dataset needs {layout}")
        for label_dir in sorted(p for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
            for file in sorted(p for p in label_dir.rglob("*") if p.is_file() and not p.name.startswith(".")):
                yield split, label_dir.name, file


def add_split_facts(table: pd.DataFrame) -> pd.DataFrame:
    """``split_label``, ``class_count`` (rows of that label in that split) and
    ``in_other_split`` (the same content, by ``sha256``, also in another split: a leak)."""
    table["split_label"] = table["split"] + "/" + table["label"]
    table["class_count"] = table.groupby("split_label")["path"].transform("count").astype(int)
    hashed = table["sha256"] != ""  # unreadable rows have no hash and fail validation anyway
    table["in_other_split"] = False
    table.loc[hashed, "in_other_split"] = table[hashed].groupby("sha256")["split"].transform("nunique") > 1
    return table
