"""SSD detectors for chapter 2: the book's SSD300 on VGG-16 (Liu et al., 2016) and an
SSDLite on MobileNetV2 (Sandler et al., 2018), whose ImageNet body ships offline.

Both return raw outputs ``(loc [B, P, 4], conf [B, P, C+1])`` over ``P`` default boxes
("priors", ``(cx, cy, w, h)`` in [0, 1], in the non-persistent buffer ``priors``); class 0
is background. :mod:`zooflow.tasks.detection.boxes` matches, encodes and decodes them.

SSD300 at ``width=1`` with 20 classes has 26,285,486 parameters, the book's 26.29 M:
VGG-16's 13 convs (14,714,688), conv6/conv7 (5,769,216), L2Norm (512), extras (2,459,520)
and the heads (3,341,550). ``width`` shrinks it for the demo and smoke profiles only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models import VGG16_Weights, mobilenet_v2
from torchvision.ops import Conv2dNormActivation

from zooflow.config import ConfigError
from zooflow.errors import InputRejected
from zooflow.models import mobilenet
from zooflow.models.pretrained import (he_init_convs, imagenet_state_dict, load_state_dict_file, load_strict,
                                      scaled_channels)


@dataclass(frozen=True)
class PriorSpec:
    """Where the default boxes of each source feature map lie and how large they are (pixels
    of the ``input_size`` square): ``min_sizes[k]`` and ``sqrt(min_sizes[k] * max_sizes[k])``
    squares plus a pair of boxes ``r:1`` and ``1:r`` per aspect ratio ``r``."""

    input_size: int
    feature_maps: tuple[int, ...]
    steps: tuple[float, ...]
    min_sizes: tuple[float, ...]
    max_sizes: tuple[float, ...]
    aspect_ratios: tuple[tuple[float, ...], ...]

    def __post_init__(self):
        lengths = {len(self.feature_maps), len(self.steps), len(self.min_sizes), len(self.max_sizes),
                   len(self.aspect_ratios)}
        if len(lengths) != 1:
            raise ValueError(f"PriorSpec: one entry per feature map in every field, got {self}")

    def boxes_per_location(self, k: int) -> int:
        """Default boxes at each cell of feature map ``k``: two squares and two per aspect ratio."""
        return 2 + 2 * len(self.aspect_ratios[k])


# The paper's SSD300, as the book configures it: 8,732 default boxes.
SSD300_SPEC = PriorSpec(input_size=300, feature_maps=(38, 19, 10, 5, 3, 1), steps=(8, 16, 32, 64, 100, 300),
                        min_sizes=(30, 60, 111, 162, 213, 264), max_sizes=(60, 111, 162, 213, 264, 315),
                        aspect_ratios=((2,), (2, 3), (2, 3), (2, 3), (2,), (2,)))


def prior_boxes(spec: PriorSpec) -> Tensor:
    """Default boxes ``[P, 4]`` as ``(cx, cy, w, h)`` in [0, 1] (clamped). Order: feature map,
    then cell row by row, then the cell's boxes; it is the order in which the heads' outputs
    are flattened (NHWC), so box ``p`` of the heads is prior ``p``."""
    per_map = []
    for k, cells in enumerate(spec.feature_maps):
        step, low, high = spec.steps[k], spec.min_sizes[k], spec.max_sizes[k]
        index = torch.arange(cells, dtype=torch.float64)
        rows, cols = torch.meshgrid(index, index, indexing="ij")
        centres = torch.stack([(cols + 0.5) * step, (rows + 0.5) * step], dim=-1).reshape(-1, 1, 2)
        sizes = [(low, low), (math.sqrt(low * high),) * 2]
        for ratio in spec.aspect_ratios[k]:
            root = math.sqrt(ratio)
            sizes += [(low * root, low / root), (low / root, low * root)]
        sizes = torch.tensor(sizes, dtype=torch.float64).unsqueeze(0)
        boxes = torch.cat([centres.expand(-1, sizes.shape[1], 2), sizes.expand(centres.shape[0], -1, 2)], dim=-1)
        per_map.append(boxes.reshape(-1, 4) / spec.input_size)
    return torch.cat(per_map).clamp_(0.0, 1.0).float()


class L2Norm(nn.Module):
    """Scales each location's channel vector to unit L2 norm, then by a learnable per-channel
    ``scale`` (initially 20). conv4_3's activations are far larger than those of deeper layers;
    without it the first source would dominate the shared loss (ParseNet, Liu et al. 2015)."""

    def __init__(self, channels: int, scale: float = 20.0, eps: float = 1e-10):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.full((channels,), float(scale)))

    def forward(self, x: Tensor) -> Tensor:
        norm = x.pow(2).sum(dim=1, keepdim=True).sqrt() + self.eps
        return x / norm * self.weight.view(1, -1, 1, 1)


# VGG-16's conv1_1..conv5_3 in torchvision's layout ("M": 2x2 max pool; "C": the same with
# ceil_mode, which takes pool3 from 75 to 38 cells as in the paper).
_VGG_LAYOUT = (64, 64, "M", 128, 128, "M", 256, 256, 256, "C", 512, 512, 512, "M", 512, 512, 512)
# The book's base (no batch norm), whose indices the VGG-16 weights are converted to:
CONV4_3_RELU = 22   # base[22]: the ReLU after conv4_3, the first source
POOL5 = 30          # base[30:]: pool5, conv6, ReLU, conv7, ReLU (the converted fc6/fc7)
# The extras of SSD300: (out channels, kernel, stride, padding); every second one is a source.
_EXTRAS = ((256, 1, 1, 0), (512, 3, 2, 1), (128, 1, 1, 0), (256, 3, 2, 1),
           (128, 1, 1, 0), (256, 3, 1, 0), (128, 1, 1, 0), (256, 3, 1, 0))


@dataclass(frozen=True)
class _Base:
    """SSD's VGG base and where its parts are: the index of conv4_3's ReLU (the first source),
    of pool5 (where conv6/conv7 begin) and the channels of conv4_3 and conv7."""

    layers: nn.Sequential
    conv4_3_relu: int
    pool5: int
    conv4_3_channels: int
    conv7_channels: int


def _conv(channels: int, out: int, batch_norm: bool, **options) -> list[nn.Module]:
    """A conv and its ReLU, with batch norm between them when asked."""
    return [nn.Conv2d(channels, out, **options), *([nn.BatchNorm2d(out)] if batch_norm else []), nn.ReLU(inplace=True)]


def _vgg_base(width: float, batch_norm: bool = False) -> _Base:
    """SSD's VGG base (torchvision's ``features`` indices up to conv5_3, then pool5 3x3/1,
    conv6 3x3 dilation 6 and conv7 1x1). Without batch norm (the book's) its indices are
    :data:`CONV4_3_RELU` and :data:`POOL5`, those of the converted VGG-16 weights."""
    layers: list[nn.Module] = []
    channels, convs, conv4_3_relu = 3, 0, -1
    for item in _VGG_LAYOUT:
        if item in ("M", "C"):
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2, ceil_mode=item == "C"))
            continue
        out = scaled_channels(item, width)
        layers += _conv(channels, out, batch_norm, kernel_size=3, padding=1)
        channels, convs = out, convs + 1
        if convs == 10:  # conv4_3
            conv4_3_relu, conv4_3 = len(layers) - 1, out
    pool5, fc = len(layers), scaled_channels(1024, width)
    layers += [nn.MaxPool2d(kernel_size=3, stride=1, padding=1),
               *_conv(channels, fc, batch_norm, kernel_size=3, padding=6, dilation=6),
               *_conv(fc, fc, batch_norm, kernel_size=1)]
    return _Base(nn.Sequential(*layers), conv4_3_relu, pool5, conv4_3, fc)


def _heads(sources: list[Tensor], loc_heads: nn.ModuleList, conf_heads: nn.ModuleList,
           classes: int) -> tuple[Tensor, Tensor]:
    """Apply each source's heads and flatten NHWC, so the boxes come out cell by cell in
    :func:`prior_boxes`' order: ``(loc [B, P, 4], conf [B, P, classes])``."""
    batch = sources[0].shape[0]
    loc = [head(x).permute(0, 2, 3, 1).reshape(batch, -1, 4) for head, x in zip(loc_heads, sources)]
    conf = [head(x).permute(0, 2, 3, 1).reshape(batch, -1, classes) for head, x in zip(conf_heads, sources)]
    return torch.cat(loc, dim=1), torch.cat(conf, dim=1)


def _check_input(x: Tensor, size: int, name: str) -> None:
    if x.shape[-2:] != (size, size):
        raise ValueError(f"{name} takes {size}x{size} images (its default boxes are laid out for that size), "
                         f"got {tuple(x.shape[-2:])}")


class SSD300(nn.Module):
    """The book's SSD300: VGG-16 base with conv6/conv7, L2Norm on conv4_3, eight extra convs and
    3x3 loc/conf heads on six sources; ``num_classes`` object classes plus background (index 0).

    ``batch_norm`` (not the book's) puts batch norm after every conv of the base and the extras:
    trained from random weights, a plain VGG SSD learns little in a few hundred steps, and
    batch norm is what lets SSD train from scratch (ScratchDet, Zhu et al. 2019)."""

    spec = SSD300_SPEC

    def __init__(self, num_classes: int, width: float = 1.0, batch_norm: bool = False):
        super().__init__()
        self.num_classes = num_classes
        base = _vgg_base(width, batch_norm)
        self.base, self.conv4_3_relu, self.pool5 = base.layers, base.conv4_3_relu, base.pool5
        self.l2norm = L2Norm(base.conv4_3_channels)
        extras, channels, sources = [], base.conv7_channels, [base.conv4_3_channels, base.conv7_channels]
        for index, (out, kernel, stride, padding) in enumerate(_EXTRAS):
            out = scaled_channels(out, width)
            extras.append(nn.Conv2d(channels, out, kernel_size=kernel, stride=stride, padding=padding))
            channels = out
            if index % 2 == 1:
                sources.append(out)
        self.extras = nn.ModuleList(extras)
        # Identity (no parameters, no state) in the book's network.
        self.extra_norms = nn.ModuleList(nn.BatchNorm2d(conv.out_channels) if batch_norm else nn.Identity()
                                         for conv in extras)
        boxes = [self.spec.boxes_per_location(k) for k in range(len(sources))]
        self.loc = nn.ModuleList(nn.Conv2d(c, 4 * b, kernel_size=3, padding=1) for c, b in zip(sources, boxes))
        self.conf = nn.ModuleList(nn.Conv2d(c, (num_classes + 1) * b, kernel_size=3, padding=1)
                                  for c, b in zip(sources, boxes))
        # Not persistent: the priors follow from the spec, so state_dicts hold weights only.
        self.register_buffer("priors", prior_boxes(self.spec), persistent=False)
        self._init_weights()

    def _init_weights(self) -> None:
        """Zero biases; Xavier uniform weights for the extras and heads (the book's init) and
        He (Kaiming) normal weights for the VGG base, as torchvision's VGG starts from scratch.
        Pretrained weights replace the base's; a random base (demo profile) needs He's init:
        Xavier halves the signal's variance at each of its 15 ReLU convs. (The base is drawn
        Xavier first and then He: skipping that first draw would move every later draw of the
        random stream, and with it the demo figures measured with this order.)"""
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)
        he_init_convs(self.base)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        _check_input(x, self.spec.input_size, "SSD300")
        sources = []
        for index, layer in enumerate(self.base):
            x = layer(x)
            if index == self.conv4_3_relu:
                sources.append(self.l2norm(x))
        sources.append(x)
        for index, (conv, norm) in enumerate(zip(self.extras, self.extra_norms)):
            x = F.relu(norm(conv(x)), inplace=True)
            if index % 2 == 1:
                sources.append(x)
        return _heads(sources, self.loc, self.conf, self.num_classes + 1)


