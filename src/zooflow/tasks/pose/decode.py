"""From OpenPose's maps of one image to people (Cao et al., 2017, section 2.4): part peaks, limb
candidates scored by their PAF line integral, and greedy assembly into people.

The maps are the network's output at ``stride`` input pixels per cell, optionally resized by an
integer ``upsample`` first (bilinear, ``align_corners=False``: cell ``j`` of the resized map stands
for input pixel ``(j + 0.5) * stride / upsample - 0.5``, the convention of
:mod:`zooflow.tasks.pose.targets`). Keypoints come back in input pixels.

1. Peaks: per part, the cells that equal the largest value in their 3 x 3 neighbourhood and are
   above ``peak_threshold``, after an optional Gaussian smoothing. Of a plateau of equal maxima only
   the first cell in raster order is kept, so one keypoint lying between two cells (exactly equal
   values) is one peak, not two. Each peak is then refined to a fraction of a cell by fitting a
   parabola to the log of its value and its two neighbours along each axis (exact for a Gaussian).
2. Limb candidates: for every pair of peaks of a limb's two parts, ``samples`` points evenly along
   the segment between them; at each, the PAF (nearest cell) dotted with the segment's unit
   direction. The candidate's score is the mean of these plus CMU's distance prior,
   ``min(0, image_height / (2 * length) - 1)``, which penalises limbs longer than half the image.
   It counts if more than ``min_fraction`` of the samples exceed ``paf_threshold`` and its score is
   positive. Per limb, candidates are taken best first, each peak in at most one connection.
3. Assembly, limb by limb in :data:`~zooflow.tasks.pose.skeleton.ASSEMBLY_ORDER`: a connection whose
   parts belong to no one starts a person (unless the limb is one of the redundant ear-shoulder
   ones); one part of which belongs to a person adds the other part to that person if that slot
   is free; two parts in two different people merge those people when they have no part in common.
   Connections that would give a person two peaks of one part are dropped.
4. People with fewer than ``min_parts`` of the 18 parts (the neck counts) or a score below ``min_score``
   are dropped. A person's
   score is the mean of its parts' heatmap peak values and its limbs' scores (each in about
   ``[0, 1]``, so the threshold reads the same whatever the number of parts).

The defaults are CMU's: peak threshold 0.1, PAF threshold 0.05, 10 samples, more than 80% above
it; CMU drops people with fewer than 4 parts or a mean score below 0.4, we default to 3 parts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from zooflow.tasks.pose.skeleton import (ASSEMBLY_ORDER, BACKGROUND, LIMBS, PAF_CHANNELS, PARTS,
                                         REDUNDANT_LIMBS, openpose_to_coco)
from zooflow.tasks.pose.targets import cell_to_pixel

# Floor of heatmap values before their log is taken in sub-cell refinement (outputs can be <= 0).
_LOG_FLOOR = 1e-6
COCO_PERSON = 1  # COCO's category id of "person"


@dataclass(frozen=True, eq=False)
class Person:
    """One decoded person: COCO keypoints ``[17, 3]`` as ``(x, y, peak value)`` in input pixels,
    ``(0, 0, 0)`` for parts not found, and the person's score (see the module docstring)."""

    keypoints: np.ndarray
    score: float


@dataclass
class _Peaks:
    """A part's peaks: positions in (fractional) cells ``[n, 2]`` as ``(x, y)``, values ``[n]``."""

    xy: Tensor
    value: Tensor


def _gaussian_blur(maps: Tensor, sigma: float) -> Tensor:
    radius = max(1, int(math.ceil(3 * sigma)))
    offsets = torch.arange(-radius, radius + 1, dtype=maps.dtype, device=maps.device)
    kernel = torch.exp(-offsets ** 2 / (2 * sigma ** 2))
    kernel = (kernel / kernel.sum()).repeat(maps.shape[0], 1, 1, 1)  # [C, 1, 1, k]: one per channel
    maps = maps[None]
    maps = F.conv2d(F.pad(maps, (radius, radius, 0, 0), mode="replicate"), kernel, groups=maps.shape[1])
    maps = F.conv2d(F.pad(maps, (0, 0, radius, radius), mode="replicate"), kernel.transpose(2, 3),
                    groups=maps.shape[1])
    return maps[0]


def _local_maxima(maps: Tensor, threshold: float) -> Tensor:
    """Boolean ``[C, h, w]``: the cells equal to their 3 x 3 maximum and above ``threshold``, only the
    first of a plateau in raster order (the earlier neighbours of a maximum that equal it are maxima too)."""
    pooled = F.max_pool2d(maps[None], kernel_size=3, stride=1, padding=1)[0]
    maxima = (maps == pooled) & (maps > threshold)
    padded = F.pad(maxima.to(torch.uint8), (1, 1, 1, 0)).bool()  # one row above, one column each side
    height, width = maps.shape[-2:]
    earlier = (padded[:, :height, :width] | padded[:, :height, 1:width + 1] | padded[:, :height, 2:]
               | padded[:, 1:, :width])  # up-left, up, up-right, left
    return maxima & ~earlier


