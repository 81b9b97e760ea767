"""The segmenter's image pipeline with torchvision's transforms v2: the mask is a
``tv_tensors.Mask``, so every geometric change moves it with the image (nearest-neighbour, never
blending two class ids into a third).

Training is the book's augmentation: a random rescale, a random rotation and a mirror, then a
random crop of the square the network sees. Where rotation or the crop reaches past the image,
the new image pixels are the mean colour and the new mask pixels are ``IGNORE`` (255): padding is
no class, so it is neither learnt nor scored as background (the book filled it with 0, i.e. taught
"background"). Evaluation and serving resize the image to the square, and the prediction is
resized back to the image's own size, where it is scored against the untouched mask.
"""

from __future__ import annotations

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from zooflow.tasks.segmentation.voc import IGNORE

IMAGENET_MEAN = (0.485, 0.456, 0.406)  # the statistics the pretrained backbone was trained with
IMAGENET_STD = (0.229, 0.224, 0.225)
MEAN_PIXEL = tuple(round(255 * channel) for channel in IMAGENET_MEAN)  # "nothing" after normalising
PAD = {tv_tensors.Image: MEAN_PIXEL, tv_tensors.Mask: IGNORE}


def _normalise() -> list:
    # The image only: the mask keeps its int64 class ids. Plain tensors out (the collate stacks them).
    return [v2.ToDtype({tv_tensors.Image: torch.float32, "others": None}, scale=True),
            v2.Normalize(IMAGENET_MEAN, IMAGENET_STD), v2.ToPureTensor()]


def training(input_size: int, scale_min: float, scale_max: float, rotation: float, flip: bool) -> v2.Compose:
    """The augmentation of a training (image, mask) pair: the shorter side rescaled to a random
    ``[scale_min, scale_max] * input_size``, rotated by up to ``rotation`` degrees, mirrored
    (``flip``), then a random ``input_size`` square (padded where the image is smaller)."""
    steps = [v2.RandomResize(max(1, round(scale_min * input_size)), round(scale_max * input_size) + 1,
                             antialias=True)]
    if rotation > 0:
        steps.append(v2.RandomRotation(rotation, fill=PAD))
    if flip:
        steps.append(v2.RandomHorizontalFlip(p=0.5))
    steps.append(v2.RandomCrop(input_size, pad_if_needed=True, fill=PAD))
    return v2.Compose(steps + _normalise())


def evaluation(input_size: int) -> v2.Compose:
    """Validation, test and serving images: resized to the square and normalised (the mask, if
    given, is resized with them, for the validation loss only)."""
    return v2.Compose([v2.Resize((input_size, input_size), antialias=True), *_normalise()])