def vgg16_to_ssd_base(state: dict, where: str = "the state_dict") -> dict:
    """SSD300 ``base`` weights from a torchvision VGG-16 state_dict, as the SSD paper made them:
    conv1-conv5 as they are; conv6/conv7 subsampled from fc6/fc7. fc6 ``[4096, 512*7*7]`` seen
    as ``[4096, 512, 7, 7]`` keeps every 4th filter and every 3rd position (``[1024, 512, 3, 3]``;
    the dilation of 6 spans the 7x7 window those taps came from), fc7 keeps every 4th output
    and input (``[1024, 1024, 1, 1]``); biases every 4th."""
    needed = ("classifier.0.weight", "classifier.0.bias", "classifier.3.weight", "classifier.3.bias")
    absent = [key for key in needed if key not in state]
    if absent:
        raise InputRejected(f"{where}: a torchvision VGG-16 state_dict needs fc6/fc7 for conv6/conv7; missing {absent}")
    base = {key[len("features."):]: value for key, value in state.items() if key.startswith("features.")}
    fc6, fc7 = state["classifier.0.weight"], state["classifier.3.weight"]
    if fc6.dim() != 2 or fc6.shape[1] % 49 or fc7.dim() != 2:
        raise InputRejected(f"{where}: fc6 {tuple(fc6.shape)} / fc7 {tuple(fc7.shape)} are not VGG-16's "
                            "[4096, 512*7*7] / [4096, 4096]")
    base[f"{POOL5 + 1}.weight"] = fc6.view(fc6.shape[0], -1, 7, 7)[::4, :, ::3, ::3].contiguous()
    base[f"{POOL5 + 1}.bias"] = state["classifier.0.bias"][::4].contiguous()
    base[f"{POOL5 + 3}.weight"] = fc7[::4, ::4].contiguous()[:, :, None, None]
    base[f"{POOL5 + 3}.bias"] = state["classifier.3.bias"][::4].contiguous()
    return base


