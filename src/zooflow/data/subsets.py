"""Even spreads of a split: how capped profiles pick the samples they use."""

from __future__ import annotations

import numpy as np


def even_spread(length: int, cap: int | None) -> np.ndarray | None:
    """Indices of ``cap`` samples spread evenly through ``length`` (first and last included),
    or None when there is no cap or the split is no longer than it. An even spread, not the
    first rows: files are often sorted by class or by source."""
    if not cap or length <= cap:
        return None
    return np.linspace(0, length - 1, num=cap).round().astype(int)


def capped(samples, cap: int | None):
    """``samples`` (anything indexable by an index array: tensor, ndarray) cut to an even
    spread of ``cap``, or unchanged when it is no longer than that."""
    picks = even_spread(len(samples), cap)
    return samples if picks is None else samples[picks]


def spread_per_class(labels: np.ndarray, per_class: int | None, among=None) -> np.ndarray:
    """A mask keeping an even spread of at most ``per_class`` samples of each label in ``among``
    (every label when None; all of a label's samples when ``per_class`` is None or 0) and none
    of the other labels."""
    labels = np.asarray(labels)
    keep = np.zeros(len(labels), dtype=bool)
    for label in (np.unique(labels) if among is None else among):
        where = np.flatnonzero(labels == label)
        picks = even_spread(len(where), per_class)
        keep[where if picks is None else where[picks]] = True
    return keep
