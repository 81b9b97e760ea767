"""Box arithmetic of SSD (Liu et al., 2016): offsets to and from default boxes, matching
ground truth to default boxes, and turning the network's raw outputs into detections.

Coordinates are normalised to [0, 1] of the image's side. Default boxes ("priors") are
``(cx, cy, w, h)``; ground truth and detections are ``(xmin, ymin, xmax, ymax)``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torchvision.ops import batched_nms, box_convert, box_iou

# The SSD paper's (and Caffe SSD's) scaling of centre and size offsets: it brings both to
# roughly unit variance, which balances the Smooth L1 terms of x, y and w, h.
VARIANCES = (0.1, 0.2)

# Largest log-scale a decoded size may take (the box at most 1000/16 times its prior, as
# torchvision's detectors clip): an untrained network's outputs would otherwise overflow exp.
_MAX_LOG_SCALE = math.log(1000.0 / 16)
# Smallest width/height a matched box is taken to have, so that log() of a degenerate box stays finite.
_MIN_SIZE = 1e-6


def encode(matched_xyxy: Tensor, priors_cxcywh: Tensor, variances: tuple[float, float] = VARIANCES) -> Tensor:
    """Regression targets ``[P, 4]`` of ``matched_xyxy`` (one box per prior) relative to the priors:
    centre offsets in units of the prior's size, and log size ratios, each divided by its variance."""
    matched = box_convert(matched_xyxy, "xyxy", "cxcywh")
    centre = (matched[..., :2] - priors_cxcywh[..., :2]) / (variances[0] * priors_cxcywh[..., 2:])
    size = torch.log(matched[..., 2:].clamp(min=_MIN_SIZE) / priors_cxcywh[..., 2:]) / variances[1]
    return torch.cat([centre, size], dim=-1)


def decode(loc: Tensor, priors_cxcywh: Tensor, variances: tuple[float, float] = VARIANCES) -> Tensor:
    """The boxes ``xyxy`` that offsets ``loc [..., P, 4]`` describe (the inverse of :func:`encode`);
    any leading batch dimensions broadcast over the priors ``[P, 4]``."""
    centre = priors_cxcywh[..., :2] + loc[..., :2] * variances[0] * priors_cxcywh[..., 2:]
    size = priors_cxcywh[..., 2:] * torch.exp((loc[..., 2:] * variances[1]).clamp(max=_MAX_LOG_SCALE))
    return torch.cat([centre - size / 2, centre + size / 2], dim=-1)


def _claim_best_priors(overlaps: Tensor) -> tuple[Tensor, Tensor]:
    """Each ground truth's own prior (truth indices ``[G]``, prior indices ``[G]``), by greedy
    bipartite matching: repeatedly the highest remaining overlap, whose truth and prior then
    leave the matrix. It gives every truth its best prior, and when two truths share a best
    prior the runner-up takes its next best rather than being left without any (``G`` is a
    handful per image, so the loop is over truths, never over priors)."""
    best = overlaps.argmax(dim=1)
    if best.unique().numel() == best.numel():  # the usual case: no two truths share a best prior
        return torch.arange(best.numel(), device=overlaps.device), best
    remaining = overlaps.clone()
    count = min(overlaps.shape)
    truths = torch.empty(count, dtype=torch.long, device=overlaps.device)
    priors = torch.empty(count, dtype=torch.long, device=overlaps.device)
    for step in range(count):
        flat = int(remaining.argmax())
        truth, prior = divmod(flat, remaining.shape[1])
        truths[step], priors[step] = truth, prior
        remaining[truth, :] = -1.0
        remaining[:, prior] = -1.0
    return truths, priors


def match(truth_xyxy: Tensor, labels: Tensor, priors_cxcywh: Tensor, threshold: float = 0.5,
          variances: tuple[float, float] = VARIANCES) -> tuple[Tensor, Tensor]:
    """Targets for one image: ``(loc_targets [P, 4], class_targets [P])``.

    A prior belongs to the ground truth it overlaps most when that IoU is at least
    ``threshold``; besides, every ground truth claims its best prior whatever the IoU, so no
    object goes unmatched (the paper's bipartite + threshold matching). Class targets are
    ``0`` for background and ``c + 1`` for object class ``c``; loc targets of background
    priors are meaningless (the loss ignores them).
    """
    count = priors_cxcywh.shape[0]
    if truth_xyxy.numel() == 0:
        return (torch.zeros(count, 4, dtype=priors_cxcywh.dtype, device=priors_cxcywh.device),
                torch.zeros(count, dtype=torch.long, device=priors_cxcywh.device))
    overlaps = box_iou(truth_xyxy, box_convert(priors_cxcywh, "cxcywh", "xyxy"))  # [G, P]
    best_iou, best_truth = overlaps.max(dim=0)                                    # per prior
    forced_truths, forced_priors = _claim_best_priors(overlaps)
    best_truth[forced_priors] = forced_truths
    best_iou[forced_priors] = 2.0  # above any threshold: these priors stay positive
    classes = labels.to(torch.long)[best_truth] + 1
    classes[best_iou < threshold] = 0
    return encode(truth_xyxy[best_truth], priors_cxcywh, variances), classes


@torch.no_grad()
def postprocess(loc: Tensor, conf: Tensor, priors_cxcywh: Tensor, score_threshold: float = 0.01,
                nms_iou: float = 0.45, top_k: int = 200, candidates_per_class: int = 200,
                variances: tuple[float, float] = VARIANCES) -> list[dict[str, Tensor]]:
    """Detections per image from raw outputs ``loc [B, P, 4]``, ``conf [B, P, C+1]``.

    Softmax over classes, background dropped; per class only the ``candidates_per_class``
    highest-scoring priors go on (the book's 200: an untrained network scores every prior
    above 0.01, and NMS over all ``P x C`` of them would take seconds), those above
    ``score_threshold`` go through per-class NMS, and the ``top_k`` best of all classes are
    kept. Returns ``{"boxes" [N, 4] xyxy in [0, 1], "scores" [N], "labels" [N] (0..C-1)}``.
    """
    boxes = decode(loc.float(), priors_cxcywh.float(), variances).clamp_(0.0, 1.0)  # [B, P, 4]
    scores = torch.softmax(conf.float(), dim=-1)[..., 1:]                          # [B, P, C]
    classes = scores.shape[-1]
    per_class = min(candidates_per_class, scores.shape[1])
    results = []
    for image_boxes, image_scores in zip(boxes, scores):
        # The best candidates of every class at once: top-k along the priors, per column.
        top_scores, top_priors = image_scores.topk(per_class, dim=0)              # [k, C]
        labels = torch.arange(classes, device=conf.device).expand_as(top_priors)
        keep = top_scores > score_threshold
        candidate_scores, candidate_labels = top_scores[keep], labels[keep]
        candidate_boxes = image_boxes[top_priors[keep]]
        kept = batched_nms(candidate_boxes, candidate_scores, candidate_labels, nms_iou)[:top_k]
        results.append({"boxes": candidate_boxes[kept], "scores": candidate_scores[kept],
                        "labels": candidate_labels[kept]})
    return results
