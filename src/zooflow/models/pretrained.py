"""Pretrained weights: ``imagenet`` | ``<path to a state_dict>`` | ``none``.

Never falls back to random weights: when the file is not on disk and cannot be downloaded the
error says exactly where to put it.
"""

from __future__ import annotations

from pathlib import Path

import torch

from zooflow import settings
from zooflow.errors import InputRejected, UserError


class PretrainedWeightsMissing(UserError, FileNotFoundError):
    """The configured pretrained weights are not available; nothing was trained."""


def hub_checkpoint_dir() -> Path:
    """torchvision's cache of downloaded weights (``$TORCH_HOME/hub/checkpoints``)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def imagenet_state_dict(weights, extra_locations: tuple[Path, ...] = ()) -> dict:
    """The state_dict of a torchvision weights enum, from disk or (when allowed) downloaded.

    ``extra_locations`` are other files known to hold the same checkpoint (e.g. a package that
    ships it); they are tried after torchvision's own cache folder.
    """
    filename = Path(weights.url).name
    candidates = (hub_checkpoint_dir() / filename, *extra_locations)
    for candidate in candidates:
        if candidate.is_file():
            return torch.load(candidate, map_location="cpu", weights_only=True)
    if not settings.offline():
        try:
            return weights.get_state_dict(progress=False, check_hash=True)
        except Exception as error:  # network errors come in many types; all mean "not here"
            reason = f"download failed ({type(error).__name__}: {error})"
    else:
        reason = "ZOOFLOW_OFFLINE=1 forbids downloading"
    raise PretrainedWeightsMissing(
        f"pretrained: imagenet needs {weights} but {reason}. Put the file {filename} at "
        f"{hub_checkpoint_dir() / filename} (or set pretrained to a state_dict path, or to "
        f"'none' to train from random init on purpose).")


def load_state_dict_file(path: str) -> dict:
    """A state_dict saved with ``torch.save`` (or a checkpoint dict holding ``model``)."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise PretrainedWeightsMissing(f"pretrained: {path} - no such file")
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - pickle, zip and format errors all mean "not plain weights"
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise InputRejected(f"pretrained: {path} cannot be read as plain weights (loaded with weights_only=True, "
                            f"which runs no pickled code): {first[:300]}. Save a state_dict with "
                            "torch.save(model.state_dict(), path).") from None
    if not isinstance(state, dict):
        raise InputRejected(f"pretrained: {path} holds a {type(state).__name__}, not a state_dict")
    return state.get("model", state)


def listed_keys(keys: list[str], most: int = 40) -> str:
    """``keys`` for an error message, the first ``most`` of them and how many more."""
    shown = ", ".join(keys[:most]) or "none"
    return shown + (f" and {len(keys) - most} more" if len(keys) > most else "")


def load_strict(module: torch.nn.Module, state: dict, where: str, what: str) -> None:
    """Load ``state`` into ``module`` or say, as an InputRejected naming ``where``, what does not fit."""
    try:
        missing, unexpected = module.load_state_dict(state, strict=False)
    except RuntimeError as error:  # shapes that do not fit
        raise InputRejected(f"pretrained: {where} does not fit {what}: {str(error)[:600]}") from None
    if missing or unexpected:
        raise InputRejected(f"pretrained: {where} is not {what} (missing keys: {listed_keys(missing)}; "
                            f"unexpected keys: {listed_keys(unexpected)})")


def scaled_channels(channels: int, width: float) -> int:
    """``channels`` times a profile's ``width`` multiplier, at least one (demo and smoke sizes)."""
    return max(1, round(channels * width))


def he_init_convs(module: torch.nn.Module) -> None:
    """He (Kaiming) normal weights, fan-out, for every conv in ``module`` and zero biases:
    torchvision's from-scratch init for ReLU convnets (VGG, ResNet), which keeps the signal's
    variance through deep stacks of ReLU layers."""
    for layer in module.modules():
        if isinstance(layer, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(layer.weight, mode="fan_out", nonlinearity="relu")
            if layer.bias is not None:
                torch.nn.init.zeros_(layer.bias)