def ssd_base_state_dict(state: dict, where: str = "the state_dict") -> dict:
    """``base`` weights from either a torchvision VGG-16 state_dict (``features.N``,
    ``classifier.N``: converted) or the book's ``vgg16_reducedfc`` (``N.weight`` for the 15
    convs including conv6/conv7: used as it is)."""
    if any(key.startswith("features.") for key in state):
        return vgg16_to_ssd_base(state, where)
    return dict(state)


def build_ssd300(num_classes: int, pretrained: str = "none", width: float = 1.0, batch_norm: bool = False) -> SSD300:
    """SSD300 for ``num_classes``; its VGG base from ``pretrained`` (``imagenet``: torchvision's
    VGG16 ImageNet weights; a path: a torchvision VGG-16 or a ``vgg16_reducedfc`` state_dict;
    ``none``: random). Missing weights raise PretrainedWeightsMissing, never a random fallback."""
    model = SSD300(num_classes, width=width, batch_norm=batch_norm)
    if pretrained == "none":
        return model
    if width != 1.0 or batch_norm:
        raise ConfigError(f"pretrained: {pretrained} needs the book's SSD300 (width 1.0, no batch_norm), not width "
                          f"{width}{' with batch_norm' if batch_norm else ''}: set pretrained: none for that "
                          "network, or the book's sizes")
    state = (imagenet_state_dict(VGG16_Weights.IMAGENET1K_V1) if pretrained == "imagenet"
             else load_state_dict_file(pretrained))
    base = ssd_base_state_dict(state, pretrained)
    del state  # torchvision's VGG-16 is 528 MB; only the subsampled convs are kept
    load_strict(model.base, base, pretrained, "a VGG-16 (torchvision) or vgg16_reducedfc state_dict")
    return model


