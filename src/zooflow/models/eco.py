"""Video classification for chapter 9: the book's ECO-Lite and the paper's ECO-Full (Zolfaghari
et al., "ECO: Efficient Convolutional Network for Online Video Understanding", ECCV 2018).

ECO looks at a clip as ``N`` segments, one frame each (the book samples N=16 frames evenly over a
Kinetics video, 224x224). Both models take ``[B, N, 3, H, W]`` and return logits
``[B, num_classes]``; ``N`` is read from the input, not fixed at construction.

* A 2D BN-Inception ``trunk`` runs on every frame on its own (the frames are folded into the
  batch): conv1 7x7/2 (64), max pool, conv2 1x1 (64) + 3x3 (192), max pool, inception-3a (256
  channels), inception-3b (320) and the first two convs of inception-3c's double-3x3 path, the
  part of 3c the ECO paper keeps: 96 channels at 28x28 for a 224x224 frame (stride 8).
* The N maps are stacked along a time axis into a ``[B, 96, N, 28, 28]`` volume for a 3D
  ResNet-18 ``tail`` (res3, res4, res5: the book's Resnet_3D_3/4/5 of ECO_3D), then 3D global
  average pooling, dropout and ``fc``. The 3D convs relate the frames to each other, so the
  order of the frames counts: the point of ECO over a 2D net that averages per-frame scores.
* :class:`EcoFull` adds the paper's 2D branch (``branch2d``): the rest of inception-3c and
  BN-Inception's inception-4a to 5b on each frame, pooled per frame and averaged over the
  frames (1024 features), concatenated after the 3D tail's 512 before ``fc``.

:class:`EcoLite` at ``width=1`` with 400 classes has 37,503,856 parameters, the book's 37.50 M:
the 2D trunk 681,568 (stem 125,056; inception-3a 219,552; 3b 260,704; the part of 3c 76,256),
the 3D tail 36,617,088 (res3 1,217,664; res4 7,081,216; res5 28,318,208: three in four of all
the parameters sit in res5's 3x3x3 convs at 512 channels) and fc 205,200 (512 x 400 + 400).
:class:`EcoFull` at width 1 with 400 classes has 47,502,128: the same trunk and tail, the 2D
branch 9,588,672 (the rest of 3c 309,376; 4a-4e 4,787,552; 5a-5b 4,491,744: with the trunk,
BN-Inception's 10,270,240 parameters less its classifier) and fc 614,800 (1536 x 400 + 400).
Every conv has a bias and every batch norm is affine, as in the book's ECO_2D and ECO_3D.

Sizes. The 3D tail's res4 and res5 convs stride 2 in time and space with padding 1, so each
halves a side rounding up (``ceil(n / 2)``), and the pooling is global: any ``N`` and frame size
give a 1x1x1 map, and the book's ``AvgPool3d((4, 7, 7))`` at N=16 and 224x224 is this same
mean. The models accept ``N >= MIN_SEGMENTS`` (2: with one frame the 3D convs have no
neighbour to relate, and the model is a 2D net in disguise) and frames of at least
``MIN_FRAME`` pixels a side (64: the trunk's stride-8 map is then 8x8, res5's 2x2, so batch
norm in train mode has more than one value per channel even for a batch of one clip). Odd
sizes are fine: EcoFull's stride-2 inception blocks (3c, 4e) pad odd sides for their max pool
so that it lands on the same ``ceil(n / 2)`` grid as their stride-2 convs (BN-Inception's
Caffe model only ever saw the even sides of 224-pixel frames, which pool as before).

Inputs. Weights trained here take whatever the task's transforms give. The ECO authors'
Kinetics weights (the book's ECO_Lite_rgb_model_Kinetics.pth.tar, once converted to this
layout) expect Caffe-era input: pixels 0-255, BGR, the mean subtracted and no scaling; see
:func:`to_caffe_input`.

In train mode the 2D batch norm pools its statistics over all ``B * N`` frames of a batch (as
the book's and the paper's); in eval mode every frame's 2D features depend on that frame only.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zooflow.config import ConfigError
from zooflow.errors import InputRejected
from zooflow.models.pretrained import (he_init_convs, listed_keys, load_state_dict_file, load_strict,
                                      scaled_channels)

BOOK_ECO_LITE_PARAMETERS = 37_503_856  # EcoLite(400 classes) at width 1: the book's 37.50 M
ECO_FULL_PARAMETERS = 47_502_128       # EcoFull(400 classes) at width 1 (not in the book)
KINETICS_CLASSES = 400
BOOK_SEGMENTS = 16    # the book's num_segments: 16 frames sampled evenly over each video
BOOK_FRAME = 224
MIN_SEGMENTS = 2      # one frame leaves the 3D convs nothing to relate (see the module docstring)
MIN_FRAME = 64        # 8x8 after the trunk, 2x2 after res5: BN in train mode never sees a single value
# The default of the ECO authors' PyTorch models (ECO-pytorch); the book only runs inference,
# where dropout does nothing. Small demo runs may want less.
DEFAULT_DROPOUT = 0.8
# BN-Inception's Caffe input (the TSN/ECO models): BGR means of 0-255 pixels, std 1. The book's
# notebook subtracts [104, 117, 123] from R, G, B before it flips to BGR, i.e. BGR means
# (123, 117, 104): pass those as ``bgr_mean`` to reproduce the book's numbers exactly.
CAFFE_BGR_MEAN = (104.0, 117.0, 128.0)

# BN-Inception's blocks after the trunk: (1x1, (3x3 reduce, 3x3), (double reduce, double 3x3),
# pool, pool projection). Stride-2 blocks (4e) have no 1x1 and pass their max pool unprojected.
_InceptionSpec = tuple[int, tuple[int, int], tuple[int, int], str, int]
_BLOCK_3A: _InceptionSpec = (64, (64, 64), (64, 96), "avg", 32)      # 192 -> 256
_BLOCK_3B: _InceptionSpec = (64, (64, 96), (64, 96), "avg", 64)      # 256 -> 320
_BLOCKS_4_5: tuple[tuple[str, _InceptionSpec, int], ...] = (
    ("inception_4a", (224, (64, 96), (96, 128), "avg", 128), 1),      # 576 -> 576
    ("inception_4b", (192, (96, 128), (96, 128), "avg", 128), 1),     # 576 -> 576
    ("inception_4c", (160, (128, 160), (128, 160), "avg", 128), 1),   # 576 -> 608
    ("inception_4d", (96, (128, 192), (160, 192), "avg", 128), 1),    # 608 -> 608
    ("inception_4e", (0, (128, 192), (192, 256), "max", 0), 2),       # 608 -> 1056, stride 2
    ("inception_5a", (352, (192, 320), (160, 224), "avg", 128), 1),   # 1056 -> 1024
    ("inception_5b", (352, (192, 320), (192, 224), "max", 128), 1),   # 1024 -> 1024
)


# ---- building blocks ---------------------------------------------------------------------------

class ConvBN(nn.Sequential):
    """A 2D conv ("same" padding, bias as the Caffe models'), batch norm and ReLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int = 1):
        super().__init__(nn.Conv2d(in_channels, out_channels, kernel, stride=stride, padding=kernel // 2),
                         nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))
        self.out_channels = out_channels


def _max_pool_s2(x: Tensor) -> Tensor:
    """BN-Inception's 3x3/2 max pool (ceil mode, no padding) of a stride-2 inception block, with
    an odd side padded by one -inf cell at its far end: the pool's output is then ``ceil(n / 2)``
    like the block's stride-2 convs (without it, 13 pools to 6 where the convs give 7)."""
    pad_w, pad_h = x.shape[-1] % 2, x.shape[-2] % 2
    if pad_w or pad_h:
        x = F.pad(x, (0, pad_w, 0, pad_h), value=float("-inf"))
    return F.max_pool2d(x, kernel_size=3, stride=2, ceil_mode=True)


class Inception(nn.Module):
    """One BN-Inception block: a 1x1 path, a 1x1 -> 3x3 path, a 1x1 -> 3x3 -> 3x3 path and a
    pooling path (3x3 average or max, stride 1, then a 1x1 projection), concatenated in that
    order. With ``stride=2`` the last conv of each 3x3 path strides, the 1x1 path is absent and
    the max pool strides and passes its input's channels through (inception-4e; 3c is the same
    kind of block, split here between the trunk and EcoFull's :class:`Branch2d`)."""

    def __init__(self, in_channels: int, spec: _InceptionSpec, width: float, stride: int = 1):
        super().__init__()
        c = lambda channels: scaled_channels(channels, width)  # noqa: E731 - the one scaling rule, short
        one, (three_reduce, three), (double_reduce, double), pool, proj = spec
        if stride not in (1, 2) or (stride == 2 and (one or proj or pool != "max")):
            raise ValueError(f"Inception: a stride-{stride} block takes no 1x1 path and an unprojected max "
                             f"pool, got {spec}")
        self.stride = stride
        self.path_1x1 = ConvBN(in_channels, c(one), 1) if one else None
        self.path_3x3 = nn.Sequential(ConvBN(in_channels, c(three_reduce), 1),
                                      ConvBN(c(three_reduce), c(three), 3, stride))
        self.path_double_3x3 = nn.Sequential(ConvBN(in_channels, c(double_reduce), 1),
                                             ConvBN(c(double_reduce), c(double), 3),
                                             ConvBN(c(double), c(double), 3, stride))
        self.pool_kind = pool
        self.pool_proj = ConvBN(in_channels, c(proj), 1) if proj else None
        self.out_channels = ((c(one) if one else 0) + c(three) + c(double)
                             + (c(proj) if proj else in_channels))

    def _pool(self, x: Tensor) -> Tensor:
        if self.stride == 2:
            return _max_pool_s2(x)
        if self.pool_kind == "max":
            return F.max_pool2d(x, kernel_size=3, stride=1, padding=1)
        # Caffe's average pool counts the zero padding (count_include_pad), as the book's AvgPool2d.
        return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=True)

    def forward(self, x: Tensor) -> Tensor:
        pooled = self._pool(x)
        paths = [self.path_1x1(x)] if self.path_1x1 is not None else []
        paths += [self.path_3x3(x), self.path_double_3x3(x),
                  self.pool_proj(pooled) if self.pool_proj is not None else pooled]
        return torch.cat(paths, dim=1)


