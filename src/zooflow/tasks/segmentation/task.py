"""Chapter 3: semantic segmentation with PSPNet on the Pascal VOC format, measured with mIoU.

Data: ``data/segmentation/VOCdevkit/VOC<year>/`` as VOC ships it (``JPEGImages/``,
``SegmentationClass/*.png``, ``ImageSets/Segmentation/{train,val}.txt``, optionally
``classes.txt``; see ``voc.py``). Models: ``pspnet`` (the book's PSPNet on a dilated ResNet-50,
auxiliary loss weight 0.4) and ``mobilenetv2-psp`` (a pyramid-pooling head on the offline ImageNet
MobileNetV2: real transfer learning on a CPU). Primary metric: mIoU over the held-out split,
VOC's 255 border ignored in loss and metrics alike.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset
from torchvision.transforms import v2

from zooflow import progress
from zooflow.config import RunConfig
from zooflow.data.raw_images import decode_image, image_items
from zooflow.data.subsets import even_spread
from zooflow.models import pspnet
from zooflow.tasks.base import RunContext, TaskDefaults, other_classes
from zooflow.tasks.segmentation import figures, metrics, transforms, voc
from zooflow.tasks.segmentation.importer import import_voc_segmentation
from zooflow.training.engine import Loaders, Step, to_device
from zooflow.training.optim import build_optimizer

ARCHITECTURES = {
    "pspnet": lambda cfg, n, pretrained: pspnet.build_pspnet(n, pretrained, cfg.params.input_size, cfg.params.width),
    "mobilenet_v2_psp": lambda cfg, n, pretrained: pspnet.build_mobilenet_psp(n, pretrained, cfg.params.input_size),
}
CARD_IMAGES = 6
SHARE_PREFIX = "share."  # served columns: share.<class> = the class's fraction of the image's pixels


def mask_png(values: np.ndarray) -> bytes:
    """An HxW array of class ids as PNG bytes of a palette image in VOC's colours."""
    buffer = io.BytesIO()
    voc.mask_image(values).save(buffer, format="PNG")
    return buffer.getvalue()


class _Scored(Dataset):
    """Evaluation images resized for the network, with their untouched masks (scored at the
    image's own size) and their position in the split."""

    def __init__(self, source: voc.VOCSegmentation, indices: list[int], input_size: int):
        self.source, self.indices = source, indices
        self.prepare = transforms.evaluation(input_size)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, position: int):
        image, mask = self.source[self.indices[position]]
        return self.prepare(image), mask.as_subclass(torch.Tensor), position


def scored_collate(batch):
    return (torch.stack([image for image, _, _ in batch]), [mask for _, mask, _ in batch],
            [position for _, _, position in batch])


@dataclass
class Predictions:
    """The held-out split as scored: which images (indices into the val split), the confusion
    matrix summed over them, and the predicted masks of the images the card shows."""

    indices: list[int]
    matrix: torch.Tensor
    shown: dict[int, np.ndarray] = field(default_factory=dict)  # position in ``indices`` -> HxW uint8


def predict_masks(model: nn.Module, images: torch.Tensor, sizes: list[tuple[int, int]]) -> list[torch.Tensor]:
    """The predicted class id of every pixel, for a batch of network-sized images, each resized
    back to its image's own ``(height, width)``: the logits are upsampled (bilinear), then the
    best class taken, so the answer is as sharp as the logits allow."""
    device = next(model.parameters()).device
    with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
        logits, _ = model(images.to(device))
    masks = []
    for one, size in zip(logits.float(), sizes):
        masks.append(F.interpolate(one[None], size=size, mode="bilinear", align_corners=False)[0].argmax(0).cpu())
    return masks


def card_positions(count: int) -> list[int]:
    """The positions (in the scored list) of the images the card shows: an even spread."""
    picks = np.linspace(0, count - 1, num=min(CARD_IMAGES, count)).round().astype(int)
    return sorted(set(picks.tolist()))


