"""Chapter 4: multi-person pose estimation with OpenPose on the COCO keypoints format, measured with
COCO's OKS AP.

Data: ``data/pose/`` as :mod:`~zooflow.tasks.pose.coco` describes it
(``annotations/person_keypoints_{train,val}.json`` and the images in ``train/`` and ``val/``).
Models: ``openpose`` (the book's: VGG-19's first ten convs, six two-branch stages, 52.31 M
parameters at width 1) and ``mobilenet_openpose`` (two stages on the offline ImageNet MobileNetV2
body, for the CPU demo); both predict 38 PAF and 19 heatmap channels at stride 8. The loss is the
book's: the masked squared error of every stage's PAFs and heatmaps against the targets of
:mod:`~zooflow.tasks.pose.targets`. Evaluation letterboxes each validation image to the network's
square, decodes people from the maps (:mod:`~zooflow.tasks.pose.decode`), maps their keypoints
back to the image's own pixels and scores them with COCOeval (:mod:`~zooflow.tasks.pose.metrics`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
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
from zooflow.models import openpose
from zooflow.tasks.base import RunContext, TaskDefaults
from zooflow.tasks.params import POSE_STRIDE as STRIDE
from zooflow.tasks.pose import coco, figures, metrics, targets, transforms
from zooflow.tasks.pose.decode import Person, decode, to_coco_results
from zooflow.tasks.pose.importer import import_coco_keypoints
from zooflow.tasks.pose.skeleton import COCO_KEYPOINTS, coco_to_openpose
from zooflow.training.engine import Loaders, Step, to_device
from zooflow.training.optim import build_optimizer

CARD_IMAGES = 6
# Served answer: one row per person found; for every COCO keypoint its position in the input
# image's pixels and its heatmap peak value; (0, 0, 0) where the part was not found, as COCO's
# results format has it (NaN would make the server's JSON invalid for strict parsers).
ANSWER_TYPES = {"image": "int64", "score": "float64",
                **{f"{name}_{what}": "float64" for name in COCO_KEYPOINTS for what in ("x", "y", "score")}}
ANSWER_COLUMNS = list(ANSWER_TYPES)


ARCHITECTURES = {
    "openpose": lambda cfg, pretrained: openpose.build_openpose(pretrained, cfg.params.stages or 6,
                                                                cfg.params.width),
    "mobilenet_openpose": lambda cfg, pretrained: openpose.build_mobilenet_openpose(
        pretrained, cfg.params.stages or 2, cfg.params.channels),
}


# -- targets and loss ---------------------------------------------------------------------------

def make_targets(keypoints: torch.Tensor, ignore: torch.Tensor, input_size: int, params) -> tuple[torch.Tensor, ...]:
    """``(heatmaps [19, h, w], pafs [38, h, w], mask [h, w])`` at stride 8 of one image square:
    COCO keypoints ``[N, 17, 3]`` in the square's pixels become OpenPose's 18 parts (the neck
    added), and the ignored pixels (crowds, people without keypoints, padding) the loss mask."""
    size = (input_size // STRIDE, input_size // STRIDE)
    parts = torch.from_numpy(coco_to_openpose(np.asarray(keypoints, dtype=np.float32).reshape(-1, 17, 3)))
    return (targets.heatmaps(parts, size, STRIDE, params.sigma), targets.pafs(parts, size, STRIDE, params.limb_width),
            targets.loss_mask(size, STRIDE, ignore))


class _Targets(Dataset):
    """A split as training batches: ``(image, heatmaps, pafs, mask)``, the image through the
    training augmentation (or the evaluation letterbox) and the targets built on the result."""

    def __init__(self, source: coco.PoseDataset, params, train: bool):
        self.source, self.params = source, params
        self.prepare = (transforms.training(params.input_size, params.scale_min, params.scale_max, params.rotation,
                                            params.flip) if train else transforms.evaluation(params.input_size))

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int):
        image, keypoints, ignore = self.prepare(*self.source[index])[:3]
        return (image, *make_targets(keypoints, ignore, self.params.input_size, self.params))


def pose_loss(per_stage, heatmaps: torch.Tensor, pafs: torch.Tensor,
              mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The book's loss: ``(total, paf part, heatmap part)``, the squared error of every stage's
    PAFs and heatmaps against the targets where ``mask`` (``[B, h, w]``, broadcast over the
    channels) is 1, summed over the stages and the two branches (the paper's intermediate
    supervision).

    Each term is *averaged* over every cell of every channel and image, masked cells included (the
    book's ``F.mse_loss(pred * mask, target * mask)``), not summed as CMU's Caffe loss does: a mean
    does not grow with the batch, the map size or the number of channels, so the engine's
    "mean loss per batch" contract and gradient accumulation hold, and the book's SGD rate (1e-2)
    goes with it. Masked cells add exactly zero, whatever the prediction there."""
    mask = mask[:, None].float()
    paf_loss = heatmap_loss = torch.zeros((), device=mask.device)
    for paf, heatmap in per_stage:
        paf_loss = paf_loss + ((paf.float() - pafs) ** 2 * mask).mean()
        heatmap_loss = heatmap_loss + ((heatmap.float() - heatmaps) ** 2 * mask).mean()
    return paf_loss + heatmap_loss, paf_loss, heatmap_loss


