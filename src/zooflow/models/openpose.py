"""Pose estimation for chapter 4: the book's OpenPose (Cao et al., 2017) on VGG-19's first ten
convs, and a small two-stage OpenPose on MobileNetV2 (Sandler et al., 2018), whose ImageNet
body ships offline, for a model a CPU trains in minutes.

Both return ``(pafs, heatmaps, per_stage)``: the last stage's part affinity fields
``[B, 2 * num_limbs, h, w]`` (an x and a y map per limb: 38 channels for COCO's 19 limbs) and
part confidence maps ``[B, num_parts + 1, h, w]`` (18 parts and the background: 19 channels),
at 1/8 of the input, and the list of every stage's ``(pafs, heatmaps)``: the loss supervises
each stage (the paper's intermediate supervision), not only the last. Upsampling the maps and
finding people in them (peaks, limb scores, assembly) is the task's business, not the model's.

OpenPose at ``width=1`` with 18 parts and 19 limbs has 52,311,446 parameters, the book's
52.31 M: VGG-19's conv1_1-conv4_2 (5,865,536), the feature reduction conv4_3_CPM and
conv4_4_CPM (1,474,944), stage 1 (1,046,841: 528,294 PAF branch + 518,547 heatmap branch) and
five refinement stages (8,784,825 each: 4,393,638 + 4,391,187; nine in ten of them in the 7x7
convs). ``width`` shrinks every channel but the outputs, for the demo and smoke profiles only.
:class:`MobileNetOpenPose` at its defaults (64 channels, 2 stages) has 790,450 parameters:
MobileNetV2's blocks 0-6 (55,488), the reduction (18,496), stage 1 (269,497) and stage 2
(446,969).

Inputs are images normalised as the backbone's ImageNet weights expect (the task's
transforms); any size of at least :data:`MIN_INPUT` pixels a side works. OpenPose's maps are
``floor(H / 8) x floor(W / 8)`` (three 2x2 max pools), MobileNetOpenPose's
``ceil(H / 8) x ceil(W / 8)`` (three stride-2 3x3 convs with padding 1); both are 46x46 for
the book's 368x368 crops.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torchvision.models import VGG19_Weights, mobilenet_v2

from zooflow.config import ConfigError
from zooflow.errors import InputRejected
from zooflow.models import mobilenet
from zooflow.models.pretrained import (he_init_convs, imagenet_state_dict, listed_keys, load_state_dict_file,
                                      load_strict, scaled_channels)

BOOK_OPENPOSE_PARAMETERS = 52_311_446  # OpenPose(18 parts, 19 limbs) at width 1: the book's 52.31 M
MIN_INPUT = 8  # one cell of the stride-8 maps; anything smaller pools to nothing
COCO_PARTS = 18  # nose, neck, shoulders, elbows, wrists, hips, knees, ankles, eyes, ears
COCO_LIMBS = 19  # the part pairs the PAFs join (17 along the skeleton, 2 ear-shoulder)
OUTPUT_STD = 0.01  # init of the last conv of each branch (see _init_stages)

# VGG-19's conv1_1..conv4_2 in torchvision's ``features`` layout ("M": 2x2 max pool), so the
# ImageNet ``features.N`` weights load with their indices. OpenPose stops before conv4_3.
_VGG19_LAYOUT = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512)
VGG19_BODY_LAYERS = 23  # features[:23]: up to the ReLU after conv4_2 (its 10th conv)
# Stage 1's convs (kernel, dilation): three 3x3; stages 2-6: five 7x7 (the paper's).
_BOOK_FIRST = ((3, 1),) * 3
_BOOK_REFINE = ((7, 1),) * 5


def _check_input(x: Tensor, name: str) -> None:
    if min(x.shape[-2:]) < MIN_INPUT:
        raise ValueError(f"{name} takes images of at least {MIN_INPUT}x{MIN_INPUT} pixels, got {tuple(x.shape[-2:])}")


def _branch(channels: int, mid: int, hidden: int, out: int, convs: Sequence[tuple[int, int]]) -> nn.Sequential:
    """One branch of a stage: the spatial ``convs`` (``(kernel, dilation)``; ``mid`` channels,
    "same" padding, ReLU), a 1x1 conv to ``hidden`` + ReLU and a 1x1 conv to the ``out`` maps,
    without ReLU: PAFs are signed, and heatmaps are regressed, not classified."""
    layers: list[nn.Module] = []
    for kernel, dilation in convs:
        layers += [nn.Conv2d(channels, mid, kernel, padding=dilation * (kernel // 2), dilation=dilation),
                   nn.ReLU(inplace=True)]
        channels = mid
    layers += [nn.Conv2d(channels, hidden, 1), nn.ReLU(inplace=True), nn.Conv2d(hidden, out, 1)]
    return nn.Sequential(*layers)


class Stage(nn.Module):
    """One OpenPose stage: two branches on the same input, ``paf`` (the paper's L1 branch, part
    affinity fields) and ``heatmap`` (L2, part confidence maps). The branches share the shape of
    their layers and differ only in their outputs."""

    def __init__(self, channels: int, mid: int, hidden: int, paf_channels: int, heatmap_channels: int,
                 convs: Sequence[tuple[int, int]]):
        super().__init__()
        self.paf = _branch(channels, mid, hidden, paf_channels, convs)
        self.heatmap = _branch(channels, mid, hidden, heatmap_channels, convs)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.paf(x), self.heatmap(x)


class _PoseNet(nn.Module):
    """What both models share: a ``backbone``, a ``reduce`` to the stages' feature channels,
    ``stages``, the forward pass through them and the init of the new layers."""

    backbone: nn.Module
    reduce: nn.Sequential
    stages: nn.ModuleList

    def __init__(self, num_parts: int, num_limbs: int, stages: int):
        super().__init__()
        if stages < 1 or num_parts < 1 or num_limbs < 1:
            raise ValueError(f"{type(self).__name__}: stages ({stages}), num_parts ({num_parts}) and num_limbs "
                             f"({num_limbs}) must each be at least 1")
        self.num_parts, self.num_limbs = num_parts, num_limbs
        self.paf_channels, self.heatmap_channels = 2 * num_limbs, num_parts + 1

    def _stages(self, features: int, mid: int, first_hidden: int, hidden: int,
                first: Sequence[tuple[int, int]], refine: Sequence[tuple[int, int]], count: int) -> nn.ModuleList:
        """Stage 1 on the features; stages 2.. on the features and the previous stage's maps."""
        maps = self.paf_channels + self.heatmap_channels
        built = [Stage(features, mid, first_hidden, self.paf_channels, self.heatmap_channels, first)]
        built += [Stage(features + maps, mid, hidden, self.paf_channels, self.heatmap_channels, refine)
                  for _ in range(count - 1)]
        return nn.ModuleList(built)

    def head_modules(self) -> list[nn.Module]:
        """The layers that are not the backbone's (and so never pretrained on ImageNet)."""
        return [self.reduce, self.stages]

    def _init_head(self) -> None:
        """He normal convs and zero biases in the reduction and the stages, but for each
        branch's last conv: N(0, 0.01) (the CMU Caffe models' init for every stage conv). He's
        keeps the signal's variance through the ReLU stacks (17 convs from the image to stage
        1's maps, 7 more per later stage; and the backbone itself is random in the demo
        profiles), where std 0.01 would shrink it about 4-fold per 3x3 layer of 128 channels
        (He's std there is 0.042). The last convs have no ReLU after them; small
        weights there start every map near zero, the value of most pixels of the targets, so
        the first steps do not spend themselves undoing large random outputs."""
        for part in self.head_modules():
            he_init_convs(part)
        for stage in self.stages:
            for branch in (stage.paf, stage.heatmap):
                nn.init.normal_(branch[-1].weight, 0.0, OUTPUT_STD)

    def features(self, x: Tensor) -> Tensor:
        """The stride-8 feature map all stages read."""
        return self.reduce(self.backbone(x))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, list[tuple[Tensor, Tensor]]]:
        """``(pafs, heatmaps, per_stage)`` for images ``[B, 3, H, W]``: the last stage's maps
        and every stage's ``(pafs, heatmaps)``, first to last, for the loss."""
        _check_input(x, type(self).__name__)
        features = self.features(x)
        per_stage = [self.stages[0](features)]
        for stage in self.stages[1:]:
            # The order of the paper's concat_stageN layers: L1 (PAFs), L2 (heatmaps), features.
            per_stage.append(stage(torch.cat([*per_stage[-1], features], dim=1)))
        pafs, heatmaps = per_stage[-1]
        return pafs, heatmaps, per_stage