class Trunk2d(nn.Module):
    """BN-Inception up to the part of inception-3c that ECO keeps (the book's ECO_2D): a frame
    ``[F, 3, H, W]`` to ``[F, 96, H/8, W/8]`` (28x28 for 224x224; every channel times
    ``width``). Max pools 3x3/2 in ceil mode, as the Caffe model's."""

    def __init__(self, width: float = 1.0):
        super().__init__()
        c = lambda channels: scaled_channels(channels, width)  # noqa: E731
        self.stem = nn.Sequential(ConvBN(3, c(64), 7, stride=2),                    # conv1_7x7_s2
                                  nn.MaxPool2d(3, stride=2, ceil_mode=True),        # pool1_3x3_s2
                                  ConvBN(c(64), c(64), 1),                          # conv2_3x3_reduce
                                  ConvBN(c(64), c(192), 3),                         # conv2_3x3
                                  nn.MaxPool2d(3, stride=2, ceil_mode=True))        # pool2_3x3_s2
        self.inception_3a = Inception(c(192), _BLOCK_3A, width)
        self.inception_3b = Inception(self.inception_3a.out_channels, _BLOCK_3B, width)
        # inception_3c_double_3x3_reduce and _double_3x3_1: the 3D tail's input (the paper's cut).
        self.inception_3c_double = nn.Sequential(ConvBN(self.inception_3b.out_channels, c(64), 1),
                                                 ConvBN(c(64), c(96), 3))
        self.out_channels = c(96)
        self.inception_3b_channels = self.inception_3b.out_channels

    def features(self, frames: Tensor) -> tuple[Tensor, Tensor]:
        """``(inception_3b, maps)``: the 3b output (EcoFull's 2D branch goes on from it) and the
        96-channel maps of the 3D tail."""
        x = self.inception_3b(self.inception_3a(self.stem(frames)))
        return x, self.inception_3c_double(x)

    def forward(self, frames: Tensor) -> Tensor:
        return self.features(frames)[1]


