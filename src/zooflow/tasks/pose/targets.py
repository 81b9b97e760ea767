"""Training targets of OpenPose (Cao et al., 2017) for one image: part confidence maps (heatmaps),
part affinity fields (PAFs) and the loss mask, all at the network's output resolution.

Conventions (decoding in :mod:`zooflow.tasks.pose.decode` uses the same ones):

- People are OpenPose parts ``[N, 18, 3]`` (:mod:`zooflow.tasks.pose.skeleton` order) in input
  pixels, pixel ``j``'s centre at ``x = j``; a part with ``v >= 1`` is labelled, ``v = 0`` absent.
- The maps are ``(h, w)`` cells at ``stride`` input pixels per cell. Cell ``(i, j)`` covers pixels
  ``[j * stride, (j + 1) * stride)`` across and stands for their centre,
  ``x = (j + 0.5) * stride - 0.5``, ``y = (i + 0.5) * stride - 0.5`` (:func:`cell_to_pixel`); this is
  also what bilinear resizing with ``align_corners=False`` assumes, and it keeps the cells
  symmetric under a horizontal flip of an image ``w * stride`` pixels wide.
- Lengths (``sigma``, ``limb_width``) are in input pixels, as in the paper.

Everything is vectorised over people, parts, limbs and cells (the maps are a few thousand cells;
a crowded COCO image has some twenty people).
"""

from __future__ import annotations

import torch
from torch import Tensor

from zooflow.tasks.pose.skeleton import BACKGROUND, FLIP_LIMBS, FLIP_PARTS, LIMBS, PARTS

# A limb shorter than this (in pixels) has no direction: both of its parts on the same spot.
_MIN_LIMB_LENGTH = 1e-3


def cell_to_pixel(index, stride: float):
    """Input-pixel coordinate of the centre of cell ``index`` (works on numbers and tensors)."""
    return (index + 0.5) * stride - 0.5


def pixel_to_cell(coordinate, stride: float):
    """Fractional cell index of input-pixel coordinate ``coordinate`` (inverse of :func:`cell_to_pixel`)."""
    return (coordinate + 0.5) / stride - 0.5


def _people(people) -> Tensor:
    people = torch.as_tensor(people, dtype=torch.float32).reshape(-1, len(PARTS), 3)
    return people


def _grid(map_size: tuple[int, int], stride: float) -> tuple[Tensor, Tensor]:
    height, width = map_size
    ys = cell_to_pixel(torch.arange(height, dtype=torch.float32), stride)
    xs = cell_to_pixel(torch.arange(width, dtype=torch.float32), stride)
    return ys, xs


def heatmaps(people, map_size: tuple[int, int], stride: float = 8, sigma: float = 7.0) -> Tensor:
    """Part confidence maps, float32 ``[19, h, w]``.

    Channel ``p < 18``: at each cell, the largest over people of ``exp(-d^2 / (2 sigma^2))``, ``d``
    the distance in input pixels from the cell's centre to the person's part ``p`` (people without
    that part labelled add nothing). The maximum, not the sum, so that two people's parts close
    together keep two distinct peaks, each of height 1 (the paper's choice). Channel 18, the
    background: ``1 - `` the largest part value, clipped to ``[0, 1]``. ``sigma`` is CMU's 7 pixels
    at their 368-pixel input by default.
    """
    people = _people(people)
    height, width = map_size
    ys, xs = _grid(map_size, stride)
    maps = torch.zeros(len(PARTS) + 1, height, width)
    if len(people):
        dx2 = (xs.view(1, 1, 1, width) - people[..., 0, None, None]) ** 2  # [N, 18, 1, w]
        dy2 = (ys.view(1, 1, height, 1) - people[..., 1, None, None]) ** 2  # [N, 18, h, 1]
        gaussians = torch.exp(-(dx2 + dy2) / (2 * sigma ** 2))              # [N, 18, h, w]
        gaussians = gaussians * (people[..., 2] >= 1)[..., None, None]
        maps[:BACKGROUND] = gaussians.amax(dim=0)
    maps[BACKGROUND] = (1 - maps[:BACKGROUND].amax(dim=0)).clamp(0.0, 1.0)
    return maps


