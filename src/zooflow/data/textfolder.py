"""Text classification data in the IMDb layout: ``<split>/<label>/*.txt`` (``aclImdb``:
``train/{pos,neg}``, ``test/{pos,neg}``), one UTF-8 text per file, plus ``classes.txt``.

Other corpora arrive as a TSV/CSV of (text, label[, split]) and are written into this layout
by ``import_table``, so every reader downstream sees one format.
"""

from __future__ import annotations

import hashlib
import io
import re
import unicodedata
from pathlib import Path

import numpy as np
import pandas as pd

from zooflow.data.imagefolder import read_classes, write_classes
from zooflow.data import safety
from zooflow.data.labelled import add_split_facts, inspect_files, labelled_files
from zooflow.data.safety import Imported
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
    if path.is_symlink():
        return {"bytes": 0, "utf8": False, "error": "a symbolic link (data/ holds plain files only)", "chars": 0,
                "words": 0, "japanese_share": 0.0, "sha256": ""}
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
    rows = inspect_files(folder, SPLITS, f"{'/'.join(SPLITS)}/<label>/*.txt", _inspect, relative_to)
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


BOMS = {b"\xff\xfe\x00\x00": "UTF-32", b"\x00\x00\xfe\xff": "UTF-32", b"\xff\xfe": "UTF-16",
        b"\xfe\xff": "UTF-16"}
# aclImdb's extras: known, left out on purpose, and said so.
ACLIMDB_EXTRAS = ("imdb.vocab", "imdbEr.txt", "labeledBow.feat", "unsupBow.feat")
UNLABELLED = "unsup"


def _decode(path: Path, raw: bytes) -> str:
    """UTF-8 text (a UTF-8 byte order mark is accepted); other encodings are refused by line."""
    for bom, name in BOMS.items():
        if raw.startswith(bom):
            raise TextDataError(f"{path}: is {name} (it starts with the byte order mark {bom.hex(' ').upper()}); "
                                "save it as UTF-8")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = raw[:error.start].count(b"\n") + 1
        raise TextDataError(f"{path}: line {line} is not UTF-8 ({error.reason} at byte {error.start}); "
                            "save the file as UTF-8") from None