def _subcell_offset(left: Tensor, centre: Tensor, right: Tensor) -> Tensor:
    """Where a parabola through the logs of three neighbouring values peaks, relative to the centre."""
    left, centre, right = (torch.log(v.clamp(min=_LOG_FLOOR)) for v in (left, centre, right))
    curvature = 2 * centre - left - right
    offset = (right - left) / (2 * curvature.clamp(min=1e-12))
    return torch.where(curvature > 1e-12, offset, torch.zeros_like(offset)).clamp(-0.5, 0.5)


def find_peaks(heatmap: Tensor, threshold: float = 0.1, smooth_sigma: float = 0.0,
               refine: bool = True) -> list[_Peaks]:
    """Peaks of each of the 18 part channels of ``heatmap [19, h, w]`` (see the module docstring),
    positions in cells. ``smooth_sigma`` (cells) blurs the maps first; 0 leaves them as they are."""
    maps = heatmap[:BACKGROUND].float()
    if smooth_sigma > 0:
        maps = _gaussian_blur(maps, smooth_sigma)
    part, row, col = _local_maxima(maps, threshold).nonzero(as_tuple=True)
    value = maps[part, row, col]
    x, y = col.float(), row.float()
    if refine:
        height, width = maps.shape[-2:]
        inside_x = (col > 0) & (col < width - 1)
        inside_y = (row > 0) & (row < height - 1)
        left, right = maps[part, row, (col - 1).clamp(min=0)], maps[part, row, (col + 1).clamp(max=width - 1)]
        up, down = maps[part, (row - 1).clamp(min=0), col], maps[part, (row + 1).clamp(max=height - 1), col]
        x = x + torch.where(inside_x, _subcell_offset(left, value, right), torch.zeros_like(x))
        y = y + torch.where(inside_y, _subcell_offset(up, value, down), torch.zeros_like(y))
    xy = torch.stack([x, y], dim=-1)
    return [_Peaks(xy[part == p], value[part == p]) for p in range(len(PARTS))]


def _limb_candidates(paf_x: Tensor, paf_y: Tensor, first: _Peaks, second: _Peaks, cell_size: float,
                     image_height: float, samples: int, paf_threshold: float,
                     min_fraction: float) -> list[tuple[float, int, int]]:
    """``(score, first peak, second peak)`` of every pair of peaks that passes the PAF test, best first."""
    if len(first.xy) == 0 or len(second.xy) == 0:
        return []
    start, end = first.xy[:, None], second.xy[None]                      # [a, 1, 2], [1, b, 2]
    offset = end - start                                                 # [a, b, 2]
    length = offset.norm(dim=-1)                                         # cells
    unit = offset / length.clamp(min=1e-6)[..., None]
    steps = torch.linspace(0, 1, samples, device=offset.device)
    points = (start[:, :, None] + steps[None, None, :, None] * offset[:, :, None]).round().long()  # [a, b, s, 2]
    height, width = paf_x.shape
    cols, rows = points[..., 0].clamp(0, width - 1), points[..., 1].clamp(0, height - 1)
    along = paf_x[rows, cols] * unit[..., None, 0] + paf_y[rows, cols] * unit[..., None, 1]  # [a, b, s]
    prior = (image_height / (2 * (length * cell_size).clamp(min=1e-6)) - 1).clamp(max=0.0)
    score = along.mean(dim=-1) + prior
    passing = (along > paf_threshold).float().mean(dim=-1) > min_fraction
    valid = passing & (score > 0) & (length > 0)
    firsts, seconds = valid.nonzero(as_tuple=True)
    scores = score[firsts, seconds]
    order = scores.argsort(descending=True)
    return list(zip(scores[order].tolist(), firsts[order].tolist(), seconds[order].tolist()))


def _match(candidates: list[tuple[float, int, int]]) -> list[tuple[float, int, int]]:
    """Greedy one-to-one matching of best-first candidates: each peak in one connection at most."""
    used_first, used_second, chosen = set(), set(), []
    for score, a, b in candidates:
        if a not in used_first and b not in used_second:
            used_first.add(a)
            used_second.add(b)
            chosen.append((score, a, b))
    return chosen


