"""The one training engine: every task's epochs, checkpoints, resume, schedules and selection.

A task supplies batches and a *step* (``training_step`` / ``validation_step``, see
``tasks/base.py``); the engine owns the rest, written once:

- the device (CUDA > CPU), bf16 autocast and channels_last on CUDA where the task opts in;
- the update: backward, gradient accumulation, gradient clipping, the optimiser step, and a
  clear stop when the loss is NaN or infinite (naming the epoch and batch);
- the learning-rate schedule per epoch (none | step | cosine | poly), its state checkpointed;
- an exponential moving average of the weights, when configured;
- validation every ``select_every`` epochs and, when ``select_metric`` is set, keeping the
  weights that scored best on it (not the last);
- an atomic checkpoint per epoch with every optimiser, scheduler, the RNG state and the best
  weights so far, so an interrupted run resumes to the same weights as an uninterrupted one;
- data-parallel training when the run has several processes (``devices: N``, ``Ranks`` from
  ``training/distributed.py``): the model in DDP, each process on its share of every batch;
  rank 0 alone validates, selects, checkpoints and reports epochs (every rank resumes from its
  checkpoint). With one process (the default) there is no process group and nothing changes.

A step returns a loss tensor (the engine updates the weights) or, for models with several
optimisers that take turns (GANs), no loss: then the step has made its own updates and only
reports its figures.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from torch import nn

from zooflow import interrupts
from zooflow.errors import TrainingDiverged, UserError
from zooflow.training import checkpoint, distributed
from zooflow.training.device import pick_device, restore_rng_state, rng_state
from zooflow.training.optim import epoch_scheduler

EpochCallback = Callable[[int, dict[str, float]], None]


@dataclass
class Step:
    """What a training or validation step hands the engine for one batch.

    ``loss``: the batch's mean loss to backpropagate, or None when the step updated the
    networks itself (several optimisers taking turns). ``sums``: the batch's totals of the
    figures to report; the epoch's figure is their sum over batches divided by the summed
    ``samples``. With a loss, the engine adds ``loss x samples`` to ``sums["loss"]`` itself."""

    loss: torch.Tensor | None
    sums: dict[str, float] = field(default_factory=dict)
    samples: int = 1


@dataclass
class Loaders:
    """The batches of one run: ``train`` (reshuffled each epoch) and ``val`` (None: no validation)."""

    train: Iterable
    val: Iterable | None = None


@dataclass(frozen=True)
class Options:
    """How the engine trains; ``from_config`` reads them from a run's config."""

    epochs: int
    max_batches: int | None = None
    lr_schedule: str = "none"
    lr_step_epochs: int | None = None
    lr_gamma: float = 0.1
    lr_poly_power: float = 0.9
    grad_clip_norm: float | None = None
    accumulate_batches: int = 1
    select_metric: str | None = None
    select_goal: str = "max"
    select_every: int = 1
    ema_decay: float | None = None
    mixed_precision: bool = False   # bf16 autocast, CUDA only
    channels_last: bool = False     # convnets, CUDA only

    @classmethod
    def from_config(cls, cfg, task) -> "Options":
        """The engine's options of a run config, plus what the task says about its model."""
        return cls(epochs=cfg.epochs, max_batches=cfg.max_batches, lr_schedule=cfg.lr_schedule,
                   lr_step_epochs=cfg.lr_step_epochs, lr_gamma=cfg.lr_gamma, lr_poly_power=cfg.lr_poly_power,
                   grad_clip_norm=cfg.grad_clip_norm, accumulate_batches=cfg.accumulate_batches,
                   select_metric=cfg.select_metric, select_goal=cfg.select_goal, select_every=cfg.select_every,
                   ema_decay=cfg.ema_decay, mixed_precision=task.mixed_precision,
                   channels_last=task.channels_last)


@dataclass
class TrainResult:
    device: torch.device
    epochs: int
    resumed_from_epoch: int = 0        # 0 = started from scratch
    selected_epoch: int | None = None  # the epoch whose weights were kept (None = the last)
    finished: bool = False             # False when ``stop_after_epoch`` ended the call early
    history: list[dict[str, float]] = field(default_factory=list)


def progress_bar(show: bool) -> Progress:
    """The per-epoch progress bar (transient: it leaves no lines)."""
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