class SegmentationTask(TaskDefaults):
    name = "segmentation"
    primary_metric = "miou"
    goal = "max"
    baseline_description = "the training masks' most frequent class for every pixel"
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
        """A Pascal VOC folder (``VOCdevkit`` or ``VOC2012`` itself): see ``importer``."""
        return import_voc_segmentation(source, target)

    def expectations(self, ctx: RunContext) -> list:
        return voc.expectations(ctx.info["classes"])

    def _split(self, ctx: RunContext, split: str, transform=None) -> voc.VOCSegmentation:
        return voc.VOCSegmentation(ctx.folder, split, ctx.info["classes"], transform=transform,
                                   max_side=ctx.cfg.data.max_side)

    def _scored_indices(self, ctx: RunContext, count: int) -> list[int]:
        picks = even_spread(count, ctx.cfg.max_eval_samples)
        return list(range(count)) if picks is None else picks.tolist()

    # -- model ------------------------------------------------------------------------------
    def build_model(self, ctx: RunContext, pretrained: bool = True) -> nn.Module:
        if ctx.cfg.architecture not in ARCHITECTURES:
            raise ValueError(f"unknown architecture '{ctx.cfg.architecture}'; known: {', '.join(ARCHITECTURES)}")
        return ARCHITECTURES[ctx.cfg.architecture](ctx.cfg, len(ctx.info["classes"]),
                                                   ctx.cfg.pretrained if pretrained else "none")

    def loaders(self, ctx: RunContext) -> Loaders:
        """Augmented, shuffled training crops; the validation split resized to the network's
        square (masks too, nearest) for the validation loss."""
        cfg, params = ctx.cfg, ctx.cfg.params
        train: Dataset = self._split(ctx, "train", transforms.training(
            params.input_size, params.scale_min, params.scale_max, params.rotation, params.flip))
        picks = even_spread(len(train), cfg.max_train_samples)
        if picks is not None:
            train = Subset(train, picks.tolist())
        val: Dataset = self._split(ctx, "val", transforms.evaluation(params.input_size))
        picks = even_spread(len(val), cfg.max_eval_samples)
        if picks is not None:
            val = Subset(val, picks.tolist())
        common = dict(batch_size=cfg.batch_size, num_workers=cfg.num_workers, pin_memory=torch.cuda.is_available())
        # Batch norm on the one-cell pyramid bin cannot normalise a batch of one image: a last
        # batch of one is dropped (it comes back in another place after the next shuffle).
        drop_last = len(train) % cfg.batch_size == 1
        # No private generator: shuffling and augmentation draw from the global RNG, whose state
        # the checkpoint carries, so a resumed run sees the batches an uninterrupted one would.
        return Loaders(DataLoader(train, shuffle=True, drop_last=drop_last, **common),
                       DataLoader(val, shuffle=False, **common))

    def optimizers(self, model: nn.Module, ctx: RunContext) -> dict[str, torch.optim.Optimizer]:
        """The configured optimiser (the book's: SGD, momentum 0.9, weight decay 1e-4) over the
        groups the config gives a rate: ``backbone`` and ``head``; a group it does not name
        stays frozen."""
        cfg = ctx.cfg
        return {"model": build_optimizer(model, pspnet.param_groups(model), cfg.lr, cfg.optimizer, cfg.momentum,
                                         cfg.weight_decay)}

    def _loss_step(self, model: nn.Module, batch, ctx: RunContext, device: torch.device) -> Step:
        images, masks = batch
        main, aux = model(to_device(images, device, self.channels_last))
        masks = masks.to(device)
        main_loss = F.cross_entropy(main.float(), masks, ignore_index=voc.IGNORE)
        count = len(masks)
        sums = {"main_loss": main_loss.item() * count}
        loss = main_loss
        if aux is not None and ctx.cfg.params.aux_weight > 0:
            aux_loss = F.cross_entropy(aux.float(), masks, ignore_index=voc.IGNORE)
            loss = main_loss + ctx.cfg.params.aux_weight * aux_loss
            sums["aux_loss"] = aux_loss.item() * count
        return Step(loss, sums, count)

    def training_step(self, model: nn.Module, batch, ctx: RunContext, device, optimizers) -> Step:
        """Cross-entropy over the labelled pixels (255 ignored) of the main output plus
        ``aux_weight`` times that of PSPNet's auxiliary head; the engine does the update (and the
        gradient accumulation to the book's effective batch)."""
        return self._loss_step(model, batch, ctx, device)

    def validation_step(self, model: nn.Module, batch, ctx: RunContext, device) -> Step:
        return self._loss_step(model, batch, ctx, device)

    # -- evaluation -------------------------------------------------------------------------
    def predict_split(self, model: nn.Module, ctx: RunContext) -> Predictions:
        """The confusion matrix of the model's masks against the validation masks, each image
        scored at its own size; the card's images' predicted masks kept."""
        classes, params = ctx.info["classes"], ctx.cfg.params
        source = self._split(ctx, "val")
        indices = self._scored_indices(ctx, len(source))
        shown_positions = set(card_positions(len(indices)))
        loader = DataLoader(_Scored(source, indices, params.input_size), batch_size=ctx.cfg.batch_size,
                            collate_fn=scored_collate, num_workers=ctx.cfg.num_workers)
        matrix = torch.zeros(len(classes), len(classes), dtype=torch.int64)
        shown: dict[int, np.ndarray] = {}
        model.eval()
        with torch.no_grad(), progress.phase("scoring the held-out split", len(indices), "images") as shown_bar:
            for images, masks, positions in loader:
                predicted = predict_masks(model, images, [tuple(mask.shape) for mask in masks])
                for mask, answer, position in zip(masks, predicted, positions):
                    matrix += metrics.confusion(answer, mask, len(classes))
                    if position in shown_positions:
                        shown[position] = answer.numpy().astype(np.uint8)
                shown_bar.advance(len(masks))
        return Predictions(indices, matrix, shown)

    def score(self, predictions: Predictions, ctx: RunContext) -> dict[str, float]:
        return metrics.scores(predictions.matrix, ctx.info["classes"])

    def _class_pixels(self, dataset: voc.VOCSegmentation, indices: list[int], num_classes: int) -> torch.Tensor:
        """Labelled pixels of each class over the masks of ``indices`` (255 not counted)."""
        counts = np.zeros(256, dtype=np.int64)
        for index in indices:
            counts += np.bincount(dataset.mask(index).ravel(), minlength=256)
        return torch.from_numpy(counts[:num_classes])

    def _baseline_matrix(self, ctx: RunContext) -> torch.Tensor:
        """The confusion matrix of "the training masks' most frequent class everywhere" on the
        images ``predict_split`` scores."""
        classes = ctx.info["classes"]
        train, val = self._split(ctx, "train"), self._split(ctx, "val")
        most_frequent = int(self._class_pixels(train, list(range(len(train))), len(classes)).argmax())
        truth = self._class_pixels(val, self._scored_indices(ctx, len(val)), len(classes))
        return metrics.constant_confusion(truth, most_frequent)

    def baseline(self, ctx: RunContext) -> dict[str, float]:
        """Every pixel the training masks' most frequent class."""
        return metrics.scores(self._baseline_matrix(ctx), ctx.info["classes"])

    def examples(self, model: nn.Module, ctx: RunContext, predictions: Predictions, folder: Path) -> list[Path]:
        """Image / ground truth / prediction for validation images, and the per-class IoU of the
        model beside the baseline's (bars and a table)."""
        folder.mkdir(parents=True, exist_ok=True)
        classes = ctx.info["classes"]
        source = self._split(ctx, "val")
        positions = sorted(predictions.shown)
        pictures = [source[predictions.indices[p]][0].permute(1, 2, 0).numpy() for p in positions]
        truths = [source.mask(predictions.indices[p]) for p in positions]
        model_ious = metrics.class_ious(predictions.matrix).tolist()
        baseline_ious = metrics.class_ious(self._baseline_matrix(ctx)).tolist()
        return [
            figures.overlays(pictures, truths, [predictions.shown[p] for p in positions], classes,
                             folder / "validation_masks.png"),
            figures.iou_bars(model_ious, baseline_ious, classes, folder / "iou_per_class.png"),
            figures.iou_table_html(model_ious, baseline_ious, classes, folder / "iou_per_class.html"),
        ]

    # -- serving ----------------------------------------------------------------------------
    def predict(self, model: nn.Module, ctx: RunContext, images) -> pd.DataFrame:
        """Masks for raw images (a DataFrame with an ``image`` column of encoded bytes, or a
        list of bytes / HxWxC uint8 arrays): one row per image with ``image`` (its position in
        the input), ``mask`` (PNG bytes of a palette image in VOC's colours, the input's size,
        pixel value = class id) and ``share.<class>`` (the fraction of its pixels of each class)."""
        classes, params = ctx.info["classes"], ctx.cfg.params
        prepare = transforms.evaluation(params.input_size)
        pictures = [v2.functional.to_image(decode_image(item)) for item in image_items(images)]
        columns = ["image", "mask", *(f"{SHARE_PREFIX}{name}" for name in classes)]
        if not pictures:
            return pd.DataFrame(columns=columns)
        model.eval()
        with torch.no_grad():
            masks = predict_masks(model, torch.stack([prepare(picture) for picture in pictures]),
                                  [tuple(picture.shape[-2:]) for picture in pictures])
        rows = []
        for index, mask in enumerate(masks):
            shares = torch.bincount(mask.reshape(-1), minlength=len(classes)).double() / mask.numel()
            rows.append([index, mask_png(mask.numpy().astype(np.uint8)), *shares.tolist()])
        return pd.DataFrame(rows, columns=columns)

    def input_example(self, ctx: RunContext) -> pd.DataFrame:
        """Two real validation images as encoded bytes (two rows: a batch of one would pin the size)."""
        source = self._split(ctx, "val")
        return pd.DataFrame({"image": [source.image_path(i).read_bytes() for i in range(min(2, len(source)))]})


TASK = SegmentationTask()
