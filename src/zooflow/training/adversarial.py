"""One training loop for adversarial models (GANs, BiGANs): two or more networks, each with
its own optimiser, stepped by a task's ``AdversarialSteps``.

GAN losses say little about sample quality and GANs drift and collapse, so the loop scores the
model on validation data every ``select_every`` epochs (``select``: FID of samples, anomaly
AUROC, ...) and keeps the best weights, not the last. Like the supervised loop: one device
(CUDA > CPU), metrics per epoch, an atomic checkpoint per epoch with every optimiser, the RNG
state and the best weights so far, so an interrupted run resumes to the same result.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from zooflow import interrupts
from zooflow.training import checkpoint
from zooflow.training.device import pick_device, restore_rng_state, rng_state
from zooflow.training.loop import EpochCallback, TrainResult, progress_bar, stop_if_diverged
from zooflow.training.optim import epoch_scheduler


class AdversarialSteps(Protocol):
    def optimizers(self, model: nn.Module) -> dict[str, torch.optim.Optimizer]:
        """One optimiser per network, by name."""

    def step(self, model: nn.Module, real: torch.Tensor, optimizers: dict[str, torch.optim.Optimizer]) -> dict[str, float]:
        """One update of every network on a batch of real images; the batch's losses and
        balance figures (e.g. the discriminator's mean belief in real and fake images)."""


def _cpu_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def train_adversarial(model: nn.Module, steps: AdversarialSteps, images: torch.Tensor, *, epochs: int,
                      batch_size: int, checkpoint_dir: Path, select: Callable[[nn.Module], dict[str, float]],
                      select_metric: str, goal: str, select_every: int = 1, on_epoch: EpochCallback | None = None,
                      max_batches: int | None = None, stop_after_epoch: int | None = None,
                      show_progress: bool = True, average_decay: float | None = None,
                      lr_schedule: str = "none") -> TrainResult:
    """Train on ``images`` (N, C, H, W, already preprocessed) for ``epochs``; keep the weights
    that score best on ``select_metric`` (``goal`` "min" or "max") and load them into ``model``
    at the end. Metrics reach ``on_epoch`` as ``train_<loss>`` means and ``val_<metric>``.

    ``average_decay``: also keep an exponential moving average of the weights (and batch-norm
    statistics), updated after every step; then the average, not the raw weights, is what is
    scored and kept. GAN weights oscillate from step to step; their average is a steadier model
    (the EfficientGAN paper scores its averaged weights, decay 0.999)."""
    if goal not in ("min", "max"):
        raise ValueError(f"goal must be 'min' or 'max', got {goal!r}")
    device = pick_device()
    model.to(device)
    optimizers = steps.optimizers(model)
    averaged = _averaged(model, average_decay) if average_decay else None
    scored = averaged.module if averaged is not None else model
    schedulers = {name: epoch_scheduler(optimizer, lr_schedule, epochs) for name, optimizer in optimizers.items()}
    # drop_last: a batch of one breaks batch norm, and equal batches keep the D/G balance steady.
    loader = DataLoader(TensorDataset(images), batch_size=batch_size, shuffle=True, drop_last=len(images) > batch_size)
    result = TrainResult(device=device, epochs=epochs)
    best = {"state": None, "value": None, "epoch": None}
    start = 1
    saved = checkpoint.load(checkpoint_dir)
    if saved is not None:
        model.load_state_dict(saved["model"])
        for name, optimizer in optimizers.items():
            optimizer.load_state_dict(saved["optimizers"][name])
            if name in saved.get("schedulers", {}):
                schedulers[name].load_state_dict(saved["schedulers"][name])
        if averaged is not None:
            averaged.load_state_dict(saved["averaged"])
        restore_rng_state(saved["rng"])
        result.history, best = list(saved["history"]), saved["best"]
        result.resumed_from_epoch = saved["epoch"]
        start = saved["epoch"] + 1
    better = (lambda a, b: a < b) if goal == "min" else (lambda a, b: a > b)
    with progress_bar(show_progress) as progress, interrupts.training():
        for epoch in range(start, epochs + 1):
            model.train()
            sums: dict[str, float] = {}
            batches = min(len(loader), max_batches) if max_batches else len(loader)
            task_id = progress.add_task(f"epoch {epoch}/{epochs} train", total=batches)
            for index, (real,) in enumerate(loader):
                if index >= batches:
                    break
                interrupts.check(f"epoch {epoch}/{epochs}, batch {index + 1}/{batches}")  # a Ctrl-C stops here
                for key, value in steps.step(model, real.to(device, non_blocking=True), optimizers).items():
                    stop_if_diverged(value, f"epoch {epoch}/{epochs}, batch {index + 1}/{batches}",
                                     f"the training loss {key!r}")
                    sums[key] = sums.get(key, 0.0) + value
                if averaged is not None:
                    averaged.update_parameters(model)
                progress.advance(task_id)
            progress.remove_task(task_id)
            for scheduler in schedulers.values():
                scheduler.step()
            metrics = {f"train_{key}": value / max(batches, 1) for key, value in sums.items()}
            if epoch % select_every == 0 or epoch == epochs:
                scored.eval()
                scores = select(scored)
                metrics |= {f"val_{key}": value for key, value in scores.items()}
                value = scores[select_metric]
                if best["value"] is None or better(value, best["value"]):
                    best = {"state": _cpu_state(scored), "value": value, "epoch": epoch}
            metrics["selected_epoch"] = float(best["epoch"] or 0)
            result.history.append({"epoch": epoch, **metrics})
            checkpoint.save(checkpoint_dir, {"model": model.state_dict(), "epoch": epoch, "rng": rng_state(),
                                             "optimizers": {n: o.state_dict() for n, o in optimizers.items()},
                                             "schedulers": {n: o.state_dict() for n, o in schedulers.items()},
                                             "history": result.history, "best": best,
                                             **({"averaged": averaged.state_dict()} if averaged is not None else {})})
            if on_epoch:
                on_epoch(epoch, metrics)
            if stop_after_epoch is not None and epoch >= stop_after_epoch and epoch < epochs:
                return result
    if best["state"] is not None:
        model.load_state_dict(best["state"])
        result.selected_epoch = best["epoch"]
    model.eval()
    return result


def _averaged(model: nn.Module, decay: float) -> torch.optim.swa_utils.AveragedModel:
    """An exponential moving average of ``model`` (parameters and buffers), updated per step."""
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


@contextmanager
def frozen(*modules: nn.Module):
    """A context in which ``modules``' parameters take no gradients: the other network's step,
    or a search over inputs that must not spend a backward pass on the weights."""
    parameters = [p for m in modules for p in m.parameters() if p.requires_grad]
    for p in parameters:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in parameters:
            p.requires_grad_(True)
