"""Semantic segmentation for chapter 3: the book's PSPNet (Zhao et al., 2017) on a dilated
ResNet-50, and a small pyramid-pooling head on MobileNetV2 (Sandler et al., 2018), whose
ImageNet body ships offline, for a model a CPU trains in minutes.

Both return ``(main, aux)``: per-pixel logits ``[B, num_classes, H, W]`` at the size of the
input, and PSPNet's auxiliary logits of the same shape (``None`` for the MobileNetV2 model).
They are returned in eval mode too, so callers never branch on the mode; evaluation simply
ignores ``aux``. The class with the highest main logit is the prediction; a loader's "ignore"
label (VOC's 255 border) is the loss's business (``ignore_index``), not the model's.

PSPNet at ``width=1`` with 21 classes has 49,081,578 parameters, the book's 49.08 M: the
dilated ResNet-50 feature extractor (23,631,808: stem 112,832, stages 236,288, 1,219,584,
7,098,368 and 14,964,736), pyramid pooling (4,198,400), the decoder (18,886,165, nearly all
of it the 3x3 conv from 4096 channels) and the auxiliary head (2,365,205). ``width`` shrinks
every channel for the demo and smoke profiles only. :class:`MobileNetV2PSP` at 21 classes has
2,699,509 (1,811,712 of them MobileNetV2's).

Both models take any input of at least :data:`MIN_INPUT` pixels a side (adaptive pooling
fits the pyramid to the feature map). In train mode batches need two or more images: the
one-cell pyramid branch has a single value per channel and image, and batch norm cannot
normalise one value.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models import mobilenet_v2

from zooflow.config import ConfigError
from zooflow.models import mobilenet
from zooflow.models.pretrained import he_init_convs, load_state_dict_file, load_strict, scaled_channels

BOOK_PSPNET_PARAMETERS = 49_081_578  # PSPNet(21) at width 1: the book's 49.08 M
# Smallest side accepted: PSPNet's stride-8 map is then 8x8, still more cells than the finest
# (6x6) bins, which on a smaller map would merely repeat cells instead of averaging regions.
MIN_INPUT = 64
PYRAMID_BINS = (6, 3, 2, 1)  # cells per side of each pooled map, the paper's (coarsest last)


def _conv_bn(channels: int, out: int, kernel: int, stride: int = 1, dilation: int = 1,
             relu: bool = True) -> nn.Sequential:
    """Conv (no bias: batch norm's shift replaces it) + batch norm (+ ReLU); "same" padding."""
    layers: list[nn.Module] = [nn.Conv2d(channels, out, kernel, stride=stride, padding=dilation * (kernel // 2),
                                         dilation=dilation, bias=False),
                               nn.BatchNorm2d(out)]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def _upsample(x: Tensor, size: tuple[int, int]) -> Tensor:
    # align_corners=True, as the book (and the original Caffe PSPNet's interp layer) resize.
    return F.interpolate(x, size=size, mode="bilinear", align_corners=True)


def _check_input(x: Tensor, name: str) -> None:
    if min(x.shape[-2:]) < MIN_INPUT:
        raise ValueError(f"{name} takes images of at least {MIN_INPUT}x{MIN_INPUT} pixels, got {tuple(x.shape[-2:])}")


class Bottleneck(nn.Module):
    """ResNet's bottleneck unit: 1x1 to ``mid``, 3x3 (carrying stride and dilation), 1x1 to
    ``out``, added to the shortcut, then ReLU. The shortcut is a 1x1 conv + BN projection when
    ``project`` (the first unit of a stage, where channels or stride change), else identity."""

    def __init__(self, channels: int, mid: int, out: int, stride: int = 1, dilation: int = 1,
                 project: bool = False):
        super().__init__()
        self.reduce = _conv_bn(channels, mid, 1)
        self.conv = _conv_bn(mid, mid, 3, stride=stride, dilation=dilation)
        self.expand = _conv_bn(mid, out, 1, relu=False)
        self.shortcut = _conv_bn(channels, out, 1, stride=stride, relu=False) if project else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.expand(self.conv(self.reduce(x))) + self.shortcut(x), inplace=True)


def _stage(blocks: int, channels: int, mid: int, out: int, stride: int, dilation: int) -> nn.Sequential:
    """``blocks`` bottlenecks; the first projects (and strides), the others keep the shape."""
    units = [Bottleneck(channels, mid, out, stride=stride, dilation=dilation, project=True)]
    units += [Bottleneck(out, mid, out, dilation=dilation) for _ in range(blocks - 1)]
    return nn.Sequential(*units)


class PyramidPooling(nn.Module):
    """PSPNet's pyramid pooling module: the map averaged into ``bins`` x ``bins`` cells for each
    bin count, each reduced by a 1x1 conv + BN + ReLU to ``branch`` channels, upsampled back and
    concatenated after the map itself (``channels + len(bins) * branch`` channels out). The
    coarse cells bring context from the whole image to every pixel."""

    def __init__(self, channels: int, branch: int, bins: tuple[int, ...] = PYRAMID_BINS):
        super().__init__()
        self.out_channels = channels + len(bins) * branch
        self.branches = nn.ModuleList(nn.Sequential(nn.AdaptiveAvgPool2d(b), *_conv_bn(channels, branch, 1))
                                      for b in bins)

    def forward(self, x: Tensor) -> Tensor:
        size = x.shape[-2:]
        return torch.cat([x, *(_upsample(branch(x), size) for branch in self.branches)], dim=1)


def _classifier(channels: int, mid: int, num_classes: int) -> nn.Sequential:
    """3x3 conv + BN + ReLU, Dropout2d(0.1), 1x1 conv (with bias) to the class logits."""
    return nn.Sequential(*_conv_bn(channels, mid, 3), nn.Dropout2d(0.1), nn.Conv2d(mid, num_classes, 1))


class _Segmenter(nn.Module):
    """What both models share: a ``backbone`` and a ``train`` that spares a frozen one's BN."""

    backbone: nn.Module

    def train(self, mode: bool = True) -> _Segmenter:
        """As ``nn.Module.train``, except that a fully frozen backbone keeps its batch-norm
        layers in eval mode: in train mode they would replace the pretrained running statistics
        by those of small segmentation batches, and the frozen features the head learns on
        would drift under them (and differ again at evaluation)."""
        super().train(mode)
        if mode and not any(p.requires_grad for p in self.backbone.parameters()):
            for module in self.backbone.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.eval()
        return self


# Stages of the dilated ResNet-50: (blocks, mid, out, stride, dilation). Strides 1, 2, 1, 1
# after the stem's 4 keep the map at 1/8 of the input; dilations 2 and 4 give the last two
# stages the receptive field their dropped strides would have given.
_STAGES = ((3, 64, 256, 1, 1), (4, 128, 512, 2, 1), (6, 256, 1024, 1, 2), (3, 512, 2048, 1, 4))


class PSPNet(_Segmenter):
    """The book's PSPNet: a dilated ResNet-50 (output stride 8), pyramid pooling on its
    2048-channel map, a decoder to ``num_classes`` logits, and an auxiliary head on the third
    stage (1024 channels) whose loss (weighted ~0.4 by the book) helps the deep net train.

    ``backbone`` holds ``stem`` (three 3x3 conv-BN-ReLU, the first with stride 2, then a 3x3
    max pool with stride 2) and ``layer1``-``layer4``. ``input_size`` is the side of the square
    crops it is meant to be trained on (475 in the book); any input of at least
    :data:`MIN_INPUT` pixels works, the outputs always have the input's size.
    """

    def __init__(self, num_classes: int = 21, input_size: int = 475, width: float = 1.0):
        super().__init__()
        if input_size < MIN_INPUT:
            raise ValueError(f"PSPNet: input_size {input_size} < {MIN_INPUT}")
        self.num_classes, self.input_size, self.width = num_classes, input_size, width
        c = lambda channels: scaled_channels(channels, width)  # noqa: E731 - the one scaling rule, short
        stem = nn.Sequential(_conv_bn(3, c(64), 3, stride=2), _conv_bn(c(64), c(64), 3), _conv_bn(c(64), c(128), 3),
                             nn.MaxPool2d(3, stride=2, padding=1))
        layers, channels = [("stem", stem)], c(128)
        for index, (blocks, mid, out, stride, dilation) in enumerate(_STAGES, start=1):
            layers.append((f"layer{index}", _stage(blocks, channels, c(mid), c(out), stride, dilation)))
            channels = c(out)
        self.backbone = nn.Sequential(OrderedDict(layers))
        self.pyramid = PyramidPooling(channels, c(512))
        self.decoder = _classifier(self.pyramid.out_channels, c(512), num_classes)
        self.aux = _classifier(c(1024), c(256), num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        """He (Kaiming) normal convs, as torchvision's ResNets start from scratch: with no
        ImageNet weights for this layout offline, the demo profiles train from this init, and
        He's keeps the signal's variance through the 50 ReLU layers. Batch norms start at the
        identity; the classifiers' biases at zero."""
        he_init_convs(self)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(main, aux)`` logits ``[B, num_classes, H, W]`` for images ``[B, 3, H, W]``, in
        train and eval mode alike."""
        _check_input(x, "PSPNet")
        size = x.shape[-2:]
        b = self.backbone
        features = b.layer3(b.layer2(b.layer1(b.stem(x))))
        aux = self.aux(features)
        main = self.decoder(self.pyramid(b.layer4(features)))
        return _upsample(main, size), _upsample(aux, size)


# ---- a pyramid-pooling head on MobileNetV2 ---------------------------------------------------

BODY_BLOCKS = 18   # features[:18]: up to block 17's 320 channels; features[18] (1x1 to 1280) is left out
DILATED_FROM = 14  # blocks 14-17 (the stride-32 stage) run at stride 16 with dilation 2
SKIP_BLOCK = 6     # backbone[6]: the last 32-channel block, at stride 8


class MobileNetV2PSP(_Segmenter):
    """Pyramid pooling on torchvision's ``mobilenet_v2().features`` at output stride 16, with a
    stride-8 skip; 2.7 M parameters, two thirds of them ImageNet's.

    * Body: blocks 0-17, the 320-channel map before the 1x1 expansion to 1280 that only
      serves ImageNet's classifier; the MobileNetV2 paper (section 6.3) builds its DeepLabv3
      head there too, for the same accuracy at far less cost. ``backbone`` keeps torchvision's
      indices so the ImageNet ``features.N`` weights load unchanged.
    * Output stride 16, not 32: block 14's stride is dropped and blocks 14-17 dilated by 2
      (the same weights, a denser map). At the small inputs a CPU trains on (~224 px) stride
      32 leaves a 7x7 map, too coarse for objects of a few dozen pixels; stride 8 would run
      the widest blocks at 4x the cost.
    * Head: pyramid pooling (bins 6, 3, 2, 1; 64 channels each) -> 3x3 conv to 128 + BN +
      ReLU; upsampled to stride 8 and concatenated with block 6's 32 channels (1x1 conv + BN +
      ReLU, DeepLabV3+ style) to sharpen boundaries; 3x3 conv to 96 + BN + ReLU, Dropout2d, 1x1
      classifier; bilinear upsampling to the input. The skip is taken at stride 8, not 4: at
      stride 4 the fusing 3x3 conv would cost more than the whole backbone.

    Returns ``(logits, None)``: the ``(main, aux)`` contract of :class:`PSPNet`, without an aux.
    """

    BRANCH, HEAD, SKIP, FUSE = 64, 128, 32, 96

    def __init__(self, num_classes: int, input_size: int = 224):
        super().__init__()
        if input_size < MIN_INPUT:
            raise ValueError(f"MobileNetV2PSP: input_size {input_size} < {MIN_INPUT}")
        self.num_classes, self.input_size = num_classes, input_size
        self.backbone = mobilenet_v2(weights=None).features[:BODY_BLOCKS]  # slicing keeps the indices
        for block in self.backbone[DILATED_FROM:]:
            depthwise = block.conv[1][0]
            # Weights are unchanged, so the ImageNet filters apply; only their spacing grows.
            depthwise.stride, depthwise.dilation, depthwise.padding = (1, 1), (2, 2), (2, 2)
        channels = self.backbone[-1].out_channels
        skip = self.backbone[SKIP_BLOCK].out_channels
        self.pyramid = PyramidPooling(channels, self.BRANCH)
        self.bottleneck = _conv_bn(self.pyramid.out_channels, self.HEAD, 3)
        self.skip = _conv_bn(skip, self.SKIP, 1)
        self.classifier = _classifier(self.HEAD + self.SKIP, self.FUSE, num_classes)
        self._init_head()

    def head_modules(self) -> list[nn.Module]:
        """The layers that are not MobileNetV2's."""
        return [self.pyramid, self.bottleneck, self.skip, self.classifier]

    def _init_head(self) -> None:
        """He normal convs and zero biases in the new layers; the backbone keeps torchvision's
        init until ImageNet weights replace it."""
        for part in self.head_modules():
            he_init_convs(part)

    def forward(self, x: Tensor) -> tuple[Tensor, None]:
        """``(logits [B, num_classes, H, W], None)`` for images ``[B, 3, H, W]``."""
        _check_input(x, "MobileNetV2PSP")
        size = x.shape[-2:]
        low = self.backbone[:SKIP_BLOCK + 1](x)
        deep = self.bottleneck(self.pyramid(self.backbone[SKIP_BLOCK + 1:](low)))
        low = self.skip(low)
        fused = torch.cat([_upsample(deep, low.shape[-2:]), low], dim=1)
        return _upsample(self.classifier(fused), size), None


# ---- builders and parameter groups -----------------------------------------------------------

def build_pspnet(num_classes: int, pretrained: str = "none", input_size: int = 475, width: float = 1.0) -> PSPNet:
    """The book's PSPNet for ``num_classes``; ``pretrained``: ``none`` (random, He init) or a
    path to a state_dict of this very network (same classes and width), loaded strictly.
    ``imagenet`` is refused: no ImageNet weights for this dilated ResNet-50 layout ship
    offline. A missing file raises PretrainedWeightsMissing, never a random fallback."""
    if pretrained == "imagenet":
        raise ConfigError("pretrained: imagenet - no ImageNet weights exist offline for the book's dilated "
                          "ResNet-50 (three-conv stem) PSPNet; set pretrained to a path to a PSPNet state_dict "
                          "saved from this model, or to 'none' to train from random init on purpose")
    model = PSPNet(num_classes, input_size=input_size, width=width)
    if pretrained == "none":
        return model
    state = load_state_dict_file(pretrained)
    load_strict(model, state, pretrained, f"a PSPNet state_dict for {num_classes} classes at width {width}")
    return model


def build_mobilenet_psp(num_classes: int, pretrained: str = "imagenet", input_size: int = 224) -> MobileNetV2PSP:
    """:class:`MobileNetV2PSP` for ``num_classes``; its backbone from ``pretrained``
    (``imagenet``: the MobileNetV2 ImageNet checkpoint, from torchvision's cache or the offline
    package; a path: a MobileNetV2 state_dict; ``none``: random). Missing weights raise
    PretrainedWeightsMissing."""
    model = MobileNetV2PSP(num_classes, input_size=input_size)
    if pretrained == "none":
        return model
    # The body stops before block BODY_BLOCKS (the 1x1 conv to 1280): its weights stay out.
    mobilenet.load_body(model.backbone, pretrained, unused=(f"features.{BODY_BLOCKS}.",))
    return model


def param_groups(model: PSPNet | MobileNetV2PSP) -> dict[str, list[nn.Parameter]]:
    """``backbone`` (the feature extractor: dilated ResNet-50 / MobileNetV2 blocks 0-17) and
    ``head`` (everything else: pyramid pooling, decoder and, for PSPNet, the aux head)."""
    backbone = list(model.backbone.parameters())
    taken = {id(p) for p in backbone}
    return {"backbone": backbone, "head": [p for p in model.parameters() if id(p) not in taken]}
