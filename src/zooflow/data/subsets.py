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
