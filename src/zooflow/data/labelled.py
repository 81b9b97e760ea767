"""What every "one folder per split, one sub-folder per label" dataset shares: walking its
files, and the per-split facts its validation needs."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd

from zooflow import progress


def labelled_files(folder: Path, splits: tuple[str, ...], layout: str) -> Iterator[tuple[str, str, Path]]:
    """(split, label, file) for every visible file under ``<folder>/<split>/<label>/`` (images
    may sit in nested folders, so the walk is recursive). Links are not followed: a symlink is
    yielded as a file of its own, for the manifest to flag, never walked into."""
    for split in splits:
        split_dir = Path(folder) / split
        if not split_dir.is_dir():
            raise FileNotFoundError(f"{split_dir} is missing: this dataset needs {layout}")
        labels = sorted(p for p in split_dir.iterdir() if not p.name.startswith(".")
                        and (p.is_symlink() or p.is_dir()))
        for label_dir in labels:
            if label_dir.is_symlink():
                yield split, label_dir.name, label_dir
                continue
            for file in _files_below(label_dir):
                yield split, label_dir.name, file


def _files_below(folder: Path) -> list[Path]:
    """Visible files and symlinks under ``folder``, sorted, without following links."""
    found = []
    for top, folders, files in os.walk(folder, followlinks=False):
        folders[:] = [name for name in folders if not name.startswith(".")]
        # os.walk lists a link to a folder among the folders; it is a file-like entry here.
        links = [name for name in folders if (Path(top) / name).is_symlink()]
        folders[:] = [name for name in folders if name not in links]
        found += [Path(top) / name for name in files + links if not name.startswith(".")]
    return sorted(found)


def add_split_facts(table: pd.DataFrame) -> pd.DataFrame:
    """``split_label``, ``class_count`` (rows of that label in that split) and
    ``in_other_split`` (the same content, by ``sha256``, also in another split: a leak)."""
    table["split_label"] = table["split"] + "/" + table["label"]
    table["class_count"] = table.groupby("split_label")["path"].transform("count").astype(int)
    hashed = table["sha256"] != ""  # unreadable rows have no hash and fail validation anyway
    table["in_other_split"] = False
    table.loc[hashed, "in_other_split"] = table[hashed].groupby("sha256")["split"].transform("nunique") > 1
    return table


def inspect_files(folder: Path, splits: tuple[str, ...], layout: str, inspect: Callable[[Path], dict],
                  relative_to: Path | None = None) -> list[dict]:
    """One manifest row per file of ``labelled_files``: path (relative to ``relative_to``),
    split, label and what ``inspect(file)`` finds, with progress lines (tens of thousands of
    files take minutes to read and hash)."""
    base = Path(relative_to) if relative_to else Path(folder)
    files = list(labelled_files(folder, splits, layout))
    rows = []
    with progress.phase(f"manifest of {Path(folder).name}/", len(files), "files") as shown:
        for split, label, file in files:
            rows.append({"path": str(file.relative_to(base)), "split": split, "label": label, **inspect(file)})
            shown.advance()
    return rows

