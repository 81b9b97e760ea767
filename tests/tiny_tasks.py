"""Minimal tasks for driving the training engine in tests: what a task hands the engine
(steps over batches), on data small enough to train in milliseconds."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from zooflow.training.classifier import classifier_step
from zooflow.training.engine import Loaders, Step


class Points:
    """Cross-entropy classification of 2-d points (an ordinary one-loss step)."""

    def training_step(self, model, batch, ctx, device, optimizers):
        return classifier_step(model, batch, device)

    def validation_step(self, model, batch, ctx, device):
        return classifier_step(model, batch, device)


class Adversarial:
    """A GAN's turns (``steps.step`` updates the networks itself) and a validation score
    computed by ``select(model)``."""

    def __init__(self, steps, select):
        self.steps, self.select = steps, select

    def training_step(self, model, batch, ctx, device, optimizers):
        (real,) = batch
        return Step(None, self.steps.step(model, real.to(device), optimizers))

    def validation_step(self, model, batch, ctx, device):
        return Step(None, self.select(model))


def separable_points(batch_size: int = 16, shuffle: bool = True) -> DataLoader:
    """64 points in two clusters; the same points whatever the global seed."""
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(64, 2, generator=generator) + torch.cat([torch.full((32, 2), 2.0), torch.full((32, 2), -2.0)])
    targets = torch.cat([torch.zeros(32, dtype=torch.long), torch.ones(32, dtype=torch.long)])
    return DataLoader(TensorDataset(inputs, targets), batch_size=batch_size, shuffle=shuffle)


def image_batches(images: torch.Tensor, batch_size: int) -> Loaders:
    """A GAN's training batches of ``images`` and one validation batch (``select`` needs none)."""
    return Loaders(DataLoader(TensorDataset(images), batch_size=batch_size, shuffle=True,
                              drop_last=len(images) > batch_size), [None])


def linear() -> nn.Module:
    return nn.Linear(2, 2)