# ---- SSDLite on MobileNetV2 ---------------------------------------------------------------

TAP_BLOCK = 14  # backbone[14]: the first stride-2 block of the 160-channel stage


def _halved(cells: int) -> int:
    """Side after a 3x3 stride-2 conv with padding 1 (every downsampling of this network)."""
    return (cells + 1) // 2


def ssdlite_spec(input_size: int, sources: int = 6) -> PriorSpec:
    """Default boxes of SSDLite at ``input_size``: sources at strides 16 and 32, then four
    halvings by the extras. Scales follow the SSD paper's linear rule
    ``s_k = 0.2 + (0.95 - 0.2) k / (m - 1)`` (k = 0..m-1) times the input; each map's larger
    square uses ``s_{k+1}`` and the last map's 1.0 (the whole image). Aspect ratios 2 and 3 but
    on the two coarsest maps (2 only, as SSD300 does), whose few cells cover large objects."""
    cells = [input_size]
    for _ in range(4):  # stem and three stride-2 stages: stride 16
        cells.append(_halved(cells[-1]))
    maps = [cells[-1]]
    for _ in range(sources - 1):
        maps.append(_halved(maps[-1]))
    scales = [0.2 + (0.95 - 0.2) * k / (sources - 1) for k in range(sources)] + [1.0]
    return PriorSpec(input_size=input_size, feature_maps=tuple(maps),
                     steps=tuple(input_size / m for m in maps),
                     min_sizes=tuple(s * input_size for s in scales[:-1]),
                     max_sizes=tuple(s * input_size for s in scales[1:]),
                     aspect_ratios=tuple((2, 3) if k < sources - 2 else (2,) for k in range(sources)))