class OpenPose(_PoseNet):
    """The book's OpenPose: VGG-19's conv1_1-conv4_2 (``backbone``, torchvision's
    ``features[:23]`` indices: max pools after conv1_2, conv2_2 and conv3_4), ``reduce``
    (conv4_3_CPM 512->256 and conv4_4_CPM 256->128, 3x3 + ReLU), then ``stages`` two-branch
    stages. Stage 1: three 3x3 convs at 128 channels, 1x1 to 512, 1x1 to the maps. Stages 2+:
    the 185 channels of PAFs, heatmaps and features; five 7x7 convs at 128 (the paper's large
    kernels: a stride-8 cell sees the whole of a limb), 1x1 to 128, 1x1 to the maps.

    ``width`` scales every channel but the maps (``num_limbs`` x 2 PAF and ``num_parts`` + 1
    heatmap channels); 1 is the book's."""

    def __init__(self, stages: int = 6, width: float = 1.0, num_parts: int = COCO_PARTS,
                 num_limbs: int = COCO_LIMBS):
        super().__init__(num_parts, num_limbs, stages)
        self.width = width
        c = lambda channels: scaled_channels(channels, width)  # noqa: E731 - the one scaling rule, short
        layers: list[nn.Module] = []
        channels = 3
        for item in _VGG19_LAYOUT:
            if item == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))  # floor mode, as the book's
                continue
            layers += [nn.Conv2d(channels, c(item), 3, padding=1), nn.ReLU(inplace=True)]
            channels = c(item)
        self.backbone = nn.Sequential(*layers)
        assert len(self.backbone) == VGG19_BODY_LAYERS
        self.reduce = nn.Sequential(nn.Conv2d(channels, c(256), 3, padding=1), nn.ReLU(inplace=True),
                                    nn.Conv2d(c(256), c(128), 3, padding=1), nn.ReLU(inplace=True))
        self.stages = self._stages(c(128), mid=c(128), first_hidden=c(512), hidden=c(128),
                                   first=_BOOK_FIRST, refine=_BOOK_REFINE, count=stages)
        # He normal for the backbone too, as torchvision's VGG starts from scratch; ImageNet
        # weights replace it when asked.
        he_init_convs(self.backbone)
        self._init_head()