def to_device(tensor: torch.Tensor, device: torch.device, channels_last: bool = False) -> torch.Tensor:
    """A batch tensor on ``device``; image batches in channels_last on CUDA when asked (the
    memory layout convnets run fastest in there)."""
    tensor = tensor.to(device, non_blocking=True)
    if channels_last and device.type == "cuda" and tensor.dim() == 4:
        tensor = tensor.contiguous(memory_format=torch.channels_last)
    return tensor


class _Selection:
    """The best validation score so far and its weights (on the CPU, so they live in the checkpoint)."""

    def __init__(self, metric: str | None, goal: str, saved: dict | None = None):
        if goal not in ("min", "max"):
            raise ValueError(f"select_goal must be 'min' or 'max', got {goal!r}")
        self.metric, self.goal = metric, goal
        self.best = saved or {"state": None, "value": None, "epoch": None}

    def offer(self, model: nn.Module, scores: dict[str, float], epoch: int) -> None:
        if self.metric is None:
            return
        if self.metric not in scores:
            raise UserError(f"select_metric {self.metric!r} is not a validation figure of this task; "
                            f"it reports {', '.join(sorted(scores))}")
        value, best = scores[self.metric], self.best["value"]
        if best is None or (value < best if self.goal == "min" else value > best):
            state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
            self.best = {"state": state, "value": value, "epoch": epoch}


class _Updater:
    """Turns a step's loss into weight updates: backward (scaled for accumulation), clipping
    of the global gradient norm, and the optimisers' step every ``accumulate`` batches."""

    def __init__(self, optimizers: dict[str, torch.optim.Optimizer], options: Options):
        self.optimizers, self.options = optimizers, options
        self.accumulate = options.accumulate_batches
        # what clipping measures: the global L2 norm over every parameter the optimisers train
        self.clipped = [p for o in optimizers.values() for g in o.param_groups for p in g["params"]]

    def backward(self, loss: torch.Tensor, index: int, batches: int) -> None:
        if index % self.accumulate == 0:
            for optimizer in self.optimizers.values():
                optimizer.zero_grad(set_to_none=True)
        # each batch's loss is a mean, so a window of N batches sums N means / N: one big batch's mean
        (loss / self.accumulate if self.accumulate > 1 else loss).backward()
        if (index + 1) % self.accumulate == 0 or index + 1 == batches:
            if self.options.grad_clip_norm:
                nn.utils.clip_grad_norm_(self.clipped, self.options.grad_clip_norm)
            for optimizer in self.optimizers.values():
                optimizer.step()

    def refuse_self_updating_step(self) -> None:
        """Clipping and accumulation need the loss; a step that updates its networks itself keeps it."""
        if self.options.grad_clip_norm or self.accumulate > 1:
            raise UserError("grad_clip_norm and accumulate_batches apply to tasks with one loss; this task's "
                            "step updates several networks itself (a GAN), so leave them unset")


def _limit(loader: Iterable, limit: int | None) -> int:
    count = len(loader)
    return min(count, limit) if limit else count


Totals = Callable[[dict[str, float], int], tuple[dict[str, float], int]]


def _epoch(step: Callable[[Any, int], Step], loader: Iterable, batches: int, description: str,
           progress: Progress, on_step: Callable[[Step, int, str], None] | None = None,
           totals: Totals | None = None) -> dict[str, float]:
    """One pass over ``batches`` of ``loader``; the means of the steps' figures (``totals``
    first adds up the sums and samples of every process, when several share the epoch)."""
    sums: dict[str, float] = {}
    samples = 0
    task_id = progress.add_task(description, total=batches)
    for index, batch in enumerate(loader):
        if index >= batches:
            break
        where = f"{description}, batch {index + 1}/{batches}"
        interrupts.check(where)  # a Ctrl-C stops here
        result = step(batch, index)
        if result.loss is not None:
            value = result.loss.item()
            stop_if_diverged(value, where)
            sums["loss"] = sums.get("loss", 0.0) + value * result.samples
        elif on_step:  # a step that updated its networks itself: its losses are in its figures
            for key, value in result.sums.items():
                stop_if_diverged(value, where, f"the training loss {key!r}")
        if on_step:
            on_step(result, index, where)
        for key, value in result.sums.items():
            sums[key] = sums.get(key, 0.0) + value
        samples += result.samples
        progress.advance(task_id)
    progress.remove_task(task_id)
    if totals is not None:
        sums, samples = totals(sums, samples)
    return {key: value / max(samples, 1) for key, value in sums.items()}