# -- evaluation ---------------------------------------------------------------------------------

class _Scored(Dataset):
    """Evaluation images letterboxed to the network's square, with their placement (to map
    keypoints back) and their position in the scored list."""

    def __init__(self, source: coco.PoseDataset, indices: list[int], input_size: int):
        self.source, self.indices = source, indices
        self.prepare = transforms.evaluation(input_size)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, position: int):
        image, _ = self.source[self.indices[position]]
        prepared, _, _, placement = self.prepare(image)
        return prepared, placement, position


def scored_collate(batch):
    return (torch.stack([image for image, _, _ in batch]), [placement for _, placement, _ in batch],
            [position for _, _, position in batch])


def people_in(paf: torch.Tensor, heatmap: torch.Tensor, placement: transforms.Placement, params) -> list[Person]:
    """The people decoded from one image's maps (``[38, h, w]``, ``[19, h, w]`` at stride 8 on
    its evaluation square), their keypoints in the original image's pixels, best first. The
    distance prior reads the height of the image inside the square (not of the padding)."""
    found = decode(paf.float().cpu(), heatmap.float().cpu(), stride=STRIDE, upsample=params.upsample,
                   image_height=float(placement.resized_height), peak_threshold=params.peak_threshold,
                   paf_threshold=params.paf_threshold, min_parts=params.min_parts, min_score=params.min_score)
    return [Person(keypoints=np.asarray(transforms.to_original(person.keypoints, placement), dtype=np.float32),
                   score=person.score) for person in found]


