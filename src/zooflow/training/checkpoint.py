"""One checkpoint dict per epoch (model, optimizer, epoch, RNG state, history), written
atomically so an interruption mid-write never leaves a checkpoint that cannot be read."""

from __future__ import annotations

import os
from pathlib import Path

import torch

LAST = "last.pt"


def save(folder: Path, state: dict) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / LAST
    partial = target.with_suffix(".partial")
    torch.save(state, partial)
    os.replace(partial, target)  # atomic on POSIX: readers see the old or the new file
    return target


def load(folder: Path) -> dict | None:
    """The last checkpoint in ``folder``, or None when training has not checkpointed yet."""
    target = Path(folder) / LAST
    if not target.is_file():
        return None
    # The dict holds RNG states (numpy arrays, tuples) as well as tensors.
    return torch.load(target, map_location="cpu", weights_only=False)