def _assemble(connections: dict[int, list[tuple[float, int, int]]]) -> list[tuple[list[int], dict[int, float]]]:
    """People as (peak index of each part or -1, limb scores by limb) from each limb's connections."""
    people: list[tuple[list[int], dict[int, float]]] = []
    for limb in ASSEMBLY_ORDER:
        part_a, part_b = LIMBS[limb]
        for score, a, b in connections.get(limb, []):
            owner_a = next((person for person in people if person[0][part_a] == a), None)
            owner_b = next((person for person in people if person[0][part_b] == b), None)
            if owner_a is None and owner_b is None:
                if limb not in REDUNDANT_LIMBS:
                    parts = [-1] * len(PARTS)
                    parts[part_a], parts[part_b] = a, b
                    people.append((parts, {limb: score}))
            elif owner_b is None or owner_a is None:
                owner, part, peak = (owner_a, part_b, b) if owner_b is None else (owner_b, part_a, a)
                if owner[0][part] == -1:
                    owner[0][part] = peak
                    owner[1][limb] = score
            elif owner_a is owner_b:
                owner_a[1].setdefault(limb, score)
            elif not any(p >= 0 and q >= 0 for p, q in zip(owner_a[0], owner_b[0])):
                for part, peak in enumerate(owner_b[0]):
                    if peak >= 0:
                        owner_a[0][part] = peak
                owner_a[1].update(owner_b[1])
                owner_a[1][limb] = score
                people.remove(owner_b)
    return people


@torch.no_grad()
def decode(paf: Tensor, heatmap: Tensor, stride: float = 8, upsample: int = 1, *,
           image_height: float | None = None, peak_threshold: float = 0.1, paf_threshold: float = 0.05,
           samples: int = 10, min_fraction: float = 0.8, min_parts: int = 3, min_score: float = 0.4,
           smooth_sigma: float = 0.0, refine: bool = True) -> list[Person]:
    """The people in one image, best score first, from its maps ``paf [38, h, w]`` and
    ``heatmap [19, h, w]`` at ``stride`` input pixels per cell (see the module docstring).

    ``upsample`` resizes both maps by that factor first (bilinear); ``image_height`` (input pixels,
    for the distance prior) defaults to the maps' height times ``stride``; ``smooth_sigma`` is in
    cells of the (resized) maps."""
    paf, heatmap = torch.as_tensor(paf).float(), torch.as_tensor(heatmap).float()
    if paf.shape[0] != 2 * len(LIMBS) or heatmap.shape[0] != len(PARTS) + 1 or paf.shape[1:] != heatmap.shape[1:]:
        raise ValueError(f"expected paf [38, h, w] and heatmap [19, h, w] of one size, got "
                         f"{tuple(paf.shape)} and {tuple(heatmap.shape)}")
    if image_height is None:
        image_height = heatmap.shape[1] * stride
    if upsample != 1:
        paf = F.interpolate(paf[None], scale_factor=upsample, mode="bilinear", align_corners=False)[0]
        heatmap = F.interpolate(heatmap[None], scale_factor=upsample, mode="bilinear", align_corners=False)[0]
    cell_size = stride / upsample
    peaks = find_peaks(heatmap, peak_threshold, smooth_sigma, refine)
    connections = {}
    for limb, (part_a, part_b) in enumerate(LIMBS):
        channel_x, channel_y = PAF_CHANNELS[limb]
        candidates = _limb_candidates(paf[channel_x], paf[channel_y], peaks[part_a], peaks[part_b], cell_size,
                                      image_height, samples, paf_threshold, min_fraction)
        connections[limb] = _match(candidates)

    people = []
    for parts, limb_scores in _assemble(connections):
        found = [(p, peak) for p, peak in enumerate(parts) if peak >= 0]
        part_scores = [float(peaks[p].value[peak]) for p, peak in found]
        score = float(np.mean(part_scores + list(limb_scores.values())))
        if len(found) < min_parts or score < min_score:
            continue
        keypoints = np.zeros((len(PARTS), 3), dtype=np.float32)
        for (p, peak), value in zip(found, part_scores):
            keypoints[p, :2] = cell_to_pixel(peaks[p].xy[peak].cpu().numpy(), cell_size)
            keypoints[p, 2] = value
        people.append(Person(keypoints=openpose_to_coco(keypoints).copy(), score=score))
    return sorted(people, key=lambda person: -person.score)


def to_coco_results(people: list[Person], image_id: int) -> list[dict]:
    """The people in COCO's results format for ``COCOeval(..., "keypoints")``: one dict per person,
    ``{"image_id", "category_id": 1, "keypoints": [x1, y1, v1, ..., x17, y17, v17], "score"}`` (the
    third values are peak values; COCOeval reads only the positions and the person's score)."""
    return [{"image_id": int(image_id), "category_id": COCO_PERSON,
             "keypoints": [round(float(v), 2) for v in person.keypoints.reshape(-1)],
             "score": float(person.score)} for person in people]
