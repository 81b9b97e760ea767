"""The detector's image pipeline with torchvision's transforms v2 on ``tv_tensors``: the boxes
move with every geometric change, so augmentation can never leave a box behind its object.

Training is the book's (and the SSD paper's) augmentation: photometric distortion, expand
(``RandomZoomOut``), the IoU-constrained random crop, mirror; then a resize to the square the
network sees. Evaluation and serving only resize. Both normalise with ImageNet's mean and std,
the statistics the pretrained backbones (VGG-16, MobileNetV2) were trained with.
"""

from __future__ import annotations

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Expand fills the new canvas with the mean colour, so it reads as "nothing" after normalising.
MEAN_PIXEL = tuple(round(255 * channel) for channel in IMAGENET_MEAN)


def _to_network(input_size: int) -> list:
    return [v2.Resize((input_size, input_size), antialias=True), v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)]


def training(input_size: int, zoom_out_max: float) -> v2.Compose:
    """The augmentation of training images and their targets (``boxes``, ``labels``)."""
    steps = [v2.RandomPhotometricDistort(p=0.5)]
    if zoom_out_max > 1:
        steps.append(v2.RandomZoomOut(fill={tv_tensors.Image: MEAN_PIXEL, "others": 0},
                                      side_range=(1.0, zoom_out_max), p=0.5))
    steps += [v2.RandomIoUCrop(), v2.RandomHorizontalFlip(p=0.5),
              # A crop can cut a box down to a sliver or out of the image: such boxes (and their
              # labels) go, as the book's crop did by keeping only boxes whose centre stays inside.
              v2.SanitizeBoundingBoxes(min_size=1.0)]
    return v2.Compose(steps + _to_network(input_size))


def evaluation(input_size: int) -> v2.Compose:
    """Validation, test and serving: resize and normalise only."""
    return v2.Compose(_to_network(input_size))


def normalised_boxes(boxes: tv_tensors.BoundingBoxes) -> torch.Tensor:
    """XYXY pixel boxes of the transformed image as fractions of its width and height (the
    coordinates the default boxes and the loss work in)."""
    height, width = boxes.canvas_size
    scale = torch.tensor([width, height, width, height], dtype=torch.float32)
    return boxes.as_subclass(torch.Tensor).float() / scale
