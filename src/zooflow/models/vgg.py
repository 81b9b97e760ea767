"""VGG-16 (configuration D of Simonyan & Zisserman, 2014), as chapter 1 of the book uses it.

Layer names match torchvision's ``vgg16`` (``features.N``, ``classifier.N``) so its ImageNet
state_dict loads unchanged. ``width`` and ``hidden`` shrink the network for the demo and smoke
profiles only; at ``width=1, hidden=4096`` with a 2-class head it has 134,268,738 parameters.
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models import VGG16_Weights

from zooflow.models.pretrained import imagenet_state_dict, load_state_dict_file
from zooflow.config import ConfigError

# Output channels per conv layer; "M" is a 2x2 max pool. Thirteen convs + three FCs = 16 layers.
VGG16_LAYOUT = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")
HEAD = "classifier.6"  # the layer transfer learning replaces


class VGG16(nn.Module):
    """VGG-16 with a ``num_classes`` head."""

    def __init__(self, num_classes: int, width: float = 1.0, hidden: int = 4096, dropout: float = 0.5):
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for item in VGG16_LAYOUT:
            if item == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                out = max(1, round(item * width))
                layers += [nn.Conv2d(channels, out, kernel_size=3, padding=1), nn.ReLU(inplace=True)]
                channels = out
        self.features = nn.Sequential(*layers)
        # A fixed 7x7 grid keeps FC1's size independent of the input resolution.
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(channels * 7 * 7, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Linear(hidden, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Linear(hidden, num_classes),
        )
        self._init_weights()

    def _init_weights(self) -> None:
        """He initialisation for every layer followed by a ReLU (convs and FC1/FC2), N(0, 0.01) for
        the head. Pretrained weights replace all but the head; without them (demo and smoke) the
        frozen body of transfer learning is this random network, and He scaling keeps its features
        at unit scale. torchvision's N(0, 0.01) for FC1/FC2 shrinks them about 100-fold, and a head
        trained on features that small swung between 0.5 and 0.9 accuracy from seed to seed."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Linear):
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                nn.init.zeros_(module.bias)
        nn.init.normal_(self.classifier[6].weight, 0, 0.01)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


def param_groups(model: VGG16) -> dict[str, list[nn.Parameter]]:
    """The book's three groups: conv ``features``, ``classifier`` FC1/FC2, and the new ``head``."""
    head = list(model.classifier[6].parameters())
    head_ids = {id(p) for p in head}
    return {
        "features": list(model.features.parameters()),
        "classifier": [p for p in model.classifier.parameters() if id(p) not in head_ids],
        "head": head,
    }


def build_vgg16(num_classes: int, pretrained: str = "none", width: float = 1.0, hidden: int = 4096) -> VGG16:
    """VGG-16 with a fresh ``num_classes`` head; the body from ``pretrained`` when asked."""
    model = VGG16(num_classes, width=width, hidden=hidden)
    if pretrained == "none":
        return model
    if (width, hidden) != (1.0, 4096):
        raise ConfigError(f"pretrained: {pretrained} needs the full VGG-16 (width 1.0, hidden 4096), not width {width}, "
                          f"hidden {hidden}: set pretrained: none for a shrunk VGG, or the book's sizes")
    state = imagenet_state_dict(VGG16_Weights.IMAGENET1K_V1) if pretrained == "imagenet" else load_state_dict_file(pretrained)
    # The ImageNet head has 1000 outputs; ours is new, so only the body is loaded.
    body = {k: v for k, v in state.items() if not k.startswith(HEAD + ".")}
    missing, unexpected = model.load_state_dict(body, strict=False)
    if unexpected or set(missing) - {f"{HEAD}.weight", f"{HEAD}.bias"}:
        raise ValueError(f"{pretrained}: not a VGG-16 state_dict (missing {missing}, unexpected {unexpected})")
    return model
