"""SSD's MultiBox loss (Liu et al., 2016): Smooth L1 on the matched default boxes' offsets plus
cross-entropy over classes with hard negative mining, both per matched box."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zooflow.tasks.detection.boxes import VARIANCES, match


class MultiBoxLoss(nn.Module):
    """``loss = (L_loc + L_conf) / N`` with ``N`` the number of positive (matched) priors.

    Of the background priors only the hardest (highest background loss) count, at most
    ``negative_ratio`` per positive of the same image: the ~8,700 easy negatives would
    otherwise swamp the handful of positives.
    """

    def __init__(self, threshold: float = 0.5, negative_ratio: int = 3,
                 variances: tuple[float, float] = VARIANCES):
        super().__init__()
        self.threshold = threshold
        self.negative_ratio = negative_ratio
        self.variances = variances

    @torch.no_grad()
    def targets(self, priors: Tensor, targets: list[tuple[Tensor, Tensor]]) -> tuple[Tensor, Tensor]:
        """Loc targets ``[B, P, 4]`` and class targets ``[B, P]`` (0 background) of a batch."""
        matched = [match(boxes.to(priors), labels.to(priors.device), priors, self.threshold, self.variances)
                   for boxes, labels in targets]
        return torch.stack([m[0] for m in matched]), torch.stack([m[1] for m in matched])

    def hard_negatives(self, cross_entropy: Tensor, positive: Tensor) -> Tensor:
        """Mask ``[B, P]`` of the negatives kept: per image the ``negative_ratio x positives``
        (at most all negatives) with the highest loss, found by ranking, not by looping."""
        mining = cross_entropy.detach().masked_fill(positive, float("-inf"))  # positives rank last
        order = mining.argsort(dim=1, descending=True)
        rank = order.argsort(dim=1)
        positives = positive.sum(dim=1, keepdim=True)
        wanted = torch.minimum(self.negative_ratio * positives, positive.shape[1] - positives)
        return (rank < wanted) & ~positive

    def forward(self, loc: Tensor, conf: Tensor, priors: Tensor,
                targets: list[tuple[Tensor, Tensor]]) -> dict[str, Tensor | int]:
        """``loc [B, P, 4]``, ``conf [B, P, C+1]``; ``targets``: per image (boxes xyxy in
        [0, 1], labels 0..C-1). Returns ``loss``, ``loc``, ``conf`` (scalars), ``positives``
        and ``negatives`` (the priors each term counted)."""
        loc_targets, class_targets = self.targets(priors, targets)
        positive = class_targets > 0
        count = max(int(positive.sum()), 1)
        loc_loss = F.smooth_l1_loss(loc[positive].float(), loc_targets[positive].float(), reduction="sum")
        cross_entropy = F.cross_entropy(conf.flatten(0, 1).float(), class_targets.flatten(),
                                        reduction="none").view_as(class_targets)
        negative = self.hard_negatives(cross_entropy, positive)
        conf_loss = cross_entropy[positive | negative].sum()
        loc_loss, conf_loss = loc_loss / count, conf_loss / count
        return {"loss": loc_loss + conf_loss, "loc": loc_loss, "conf": conf_loss,
                "positives": int(positive.sum()), "negatives": int(negative.sum())}
