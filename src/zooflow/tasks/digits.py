"""What the chapter 5-6 tasks (generation and anomaly detection on MNIST) share: reading,
importing and validating the MNIST idx files, and turning their images into the tensors a GAN
trains on. The data need not be digits: ``classes.txt`` beside the idx files names the ten
labels (Fashion-MNIST), and every user-facing name comes from ``data_info()["classes"]``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from zooflow import settings
from zooflow.config import RunConfig
from zooflow.data import mnist
from zooflow.evaluation import generation as judging
from zooflow.data.subsets import capped
from zooflow.tasks.base import RunContext, TaskDefaults, other_classes
from zooflow.training.engine import Step


def to_model_space(images: np.ndarray, size: int) -> torch.Tensor:
    """uint8 (N, 28, 28) -> float (N, 1, size, size) in [-1, 1] (the book upscales MNIST to 64x64
    bilinearly for its 64x64 GANs)."""
    x = judging.to_signed(images)
    if size != x.shape[-1]:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=size < x.shape[-1])
    return x


def normal_digits(cfg: RunConfig) -> list[int]:
    """The digits the model learns (``normal_labels``) as integers."""
    return [int(label) for label in cfg.params.normal_labels]


def class_name(ctx: RunContext, label: int) -> str:
    """The name of label id ``label`` (``data_info()["classes"]``; "0".."9" for MNIST itself)."""
    return str(ctx.info["classes"][int(label)])


def normal_names(ctx: RunContext) -> list[str]:
    """The class names of the normal labels, e.g. ["7", "8"] or ["Sneaker", "Bag"]."""
    return [class_name(ctx, label) for label in normal_digits(ctx.cfg)]


def require_from_scratch(cfg: RunConfig) -> None:
    """The book trains its GANs from random initialisation; no pretrained source is defined."""
    if cfg.pretrained != "none":
        raise ValueError(f"{cfg.registered_name}: GANs here train from scratch; pretrained must be 'none', "
                         f"got {cfg.pretrained!r}")


class DigitsData(TaskDefaults):
    """The data half of the task contract for MNIST tasks, and the training half of their GANs
    (a subclass's ``adversarial_steps(cfg)`` gives the update rules, e.g. ``ImageGanSteps``)."""

    def data_info(self, cfg: RunConfig, data_root: Path) -> dict[str, Any]:
        """The names of labels 0-9 (``classes.txt``, else "0".."9"), the normal label ids and
        the model's input size."""
        return {"classes": mnist.class_names(Path(data_root) / cfg.data.folder),
                "normal_labels": list(cfg.params.normal_labels), "image_size": cfg.params.input_size}

    def manifest(self, ctx: RunContext) -> pd.DataFrame:
        return mnist.manifest(ctx.folder, relative_to=ctx.data_root)

    def not_comparable(self, champion_info: dict[str, Any], info: dict[str, Any]) -> str | None:
        """Other class names, or other normal digits (a generator of other digits, an anomaly
        model with another idea of normal): the figures would measure different things."""
        reason = other_classes(champion_info, info)
        if reason is None and champion_info.get("normal_labels") != info.get("normal_labels"):
            reason = f"learned other normal labels ({champion_info.get('normal_labels')})"
        return reason

    def import_data(self, source: Path, target: Path) -> mnist.Imported:
        """MNIST idx files (``MNIST/raw`` or ``raw``, gzipped or not; an optional ``classes.txt``
        names the labels) or image folders: an ``Imported`` (class names, skipped litter,
        converted images)."""
        return mnist.import_digits(source, target)

    def expectations(self, ctx: RunContext) -> list:
        import great_expectations as gx  # slow import; serving a model never needs it

        checks = ctx.cfg.data
        every_split_digit = [f"{split}/{digit}" for split in mnist.SPLITS for digit in mnist.DIGITS]
        return [
            gx.expectations.ExpectColumnValuesToBeInSet(column="error", value_set=[""]),
            gx.expectations.ExpectColumnValuesToBeInSet(column="label", value_set=list(mnist.DIGITS)),
            gx.expectations.ExpectColumnValuesToBeInSet(column="rows", value_set=[28]),
            gx.expectations.ExpectColumnValuesToBeInSet(column="cols", value_set=[28]),
            gx.expectations.ExpectColumnValuesToBeBetween(column="pixel_min", min_value=0, max_value=255),
            gx.expectations.ExpectColumnValuesToBeBetween(column="pixel_max", min_value=1, max_value=255),
            gx.expectations.ExpectColumnDistinctValuesToContainSet(column="split_label", value_set=every_split_digit),
            gx.expectations.ExpectColumnValuesToBeBetween(column="class_count", min_value=checks.min_images_per_class),
            gx.expectations.ExpectColumnValuesToBeInSet(column="in_other_split", value_set=[False]),
        ]

    def digits(self, ctx: RunContext, split: str, only_normal: bool = False) -> mnist.Digits:
        """One split's digits (optionally only ``cfg.params.normal_labels``)."""
        split_digits = mnist.load_split(ctx.folder, split)
        return split_digits.only(normal_digits(ctx.cfg)) if only_normal else split_digits

    def _normal_images(self, ctx: RunContext, split: str) -> torch.Tensor:
        """The split's normal digits as model-space tensors (what the GAN learns from)."""
        digits = self.digits(ctx, split, only_normal=True)
        return to_model_space(digits.images, ctx.cfg.params.input_size)

    # -- training -----------------------------------------------------------------------------
    def train_loader(self, ctx: RunContext) -> DataLoader:
        """Shuffled batches of the normal training images. Capped profiles (demo, smoke) train on
        an even spread, so they take minutes on full-size data too (the demo digits are below
        every cap). drop_last: a batch of one breaks batch norm, and equal batches keep the D/G
        balance steady."""
        images = capped(self._normal_images(ctx, "train"), ctx.cfg.max_train_samples)
        return DataLoader(TensorDataset(images), batch_size=ctx.cfg.batch_size, shuffle=True,
                          drop_last=len(images) > ctx.cfg.batch_size)

    def optimizers(self, model: nn.Module, ctx: RunContext) -> dict[str, torch.optim.Optimizer]:
        """One Adam per network (the book's betas from the config)."""
        return self.adversarial_steps(ctx.cfg).optimizers(model)

    def training_step(self, model: nn.Module, batch, ctx: RunContext, device, optimizers) -> Step:
        """The networks' turns on one batch of real images; the step updates them itself."""
        (real,) = batch
        return Step(None, self.adversarial_steps(ctx.cfg).step(model, real.to(device, non_blocking=True), optimizers))

    def judge(self, ctx: RunContext) -> judging.DigitJudge:
        """The digit classifier trained on this data version's training split (cached)."""
        train = self.digits(ctx, "train")
        return judging.load_judge(settings.project_root() / ".zooflow" / "judges", train.images, train.labels)
