"""Clips as a served video model receives them, and the top-k answer it gives."""

from __future__ import annotations

import numpy as np
import pandas as pd

from zooflow.data.raw_images import file_bytes

COLUMN = "video"  # the DataFrame column a served video model reads
TOP_K = 5


def video_items(raw) -> list[bytes]:
    """The clips of a pyfunc input as bytes: a DataFrame's ``video`` column, or a list; each
    item encoded bytes of a clip file, or base64 text of them (what JSON can carry)."""
    if isinstance(raw, pd.DataFrame):
        if COLUMN not in raw:
            raise ValueError(f"expected a column '{COLUMN}' (a clip file's bytes), got columns {list(raw.columns)}")
        raw = raw[COLUMN].tolist()
    items = []
    for row, item in enumerate(raw):
        item = file_bytes(item, "clip")
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
