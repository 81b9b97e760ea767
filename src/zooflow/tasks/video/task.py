"""Chapter 9: video action recognition with ECO.

Data: the Kinetics layout ``<split>/<class>/<clip>`` (video files PyAV decodes, or the book's
frame folders) with ``classes.txt`` (``layout.py``). Models: ``eco-lite`` (the book's network)
and ``eco-full`` (the ECO paper's, with the 2D branch). A clip is ``segments`` frames, one per
equal segment: random ones when training, centre ones when scoring (``clips.segment_indices``).

Primary metric: top-1 accuracy on the validation split, with top-5, per-class recall and a
confusion matrix. Two baselines: the training split's majority class, and a *single-frame
model* - the same network, trained and scored on one frame repeated ``segments`` times (the
middle one when scoring) - so the card shows what relating frames adds over appearance alone.
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader, Subset
from torchvision.transforms import v2

from zooflow.config import RunConfig
from zooflow.data.imagefolder import read_classes
from zooflow.data.subsets import even_spread
from zooflow.evaluation import classification as metrics
from zooflow.models import eco
from zooflow.tasks.base import RunContext, TaskDefaults, other_classes
from zooflow.tasks.video import clips, layout
from zooflow.tasks.video.figures import sampled_frames_figure
from zooflow.tasks.video.importer import import_videos
from zooflow.tasks.video.served import TOP_K, answer_table, video_items
from zooflow.training.classifier import classifier_step
from zooflow.training.engine import Loaders
from zooflow.training.optim import build_optimizer

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

log = logging.getLogger("zooflow")

ARCHITECTURES = {"eco_lite": eco.build_eco_lite, "eco_full": eco.build_eco_full}


class _CaffeInput:
    """0-1 RGB frames to the ECO authors' Caffe-era input (x255, BGR, mean subtracted)."""

    def __call__(self, frames: torch.Tensor) -> torch.Tensor:
        return eco.to_caffe_input(frames)