def pafs(people, map_size: tuple[int, int], stride: float = 8, limb_width: float = 8.0) -> Tensor:
    """Part affinity fields, float32 ``[38, h, w]``: channels ``2k, 2k + 1`` are the x, y
    components of limb ``k`` (:data:`~zooflow.tasks.pose.skeleton.LIMBS`).

    For each person with both of limb ``k``'s parts labelled (and apart), the unit vector from the
    first part to the second on every cell whose centre lies within ``limb_width`` input pixels
    of the segment between them (a capsule: the paper's rectangle plus round ends, which keep the
    limb's own end cells, where decoding finds its parts, on the field). Where several people's
    limbs ``k`` cover a cell, the field is the mean of their vectors (the paper's count
    normalisation), so it stays at most unit length. ``limb_width`` defaults to one cell at stride 8,
    CMU's threshold.
    """
    people = _people(people)
    height, width = map_size
    fields = torch.zeros(len(LIMBS), 2, height, width)
    if len(people):
        ys, xs = _grid(map_size, stride)
        first = torch.tensor([a for a, _ in LIMBS])
        second = torch.tensor([b for _, b in LIMBS])
        start, end = people[:, first, :2], people[:, second, :2]                     # [N, L, 2]
        offset = end - start
        length = offset.norm(dim=-1)                                                  # [N, L]
        present = (people[:, first, 2] >= 1) & (people[:, second, 2] >= 1) & (length > _MIN_LIMB_LENGTH)
        unit = offset / length.clamp(min=_MIN_LIMB_LENGTH)[..., None]                  # [N, L, 2]
        # Each cell's position relative to the limb's start, in pixels: [N, L, h, w].
        rel_x = xs.view(1, 1, 1, width) - start[..., 0, None, None]
        rel_y = ys.view(1, 1, height, 1) - start[..., 1, None, None]
        along = rel_x * unit[..., 0, None, None] + rel_y * unit[..., 1, None, None]
        # The segment's closest point to each cell: its projection, held within the segment.
        along = torch.minimum(along.clamp(min=0.0), length[..., None, None])
        gap_x = rel_x - along * unit[..., 0, None, None]
        gap_y = rel_y - along * unit[..., 1, None, None]
        on_limb = (gap_x ** 2 + gap_y ** 2 <= limb_width ** 2) & present[..., None, None]  # [N, L, h, w]
        count = on_limb.sum(dim=0)                                                     # [L, h, w]
        summed = (on_limb[:, :, None] * unit[..., None, None]).sum(dim=0)              # [L, 2, h, w]
        fields = summed / count.clamp(min=1)[:, None]
    return fields.reshape(2 * len(LIMBS), height, width)


def loss_mask(map_size: tuple[int, int], stride: int = 8, ignore_regions=None) -> Tensor:
    """Float32 ``[h, w]``: 0 on cells the loss must skip, 1 elsewhere.

    ``ignore_regions`` is a boolean ``[H, W]`` mask of the input image's pixels that must not be
    learnt from (COCO's crowd regions, and people annotated without keypoints: their maps are all
    background though a person is there). A cell is skipped when *any* pixel it covers
    (``[i * stride, (i + 1) * stride) x [j * stride, (j + 1) * stride)``) is masked: a cell half on
    an unlabelled person would teach the network that person's edge is background. Pixels beyond
    the map's ``h * stride`` by ``w * stride`` are ignored; cells beyond the image count as unmasked.
    ``None`` masks nothing.
    """
    height, width = map_size
    if ignore_regions is None:
        return torch.ones(height, width)
    regions = torch.as_tensor(ignore_regions).to(torch.bool)
    if regions.ndim != 2:
        raise ValueError(f"ignore_regions must be a [H, W] pixel mask, got shape {tuple(regions.shape)}")
    canvas = torch.zeros(height * stride, width * stride, dtype=torch.bool)
    rows, cols = min(regions.shape[0], height * stride), min(regions.shape[1], width * stride)
    canvas[:rows, :cols] = regions[:rows, :cols]
    masked = canvas.view(height, stride, width, stride).any(dim=3).any(dim=1)
    return (~masked).to(torch.float32)


def flip_maps(heatmap: Tensor, paf: Tensor) -> tuple[Tensor, Tensor]:
    """The heatmaps ``[..., 19, h, w]`` and PAFs ``[..., 38, h, w]`` of the horizontally mirrored
    image: mirrored along the width, left and right parts and limbs swapped, and the PAFs' x
    components negated. With :func:`~zooflow.tasks.pose.skeleton.flip_people` and an image
    ``w * stride`` pixels wide, the targets of flipped people are the flipped targets."""
    parts = list(FLIP_PARTS) + [BACKGROUND]
    heatmap = heatmap.flip(-1)[..., parts, :, :]
    paf = paf.flip(-1).unflatten(-3, (len(LIMBS), 2))[..., list(FLIP_LIMBS), :, :, :]
    paf = paf * torch.tensor([-1.0, 1.0], dtype=paf.dtype, device=paf.device).view(2, 1, 1)
    return heatmap, paf.flatten(-4, -3)