# ---- a light OpenPose on MobileNetV2 -----------------------------------------------------------

MOBILENET_BODY_BLOCKS = 7  # features[:7]: blocks 0-6, 32 channels at stride 8
MOBILENET_BLOCKS = 19      # torchvision's mobilenet_v2().features: blocks 0-18
# The refinement convs: five 3x3 in place of the book's five 7x7, at 9/49 of the cost. The
# dilations win back most of the reach: 21 cells across (the book's stack: 31), and densely,
# since the undilated and the 2-dilated conv cover every cell of the 4-dilated one's gaps.
_LIGHT_REFINE = ((3, 1), (3, 2), (3, 4), (3, 2), (3, 1))


class MobileNetOpenPose(_PoseNet):
    """OpenPose's two-branch stages on torchvision's ``mobilenet_v2().features[:7]`` (32
    channels at stride 8, the ImageNet body that ships offline), for the CPU demo.

    * ``backbone`` keeps torchvision's indices so the ImageNet ``features.N`` weights load.
    * ``reduce``: a 3x3 conv from the body's 32 channels to ``channels`` + ReLU (the CPM convs'
      role; the body's last block is linear, so this is also its first ReLU).
    * Stage 1 as the book's at ``channels`` (three 3x3 convs, 1x1 to 4 x ``channels`` as the
      book's 128 -> 512, 1x1 to the maps); stages 2+ with the dilated 3x3 convs of
      :data:`_LIGHT_REFINE` and a 1x1 to ``channels``.

    No batch norm in the new layers, as the book's; the backbone keeps MobileNetV2's."""

    def __init__(self, stages: int = 2, channels: int = 64, num_parts: int = COCO_PARTS,
                 num_limbs: int = COCO_LIMBS):
        super().__init__(num_parts, num_limbs, stages)
        if channels < 1:
            raise ValueError(f"MobileNetOpenPose: channels ({channels}) must be at least 1")
        self.channels = channels
        self.backbone = mobilenet_v2(weights=None).features[:MOBILENET_BODY_BLOCKS]  # slicing keeps the indices
        body = self.backbone[-1].out_channels
        self.reduce = nn.Sequential(nn.Conv2d(body, channels, 3, padding=1), nn.ReLU(inplace=True))
        self.stages = self._stages(channels, mid=channels, first_hidden=4 * channels, hidden=channels,
                                   first=_BOOK_FIRST, refine=_LIGHT_REFINE, count=stages)
        self._init_head()  # the backbone keeps torchvision's init until ImageNet weights replace it

    def train(self, mode: bool = True) -> MobileNetOpenPose:
        """As ``nn.Module.train``, except that a fully frozen backbone keeps its batch-norm
        layers in eval mode: in train mode they would replace ImageNet's running statistics by
        those of small pose batches, and the frozen features the stages learn on would drift
        under them (and differ again at evaluation)."""
        super().train(mode)
        if mode and not any(p.requires_grad for p in self.backbone.parameters()):
            for module in self.backbone.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.eval()
        return self


