"""Chapter 2: object detection with SSD on the Pascal VOC format, measured with mAP.

Data: ``data/detection/VOCdevkit/VOC<year>/`` as VOC ships it (``JPEGImages/``,
``Annotations/*.xml``, ``ImageSets/Main/{train,val}.txt``, optionally ``classes.txt``; see
``voc.py``). Models: ``ssd300`` (the book's SSD300 on VGG-16, 8,732 default boxes) and
``ssdlite-mobilenetv2`` (SSDLite-style heads on the offline ImageNet MobileNetV2: real transfer
learning on a CPU). Primary metric: VOC mAP@0.5 (all-point); COCO mAP@[.5:.95] beside it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset
from torchvision.transforms import v2

from zooflow import progress
from zooflow.config import RunConfig
from zooflow.data.raw_images import decode_image, image_items
from zooflow.data.subsets import even_spread
from zooflow.models import ssd
from zooflow.tasks.base import RunContext, TaskDefaults, other_classes
from zooflow.tasks.detection import figures, metrics, transforms, voc
from zooflow.tasks.detection.boxes import postprocess
from zooflow.tasks.detection.importer import import_voc
from zooflow.tasks.detection.loss import MultiBoxLoss
from zooflow.training.engine import Loaders, Step, to_device
from zooflow.training.optim import build_optimizer

ARCHITECTURES = {
    "ssd300": lambda cfg, n, pretrained: ssd.build_ssd300(n, pretrained, cfg.params.width,
                                                                  cfg.params.batch_norm),
    "ssdlite_mobilenet_v2": lambda cfg, n, pretrained: ssd.build_ssdlite_mobilenet_v2(n, pretrained,
                                                                                      cfg.params.input_size),
}
ANSWER_TYPES = {"image": "int64", "label": "str", "score": "float64", "xmin": "float64", "ymin": "float64",
                "xmax": "float64", "ymax": "float64"}
ANSWER_COLUMNS = list(ANSWER_TYPES)
CARD_IMAGES = 8


def truth_of(annotation: voc.Annotation, classes: list[str]) -> dict[str, torch.Tensor]:
    """An annotation's objects as metric inputs: pixel boxes, class ids, difficult flags."""
    objects = annotation.objects
    return {"boxes": torch.tensor([o.box() for o in objects], dtype=torch.float32).reshape(-1, 4),
            "labels": torch.tensor([classes.index(o.label) for o in objects], dtype=torch.int64),
            "difficult": torch.tensor([o.difficult for o in objects], dtype=torch.bool)}


def training_collate(batch):
    """Images stacked; targets as (boxes as fractions of the image, class ids) per image."""
    images = torch.stack([image for image, _ in batch])
    targets = [(transforms.normalised_boxes(target["boxes"]), target["labels"]) for _, target in batch]
    return images, targets


class _Augmented(Dataset):
    """Training images through the augmentation. An image whose objects are all ``difficult``
    has no training target left; it still teaches what background looks like, but the IoU crop
    needs a box to measure against, so such an image is only resized."""

    def __init__(self, source: voc.VOCDetection, input_size: int, zoom_out_max: float):
        self.source = source
        self.augment = transforms.training(input_size, zoom_out_max)
        self.plain = transforms.evaluation(input_size)

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int):
        image, target = self.source[index]
        target = {"boxes": target["boxes"], "labels": target["labels"]}
        return (self.augment if len(target["labels"]) else self.plain)(image, target)


class _Scored(Dataset):
    """Evaluation images, resized for the network, with their original size (predictions are
    scaled back to it) and their position in the split."""

    def __init__(self, source: voc.VOCDetection, indices: list[int], input_size: int):
        self.source, self.indices = source, indices
        self.prepare = transforms.evaluation(input_size)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, position: int):
        image, _ = self.source[self.indices[position]]
        return self.prepare(image), tuple(image.shape[-2:])


def scored_collate(batch):
    return torch.stack([image for image, _ in batch]), [size for _, size in batch]


@dataclass
class Predictions:
    """The held-out split as scored: which images (indices into the val split), their ground
    truth and the model's detections, both in each image's own pixels."""

    indices: list[int]
    truths: list[dict]
    detections: list[dict]


def detect(model: nn.Module, images: torch.Tensor, sizes: list[tuple[int, int]], params) -> list[dict]:
    """Decoded, per-class-NMS'd detections of a batch, in each image's own pixels."""
    device = next(model.parameters()).device
    with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
        loc, conf = model(images.to(device))
    found = postprocess(loc.float(), conf.float(), model.priors, params.score_threshold, params.nms_iou, params.top_k)
    answers = []
    for detection, (height, width) in zip(found, sizes):
        scale = torch.tensor([width, height, width, height], dtype=torch.float32)
        answers.append({"boxes": detection["boxes"].float().cpu() * scale, "scores": detection["scores"].float().cpu(),
                        "labels": detection["labels"].cpu()})
    return answers