class Branch2d(nn.Module):
    """EcoFull's 2D branch on each frame: the rest of inception-3c (its stride-2 3x3 path from
    the 3b output, the second stride-2 conv of the double-3x3 path on the trunk's 96-channel
    maps, the max pool of the 3b output: 576 channels at 14x14), inception-4a to 5b (1024 at
    7x7) and global average pooling: ``[F, 1024]``."""

    def __init__(self, inception_3b_channels: int, trunk_channels: int, width: float = 1.0):
        super().__init__()
        c = lambda channels: scaled_channels(channels, width)  # noqa: E731
        self.inception_3c_three = nn.Sequential(ConvBN(inception_3b_channels, c(128), 1),
                                                ConvBN(c(128), c(160), 3, stride=2))
        self.inception_3c_double_2 = ConvBN(trunk_channels, c(96), 3, stride=2)
        channels = c(160) + c(96) + inception_3b_channels
        blocks = []
        for name, spec, stride in _BLOCKS_4_5:
            block = Inception(channels, spec, width, stride)
            blocks.append((name, block))
            channels = block.out_channels
        self.blocks = nn.Sequential(OrderedDict(blocks))
        self.out_channels = channels

    def forward(self, inception_3b: Tensor, maps: Tensor) -> Tensor:
        x = torch.cat([self.inception_3c_three(inception_3b), self.inception_3c_double_2(maps),
                       _max_pool_s2(inception_3b)], dim=1)
        return self.blocks(x).mean(dim=(-2, -1))