# ---- builders and parameter groups -------------------------------------------------------------

def vgg19_to_openpose_backbone(state: dict, where: str = "the state_dict") -> dict:
    """OpenPose ``backbone`` weights from a torchvision VGG-19 state_dict: ``features.0`` to
    ``features.21`` (conv1_1-conv4_2) as they are; VGG-19's later convs and its classifier have
    no place in OpenPose. Any key outside ``features``/``classifier`` means another file."""
    strangers = [key for key in state if not key.startswith(("features.", "classifier."))]
    if strangers:
        raise InputRejected(f"pretrained: {where} is not a torchvision VGG-19 state_dict "
                            f"(unexpected keys: {listed_keys(strangers)})")
    body = {}
    for key, value in state.items():
        if key.startswith("features."):
            index, rest = key[len("features."):].split(".", 1)
            if index.isdigit() and int(index) < VGG19_BODY_LAYERS:
                body[f"{index}.{rest}"] = value
    return body


def build_openpose(pretrained: str = "none", stages: int = 6, width: float = 1.0, num_parts: int = COCO_PARTS,
                   num_limbs: int = COCO_LIMBS) -> OpenPose:
    """The book's OpenPose; ``pretrained``: ``imagenet`` (torchvision's VGG-19 ImageNet weights
    in the ten VGG convs, as the paper starts; the stages stay random), a path to a state_dict
    of this very network (same stages, width, parts and limbs), loaded strictly, or ``none``
    (random, on purpose). Missing weights raise PretrainedWeightsMissing naming the file and
    where to put it, never a random fallback."""
    if pretrained == "imagenet" and width != 1.0:
        raise ConfigError(f"pretrained: imagenet needs the book's OpenPose (width 1.0) to fit VGG-19's weights, not "
                          f"width {width}: set pretrained: none for that network, or width 1.0")
    if pretrained == "imagenet":
        # The weights first: a missing file is reported before 52 M parameters are drawn.
        state = imagenet_state_dict(VGG19_Weights.IMAGENET1K_V1)
        body = vgg19_to_openpose_backbone(state, f"imagenet ({VGG19_Weights.IMAGENET1K_V1})")
        del state  # torchvision's VGG-19 is 548 MB; only the ten convs are kept
        model = OpenPose(stages=stages, width=width, num_parts=num_parts, num_limbs=num_limbs)
        load_strict(model.backbone, body, "imagenet", "torchvision's VGG-19 (features.0 to features.21)")
        return model
    model = OpenPose(stages=stages, width=width, num_parts=num_parts, num_limbs=num_limbs)
    if pretrained == "none":
        return model
    state = load_state_dict_file(pretrained)
    load_strict(model, state, pretrained, f"an OpenPose state_dict with {stages} stages at width {width}, "
                                          f"{num_parts} parts and {num_limbs} limbs")
    return model


def build_mobilenet_openpose(pretrained: str = "imagenet", stages: int = 2, channels: int = 64,
                             num_parts: int = COCO_PARTS, num_limbs: int = COCO_LIMBS) -> MobileNetOpenPose:
    """:class:`MobileNetOpenPose`; its backbone from ``pretrained`` (``imagenet``: the
    MobileNetV2 ImageNet checkpoint, from torchvision's cache or the offline package; a path: a
    MobileNetV2 state_dict; ``none``: random). Missing weights raise PretrainedWeightsMissing."""
    model = MobileNetOpenPose(stages=stages, channels=channels, num_parts=num_parts, num_limbs=num_limbs)
    if pretrained == "none":
        return model
    # The body stops after block 6: the weights of blocks 7-18 stay out.
    unused = tuple(f"features.{index}." for index in range(MOBILENET_BODY_BLOCKS, MOBILENET_BLOCKS))
    mobilenet.load_body(model.backbone, pretrained, unused=unused)
    return model


def param_groups(model: OpenPose | MobileNetOpenPose) -> dict[str, list[nn.Parameter]]:
    """``backbone`` (the ImageNet-initialised part: VGG-19's ten convs / MobileNetV2's blocks
    0-6) and ``head`` (everything else: the feature reduction and the stages)."""
    backbone = list(model.backbone.parameters())
    taken = {id(p) for p in backbone}
    return {"backbone": backbone, "head": [p for p in model.parameters() if id(p) not in taken]}
