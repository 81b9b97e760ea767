"""Batch inference with a registered version: a file or a folder of inputs in, one parquet table
out, each answer row naming the input it answers and the model version that gave it.

The inputs are what the version's served model takes (``serving.expected_for``): files of
bytes for ``image`` and ``video`` models (every plain file of a folder, sorted, links refused),
texts for ``text`` models (a ``.txt`` file: one text per non-empty line; a folder: one text per
``.txt`` file; a ``.csv``/``.tsv`` with a ``text`` column), rows of ``seed`` and ``count`` for
generators (a ``.csv``). Inputs go to the served model (``mlflow.pyfunc``, exactly what
``zooflow serve`` answers with) ``batch_size`` at a time; a batch the model refuses is retried
input by input, so one bad file becomes one row with an ``error`` and the rest are answered.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from zooflow.data import safety
from zooflow.errors import InputRejected

SOURCE = "source"  # the column naming each answer's input (a path, or path:line)


FILE_COLUMNS = (("image",), ("video",))  # models that take a file's bytes


def read_inputs(path: Path, columns: tuple[str, ...]) -> pd.DataFrame:
    """The inputs under ``path``: ``source`` and the served model's columns (for a model that
    takes files, ``source`` alone: :func:`batches` reads each batch's bytes)."""
    path = Path(path)
    if not path.exists():
        raise InputRejected(f"{path}: no such file or folder")
    if columns in FILE_COLUMNS:  # the files' bytes are read batch by batch (``batches``), not all at once
        files = [path] if path.is_file() else _plain_files(path)
        if not files:
            raise InputRejected(f"{path}: no files to predict on")
        return pd.DataFrame({SOURCE: [str(f) for f in files]})
    if columns == ("text",):
        return _texts(path)
    table = _table(path)
    missing = [column for column in columns if column not in table]
    if missing:
        raise InputRejected(f"{path}: no {', '.join(missing)} column(s); this model takes {', '.join(columns)}")
    table = table[list(columns)].copy()
    table.insert(0, SOURCE, [f"{path}:{row + 2}" for row in range(len(table))])  # line numbers, header first
    return table


def _plain_files(folder: Path, root: Path | None = None) -> list[Path]:
    """Every plain file below ``folder``, sorted, in one walk that refuses links by name and
    skips operating-system litter and hidden files."""
    root = root or folder
    listing = safety.list_folder(folder, root)
    found = [folder / name for name in listing.files if not name.startswith(".")]
    for name in listing.folders:
        if not name.startswith("."):
            found += _plain_files(folder / name, root)
    return sorted(found)


def _table(path: Path) -> pd.DataFrame:
    if path.suffix.lower() not in (".csv", ".tsv"):
        raise InputRejected(f"{path}: expected a .csv or .tsv file")
    return pd.read_csv(path, sep="\t" if path.suffix.lower() == ".tsv" else ",")


def _texts(path: Path) -> pd.DataFrame:
    if path.is_dir():
        files = [f for f in _plain_files(path) if f.suffix.lower() == ".txt"]
        if not files:
            raise InputRejected(f"{path}: no .txt files to predict on")
        return pd.DataFrame({SOURCE: [str(f) for f in files],
                             "text": [safety.read_bytes(f).decode("utf-8-sig") for f in files]})
    if path.suffix.lower() == ".txt":
        lines = safety.read_bytes(path).decode("utf-8-sig").splitlines()
        kept = [(number, line) for number, line in enumerate(lines, 1) if line.strip()]
        return pd.DataFrame({SOURCE: [f"{path}:{number}" for number, _ in kept], "text": [line for _, line in kept]})
    table = _table(path)
    if "text" not in table:
        raise InputRejected(f"{path}: no 'text' column")
    return pd.DataFrame({SOURCE: [f"{path}:{row + 2}" for row in range(len(table))], "text": table["text"].astype(str)})


def batches(table: pd.DataFrame, size: int, columns: tuple[str, ...]) -> Iterator[pd.DataFrame]:
    """``table`` in slices of ``size`` rows; for a model that takes files, each slice with its
    files' bytes (so a folder of videos is never all in memory)."""
    for start in range(0, len(table), size):
        part = table.iloc[start:start + size]
        if columns in FILE_COLUMNS:
            part = part.assign(**{columns[0]: [safety.read_bytes(Path(source)) for source in part[SOURCE]]})
        yield part


def answer(model, batch: pd.DataFrame, columns: tuple[str, ...]) -> pd.DataFrame:
    """The model's answer rows for one batch, each with the ``source`` it answers. Tasks that
    answer several rows per input (detection boxes, pose people) number the inputs in an
    ``image`` column, which maps them back; the others answer one row per input."""
    result = model.predict(batch[list(columns)].reset_index(drop=True))
    result = pd.DataFrame(result).reset_index(drop=True)
    sources = batch[SOURCE].tolist()
    if "image" in result and pd.api.types.is_integer_dtype(result["image"]):  # positions in the request
        result.insert(0, SOURCE, [sources[int(i)] for i in result["image"]])
        return result.drop(columns=["image"])
    if len(result) != len(sources):
        raise RuntimeError(f"the model answered {len(result)} rows for {len(sources)} inputs")
    result.insert(0, SOURCE, sources)
    return result


def answer_or_errors(model, batch: pd.DataFrame, columns: tuple[str, ...]) -> pd.DataFrame:
    """:func:`answer`, and when the model refuses the batch, input by input: a refused input
    becomes a row with its ``error``."""
    try:
        return answer(model, batch, columns)
    except Exception:  # noqa: BLE001 - find the input(s) at fault one by one
        rows = []
        for index in range(len(batch)):
            one = batch.iloc[index:index + 1]
            try:
                rows.append(answer(model, one, columns))
            except Exception as error:  # noqa: BLE001 - a bad input is a row, not the end of the job
                rows.append(pd.DataFrame({SOURCE: one[SOURCE].tolist(), "error": [f"{type(error).__name__}: {error}"]}))
        return pd.concat(rows, ignore_index=True)
