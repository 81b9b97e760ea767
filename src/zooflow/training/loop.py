"""One supervised training loop for every task that has an ordinary (inputs, targets) step.

Device chosen once (CUDA > CPU); on CUDA bf16 autocast and, for convnets, channels_last;
metrics per epoch to the tracker; a checkpoint dict per epoch; an interrupted run resumes from
its last checkpoint with the same random state, so the result equals an uninterrupted run.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from torch import nn

from zooflow import interrupts
from zooflow.errors import TrainingDiverged
from zooflow.training import checkpoint
from zooflow.training.device import pick_device, restore_rng_state, rng_state
from zooflow.training.optim import epoch_scheduler

EpochCallback = Callable[[int, dict[str, float]], None]


@dataclass
class TrainResult:
    device: torch.device
    epochs: int
    resumed_from_epoch: int = 0     # 0 = started from scratch
    selected_epoch: int | None = None  # the epoch whose weights were kept (None = the last)
    history: list[dict[str, float]] = field(default_factory=list)


def _batches(loader, limit: int | None):
    for index, batch in enumerate(loader):
        if limit is not None and index >= limit:
            return
        yield batch


def progress_bar(show: bool) -> Progress:
    """The per-epoch progress bar both training loops draw (transient: it leaves no lines)."""
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    disable=not show, transient=True)


def keep_frozen_batchnorm_in_eval(model: nn.Module) -> None:
    """Batch-norm layers whose parameters are frozen keep their pretrained running statistics:
    in train mode they would re-estimate them from small, shifted batches and wreck a frozen
    body's features (MobileNetV2 transfer learning)."""
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and not any(p.requires_grad for p in module.parameters()):
            module.eval()


def stop_if_diverged(value: float, where: str, what: str = "the loss") -> None:
    """Raise ``TrainingDiverged`` when ``value`` is NaN or infinite; ``where`` names the epoch and batch."""
    if not math.isfinite(value):
        raise TrainingDiverged(f"{where}: {what} is {value}, so training stopped (finished epochs keep "
                               f"their checkpoints; nothing is registered). Lower the learning rates "
                               f"(--set lr.<group>=...) or clip the gradients (--set grad_clip_norm=1.0).")


def _run_epoch(model, loader, criterion, device, optimizer=None, limit=None, channels_last=False,
               progress: Progress | None = None, description: str = "",
               grad_clip_norm: float | None = None) -> dict[str, float]:
    """One pass; trains when given an optimizer. Returns mean loss and accuracy."""
    training = optimizer is not None
    model.train(training)
    if training:
        keep_frozen_batchnorm_in_eval(model)
    total_loss, correct, seen = 0.0, 0, 0
    # what clipping measures: the global L2 norm over every parameter the optimizer trains
    clipped = [p for group in optimizer.param_groups for p in group["params"]] if training and grad_clip_norm else None
    steps = min(len(loader), limit) if limit else len(loader)
    task_id = progress.add_task(description, total=steps) if progress else None
    with torch.set_grad_enabled(training):
        for index, (inputs, targets) in enumerate(_batches(loader, limit)):
            interrupts.check(f"{description}, batch {index + 1}/{steps}")  # a Ctrl-C stops here
            inputs, targets = inputs.to(device, non_blocking=True), targets.to(device, non_blocking=True)
            if channels_last:
                inputs = inputs.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                logits = model(inputs)
                loss = criterion(logits.float(), targets)
            value = loss.item()
            stop_if_diverged(value, f"{description}, batch {index + 1}/{steps}")
            if training:
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if clipped:
                    nn.utils.clip_grad_norm_(clipped, grad_clip_norm)
                optimizer.step()
            total_loss += value * len(targets)
            correct += (logits.argmax(1) == targets).sum().item()
            seen += len(targets)
            if progress:
                progress.advance(task_id)
    if progress:
        progress.remove_task(task_id)
    return {"loss": total_loss / max(seen, 1), "accuracy": correct / max(seen, 1)}


def train_supervised(model: nn.Module, optimizer: torch.optim.Optimizer, train_loader, val_loader, *,
                     epochs: int, checkpoint_dir: Path, on_epoch: EpochCallback | None = None,
                     max_batches: int | None = None, channels_last: bool = False,
                     criterion: nn.Module | None = None, stop_after_epoch: int | None = None,
                     show_progress: bool = True, lr_schedule: str = "none",
                     grad_clip_norm: float | None = None) -> TrainResult:
    """Train ``model`` for ``epochs``, resuming from ``checkpoint_dir`` when it holds a checkpoint.

    ``stop_after_epoch`` ends the call early (as an interruption would) once that epoch is
    checkpointed; the next call resumes. Metrics reach ``on_epoch`` as ``train_loss``,
    ``train_accuracy``, ``val_loss``, ``val_accuracy`` and ``lr`` (the first group's rate that epoch).
    ``lr_schedule``: ``none`` or ``cosine`` (per epoch, see ``optim.epoch_scheduler``).
    ``grad_clip_norm``: clip the gradients' global L2 norm (the book's SSD uses 2.0). A NaN or
    infinite loss stops the run with ``TrainingDiverged`` naming the epoch and batch.
    """
    device = pick_device()
    criterion = criterion or nn.CrossEntropyLoss()
    use_channels_last = channels_last and device.type == "cuda"
    model.to(device)
    if use_channels_last:
        model.to(memory_format=torch.channels_last)
    scheduler = epoch_scheduler(optimizer, lr_schedule, epochs)
    result = TrainResult(device=device, epochs=epochs)
    start = 1
    saved = checkpoint.load(checkpoint_dir)
    if saved is not None:
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        restore_rng_state(saved["rng"])
        result.history = list(saved["history"])
        result.resumed_from_epoch = saved["epoch"]
        start = saved["epoch"] + 1
    with progress_bar(show_progress) as progress, interrupts.training():
        for epoch in range(start, epochs + 1):
            rate = optimizer.param_groups[0]["lr"]
            train = _run_epoch(model, train_loader, criterion, device, optimizer, max_batches,
                               use_channels_last, progress, f"epoch {epoch}/{epochs} train", grad_clip_norm)
            val = _run_epoch(model, val_loader, criterion, device, None, max_batches,
                             use_channels_last, progress, f"epoch {epoch}/{epochs} val")
            scheduler.step()
            metrics = {f"train_{k}": v for k, v in train.items()} | {f"val_{k}": v for k, v in val.items()}
            metrics["lr"] = rate
            result.history.append({"epoch": epoch, **metrics})
            checkpoint.save(checkpoint_dir, {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                                             "scheduler": scheduler.state_dict(),
                                             "epoch": epoch, "rng": rng_state(), "history": result.history})
            if on_epoch:
                on_epoch(epoch, metrics)
            if stop_after_epoch is not None and epoch >= stop_after_epoch and epoch < epochs:
                break
    return result
