"""Clips as a served video model receives them, and the top-k answer it gives."""

from __future__ import annotations

import base64
import binascii
import re

import numpy as np
import pandas as pd

COLUMN = "video"  # the DataFrame column a served video model reads
TOP_K = 5
# Bytes made only of base64 characters are base64 text, not a clip: every container starts with
# binary magic (mp4/mov "....ftyp", Matroska/WebM 0x1A45DFA3, AVI "RIFF....AVI " is followed by
# binary sizes).
_BASE64_BYTES = re.compile(rb"[A-Za-z0-9+/_-]+={0,2}")


def _from_base64(text: str) -> bytes:
    try:
        return base64.b64decode(text.strip().replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"a video string must be base64 of the clip file's bytes, got {text[:40]!r}") from None


def video_items(raw) -> list[bytes]:
    """The clips of a pyfunc input as bytes: a DataFrame's ``video`` column, or a list; each
    item encoded bytes of a clip file, or base64 text of them (what JSON can carry)."""
    if isinstance(raw, pd.DataFrame):
        if COLUMN not in raw:
            raise ValueError(f"expected a column '{COLUMN}' (a clip file's bytes), got columns {list(raw.columns)}")
        raw = raw[COLUMN].tolist()
    items = []
    for row, item in enumerate(raw):
        if isinstance(item, str):
            item = _from_base64(item)
        elif isinstance(item, (bytes, bytearray)) and _BASE64_BYTES.fullmatch(item):
            # MLflow's server hands an ``instances``/``inputs`` string to a binary column as its
            # ASCII bytes, still base64 (only ``dataframe_*`` bodies are decoded for us).
            item = _from_base64(bytes(item).decode("ascii"))
        if not isinstance(item, (bytes, bytearray, memoryview)):
            raise ValueError(f"row {row}: a clip is the bytes of a video file (or base64 text of them), "
                             f"got {type(item).__name__}")
        items.append(bytes(item))
    return items


def answer_table(probabilities: np.ndarray, classes: list[str]) -> pd.DataFrame:
    """One row per clip: ``label`` and ``probability`` (the best class), then ``label_1``,
    ``probability_1`` ... ``label_k``, ``probability_k``, best first (k = min(5, classes))."""
    k = min(TOP_K, len(classes))
    order = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]
    table = pd.DataFrame({"label": [classes[row[0]] for row in order],
                          "probability": probabilities[np.arange(len(order)), order[:, 0]].astype(np.float64)})
    for rank in range(k):
        table[f"label_{rank + 1}"] = [classes[row[rank]] for row in order]
        table[f"probability_{rank + 1}"] = probabilities[np.arange(len(order)), order[:, rank]].astype(np.float64)
    return table
