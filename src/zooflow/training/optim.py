"""Optimizers over named parameter groups: a config gives a learning rate per group (the
book's fine-tuning rates, BERT's last layer + head); groups it does not name are frozen."""

from __future__ import annotations

import torch
from torch import nn

OPTIMIZERS = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW}


def build_optimizer(model: nn.Module, groups: dict[str, list[nn.Parameter]], lr: dict[str, float],
                    kind: str = "sgd", momentum: float = 0.9, weight_decay: float = 0.0) -> torch.optim.Optimizer:
    """Freeze every parameter, then unfreeze and optimise the groups named in ``lr`` (with
    ``weight_decay`` as the optimiser's L2 penalty; AdamW's decoupled decay for ``adamw``)."""
    unknown = set(lr) - set(groups)
    if unknown:
        raise ValueError(f"lr names unknown parameter groups {sorted(unknown)}; the model has {sorted(groups)}")
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    param_groups = []
    for name, rate in lr.items():
        for parameter in groups[name]:
            parameter.requires_grad_(True)
        param_groups.append({"params": groups[name], "lr": rate, "name": name})
    extra = {"momentum": momentum} if kind == "sgd" else {}
    if weight_decay:
        extra["weight_decay"] = weight_decay
    return OPTIMIZERS[kind](param_groups, **extra)


SCHEDULES = ("none", "step", "cosine", "poly")


def epoch_scheduler(optimizer: torch.optim.Optimizer, kind: str, epochs: int, step_epochs: int | None = None,
                    gamma: float = 0.1, power: float = 0.9) -> torch.optim.lr_scheduler.LRScheduler:
    """The per-epoch learning-rate schedule, stepped after each epoch:

    - ``none``: constant;
    - ``step``: times ``gamma`` every ``step_epochs`` epochs (the book's SSD recipe style);
    - ``cosine``: from the set rate down to 0 at the last epoch (the weights settle instead of
      swinging to the end);
    - ``poly``: ``(1 - epoch / epochs) ** power`` (PSPNet's schedule, power 0.9)."""
    if kind == "none":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: 1.0)
    if kind == "step":
        if not step_epochs:
            raise ValueError("lr_schedule 'step' needs lr_step_epochs (the epochs between two drops)")
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=step_epochs, gamma=gamma)
    if kind == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(epochs, 1))
    if kind == "poly":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: max(1 - epoch / max(epochs, 1), 0.0) ** power)
    raise ValueError(f"lr_schedule must be one of {', '.join(SCHEDULES)}, got {kind!r}")
