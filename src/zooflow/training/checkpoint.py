"""One checkpoint dict per epoch (model, optimizer, epoch, RNG state, history), written
atomically so an interruption mid-write never leaves a checkpoint that cannot be read.

Checkpoints load with ``torch.load(weights_only=True)``: a checkpoint folder is a file on
disk like any other, and an unrestricted unpickler would run whatever code a tampered file
names. So a checkpoint holds only tensors and plain Python values (dicts, lists, tuples,
str, int, float, bool, None); the RNG states are stored that way (``device.rng_state``).
"""

from __future__ import annotations

import os
from pathlib import Path
from pickle import UnpicklingError

import numpy as np
import torch

from zooflow.errors import UserError

LAST = "last.pt"


class CheckpointUnreadable(UserError):
    """A checkpoint that the safe loader refuses (an older format, or not written by zooflow)."""


def _plain(value):
    """``value`` with NumPy scalars and arrays turned into Python numbers and tensors (a metric
    from scikit-learn is a ``numpy.float64``), which the safe loader reads; the rest unchanged."""
    if isinstance(value, dict):
        return type(value)((key, _plain(item)) for key, item in value.items())
    if isinstance(value, (list, tuple)) and not hasattr(value, "_fields"):  # not namedtuples: keep them
        return type(value)(_plain(item) for item in value)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return torch.from_numpy(value.copy())
    return value


def save(folder: Path, state: dict) -> Path:
    """Write ``state`` as ``folder/last.pt``, replacing the previous checkpoint only once the
    new one is complete and readable by :func:`load`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / LAST
    partial = target.with_suffix(".partial")
    torch.save(_plain(state), partial)
    try:
        # Read it back the way load() will (mmap: the tensors are not copied), so a value the
        # safe loader refuses fails this epoch, loudly, instead of the resume after a crash.
        torch.load(partial, map_location="cpu", weights_only=True, mmap=True)
    except UnpicklingError as error:
        partial.unlink(missing_ok=True)
        raise TypeError(f"checkpoint state holds a value weights_only loading refuses: {error}") from None
    os.replace(partial, target)  # atomic on POSIX: readers see the old or the new file
    return target


def load(folder: Path) -> dict | None:
    """The last checkpoint in ``folder``, or None when training has not checkpointed yet."""
    target = Path(folder) / LAST
    if not target.is_file():
        return None
    try:
        return torch.load(target, map_location="cpu", weights_only=True)
    except UnpicklingError:
        raise CheckpointUnreadable(
            f"{target}: this checkpoint holds objects that are not weights, so it is not loaded "
            "(it may predate safe checkpoints, or not come from zooflow); delete it to train from the start"
        ) from None