def _extra_block(channels: int, out: int) -> nn.Sequential:
    """SSDLite's extra layer: 1x1 to ``out / 2``, depthwise 3x3 stride 2, 1x1 to ``out``."""
    middle = out // 2
    return nn.Sequential(
        Conv2dNormActivation(channels, middle, kernel_size=1, activation_layer=nn.ReLU6),
        Conv2dNormActivation(middle, middle, kernel_size=3, stride=2, groups=middle, activation_layer=nn.ReLU6),
        Conv2dNormActivation(middle, out, kernel_size=1, activation_layer=nn.ReLU6))


def _separable_head(channels: int, out: int) -> nn.Sequential:
    """SSDLite's head: depthwise 3x3 (+BN+ReLU6), then a pointwise 1x1 to the outputs."""
    return nn.Sequential(Conv2dNormActivation(channels, channels, kernel_size=3, groups=channels,
                                              activation_layer=nn.ReLU6),
                         nn.Conv2d(channels, out, kernel_size=1))


class SSDLiteMobileNetV2(nn.Module):
    """SSDLite (MobileNetV2 paper, section 6.2) on torchvision's ``mobilenet_v2().features``.

    Sources: the 576-channel expansion of block 14 (stride 16, the tap the paper uses), the
    1280-channel output of the whole body (stride 32) and four extra blocks (512, 256, 256,
    128); heads are depthwise-separable. ``backbone`` keeps torchvision's indices so the
    ImageNet ``features.N`` weights load unchanged.
    """

    EXTRA_CHANNELS = (512, 256, 256, 128)

    def __init__(self, num_classes: int, input_size: int = 320):
        super().__init__()
        self.num_classes = num_classes
        body = mobilenet_v2(weights=None)
        self.backbone = body.features
        tap = self.backbone[TAP_BLOCK]
        # The tap splits block 14 after its expansion; that block has no residual (stride 2),
        # so running the rest of its layers on the tap gives exactly the block's output.
        assert not tap.use_res_connect
        channels = [tap.conv[0].out_channels, body.last_channel]
        extras = []
        for out in self.EXTRA_CHANNELS:
            extras.append(_extra_block(channels[-1], out))
            channels.append(out)
        self.extras = nn.ModuleList(extras)
        self.spec = ssdlite_spec(input_size, len(channels))
        boxes = [self.spec.boxes_per_location(k) for k in range(len(channels))]
        self.loc = nn.ModuleList(_separable_head(c, 4 * b) for c, b in zip(channels, boxes))
        self.conf = nn.ModuleList(_separable_head(c, (num_classes + 1) * b) for c, b in zip(channels, boxes))
        self.register_buffer("priors", prior_boxes(self.spec), persistent=False)
        self._init_new_layers()

    def _init_new_layers(self) -> None:
        """N(0, 0.03) convs and zero biases in extras and heads (torchvision's SSDLite init);
        the backbone keeps torchvision's init until ImageNet weights replace it."""
        for part in (self.extras, self.loc, self.conf):
            for module in part.modules():
                if isinstance(module, nn.Conv2d):
                    nn.init.normal_(module.weight, 0.0, 0.03)
                    if module.bias is not None:
                        nn.init.zeros_(module.bias)

    def train(self, mode: bool = True) -> SSDLiteMobileNetV2:
        """As ``nn.Module.train``, except that a fully frozen backbone keeps its batch-norm
        layers in eval mode: in train mode they would replace ImageNet's running statistics by
        those of small detection batches, and the frozen features the heads learn on would
        drift under them (and differ again at evaluation)."""
        super().train(mode)
        if mode and not any(p.requires_grad for p in self.backbone.parameters()):
            for module in self.backbone.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.eval()
        return self

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        _check_input(x, self.spec.input_size, "SSDLiteMobileNetV2")
        for layer in self.backbone[:TAP_BLOCK]:
            x = layer(x)
        tap = self.backbone[TAP_BLOCK].conv
        expanded = tap[0](x)
        sources = [expanded]
        x = tap[1:](expanded)
        for layer in self.backbone[TAP_BLOCK + 1:]:
            x = layer(x)
        sources.append(x)
        for block in self.extras:
            x = block(x)
            sources.append(x)
        return _heads(sources, self.loc, self.conf, self.num_classes + 1)


