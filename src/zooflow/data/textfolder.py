"""Text classification data in the IMDb layout: ``<split>/<label>/*.txt`` (``aclImdb``:
``train/{pos,neg}``, ``test/{pos,neg}``), one UTF-8 text per file, plus ``classes.txt``.

Other corpora arrive as a TSV/CSV of (text, label[, split]) and are written into this layout
by ``import_table``, so every reader downstream sees one format.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import unicodedata
from pathlib import Path

import numpy as np
import pandas as pd

from zooflow.data.imagefolder import read_classes, write_classes
from zooflow.data.labelled import add_split_facts, labelled_files
from zooflow.errors import InputRejected

SPLITS = ("train", "test")
# Hiragana, katakana, CJK ideographs (and their half-width forms): what makes a text Japanese.
JAPANESE = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uff66-\uff9f]")


class TextDataError(InputRejected):
    """A text corpus that cannot be read; the message names the file or row."""


def japanese_share(text: str) -> float:
    """The share of non-space characters that are Japanese script."""
    letters = [c for c in text if not c.isspace()]
    return sum(bool(JAPANESE.match(c)) for c in letters) / len(letters) if letters else 0.0


def text_key(text: str) -> str:
    """What makes two texts "the same" for leak checks: NFKC, whitespace collapsed, lower case."""
    return " ".join(unicodedata.normalize("NFKC", text).split()).lower()


def _inspect(path: Path) -> dict:
    data = path.read_bytes()
    facts = {"bytes": len(data), "utf8": True, "error": "", "chars": 0, "words": 0, "japanese_share": 0.0,
             "sha256": ""}
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        facts.update(utf8=False, error=f"not UTF-8: {error}")
        return facts
    normal = unicodedata.normalize("NFKC", text).strip()
    facts.update(chars=len(normal), words=len(normal.split()), japanese_share=round(japanese_share(normal), 4),
                 # the same text in two splits is a leak even when whitespace or width differ
                 sha256=hashlib.sha256(text_key(text).encode()).hexdigest())
    if not normal:
        facts["error"] = "empty text"
    return facts


def manifest(folder: Path, relative_to: Path | None = None) -> pd.DataFrame:
    """One row per text file: path, split, label, bytes, utf8, error, chars, words,
    japanese_share, sha256, split_label, class_count, in_other_split."""
    base = Path(relative_to) if relative_to else Path(folder)
    rows = [{"path": str(file.relative_to(base)), "split": split, "label": label, **_inspect(file)}
            for split, label, file in labelled_files(folder, SPLITS, f"{'/'.join(SPLITS)}/<label>/*.txt")]
    columns = ["path", "split", "label", "bytes", "utf8", "error", "chars", "words", "japanese_share", "sha256"]
    table = add_split_facts(pd.DataFrame(rows, columns=columns))
    return table


def read_split(folder: Path, split: str, strict: bool = True) -> tuple[list[str], list[int], list[str]]:
    """Texts, label ids (by ``classes.txt``) and classes of one split. ``strict=False`` skips
    files that are not UTF-8 instead of raising: only for facts gathered before validation,
    which then stops the run on those very files."""
    classes = read_classes(folder)
    texts, labels = [], []
    for index, label in enumerate(classes):
        for file in sorted((Path(folder) / split / label).glob("*.txt")):
            try:
                texts.append(file.read_text(encoding="utf-8"))
            except UnicodeDecodeError as error:
                if strict:
                    raise TextDataError(f"{file}: not UTF-8 ({error})") from None
                continue
            labels.append(index)
    return texts, labels, classes


def write_split(folder: Path, split: str, texts: list[str], labels: list[str], prefix: str = "") -> None:
    """Write texts as ``<split>/<label>/<n>.txt`` (UTF-8)."""
    for index, (text, label) in enumerate(zip(texts, labels)):
        target = Path(folder) / split / label / f"{prefix}{index:05d}.txt"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")


def read_table(path: Path) -> pd.DataFrame:
    """A TSV/CSV with ``text`` and ``label`` columns (and optionally ``split``), strictly UTF-8."""
    path = Path(path)
    raw = path.read_bytes()
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as error:
        row = raw[:error.start].count(b"\n") + 1
        raise TextDataError(f"{path}: line {row} is not UTF-8 ({error.reason} at byte {error.start})") from None
    table = pd.read_csv(path, sep="\t" if path.suffix.lower() in {".tsv", ".tab"} else ",", dtype=str,
                        keep_default_na=False, encoding="utf-8")
    missing = {"text", "label"} - set(table.columns)
    if missing:
        raise TextDataError(f"{path}: needs columns text and label; missing {sorted(missing)} (has {list(table.columns)})")
    empty = table.index[table["text"].str.strip() == ""]
    if len(empty):
        raise TextDataError(f"{path}: row {empty[0] + 2} has an empty text")  # +2: header line, 1-based
    return table


def import_table(path: Path, target: Path, test_share: float = 0.2, seed: int = 0) -> list[str]:
    """Write a (text, label[, split]) table into the IMDb layout at ``target``; its classes.
    Without a ``split`` column, a seeded stratified ``test_share`` becomes the test split."""
    table = read_table(path)
    if "split" not in table:
        rng = np.random.default_rng(seed)
        table["split"] = "train"
        for _, rows in table.groupby("label"):
            chosen = rng.choice(rows.index.to_numpy(), size=round(len(rows) * test_share), replace=False)
            table.loc[chosen, "split"] = "test"
    bad = sorted(set(table["split"]) - set(SPLITS))
    if bad:
        raise TextDataError(f"{path}: split must be one of {SPLITS}, got {bad}")
    if target.exists():
        shutil.rmtree(target)
    for split, rows in table.groupby("split"):
        write_split(target, split, rows["text"].tolist(), rows["label"].tolist())
    classes = sorted(table["label"].unique())
    write_classes(target, classes)
    return classes


def import_folder(source: Path, target: Path) -> list[str]:
    """Copy an IMDb-layout corpus (e.g. ``aclImdb/``) into ``target``: the ``*.txt`` files of
    ``train|test/<label>/``. aclImdb's unlabelled ``unsup/`` and its bag-of-words files stay out."""
    source = Path(source)
    missing = [split for split in SPLITS if not (source / split).is_dir()]
    if missing:
        raise FileNotFoundError(f"{source} is not in the IMDb layout: no {', '.join(missing)} folder(s)")
    classes = sorted(p.name for p in (source / "train").iterdir()
                     if p.is_dir() and p.name != "unsup" and not p.name.startswith("."))
    if target.exists():
        shutil.rmtree(target)
    for split in SPLITS:
        for label in classes:
            (target / split / label).mkdir(parents=True)
            for file in sorted((source / split / label).glob("*.txt")):
                shutil.copyfile(file, target / split / label / file.name)
    write_classes(target, classes)
    return classes
