"""The step of every task that classifies a batch of (inputs, targets) with cross-entropy
(images in chapter 1, texts in chapters 7 and 8): shared, so each task only says how its
batches are made."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from zooflow.training.engine import Step, to_device


def classifier_step(model: nn.Module, batch, device: torch.device, channels_last: bool = False) -> Step:
    """Cross-entropy on the batch's logits (in fp32 under autocast) and its count of correct
    answers, reported as ``accuracy``."""
    inputs, targets = batch
    inputs, targets = to_device(inputs, device, channels_last), targets.to(device, non_blocking=True)
    logits = model(inputs)
    loss = F.cross_entropy(logits.float(), targets)
    return Step(loss, {"accuracy": (logits.argmax(1) == targets).sum().item()}, len(targets))