def _parse(path: Path, text: str) -> pd.DataFrame:
    """pandas' reading of the table, its errors turned into one line naming the file and line."""
    import re as regex

    sep = "\t" if path.suffix.lower() in {".tsv", ".tab"} else ","
    try:
        return pd.read_csv(io.StringIO(text), sep=sep, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise TextDataError(f"{path}: the file is empty; expected a header line text{sep!r}label[{sep!r}split] "
                            "and one row per text") from None
    except pd.errors.ParserError as error:
        message = str(error).strip()
        fields = regex.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", message)
        if fields:
            expected, line, saw = fields.groups()
            raise TextDataError(f"{path}: line {line} has {saw} fields where the header has {expected} "
                                f"(a stray {'tab' if sep == chr(9) else 'comma'} or quote?)") from None
        quote = regex.search(r"EOF inside string starting at row (\d+)", message)
        if quote:  # pandas counts rows from 0 at the header: row N is line N+1
            raise TextDataError(f"{path}: line {int(quote.group(1)) + 1} opens a quoted field (\") that is never "
                                "closed") from None
        raise TextDataError(f"{path}: cannot be read as a {'TSV' if sep == chr(9) else 'CSV'} table ({message})") from None


def read_table(path: Path) -> pd.DataFrame:
    """A TSV/CSV with ``text`` and ``label`` columns (and optionally ``split``), strictly UTF-8
    (a byte order mark is fine). Every problem is one ``TextDataError`` naming the file and the
    row; rows are numbered like a spreadsheet's, the header being row 1. The result has a
    ``row`` column with those numbers."""
    path = Path(path)
    table = _parse(path, _decode(path, safety.read_bytes(path)))
    missing = {"text", "label"} - set(table.columns)
    if missing:
        raise TextDataError(f"{path}: needs columns text and label; missing {sorted(missing)} (has {list(table.columns)})")
    if table.empty:
        raise TextDataError(f"{path}: has a header but no rows")
    table["row"] = table.index + 2  # +2: the header line, 1-based
    for column in ("text", "label"):
        empty = table.index[table[column].str.strip() == ""]
        if len(empty):
            raise TextDataError(f"{path}: row {table['row'][empty[0]]} has an empty {column}")
    for row, label in zip(table["row"], table["label"]):
        safety.check_name(label, f"{path} row {row}")
    if "split" in table:
        bad = table.index[~table["split"].isin(SPLITS)]
        if len(bad):
            raise TextDataError(f"{path}: row {table['row'][bad[0]]} has split {table['split'][bad[0]]!r}; "
                                f"split must be one of {', '.join(SPLITS)}")
    return table


def import_table(path: Path, target: Path, test_share: float = 0.2, seed: int = 0) -> Imported:
    """Write a (text, label[, split]) table into the IMDb layout at ``target``: each text becomes
    ``<split>/<label>/row<N>.txt``, N its row in the table (so validation's findings name the
    row). Without a ``split`` column, a seeded stratified ``test_share`` becomes the test split.
    A label that ends up in one split only is an error."""
    path = Path(path)
    table = read_table(path)
    if "split" not in table:
        rng = np.random.default_rng(seed)
        table["split"] = "train"
        for _, rows in table.groupby("label"):
            chosen = rng.choice(rows.index.to_numpy(), size=round(len(rows) * test_share), replace=False)
            table.loc[chosen, "split"] = "test"
    found = {split: set(table.loc[table["split"] == split, "label"]) for split in SPLITS}
    safety.require_every_split(found, path)
    target = safety.fresh_target(target)
    for text, label, split, row in zip(table["text"], table["label"], table["split"], table["row"]):
        file = safety.inside(target, target / split / label / f"row{row:05d}.txt")
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(text, encoding="utf-8")
    classes = sorted(table["label"].unique())
    write_classes(target, classes)
    return Imported(tuple(classes))


def _is_aclimdb_extra(name: str) -> bool:
    return name in ACLIMDB_EXTRAS or "Bow" in name or name.endswith(".feat") or \
        (name.startswith("urls_") and name.endswith(".txt"))


def _not_a_text_file(name: str) -> str | None:
    if not name.endswith(".txt"):
        return "not a .txt file; the IMDb layout holds one UTF-8 text per .txt file"
    return None


def import_folder(source: Path, target: Path) -> Imported:
    """Copy an IMDb-layout corpus (e.g. ``aclImdb/``) into ``target``: the ``*.txt`` files of
    ``train|test/<label>/``. aclImdb's unlabelled ``unsup/`` and its bag-of-words, vocabulary and
    URL files are left out with a note; litter is skipped; links, unsafe labels, other files and
    a label missing from a split are refused by name."""
    source, target = Path(source), safety.fresh_target(target)
    top = safety.list_folder(source)
    missing = [split for split in SPLITS if split not in top.folders]
    if missing:
        raise TextDataError(f"{source} is not in the IMDb layout: no {', '.join(missing)} folder(s) "
                            f"(expected {'/'.join(SPLITS)}/<label>/*.txt)")
    notes, skipped = [], list(top.skipped)
    for name in top.folders:
        if name not in SPLITS:
            raise TextDataError(f"{source / name}: an unknown split folder; the IMDb layout has "
                                f"{' and '.join(SPLITS)} only")
    for name in top.files:
        if _is_aclimdb_extra(name):
            notes.append(f"left out {name} (aclImdb's extras are not training data)")
        elif not safety.is_document(name) and name != "classes.txt":
            raise TextDataError(f"{source / name}: an unexpected file beside the split folders")
    found: dict[str, set[str]] = {}
    for split in SPLITS:
        listing = safety.list_folder(source / split, source)
        skipped += listing.skipped
        for name in listing.files:
            if not _is_aclimdb_extra(name):
                raise TextDataError(f"{source / split / name}: a file directly in {split}/; texts go in "
                                    f"{split}/<label>/*.txt")
            notes.append(f"left out {split}/{name} (aclImdb's extras are not training data)")
        labels = [name for name in listing.folders if name != UNLABELLED]
        if UNLABELLED in listing.folders:
            notes.append(f"left out {split}/{UNLABELLED}/ (unlabelled reviews)")
        found[split] = {safety.check_name(name, str(source / split / name)) for name in labels}
        for label in sorted(found[split]):
            skipped += safety.copy_label_folder(source, split, label, target, "label", ".txt files",
                                                refuse=_not_a_text_file)
    safety.require_every_split(found, source)
    if "classes.txt" in top.files:
        classes = read_classes(source)
        if set(classes) != set(found["train"]):
            raise TextDataError(f"{source / 'classes.txt'}: declares {classes} but the label folders are "
                                f"{sorted(found['train'])}")
    else:
        classes = sorted(found["train"])
    write_classes(target, classes)
    for name in top.files:
        if safety.is_document(name) and not _is_aclimdb_extra(name):
            safety.copy_file(source / name, target, target / name)
    return Imported(tuple(classes), tuple(skipped), notes=tuple(notes))