def _conv3d(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv3d:
    return nn.Conv3d(in_channels, out_channels, 3, stride=stride, padding=1)


class ResStage3d(nn.Module):
    """One stage of ECO's 3D ResNet-18 (the book's Resnet_3D_3/4/5; names follow its layers).

    ``downsample`` (res4, res5): block a is two 3x3x3 convs, the first strided 2 in time and
    space, plus a strided 3x3x3 conv on the shortcut; without it (res3), block a is the single
    conv res3a_2 and its output is block b's shortcut. Batch norm and ReLU come after each sum
    (``a_bn``, ``b_bn``) and between the two convs of a block, not on the shortcut."""

    def __init__(self, in_channels: int, out_channels: int, downsample: bool):
        super().__init__()
        self.downsample = downsample
        if downsample:
            self.a1 = _conv3d(in_channels, out_channels, stride=2)
            self.a1_bn = nn.BatchNorm3d(out_channels)
            self.a2 = _conv3d(out_channels, out_channels)
            self.down = _conv3d(in_channels, out_channels, stride=2)
        else:
            self.a2 = _conv3d(in_channels, out_channels)
        self.a_bn = nn.BatchNorm3d(out_channels)
        self.b1 = _conv3d(out_channels, out_channels)
        self.b1_bn = nn.BatchNorm3d(out_channels)
        self.b2 = _conv3d(out_channels, out_channels)
        self.b_bn = nn.BatchNorm3d(out_channels)

    def forward(self, x: Tensor) -> Tensor:
        if self.downsample:
            a = self.a2(F.relu(self.a1_bn(self.a1(x)))) + self.down(x)
        else:
            a = self.a2(x)
        b = self.b2(F.relu(self.b1_bn(self.b1(F.relu(self.a_bn(a))))))
        return F.relu(self.b_bn(b + a))


class Tail3d(nn.Module):
    """The book's ECO_3D: res3 (128 channels), res4 (256, stride 2), res5 (512, stride 2) on
    ``[B, C, N, h, w]``, then the global average: ``[B, 512]``."""

    def __init__(self, in_channels: int, width: float = 1.0):
        super().__init__()
        c = lambda channels: scaled_channels(channels, width)  # noqa: E731
        self.res3 = ResStage3d(in_channels, c(128), downsample=False)
        self.res4 = ResStage3d(c(128), c(256), downsample=True)
        self.res5 = ResStage3d(c(256), c(512), downsample=True)
        self.out_channels = c(512)

    def forward(self, volume: Tensor) -> Tensor:
        return self.res5(self.res4(self.res3(volume))).mean(dim=(-3, -2, -1))


# ---- the models --------------------------------------------------------------------------------

def _check_clip(clip: Tensor, name: str) -> None:
    if clip.dim() != 5 or clip.shape[2] != 3:
        raise ValueError(f"{name} takes clips [B, N, 3, H, W], got {tuple(clip.shape)}")
    if clip.shape[1] < MIN_SEGMENTS:
        raise ValueError(f"{name} needs at least {MIN_SEGMENTS} segments (frames) a clip, got {clip.shape[1]}")
    if min(clip.shape[-2:]) < MIN_FRAME:
        raise ValueError(f"{name} takes frames of at least {MIN_FRAME}x{MIN_FRAME} pixels, "
                         f"got {tuple(clip.shape[-2:])}")


class EcoLite(nn.Module):
    """The book's ECO-Lite: :class:`Trunk2d` on each frame, the frames' maps stacked in time,
    :class:`Tail3d`, dropout and ``fc``. ``width`` scales every channel but the classes; 1 is the
    book's."""

    def __init__(self, num_classes: int = KINETICS_CLASSES, width: float = 1.0, dropout: float = DEFAULT_DROPOUT):
        super().__init__()
        if num_classes < 1 or width <= 0 or not 0 <= dropout < 1:
            raise ValueError(f"{type(self).__name__}: num_classes ({num_classes}) must be at least 1, width "
                             f"({width}) above 0 and dropout ({dropout}) in [0, 1)")
        self.num_classes, self.width = num_classes, width
        self.trunk = Trunk2d(width)
        self.tail = Tail3d(self.trunk.out_channels, width)
        features = self.tail.out_channels + self._add_2d_branch(width)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(features, num_classes)
        self._init()

    def _add_2d_branch(self, width: float) -> int:
        """The features a 2D branch adds before ``fc``: none in ECO-Lite."""
        return 0

    def backbone_modules(self) -> list[nn.Module]:
        """The 2D BN-Inception layers, the ones image pretraining initialises."""
        return [self.trunk]

    def _init(self) -> None:
        """He normal (fan-out) convs with zero biases, 2D and 3D, as torchvision's from-scratch
        ResNets; batch norm starts at scale 1 and shift 0 and fc at PyTorch's default."""
        he_init_convs(self)
        for layer in self.modules():
            if isinstance(layer, nn.Conv3d):
                nn.init.kaiming_normal_(layer.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(layer.bias)

    def frame_features(self, clip: Tensor) -> Tensor:
        """The trunk's maps of every frame, ``[B, N, C, h, w]`` (C = 96 at width 1)."""
        _check_clip(clip, type(self).__name__)
        batch, segments = clip.shape[:2]
        maps = self.trunk(clip.flatten(0, 1))
        return maps.unflatten(0, (batch, segments))

    def _volume(self, maps: Tensor, batch: int, segments: int) -> Tensor:
        """Per-frame maps ``[B * N, C, h, w]`` as the 3D tail's ``[B, C, N, h, w]``."""
        return maps.unflatten(0, (batch, segments)).transpose(1, 2)

    def forward(self, clip: Tensor) -> Tensor:
        """Logits ``[B, num_classes]`` for clips ``[B, N, 3, H, W]``."""
        _check_clip(clip, type(self).__name__)
        batch, segments = clip.shape[:2]
        features = self.tail(self._volume(self.trunk(clip.flatten(0, 1)), batch, segments))
        return self.fc(self.dropout(features))


class EcoFull(EcoLite):
    """The paper's ECO-Full: ECO-Lite's trunk and 3D tail, and beside the tail a 2D branch
    (:class:`Branch2d`: the rest of BN-Inception on each frame, pooled per frame and averaged
    over the frames). ``fc`` reads the 3D tail's 512 features, then the 2D branch's 1024."""

    branch2d: Branch2d

    def _add_2d_branch(self, width: float) -> int:
        self.branch2d = Branch2d(self.trunk.inception_3b_channels, self.trunk.out_channels, width)
        return self.branch2d.out_channels

    def backbone_modules(self) -> list[nn.Module]:
        return [self.trunk, self.branch2d]

    def forward(self, clip: Tensor) -> Tensor:
        _check_clip(clip, type(self).__name__)
        batch, segments = clip.shape[:2]
        inception_3b, maps = self.trunk.features(clip.flatten(0, 1))
        features_3d = self.tail(self._volume(maps, batch, segments))
        features_2d = self.branch2d(inception_3b, maps).unflatten(0, (batch, segments)).mean(dim=1)
        return self.fc(self.dropout(torch.cat([features_3d, features_2d], dim=1)))


# ---- input, builders and parameter groups ------------------------------------------------------

def to_caffe_input(frames: Tensor, bgr_mean: Sequence[float] = CAFFE_BGR_MEAN) -> Tensor:
    """Frames as BN-Inception's Caffe weights (ECO's Kinetics models) expect them: RGB in [0, 1]
    (``ToTensor``'s) to 0-255, the channels reversed to BGR, ``bgr_mean`` (blue, green, red)
    subtracted, no division. ``frames``: ``[..., 3, H, W]`` (a frame, a clip or a batch)."""
    if frames.dim() < 3 or frames.shape[-3] != 3:
        raise ValueError(f"to_caffe_input takes RGB frames [..., 3, H, W], got {tuple(frames.shape)}")
    if len(bgr_mean) != 3:
        raise ValueError(f"to_caffe_input: bgr_mean holds one value per channel (3), got {len(bgr_mean)}")
    mean = torch.tensor(bgr_mean, dtype=frames.dtype, device=frames.device).view(3, 1, 1)
    return (frames * 255).flip(-3) - mean


def _build(model_type: type[EcoLite], pretrained: str, num_classes: int, width: float, dropout: float) -> EcoLite:
    if pretrained == "imagenet":
        raise ConfigError(f"pretrained: imagenet is not offered for {model_type.__name__}: torchvision ships no "
                          "BN-Inception. Set pretrained to the path of a state_dict of this network (for example "
                          "ECO's Kinetics weights converted to it) or to none")
    if pretrained != "none":
        # The file first: a missing path is reported before tens of millions of parameters are drawn.
        state = load_state_dict_file(pretrained)
        model = model_type(num_classes=num_classes, width=width, dropout=dropout)
        what = f"an {model_type.__name__} state_dict with {num_classes} classes at width {width}"
        # Keys before shapes: load_strict stops at the first shape that does not fit, and ECO-Lite's
        # weights offered to ECO-Full would then be reported as a wrong fc, not a missing 2D branch.
        expected = model.state_dict().keys()
        missing, unexpected = [k for k in expected if k not in state], [k for k in state if k not in expected]
        if missing or unexpected:
            raise InputRejected(f"pretrained: {pretrained} is not {what} (missing keys: {listed_keys(missing)}; "
                                f"unexpected keys: {listed_keys(unexpected)})")
        load_strict(model, state, pretrained, what)
        return model
    return model_type(num_classes=num_classes, width=width, dropout=dropout)


def build_eco_lite(pretrained: str = "none", num_classes: int = KINETICS_CLASSES, width: float = 1.0,
                   dropout: float = DEFAULT_DROPOUT) -> EcoLite:
    """The book's ECO-Lite. ``pretrained``: ``none`` (random, on purpose) or the path of a
    state_dict of this very network (same classes and width), loaded with
    ``torch.load(weights_only=True)`` and strict keys. A missing file raises
    PretrainedWeightsMissing (a FileNotFoundError) naming the path, never a random fallback; a
    file that does not fit raises InputRejected naming its missing and unexpected keys."""
    return _build(EcoLite, pretrained, num_classes, width, dropout)


def build_eco_full(pretrained: str = "none", num_classes: int = KINETICS_CLASSES, width: float = 1.0,
                   dropout: float = DEFAULT_DROPOUT) -> EcoFull:
    """The paper's ECO-Full; ``pretrained`` as :func:`build_eco_lite`'s."""
    return _build(EcoFull, pretrained, num_classes, width, dropout)


def param_groups(model: EcoLite) -> dict[str, list[nn.Parameter]]:
    """``backbone`` (the 2D BN-Inception layers: the trunk, and EcoFull's 2D branch) and
    ``head`` (everything else: the 3D tail and fc), for different learning rates."""
    backbone = [p for module in model.backbone_modules() for p in module.parameters()]
    taken = {id(p) for p in backbone}
    return {"backbone": backbone, "head": [p for p in model.parameters() if id(p) not in taken]}