def build_ssdlite_mobilenet_v2(num_classes: int, pretrained: str = "imagenet",
                               input_size: int = 320) -> SSDLiteMobileNetV2:
    """SSDLite for ``num_classes``; its backbone from ``pretrained`` (``imagenet``: the
    MobileNetV2 ImageNet checkpoint, from torchvision's cache or the offline package; a path:
    a MobileNetV2 state_dict; ``none``: random). Missing weights raise PretrainedWeightsMissing."""
    model = SSDLiteMobileNetV2(num_classes, input_size=input_size)
    if pretrained == "none":
        return model
    mobilenet.load_body(model.backbone, pretrained)
    return model


def param_groups(model: SSD300 | SSDLiteMobileNetV2) -> dict[str, list[nn.Parameter]]:
    """``backbone`` (VGG conv1-conv5 / MobileNetV2 body), ``extras`` (SSD300: conv6, conv7,
    L2Norm and the extra convs; SSDLite: the extra blocks) and ``head`` (loc + conf)."""
    head = [*model.loc.parameters(), *model.conf.parameters()]
    if isinstance(model, SSD300):
        return {"backbone": list(model.base[:model.pool5].parameters()),
                "extras": [*model.base[model.pool5:].parameters(), *model.l2norm.parameters(),
                           *model.extras.parameters(), *model.extra_norms.parameters()],
                "head": head}
    return {"backbone": list(model.backbone.parameters()), "extras": list(model.extras.parameters()), "head": head}