# What torch's batch norm says when a training batch holds one sample (per channel, one value).
_BATCH_NORM_ON_ONE_SAMPLE = "Expected more than 1 value per channel when training"


def one_sample_batch_norm(batch_size: int | None, ranks: distributed.Ranks, where: str) -> str:
    """Why a batch norm stopped training, and what to change: its batch had one sample."""
    if ranks.distributed:
        share = f"each of the {ranks.world} devices trains on batch_size / devices = {batch_size} sample(s)"
    else:
        share = f"the batch held one sample (batch_size {batch_size}, or the epoch's last, partial batch)"
    return (f"{where}: a batch norm layer cannot train on one sample, and {share}; raise batch_size (GPUs "
            f"synchronise batch norms over devices, CPU processes do not)")


def train(model: nn.Module, task, ctx, loaders: Loaders, optimizers: dict[str, torch.optim.Optimizer],
          options: Options, checkpoint_dir: Path, *, on_epoch: EpochCallback | None = None,
          stop_after_epoch: int | None = None, show_progress: bool = True,
          ranks: distributed.Ranks = distributed.SINGLE) -> TrainResult:
    """Train ``model`` with ``task``'s ``training_step`` (and ``validation_step`` when
    ``loaders.val`` is set; both receive ``ctx``, the run's context), resuming from
    ``checkpoint_dir`` when it holds a checkpoint. ``ranks``: this process's place when several
    train together (only rank 0 validates, checkpoints and calls ``on_epoch``).

    Metrics reach ``on_epoch`` as ``train_<figure>``, ``val_<figure>``, ``lr`` (``lr_<name>`` per
    optimiser when there are several) and, with selection, ``selected_epoch``. At the end the
    selected weights (if any) are loaded into ``model``. ``stop_after_epoch`` ends the call early,
    as an interruption would, once that epoch is checkpointed; the next call resumes."""
    device = distributed.device_of(ranks)
    use_channels_last = options.channels_last and device.type == "cuda"
    autocast = options.mixed_precision and device.type == "cuda"
    model.to(device)
    if use_channels_last:
        model.to(memory_format=torch.channels_last)
    result = TrainResult(device=device, epochs=options.epochs)
    schedulers = {name: epoch_scheduler(optimizer, options.lr_schedule, options.epochs, options.lr_step_epochs,
                                        options.lr_gamma, options.lr_poly_power)
                  for name, optimizer in optimizers.items()}
    averaged = _averaged(model, options.ema_decay) if options.ema_decay else None
    scored = averaged.module if averaged is not None else model
    updater = _Updater(optimizers, options)
    start, saved = 1, checkpoint.load(checkpoint_dir)
    selection = _Selection(options.select_metric, options.select_goal, saved["best"] if saved else None)
    if saved is not None:
        model.load_state_dict(saved["model"])
        for name, optimizer in optimizers.items():
            optimizer.load_state_dict(saved["optimizers"][name])
            schedulers[name].load_state_dict(saved["schedulers"][name])
        if averaged is not None:
            averaged.load_state_dict(saved["averaged"])
        restore_rng_state(saved["rng"])
        result.history = list(saved["history"])
        result.resumed_from_epoch = start = saved["epoch"]
        start += 1

    trained, train_loader, totals = model, loaders.train, None
    if ranks.distributed:
        distributed.refuse_several_optimizers(optimizers)
        trained = distributed.wrap(model, device)  # the same parameters; backward averages their gradients
        train_loader = distributed.shard(loaders.train, ranks, device)
        totals = lambda sums, samples: distributed.summed(sums, samples, device)  # noqa: E731
    validating = loaders.val is not None and ranks.main

    train_batches = _limit(train_loader, options.max_batches)

    def training_step(batch, index: int) -> Step:
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=autocast):
            try:
                return task.training_step(trained, batch, ctx, device, optimizers)
            except ValueError as error:
                if _BATCH_NORM_ON_ONE_SAMPLE not in str(error):
                    raise
                raise UserError(one_sample_batch_norm(getattr(train_loader, "batch_size", None), ranks,
                                                      f"epoch {epoch}, batch {index + 1}")) from None

    def update(step: Step, index: int, where: str) -> None:
        if step.loss is None:
            updater.refuse_self_updating_step()
            if ranks.distributed:
                distributed.refuse_self_updating_step()
        else:
            updater.backward(step.loss, index, train_batches)
        if averaged is not None:
            averaged.update_parameters(model)

    def validation_step(batch, index: int) -> Step:
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=autocast):
            return task.validation_step(scored, batch, ctx, device)

    with progress_bar(show_progress) as progress, interrupts.training():
        for epoch in range(start, options.epochs + 1):
            rates = {name: optimizer.param_groups[0]["lr"] for name, optimizer in optimizers.items()}
            model.train()
            keep_frozen_batchnorm_in_eval(model)
            with torch.set_grad_enabled(True):
                metrics = {f"train_{k}": v for k, v in _epoch(training_step, train_loader, train_batches,
                                                              f"epoch {epoch}/{options.epochs} train", progress,
                                                              update, totals).items()}
            if validating and (epoch % options.select_every == 0 or epoch == options.epochs):
                scored.eval()
                with torch.no_grad():
                    scores = _epoch(validation_step, loaders.val, _limit(loaders.val, options.max_batches),
                                    f"epoch {epoch}/{options.epochs} val", progress)
                metrics |= {f"val_{k}": v for k, v in scores.items()}
                selection.offer(scored, scores, epoch)
            for scheduler in schedulers.values():
                scheduler.step()
            metrics |= {"lr": rate for rate in rates.values()} if len(rates) == 1 else \
                {f"lr_{name}": rate for name, rate in rates.items()}
            if options.select_metric is not None:
                metrics["selected_epoch"] = float(selection.best["epoch"] or 0)
            result.history.append({"epoch": epoch, **metrics})
            if ranks.main:  # the others only train: rank 0's checkpoint and figures are the run's
                checkpoint.save(checkpoint_dir, {"model": model.state_dict(), "epoch": epoch, "rng": rng_state(),
                                                 "optimizers": {n: o.state_dict() for n, o in optimizers.items()},
                                                 "schedulers": {n: s.state_dict() for n, s in schedulers.items()},
                                                 "history": result.history, "best": selection.best,
                                                 **({"averaged": averaged.state_dict()} if averaged is not None
                                                    else {})})
                if on_epoch:
                    on_epoch(epoch, metrics)
            if stop_after_epoch is not None and stop_after_epoch <= epoch < options.epochs:
                return result
    if selection.best["state"] is not None:
        model.load_state_dict(selection.best["state"])
        result.selected_epoch = selection.best["epoch"]
    elif averaged is not None:  # no selection: the average is the model
        model.load_state_dict(averaged.module.state_dict())
    model.eval()
    result.finished = True
    return result