def transforms(cfg: RunConfig, train: bool) -> v2.Compose:
    """Clip transforms on ``[N, 3, H, W]`` uint8 videos (one set of random parameters per clip,
    so every frame is cropped alike): training takes a random crop of at least ``crop_scale`` of
    the area (and mirrors when ``flip``), scoring resizes the short side to ``resize`` and crops
    the centre; then 0-1 floats, normalised as ``input_format`` says."""
    params = cfg.params
    if train:
        geometry = [v2.RandomResizedCrop(params.input_size, scale=(params.crop_scale, 1.0), antialias=True)]
        geometry += [v2.RandomHorizontalFlip()] if params.flip else []
    else:
        geometry = [v2.Resize(params.resize or params.input_size, antialias=True), v2.CenterCrop(params.input_size)]
    scale = [v2.ToDtype(torch.float32, scale=True)]
    normalise = [_CaffeInput()] if params.input_format == "caffe" else [v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    return v2.Compose([*geometry, *scale, *normalise])


class VideoTask(TaskDefaults):
    name = "video"
    primary_metric = "accuracy"
    goal = "max"
    baseline_description = {
        "majority": "always predict the training split's majority class",
        "single_frame": "the same network trained and scored on one frame repeated (the middle one when "
                        "scoring): what appearance alone gives, without the motion between frames"}
    not_comparable = staticmethod(other_classes)
    mixed_precision = True
    single_frame = False  # the single-frame baseline's view of this task sets it

    # -- data -------------------------------------------------------------------------------
    def data_info(self, cfg: RunConfig, data_root: Path) -> dict[str, Any]:
        return {"classes": read_classes(data_root / cfg.data.folder)}

    def manifest(self, ctx: RunContext) -> pd.DataFrame:
        return layout.manifest(ctx.folder, ctx.info["classes"], ctx.cfg.params.segments, relative_to=ctx.data_root,
                               max_side=ctx.cfg.data.max_side)

    def import_data(self, source: Path, target: Path):
        """A Kinetics-style folder (``train/<class>/<clip>.mp4`` ..., or frame folders): see ``importer``."""
        return import_videos(source, target)

    def expectations(self, ctx: RunContext) -> list:
        checks = ctx.cfg.data
        return layout.expectations(ctx.info["classes"], checks.min_images_per_class, checks.min_side, checks.max_side)

    def _dataset(self, ctx: RunContext, split: str, train: bool, picks_cap: int | None = None) -> Subset:
        """The split's clips; an even spread of ``picks_cap`` of them when that caps it (its
        ``indices`` and ``dataset.targets`` give the labels without decoding anything)."""
        dataset = layout.VideoClips(ctx.folder, split, ctx.info["classes"], ctx.cfg.params.segments, train,
                                    transforms(ctx.cfg, train), self.single_frame, ctx.cfg.data.max_side)
        picks = even_spread(len(dataset), picks_cap)
        return Subset(dataset, list(range(len(dataset))) if picks is None else picks.tolist())

    def _loader(self, dataset, ctx: RunContext, train: bool) -> DataLoader:
        # No private generator: shuffling and frame sampling draw from the global RNG, whose state
        # the checkpoint carries, so a resumed run sees the same batches as an uninterrupted one.
        return DataLoader(dataset, batch_size=ctx.cfg.batch_size, shuffle=train, num_workers=ctx.cfg.num_workers,
                          pin_memory=torch.cuda.is_available(), persistent_workers=False)

    def _scored(self, ctx: RunContext):
        """The validation clips that are scored (an even spread when ``max_eval_samples`` caps them)."""
        return self._dataset(ctx, "val", False, ctx.cfg.max_eval_samples)

    # -- model ------------------------------------------------------------------------------
    def build_model(self, ctx: RunContext, pretrained: bool = True) -> nn.Module:
        cfg = ctx.cfg
        if cfg.architecture not in ARCHITECTURES:
            raise ValueError(f"unknown architecture '{cfg.architecture}'; known: {', '.join(ARCHITECTURES)}")
        return ARCHITECTURES[cfg.architecture](cfg.pretrained if pretrained else "none", len(ctx.info["classes"]),
                                               cfg.params.width, cfg.params.dropout)

    def loaders(self, ctx: RunContext) -> Loaders:
        """Shuffled training clips (random frames per segment, random crops); the scored
        validation clips (centre frames) for the validation loss and selection."""
        train = self._dataset(ctx, "train", True, ctx.cfg.max_train_samples)
        return Loaders(self._loader(train, ctx, True), self._loader(self._scored(ctx), ctx, False))

    def optimizers(self, model: nn.Module, ctx: RunContext) -> dict[str, torch.optim.Optimizer]:
        """The book's/ECO's SGD with momentum (or the config's optimiser) over ``backbone`` (the
        2D BN-Inception layers) and ``head`` (the 3D tail and fc) at the rates the config gives."""
        cfg = ctx.cfg
        return {"model": build_optimizer(model, eco.param_groups(model), cfg.lr, cfg.optimizer, cfg.momentum,
                                         cfg.weight_decay)}

    def training_step(self, model: nn.Module, batch, ctx: RunContext, device, optimizers):
        return classifier_step(model, batch, device)

    def validation_step(self, model: nn.Module, batch, ctx: RunContext, device):
        return classifier_step(model, batch, device)

    # -- evaluation -------------------------------------------------------------------------
    def predict_split(self, model: nn.Module, ctx: RunContext):
        """(probabilities, targets) over the scored validation clips."""
        return metrics.predict_loader(model, self._loader(self._scored(ctx), ctx, False))

    def score(self, predictions, ctx: RunContext) -> dict[str, float]:
        """Top-1 accuracy, top-5 (top-k with k = min(5, classes)), macro F1 and per-class
        precision / recall / F1."""
        from torchmetrics.classification import MulticlassAccuracy

        probabilities, targets = predictions
        classes = ctx.info["classes"]
        top_k = MulticlassAccuracy(len(classes), top_k=min(TOP_K, len(classes)), average="micro")
        return metrics.scores(probabilities, targets, classes) | {"top5_accuracy": top_k(probabilities, targets).item()}

    def baseline(self, ctx: RunContext) -> dict[str, dict[str, float]]:
        """The majority class of the training split, and the single-frame model (trained here, with
        the run's seed, on a fork of the RNG so the caller's stream is untouched)."""
        classes = ctx.info["classes"]
        scored = self._scored(ctx)
        targets = torch.tensor([scored.dataset.targets[i] for i in scored.indices])
        train_targets = torch.tensor(self._dataset(ctx, "train", False).dataset.targets)
        majority = int(torch.bincount(train_targets, minlength=len(classes)).argmax())
        one_hot = torch.nn.functional.one_hot(torch.full_like(targets, majority), len(classes)).float()
        return {"majority": self.score((one_hot, targets), ctx),
                "single_frame": self.score(_train_single_frame(self, ctx), ctx)}

    def examples(self, model: nn.Module, ctx: RunContext, predictions, folder: Path) -> list[Path]:
        folder.mkdir(parents=True, exist_ok=True)
        classes = ctx.info["classes"]
        probabilities, targets = predictions
        figures = [metrics.confusion_figure(probabilities, targets, classes, folder / "confusion_matrix.png")]
        scored = self._scored(ctx)  # frames() gives the sampled frames before any transform
        picks = np.linspace(0, len(scored) - 1, num=min(8, len(scored))).round().astype(int)
        confidence, guesses = probabilities.max(1)
        figures.append(sampled_frames_figure(
            [scored.dataset.frames(scored.indices[i]).numpy() for i in picks], [classes[targets[i]] for i in picks],
            [classes[guesses[i]] for i in picks], [confidence[i].item() for i in picks],
            folder / "validation_clips.png"))
        return figures

    # -- serving ----------------------------------------------------------------------------
    def predict(self, model: nn.Module, ctx: RunContext, videos) -> pd.DataFrame:
        """The top-5 classes of raw clips: a DataFrame with a ``video`` column (what the served
        model receives: encoded bytes of any container PyAV reads, or base64 text of them), or a
        list of bytes. One row per clip: ``label``, ``probability`` and ``label_1``,
        ``probability_1`` ... ``label_k``, ``probability_k`` (k = min(5, classes)), best first."""
        params = ctx.cfg.params
        preprocess = transforms(ctx.cfg, train=False)
        device = next(model.parameters()).device
        model.eval()
        rows = []
        with torch.no_grad():
            for item in video_items(videos):
                video = layout.as_video(clips.read_segments(item, params.segments, max_side=ctx.cfg.data.max_side))
                rows.append(model(preprocess(video)[None].to(device)).float().softmax(1)[0].cpu().numpy())
        return answer_table(np.stack(rows), ctx.info["classes"])

    def input_example(self, ctx: RunContext) -> pd.DataFrame:
        """Two real validation clips as bytes (two rows: a batch of one would pin the size)."""
        files = [path for _, path in layout.entries(ctx.folder, "val") if path.is_file()][:2]
        return pd.DataFrame({"video": [file.read_bytes() for file in files]})

    def serving_packages(self, cfg: RunConfig) -> tuple[str, ...]:
        """PyAV decodes the clips a served model receives."""
        return ("av",)


class SingleFrameVideoTask(VideoTask):
    """The video task as the single-frame baseline sees it: every clip one frame, repeated."""

    single_frame = True


def _train_single_frame(task: VideoTask, ctx: RunContext) -> tuple[torch.Tensor, torch.Tensor]:
    """Train the single-frame model with the engine (``single_frame_epochs``, or the run's
    epochs) and score it on the same validation clips: (probabilities, targets)."""
    from zooflow.training import engine

    params = ctx.cfg.params
    epochs = ctx.cfg.epochs if params.single_frame_epochs is None else params.single_frame_epochs
    view = SingleFrameVideoTask()
    single_ctx = dataclasses.replace(ctx, cfg=ctx.cfg.model_copy(update={"epochs": epochs}))
    devices = list(range(torch.cuda.device_count()))
    log.info("baseline: training the single-frame model (%d epochs)", epochs)
    with torch.random.fork_rng(devices=devices), tempfile.TemporaryDirectory(prefix="single-frame-") as folder:
        torch.manual_seed(ctx.cfg.seed)
        model = view.build_model(single_ctx)
        result = engine.fit(view, model, single_ctx, Path(folder), show_progress=False)
        scored = view.predict_split(model, single_ctx)
    last = result.history[-1] if result.history else {}
    log.info("baseline: single-frame model trained (last epoch: %s)",
             " ".join(f"{key}={value:.4f}" for key, value in last.items() if key != "epoch") or "none")
    return scored


TASK = VideoTask()