def run_model(model: nn.Module, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The last stage's ``(pafs, heatmaps)`` of a batch of evaluation squares, float32 on the CPU."""
    device = next(model.parameters()).device
    with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
        pafs, heatmaps, _ = model(images.to(device))
    return pafs.float().cpu(), heatmaps.float().cpu()


def picture(prepared: torch.Tensor) -> np.ndarray:
    """An evaluation square back as an HxWx3 uint8 picture (undoing the ImageNet normalisation)."""
    mean = torch.tensor(transforms.IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(transforms.IMAGENET_STD).view(3, 1, 1)
    return (((prepared * std + mean).clamp(0, 1) * 255).round().to(torch.uint8)).permute(1, 2, 0).numpy()


def card_positions(count: int) -> list[int]:
    """The positions (in the scored list) of the images the card shows: an even spread."""
    picks = np.linspace(0, count - 1, num=min(CARD_IMAGES, count)).round().astype(int)
    return sorted(set(picks.tolist()))


@dataclass
class Predictions:
    """The held-out split as scored: which images (``indices`` into the val split and their COCO
    ``image_ids``), the model's people as COCO results in each image's own pixels, the positions
    the card shows, and one image's maps for the card (``maps``: ``image``, the evaluation square
    as HxWx3 uint8; ``heatmaps`` and ``pafs``, the network's output for it)."""

    indices: list[int]
    image_ids: list[int]
    results: list[dict]
    shown: list[int] = field(default_factory=list)
    maps: dict[str, np.ndarray] | None = None


class PoseTask(TaskDefaults):
    name = "pose"
    primary_metric = metrics.PRIMARY  # "oks_ap"
    goal = "max"
    baseline_description = ("the training people's mean pose (keypoints relative to their bbox) placed in every "
                            "true person's bbox, score 1: what knowing where people are, but not their pose, is worth")
    mixed_precision = True
    channels_last = True

    # -- data -------------------------------------------------------------------------------
    def data_info(self, cfg: RunConfig, data_root: Path) -> dict[str, Any]:
        """The keypoints the model predicts: COCO's 17, in order (the format's, checked by the
        manifest's ``categories_ok``; the network's parts are fixed to them)."""
        return {"keypoints": list(COCO_KEYPOINTS)}

    def not_comparable(self, champion_info: dict[str, Any], info: dict[str, Any]) -> str | None:
        if champion_info.get("keypoints") != info.get("keypoints"):
            return f"predicts other keypoints ({champion_info.get('keypoints')})"
        return None

    def manifest(self, ctx: RunContext) -> pd.DataFrame:
        return coco.manifest(ctx.folder, relative_to=ctx.data_root, max_side=ctx.cfg.data.max_side)

    def import_data(self, source: Path, target: Path):
        """A COCO keypoints folder (COCO 2017's names or the task's): see ``importer``."""
        return import_coco_keypoints(source, target)

    def expectations(self, ctx: RunContext) -> list:
        return coco.expectations()

    def _split(self, ctx: RunContext, split: str, transform=None) -> coco.PoseDataset:
        return coco.PoseDataset(ctx.folder, split, transform=transform, max_side=ctx.cfg.data.max_side)

    def _scored_indices(self, ctx: RunContext, count: int) -> list[int]:
        picks = even_spread(count, ctx.cfg.max_eval_samples)
        return list(range(count)) if picks is None else picks.tolist()

    # -- model ------------------------------------------------------------------------------
    def build_model(self, ctx: RunContext, pretrained: bool = True) -> nn.Module:
        if ctx.cfg.architecture not in ARCHITECTURES:
            raise ValueError(f"unknown architecture '{ctx.cfg.architecture}'; known: {', '.join(ARCHITECTURES)}")
        return ARCHITECTURES[ctx.cfg.architecture](ctx.cfg, ctx.cfg.pretrained if pretrained else "none")

    def loaders(self, ctx: RunContext) -> Loaders:
        """Augmented, shuffled training squares with their targets; the validation split
        letterboxed (the evaluation transform) with its targets, for the validation loss. Batches
        are ``(images, heatmaps, pafs, mask)``."""
        cfg, params = ctx.cfg, ctx.cfg.params
        train: Dataset = _Targets(self._split(ctx, "train"), params, train=True)
        picks = even_spread(len(train), cfg.max_train_samples)
        if picks is not None:
            train = Subset(train, picks.tolist())
        val: Dataset = _Targets(self._split(ctx, "val"), params, train=False)
        picks = even_spread(len(val), cfg.max_eval_samples)
        if picks is not None:
            val = Subset(val, picks.tolist())
        common = dict(batch_size=cfg.batch_size, num_workers=cfg.num_workers, pin_memory=torch.cuda.is_available())
        # No private generator: shuffling and augmentation draw from the global RNG, whose state
        # the checkpoint carries, so a resumed run sees the batches an uninterrupted one would.
        return Loaders(DataLoader(train, shuffle=True, **common), DataLoader(val, shuffle=False, **common))

    def optimizers(self, model: nn.Module, ctx: RunContext) -> dict[str, torch.optim.Optimizer]:
        """The configured optimiser (the book's: SGD, momentum 0.9, weight decay 1e-4, rate 1e-2)
        over the groups the config gives a rate: ``backbone`` and ``head``; a group it does not
        name stays frozen."""
        cfg = ctx.cfg
        return {"model": build_optimizer(model, openpose.param_groups(model), cfg.lr, cfg.optimizer, cfg.momentum,
                                         cfg.weight_decay)}

    def _loss_step(self, model: nn.Module, batch, device: torch.device) -> Step:
        images, heatmaps, pafs, mask = batch
        _, _, per_stage = model(to_device(images, device, self.channels_last))
        loss, paf_loss, heatmap_loss = pose_loss(per_stage, heatmaps.to(device), pafs.to(device), mask.to(device))
        count = len(images)
        return Step(loss, {"paf_loss": paf_loss.item() * count, "heatmap_loss": heatmap_loss.item() * count}, count)

    def training_step(self, model: nn.Module, batch, ctx: RunContext, device, optimizers) -> Step:
        """:func:`pose_loss` of the batch (every stage's PAFs and heatmaps); the engine does the
        update. Figures: ``paf_loss`` and ``heatmap_loss`` (their sum is the loss)."""
        return self._loss_step(model, batch, device)

    def validation_step(self, model: nn.Module, batch, ctx: RunContext, device) -> Step:
        return self._loss_step(model, batch, device)

    # -- evaluation -------------------------------------------------------------------------
    def predict_split(self, model: nn.Module, ctx: RunContext) -> Predictions:
        """The people the model finds in each validation image (letterboxed, decoded at stride 8,
        mapped back to the image's pixels) as COCO results; the card's positions and the maps of
        the first of them kept."""
        params = ctx.cfg.params
        source = self._split(ctx, "val")
        indices = self._scored_indices(ctx, len(source))
        shown = card_positions(len(indices))
        loader = DataLoader(_Scored(source, indices, params.input_size), batch_size=ctx.cfg.batch_size,
                            collate_fn=scored_collate, num_workers=ctx.cfg.num_workers)
        image_ids = [source.image_ids[index] for index in indices]
        results: list[dict] = []
        maps = None
        model.eval()
        with torch.no_grad(), progress.phase("scoring the held-out split", len(indices), "images") as bar:
            for images, placements, positions in loader:
                pafs, heatmaps = run_model(model, images)
                for prepared, paf, heatmap, placement, position in zip(images, pafs, heatmaps, placements, positions):
                    results += to_coco_results(people_in(paf, heatmap, placement, params), image_ids[position])
                    if position == shown[0]:
                        maps = {"image": picture(prepared), "heatmaps": heatmap.numpy(), "pafs": paf.numpy()}
                bar.advance(len(images))
        return Predictions(indices, image_ids, results, shown, maps)

    def score(self, predictions: Predictions, ctx: RunContext) -> dict[str, float]:
        """COCO's OKS AP (and AP50, AP75, AP medium/large, AR) on the scored validation images."""
        return metrics.scores(coco.read_split(ctx.folder, "val"), predictions.results, predictions.image_ids,
                              area_override=ctx.cfg.params.area_override)

    def baseline(self, ctx: RunContext) -> dict[str, float]:
        """The training people's mean pose in every true person's box, scored as the model is."""
        val = coco.read_split(ctx.folder, "val")
        source = self._split(ctx, "val")
        image_ids = [source.image_ids[index] for index in self._scored_indices(ctx, len(source))]
        results = metrics.mean_pose_baseline(coco.read_split(ctx.folder, "train"), val, image_ids)
        return metrics.scores(val, results, image_ids, area_override=ctx.cfg.params.area_override)

    def examples(self, model: nn.Module, ctx: RunContext, predictions: Predictions, folder: Path) -> list[Path]:
        """True and predicted skeletons of validation images, the maps of one of them over it,
        and the OKS table of the model beside the baseline's."""
        folder.mkdir(parents=True, exist_ok=True)
        source = self._split(ctx, "val")
        pictures, truths, found = [], [], []
        for position in predictions.shown:
            image, target = source[predictions.indices[position]]
            image_id = predictions.image_ids[position]
            pictures.append(image.permute(1, 2, 0).numpy())
            truths.append(target["keypoints"].numpy())
            people = [r["keypoints"] for r in predictions.results if r["image_id"] == image_id]
            found.append(np.asarray(people, dtype=np.float32).reshape(-1, len(COCO_KEYPOINTS), 3))
        written = [figures.skeletons(pictures, truths, found, folder / "validation_skeletons.png",
                                     max_images=CARD_IMAGES)]
        if predictions.maps is not None:
            written.append(figures.map_overlays(predictions.maps["image"], predictions.maps["heatmaps"],
                                                predictions.maps["pafs"], folder / "validation_maps.png"))
        written.append(figures.ap_table_html(self.score(predictions, ctx), self.baseline(ctx), folder / "oks_ap.html"))
        return written

    # -- serving ----------------------------------------------------------------------------
    def predict(self, model: nn.Module, ctx: RunContext, images) -> pd.DataFrame:
        """People in raw images (a DataFrame with an ``image`` column of encoded bytes, or a list
        of bytes / HxWxC uint8 arrays): one row per person found, best first within an image:
        ``image`` (its position in the input), ``score`` (the person's mean part and limb score)
        and, for each COCO keypoint ``<name>``, ``<name>_x``, ``<name>_y`` (in the input image's
        pixels, pixel centres at integers; 0 when the part was not found) and ``<name>_score``
        (its heatmap peak, 0 when not found). Typed even with no one found."""
        params = ctx.cfg.params
        prepare = transforms.evaluation(params.input_size)
        pictures = [v2.functional.to_image(decode_image(item)) for item in image_items(images)]
        rows = []
        model.eval()
        with torch.no_grad():
            for start in range(0, len(pictures), ctx.cfg.batch_size):
                prepared = [prepare(one) for one in pictures[start:start + ctx.cfg.batch_size]]
                pafs, heatmaps = run_model(model, torch.stack([image for image, *_ in prepared]))
                for offset, (paf, heatmap, (_, _, _, placement)) in enumerate(zip(pafs, heatmaps, prepared)):
                    for person in people_in(paf, heatmap, placement, params):
                        points = person.keypoints.astype(np.float64)
                        missing = points[:, 2] <= 0
                        points[missing] = 0.0
                        rows.append([start + offset, person.score, *points.reshape(-1).tolist()])
        return pd.DataFrame(rows, columns=ANSWER_COLUMNS).astype(ANSWER_TYPES)

    def input_example(self, ctx: RunContext) -> pd.DataFrame:
        """Two real validation images as encoded bytes (two rows: a batch of one would pin the size)."""
        source = self._split(ctx, "val")
        return pd.DataFrame({"image": [source.image_path(i).read_bytes() for i in range(min(2, len(source)))]})


TASK = PoseTask()