def fit(task, model: nn.Module, ctx, checkpoint_dir: Path, on_epoch: EpochCallback | None = None,
        stop_after_epoch: int | None = None, show_progress: bool = True,
        ranks: distributed.Ranks = distributed.SINGLE) -> TrainResult:
    """Train ``model`` for the run of ``ctx`` with the task's loaders, optimisers and steps, then
    let the task finish the model (``after_training``, e.g. an anomaly threshold picked on
    validation data; rank 0's job when several processes train). ``epochs: 0`` trains nothing:
    the model is evaluated as built (pretrained)."""
    options = Options.from_config(ctx.cfg, task)
    if options.epochs == 0:
        device = pick_device()
        model.to(device).eval()
        task.after_training(model, ctx)
        return TrainResult(device=device, epochs=0, finished=True)
    loaders = task.loaders(ctx)
    # optimisers are built on the parameters where they will live
    model.to(distributed.device_of(ranks))
    result = train(model, task, ctx, loaders, task.optimizers(model, ctx), options, checkpoint_dir, on_epoch=on_epoch,
                   stop_after_epoch=stop_after_epoch, show_progress=show_progress, ranks=ranks)
    if result.finished and ranks.main:
        task.after_training(model, ctx)
    return result


def _averaged(model: nn.Module, decay: float) -> torch.optim.swa_utils.AveragedModel:
    """An exponential moving average of ``model`` (parameters and buffers), updated per step."""
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)
