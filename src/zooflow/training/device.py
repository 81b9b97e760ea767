"""Device choice and seeding, decided once per run."""

from __future__ import annotations

import random

import numpy as np
import torch


def pick_device() -> torch.device:
    """CUDA when present, else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def device_label(device: torch.device) -> str:
    """What a model version records as its training device, e.g. ``cuda:NVIDIA H100`` or ``cpu``."""
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    return "cpu"


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def rng_state() -> dict:
    """Every generator's state, so a resumed run continues the same random sequence.

    Only tensors and plain Python values, so a checkpoint holding it loads with
    ``torch.load(weights_only=True)``: Python's Mersenne Twister words and NumPy's key array
    become int64 tensors (each word fits in 32 bits, so nothing is lost).
    """
    version, words, gauss_next = random.getstate()
    algorithm, key, position, has_gauss, cached_gaussian = np.random.get_state(legacy=True)
    state = {
        "python": {"version": int(version), "words": torch.tensor(words, dtype=torch.int64),
                   "gauss_next": None if gauss_next is None else float(gauss_next)},
        "numpy": {"algorithm": str(algorithm), "key": torch.from_numpy(key.astype(np.int64)),
                  "position": int(position), "has_gauss": int(has_gauss), "cached_gaussian": float(cached_gaussian)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict) -> None:
    """Put back the generators saved by :func:`rng_state`."""
    python, numpy = state["python"], state["numpy"]
    random.setstate((python["version"], tuple(python["words"].tolist()), python["gauss_next"]))
    np.random.set_state((numpy["algorithm"], numpy["key"].numpy().astype(np.uint32), numpy["position"],
                         numpy["has_gauss"], numpy["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
