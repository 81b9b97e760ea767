"""The pose images and keypoints pipeline of chapter 4 (OpenPose), on torchvision's transforms v2.

Input: what :class:`~zooflow.tasks.pose.coco.PoseDataset` yields, a uint8 ``tv_tensors.Image``
and a target with ``"keypoints"`` (float32 ``[N, 17, 3]``, COCO order, ``(x, y, v)``) and
``"ignore"`` (a bool ``tv_tensors.Mask`` of the pixels the loss skips). Output: the normalised
float image, the moved keypoints ``[N, 17, 3]`` and the moved ``ignore`` mask.

Coordinates. Keypoints are pixel indices, pixel ``j``'s centre at ``x = j`` (the convention of
:mod:`~zooflow.tasks.pose.skeleton` and :mod:`~zooflow.tasks.pose.targets`). The keypoints ride
through v2's geometric kernels as ``tv_tensors.KeyPoints``, so they move with the image like
boxes do, but those kernels do not share one pixel convention: resize scales ``x`` by the size
ratio and rotation turns about ``(W / 2, H / 2)``, which is exact for *continuous* coordinates
(pixel ``j`` covering ``[j, j + 1)``), while their flip maps ``x`` to ``W - 1 - x``, exact for
pixel indices. Fed pixel indices, a 40 degree rotation would land points up to half a pixel
away from their content. So the points travel as continuous coordinates (``x + 0.5``) through
resize, rotation, pad and crop, and the flip is done here (``x -> W - x`` in those coordinates),
where it must also swap left and right (v2 moves a left wrist to the other side, but it stays
"left_wrist"; after a mirror it is the person's right one).

Training is CMU's / the book's augmentation: a random rescale, a random rotation, a random
``input_size`` square (cropped, or padded where the image is smaller), a mirror. Where rotation
or padding brings in pixels that are no image, they are the mean colour (zero after
normalising) and ``ignore`` is True there: no person is labelled in padding, so the loss must
not learn "background" from it. A keypoint that leaves the square becomes unlabelled,
``(0, 0, 0)``; the others keep their ``v``. People stay in their rows even with nothing left
labelled (such a row adds nothing to the targets).

Evaluation and serving keep the aspect ratio: the longer side is resized to ``input_size`` and
the image padded at the bottom and right to the ``input_size`` square (a square so that images
batch; 368 = 46 x 8, so the maps keep the stride). :class:`Placement` records the resize, and
:func:`to_original` maps predicted keypoints back to the original image's pixels.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor
from torchvision import tv_tensors
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as F

from zooflow.tasks.pose.skeleton import COCO_KEYPOINTS, COCO_TO_OPENPOSE, FLIP_PARTS, PARTS

IMAGENET_MEAN = (0.485, 0.456, 0.406)  # the statistics the pretrained VGG-19 front was trained with
IMAGENET_STD = (0.229, 0.224, 0.225)
MEAN_PIXEL = [round(255 * channel) for channel in IMAGENET_MEAN]  # "nothing" after normalising

# COCO_FLIP[c]: the COCO keypoint whose position becomes keypoint c's after a horizontal flip
# (skeleton.FLIP_PARTS, in COCO order); its own inverse.
COCO_FLIP = tuple(COCO_KEYPOINTS.index(PARTS[FLIP_PARTS[COCO_TO_OPENPOSE[c]]]) for c in range(len(COCO_KEYPOINTS)))


def _inputs(image, target: dict | None) -> tuple[tv_tensors.Image, Tensor, tv_tensors.Mask]:
    image = tv_tensors.Image(image)
    height, width = image.shape[-2:]
    target = target or {}
    people = torch.as_tensor(target.get("keypoints", torch.zeros(0, len(COCO_KEYPOINTS), 3)), dtype=torch.float32)
    people = people.reshape(-1, len(COCO_KEYPOINTS), 3)
    ignore = target.get("ignore")
    if ignore is None:
        ignore = torch.zeros(height, width, dtype=torch.bool)
    ignore = torch.as_tensor(ignore, dtype=torch.bool)
    return image, people, tv_tensors.Mask(ignore)


def _normalise(image: Tensor) -> Tensor:
    image = F.to_dtype(image, torch.float32, scale=True)
    return F.normalize(image, list(IMAGENET_MEAN), list(IMAGENET_STD)).as_subclass(torch.Tensor)


def _uniform(low: float, high: float) -> float:
    return low + (high - low) * torch.rand(()).item()


class Training:
    """See :func:`training`."""

    def __init__(self, input_size: int, scale_min: float, scale_max: float, rotation: float, flip: bool):
        if not 0 < scale_min <= scale_max:
            raise ValueError(f"need 0 < scale_min <= scale_max, got scale_min={scale_min}, scale_max={scale_max}")
        self.input_size, self.scale_min, self.scale_max = input_size, scale_min, scale_max
        self.rotation, self.flip = rotation, flip

    def __call__(self, image, target: dict) -> tuple[Tensor, Tensor, Tensor]:
        image, people, ignore = _inputs(image, target)
        size = self.input_size
        height, width = image.shape[-2:]
        # Continuous coordinates for v2's kernels (see the module docstring).
        points = tv_tensors.KeyPoints(people[..., :2] + 0.5, canvas_size=(height, width))

        scale = _uniform(self.scale_min, self.scale_max) * size / min(height, width)
        resized = [max(1, round(height * scale)), max(1, round(width * scale))]
        image = F.resize(image, resized, antialias=True)
        ignore, points = F.resize(ignore, resized), F.resize(points, resized)  # the mask: nearest

        if self.rotation > 0:
            angle = _uniform(-self.rotation, self.rotation)
            image = F.rotate(image, angle, interpolation=InterpolationMode.BILINEAR, fill=MEAN_PIXEL)
            ignore, points = F.rotate(ignore, angle, fill=True), F.rotate(points, angle)

        # A random size x size window; where it reaches past the image, pad first.
        height, width = image.shape[-2:]
        top, left = self._window_start(height), self._window_start(width)
        pad = [max(0, -left), max(0, -top), max(0, left + size - width), max(0, top + size - height)]
        if any(pad):
            image = F.pad(image, pad, fill=MEAN_PIXEL)
            ignore, points = F.pad(ignore, pad, fill=True), F.pad(points, pad)
        top, left = top + pad[1], left + pad[0]
        image, ignore, points = (F.crop(item, top, left, size, size) for item in (image, ignore, points))

        xy = points.as_subclass(torch.Tensor)
        visibility = people[..., 2]
        if self.flip and torch.rand(()).item() < 0.5:
            image, ignore = F.horizontal_flip(image), F.horizontal_flip(ignore)
            xy = torch.stack([size - xy[..., 0], xy[..., 1]], dim=-1)[:, COCO_FLIP]
            visibility = visibility[:, COCO_FLIP]

        # A point stays labelled while it lies on a pixel of the square.
        inside = ((xy >= 0) & (xy < size)).all(dim=-1)
        labelled = (visibility >= 1) & inside
        keypoints = torch.cat([xy - 0.5, visibility[..., None]], dim=-1) * labelled[..., None]
        return _normalise(image), keypoints, ignore.as_subclass(torch.Tensor)

    def _window_start(self, length: int) -> int:
        """Where the window starts along a side of ``length`` pixels: inside the image when it is
        at least ``input_size``, else before it, so that the image lies at a random place in the window."""
        room = length - self.input_size
        return int(torch.randint(0, room + 1, ()).item()) if room >= 0 else -int(torch.randint(0, -room + 1, ()).item())


def training(input_size: int = 368, scale_min: float = 0.5, scale_max: float = 1.1, rotation: float = 40,
             flip: bool = True) -> Training:
    """The augmentation of a training ``(image, target)``: the shorter side rescaled to a random
    ``[scale_min, scale_max] * input_size``, rotated by a random angle within ``rotation`` degrees,
    a random ``input_size`` square cropped (padded where the image is smaller), mirrored with
    probability 1/2 when ``flip``. Returns ``(image, keypoints, ignore)``: float32 ``[3, S, S]``
    (ImageNet-normalised), float32 ``[N, 17, 3]`` (pixel indices of the square, ``(0, 0, 0)``
    where unlabelled) and bool ``[S, S]`` (True on padding and on the input's ignored pixels).
    Random numbers come from torch's generator (seed it with ``torch.manual_seed``)."""
    return Training(input_size, scale_min, scale_max, rotation, flip)


class Placement(NamedTuple):
    """Where evaluation put an image: its original size and its size after the resize (the rest
    of the square is padding at the bottom and right). A NamedTuple of ints, so the default
    collate batches it."""

    original_height: int
    original_width: int
    resized_height: int
    resized_width: int


def _ratios(placement: Placement) -> tuple[float, float]:
    return (float(placement.resized_width) / float(placement.original_width),
            float(placement.resized_height) / float(placement.original_height))


def _map(keypoints, placement: Placement, forward: bool):
    was_numpy = isinstance(keypoints, np.ndarray)
    points = torch.as_tensor(np.asarray(keypoints) if was_numpy else keypoints, dtype=torch.float32).clone()
    ratios = torch.tensor(_ratios(placement))
    if not forward:
        ratios = 1 / ratios
    # Resizing maps pixel centres: x -> (x + 0.5) * ratio - 0.5 (what interpolation does).
    points[..., :2] = (points[..., :2] + 0.5) * ratios - 0.5
    if points.shape[-1] > 2:  # (x, y, v or score): an unlabelled / not-found point stays (0, 0, 0)
        points[..., :2] *= (points[..., 2:3] > 0)
    return points.numpy() if was_numpy else points


def to_input(keypoints, placement: Placement):
    """Keypoints ``[..., 2 or 3]`` of the original image in the pixels of the evaluation square."""
    return _map(keypoints, placement, forward=True)


def to_original(keypoints, placement: Placement):
    """Keypoints ``[..., 2 or 3]`` predicted on the evaluation square (``(x, y)`` pixel indices,
    optionally with ``v`` or a score) in the pixels of the original image; a point with a zero
    third value stays ``(0, 0, 0)``. Numpy in, numpy out; otherwise a float32 tensor."""
    return _map(keypoints, placement, forward=False)


class Evaluation:
    """See :func:`evaluation`."""

    def __init__(self, input_size: int):
        self.input_size = input_size

    def __call__(self, image, target: dict | None = None) -> tuple[Tensor, Tensor, Tensor, Placement]:
        image, people, ignore = _inputs(image, target)
        size = self.input_size
        height, width = image.shape[-2:]
        scale = size / max(height, width)
        resized = [min(size, max(1, round(height * scale))), min(size, max(1, round(width * scale)))]
        placement = Placement(height, width, *resized)
        image, ignore = F.resize(image, resized, antialias=True), F.resize(ignore, resized)
        pad = [0, 0, size - resized[1], size - resized[0]]
        image, ignore = F.pad(image, pad, fill=MEAN_PIXEL), F.pad(ignore, pad, fill=True)
        keypoints = to_input(people, placement)
        return _normalise(image), keypoints, ignore.as_subclass(torch.Tensor), placement


def evaluation(input_size: int = 368) -> Evaluation:
    """Validation, test and serving: ``(image, target=None) -> (image, keypoints, ignore,
    placement)``. The longer side is resized to ``input_size`` (aspect ratio kept), the image
    padded at the bottom and right to the ``input_size`` square (mean colour; ``ignore`` True),
    normalised. Keypoints keep their labels (``v``) and move with the resize; ``placement`` is
    what :func:`to_original` needs to bring predictions back."""
    return Evaluation(input_size)
