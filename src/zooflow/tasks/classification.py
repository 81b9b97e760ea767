"""Chapter 1: image classification by transfer learning and fine-tuning.

Data: an ImageFolder (``train/<class>/*.jpg``, ``val/<class>/*.jpg``) with ``classes.txt``.
Models: ``vgg16-transfer`` (only the new head trains), ``vgg16-finetune`` (three learning
rates), ``mobilenetv2-transfer`` (ImageNet MobileNetV2, head only). Primary metric: accuracy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader
from torchvision.transforms import v2

from zooflow.config import RunConfig
from zooflow.data import imagefolder
from zooflow.data.importer import import_imagefolder
from zooflow.data.raw_images import decode_image, image_items
from zooflow.evaluation import classification as metrics
from zooflow.models import mobilenet, vgg
from zooflow.tasks.base import RunContext, TaskDefaults, other_classes
from zooflow.training.classifier import classifier_step
from zooflow.training.engine import Loaders
from zooflow.training.optim import build_optimizer

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

ARCHITECTURES = {
    "vgg16": (lambda cfg, n, pretrained: vgg.build_vgg16(n, pretrained, cfg.params.width, cfg.params.hidden),
              vgg.param_groups),
    "mobilenet_v2": (lambda cfg, n, pretrained: mobilenet.build_mobilenet_v2(n, pretrained), mobilenet.param_groups),
}


def transforms(cfg: RunConfig, train: bool) -> v2.Compose:
    """The book's preprocessing: train = RandomResizedCrop (scale 0.5-1) + flip; val = resize +
    center crop; both normalised with the ImageNet mean and std."""
    params = cfg.params
    if train:
        geometry = [v2.RandomResizedCrop(params.input_size, scale=(0.5, 1.0), antialias=True),
                    v2.RandomHorizontalFlip()]
    else:
        geometry = [v2.Resize(params.resize, antialias=True), v2.CenterCrop(params.input_size)]
    return v2.Compose([v2.ToImage(), *geometry, v2.ToDtype(torch.float32, scale=True),
                       v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)])


class ClassificationTask(TaskDefaults):
    name = "classification"
    primary_metric = "accuracy"
    goal = "max"
    baseline_description = "always predict the training split's majority class"
    not_comparable = staticmethod(other_classes)
    mixed_precision = True
    channels_last = True

    # -- data -------------------------------------------------------------------------------
    def data_info(self, cfg: RunConfig, data_root: Path) -> dict[str, Any]:
        return {"classes": imagefolder.read_classes(data_root / cfg.data.folder)}

    def manifest(self, ctx: RunContext) -> pd.DataFrame:
        return imagefolder.manifest(ctx.folder, relative_to=ctx.data_root)

    def import_data(self, source: Path, target: Path):
        """An ImageFolder dataset (``train/<class>``, ``val/<class>``), e.g. hymenoptera_data:
        an ``Imported`` (classes, skipped litter); see ``zooflow.data.importer``."""
        return import_imagefolder(source, target)

    def expectations(self, ctx: RunContext) -> list:
        import great_expectations as gx  # slow import; serving a model never needs it

        classes = ctx.info["classes"]
        checks = ctx.cfg.data
        every_split_class = [f"{split}/{label}" for split in imagefolder.SPLITS for label in classes]
        return [
            gx.expectations.ExpectColumnValuesToBeInSet(column="decodes", value_set=[True]),
            gx.expectations.ExpectColumnValuesToBeInSet(column="label", value_set=classes),
            gx.expectations.ExpectColumnDistinctValuesToContainSet(column="split_label", value_set=every_split_class),
            gx.expectations.ExpectColumnValuesToBeBetween(column="class_count", min_value=checks.min_images_per_class),
            gx.expectations.ExpectColumnValuesToBeBetween(column="width", min_value=checks.min_side, max_value=checks.max_side),
            gx.expectations.ExpectColumnValuesToBeBetween(column="height", min_value=checks.min_side, max_value=checks.max_side),
            gx.expectations.ExpectColumnValuesToBeInSet(column="in_other_split", value_set=[False]),
        ]

    def _dataset(self, ctx: RunContext, split: str, train: bool):
        return imagefolder.DeclaredImageFolder(ctx.folder, split, transform=transforms(ctx.cfg, train))

    def _loader(self, ctx: RunContext, split: str, train: bool) -> DataLoader:
        # No private generator: shuffling and augmentation draw from the global RNG, whose state
        # the checkpoint carries, so a resumed run sees the same batches as an uninterrupted one.
        return DataLoader(self._dataset(ctx, split, train), batch_size=ctx.cfg.batch_size, shuffle=train,
                          num_workers=ctx.cfg.num_workers,
                          pin_memory=torch.cuda.is_available(), persistent_workers=False)

    # -- model ------------------------------------------------------------------------------
    def build_model(self, ctx: RunContext, pretrained: bool = True) -> nn.Module:
        if ctx.cfg.architecture not in ARCHITECTURES:
            raise ValueError(f"unknown architecture '{ctx.cfg.architecture}'; known: {', '.join(ARCHITECTURES)}")
        build, _ = ARCHITECTURES[ctx.cfg.architecture]
        return build(ctx.cfg, len(ctx.info["classes"]), ctx.cfg.pretrained if pretrained else "none")

    def loaders(self, ctx: RunContext) -> Loaders:
        """Augmented, shuffled training images; the validation split as scored."""
        return Loaders(self._loader(ctx, "train", True), self._loader(ctx, "val", False))

    def optimizers(self, model: nn.Module, ctx: RunContext) -> dict[str, torch.optim.Optimizer]:
        """SGD with momentum (the book's) over the groups the config gives a learning rate; every
        other parameter is frozen, so transfer learning trains the head only."""
        cfg = ctx.cfg
        _, groups_of = ARCHITECTURES[cfg.architecture]
        return {"model": build_optimizer(model, groups_of(model), cfg.lr, cfg.optimizer, cfg.momentum,
                                         cfg.weight_decay)}

    def training_step(self, model: nn.Module, batch, ctx: RunContext, device, optimizers):
        return classifier_step(model, batch, device, self.channels_last)

    def validation_step(self, model: nn.Module, batch, ctx: RunContext, device):
        return classifier_step(model, batch, device, self.channels_last)

    # -- evaluation -------------------------------------------------------------------------
    def predict_split(self, model: nn.Module, ctx: RunContext):
        """(probabilities, targets) over the validation split: one pass feeds scores and figures."""
        return metrics.predict_loader(model, self._loader(ctx, "val", False))

    def score(self, predictions, ctx: RunContext) -> dict[str, float]:
        return metrics.scores(*predictions, ctx.info["classes"])

    def baseline(self, ctx: RunContext) -> dict[str, float]:
        """Always answer the majority class of the training split."""
        train_targets = torch.tensor(self._dataset(ctx, "train", False).targets)
        majority = int(torch.bincount(train_targets, minlength=len(ctx.info["classes"])).argmax())
        val_targets = torch.tensor(self._dataset(ctx, "val", False).targets)
        return metrics.scores(torch.full_like(val_targets, majority), val_targets, ctx.info["classes"])

    def examples(self, model: nn.Module, ctx: RunContext, predictions, folder: Path) -> list[Path]:
        folder.mkdir(parents=True, exist_ok=True)
        classes = ctx.info["classes"]
        probabilities, targets = predictions
        figures = [metrics.confusion_figure(probabilities, targets, classes, folder / "confusion_matrix.png")]
        raw = imagefolder.DeclaredImageFolder(ctx.folder, "val")
        # A spread across the set (not just the first class's images).
        picks = np.linspace(0, len(raw) - 1, num=min(18, len(raw))).round().astype(int)
        confidence, guesses = probabilities.max(1)
        figures.append(metrics.prediction_grid(
            [np.asarray(raw[i][0]) for i in picks], [classes[targets[i]] for i in picks],
            [classes[guesses[i]] for i in picks], [confidence[i].item() for i in picks],
            folder / "validation_predictions.png"))
        return figures

    # -- serving ----------------------------------------------------------------------------
    def predict(self, model: nn.Module, ctx: RunContext, images) -> pd.DataFrame:
        """Label and class probabilities for raw images: a DataFrame with an ``image`` column
        (what the served model receives), or a list of encoded bytes / HxWxC uint8 arrays."""
        preprocess = transforms(ctx.cfg, train=False)
        batch = torch.stack([preprocess(decode_image(item)) for item in image_items(images)])
        device = next(model.parameters()).device
        model.eval()
        with torch.no_grad():
            probabilities = model(batch.to(device)).float().softmax(1).cpu().numpy()
        return metrics.probability_table(probabilities, ctx.info["classes"])

    def input_example(self, ctx: RunContext) -> pd.DataFrame:
        """Two real validation images as JPEG bytes (two rows: a batch of one would pin the size)."""
        files = sorted((ctx.folder / "val").rglob("*.*"))[:2]
        return pd.DataFrame({"image": [file.read_bytes() for file in files]})


TASK = ClassificationTask()