class DetectionTask(TaskDefaults):
    name = "detection"
    primary_metric = "map_50"
    goal = "max"
    baseline_description = ("one box per image: the training set's mean box (relative to the image) of its most "
                            "frequent class, with score 1")
    not_comparable = staticmethod(other_classes)
    mixed_precision = True
    channels_last = True

    # -- data -------------------------------------------------------------------------------
    def data_info(self, cfg: RunConfig, data_root: Path) -> dict[str, Any]:
        return {"classes": voc.read_classes(voc.voc_root(data_root / cfg.data.folder))}

    def manifest(self, ctx: RunContext) -> pd.DataFrame:
        return voc.manifest(ctx.folder, ctx.info["classes"], relative_to=ctx.data_root,
                            max_side=ctx.cfg.data.max_side)

    def import_data(self, source: Path, target: Path):
        """A Pascal VOC folder (``VOCdevkit`` or ``VOC2012`` itself): see ``importer.import_voc``."""
        return import_voc(source, target)

    def expectations(self, ctx: RunContext) -> list:
        return voc.expectations(ctx.info["classes"])

    def _split(self, ctx: RunContext, split: str, keep_difficult: bool = False) -> voc.VOCDetection:
        return voc.VOCDetection(ctx.folder, split, ctx.info["classes"], keep_difficult=keep_difficult)

    def _scored_indices(self, ctx: RunContext, dataset: voc.VOCDetection) -> list[int]:
        picks = even_spread(len(dataset), ctx.cfg.max_eval_samples)
        return list(range(len(dataset))) if picks is None else picks.tolist()

    # -- model ------------------------------------------------------------------------------
    def build_model(self, ctx: RunContext, pretrained: bool = True) -> nn.Module:
        if ctx.cfg.architecture not in ARCHITECTURES:
            raise ValueError(f"unknown architecture '{ctx.cfg.architecture}'; known: {', '.join(ARCHITECTURES)}")
        return ARCHITECTURES[ctx.cfg.architecture](ctx.cfg, len(ctx.info["classes"]),
                                                   ctx.cfg.pretrained if pretrained else "none")

    def loaders(self, ctx: RunContext) -> Loaders:
        """Augmented, shuffled training images (difficult objects left out of the targets); the
        validation split, resized only, for the validation loss."""
        cfg, params = ctx.cfg, ctx.cfg.params
        train: Dataset = _Augmented(self._split(ctx, "train"), params.input_size, params.zoom_out_max)
        picks = even_spread(len(train), cfg.max_train_samples)
        if picks is not None:
            train = Subset(train, picks.tolist())
        val = _Augmented(self._split(ctx, "val"), params.input_size, 1.0)
        val.augment = val.plain  # validation measures, it does not augment
        picks = even_spread(len(val), cfg.max_eval_samples)
        if picks is not None:
            val = Subset(val, picks.tolist())
        # No private generator: shuffling and augmentation draw from the global RNG, whose state
        # the checkpoint carries, so a resumed run sees the batches an uninterrupted one would.
        common = dict(batch_size=cfg.batch_size, collate_fn=training_collate, num_workers=cfg.num_workers,
                      pin_memory=torch.cuda.is_available())
        return Loaders(DataLoader(train, shuffle=True, **common), DataLoader(val, shuffle=False, **common))

    def optimizers(self, model: nn.Module, ctx: RunContext) -> dict[str, torch.optim.Optimizer]:
        """SGD with momentum and weight decay (the book's) over the groups the config gives a
        rate: ``backbone``, ``extras``, ``head``; a group it does not name stays frozen."""
        cfg = ctx.cfg
        return {"model": build_optimizer(model, ssd.param_groups(model), cfg.lr, cfg.optimizer, cfg.momentum,
                                         cfg.weight_decay)}

    def _loss_step(self, model: nn.Module, batch, ctx: RunContext, device: torch.device) -> Step:
        params = ctx.cfg.params
        images, targets = batch
        loc, conf = model(to_device(images, device, self.channels_last))
        targets = [(boxes.to(device), labels.to(device)) for boxes, labels in targets]
        criterion = MultiBoxLoss(threshold=params.match_iou, negative_ratio=params.negative_ratio)
        parts = criterion(loc.float(), conf.float(), model.priors, targets)
        count = len(targets)
        return Step(parts["loss"], {"loc_loss": parts["loc"].item() * count, "conf_loss": parts["conf"].item() * count},
                    count)

    def training_step(self, model: nn.Module, batch, ctx: RunContext, device, optimizers) -> Step:
        """MultiBox loss: Smooth L1 on the matched boxes' offsets plus cross-entropy with hard
        negative mining; the engine does the update (and the book's gradient clipping)."""
        return self._loss_step(model, batch, ctx, device)

    def validation_step(self, model: nn.Module, batch, ctx: RunContext, device) -> Step:
        return self._loss_step(model, batch, ctx, device)

    # -- evaluation -------------------------------------------------------------------------
    def predict_split(self, model: nn.Module, ctx: RunContext) -> Predictions:
        """Detections on the validation split (difficult objects kept in the truth: the metrics
        ignore them as VOC does)."""
        classes, params = ctx.info["classes"], ctx.cfg.params
        source = self._split(ctx, "val", keep_difficult=True)
        indices = self._scored_indices(ctx, source)
        loader = DataLoader(_Scored(source, indices, params.input_size), batch_size=ctx.cfg.batch_size,
                            collate_fn=scored_collate, num_workers=ctx.cfg.num_workers)
        detections: list[dict] = []
        model.eval()
        with torch.no_grad(), progress.phase("scoring the held-out split", len(indices), "images") as shown:
            for images, sizes in loader:
                detections += detect(model, images, sizes, params)
                shown.advance(len(sizes))
        truths = [truth_of(source.annotation(i), classes) for i in indices]
        return Predictions(indices, truths, detections)

    def score(self, predictions: Predictions, ctx: RunContext) -> dict[str, float]:
        return metrics.scores(predictions.detections, predictions.truths, ctx.info["classes"])

    def _baseline_detections(self, ctx: RunContext) -> tuple[list[dict], list[dict]]:
        """The mean-box detector's answers on the scored images, and those images' truths."""
        classes = ctx.info["classes"]
        train = self._split(ctx, "train", keep_difficult=True)
        train_truths = [truth_of(train.annotation(i), classes) for i in range(len(train))]
        train_sizes = [train.image_size(i) for i in range(len(train))]
        val = self._split(ctx, "val", keep_difficult=True)
        indices = self._scored_indices(ctx, val)
        truths = [truth_of(val.annotation(i), classes) for i in indices]
        answers = metrics.mean_box_baseline(train_truths, train_sizes, [val.image_size(i) for i in indices], classes)
        return answers, truths

    def baseline(self, ctx: RunContext) -> dict[str, float]:
        """One box per image: the training set's mean box of its most frequent class."""
        answers, truths = self._baseline_detections(ctx)
        return metrics.scores(answers, truths, ctx.info["classes"])

    def examples(self, model: nn.Module, ctx: RunContext, predictions: Predictions, folder: Path) -> list[Path]:
        """Predictions beside the ground truth on validation images, precision-recall curves, and
        the per-class AP of the model and of the baseline."""
        folder.mkdir(parents=True, exist_ok=True)
        classes, params = ctx.info["classes"], ctx.cfg.params
        curves = metrics.voc_curves(predictions.detections, predictions.truths, classes)
        baseline_answers, baseline_truths = self._baseline_detections(ctx)
        baseline_curves = metrics.voc_curves(baseline_answers, baseline_truths, classes)
        source = self._split(ctx, "val", keep_difficult=True)
        shown = np.linspace(0, len(predictions.indices) - 1, num=min(CARD_IMAGES, len(predictions.indices)))
        shown = sorted(set(shown.round().astype(int).tolist()))
        pictures = [source[predictions.indices[i]][0].permute(1, 2, 0).numpy() for i in shown]
        return [
            figures.prediction_pairs(pictures, [predictions.truths[i] for i in shown],
                                     [predictions.detections[i] for i in shown], classes,
                                     folder / "validation_detections.png", min_score=params.min_score),
            figures.pr_curves(curves, folder / "precision_recall.png"),
            figures.ap_bars(curves, folder / "ap_per_class.png"),
            figures.ap_table_html(curves, baseline_curves, folder / "ap_per_class.html"),
        ]

    # -- serving ----------------------------------------------------------------------------
    def predict(self, model: nn.Module, ctx: RunContext, images) -> pd.DataFrame:
        """Detections for raw images (a DataFrame with an ``image`` column of encoded bytes, or a
        list of bytes / HxWxC uint8 arrays): one row per detection with score >= ``min_score``:
        ``image`` (its position in the input), ``label``, ``score`` and the box in the input
        image's pixels (``xmin``, ``ymin``, ``xmax``, ``ymax``)."""
        classes, params = ctx.info["classes"], ctx.cfg.params
        prepare = transforms.evaluation(params.input_size)
        pictures = [v2.functional.to_image(decode_image(item)) for item in image_items(images)]
        if not pictures:
            return pd.DataFrame(columns=ANSWER_COLUMNS).astype(ANSWER_TYPES)
        model.eval()
        with torch.no_grad():
            found = detect(model, torch.stack([prepare(picture) for picture in pictures]),
                           [tuple(picture.shape[-2:]) for picture in pictures], params)
        rows = []
        for index, detection in enumerate(found):
            keep = detection["scores"] >= params.min_score
            for box, score, label in zip(detection["boxes"][keep].tolist(), detection["scores"][keep].tolist(),
                                         detection["labels"][keep].tolist()):
                rows.append([index, classes[label], score, *box])
        # Typed even when empty: an image with nothing above min_score has no row, and a served
        # answer with no rows at all must still have the signature's columns and types.
        return pd.DataFrame(rows, columns=ANSWER_COLUMNS).astype(ANSWER_TYPES)

    def input_example(self, ctx: RunContext) -> pd.DataFrame:
        """Two real validation images as encoded bytes (two rows: a batch of one would pin the size)."""
        source = self._split(ctx, "val")
        images = voc.voc_root(ctx.folder) / "JPEGImages"
        files = [images / source.annotation(i).filename for i in range(min(2, len(source)))]
        return pd.DataFrame({"image": [file.read_bytes() for file in files]})


TASK = DetectionTask()
