"""Data-parallel training across processes (DDP): what one process of ``devices: N`` needs.

``zooflow.devices`` starts the processes under torchrun; each one calls the engine with its
``Ranks``, and the engine, written once, does the rest through this module:

- the model is wrapped in ``DistributedDataParallel``, which averages the gradients over the
  processes in backward (NCCL between GPUs, gloo between CPU processes);
- each process trains on its share of every batch: the sampler the task built draws the
  epoch's order on every rank exactly as one process would, rank 0's order is the one all
  use, and rank ``r`` takes every N-th sample of it from ``r``. So the N per-rank batches of
  ``batch_size / N`` samples together are the very batch a single process would train on, and
  with averaged gradients the update is the same (up to float error, and except where the
  model draws random numbers per sample, e.g. dropout or augmentation);
- the training figures are summed over the processes before they are divided, so
  ``train_loss`` is the global batch's, as with one process.

With ``SINGLE`` (one process, no process group) none of this runs.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Sampler

from zooflow.errors import UserError
from zooflow.training.device import pick_device


@dataclass(frozen=True)
class Ranks:
    """Where this process stands among the training processes of one run."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """The process that validates, logs, checkpoints and saves the weights (rank 0)."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1


SINGLE = Ranks()


def from_environment() -> Ranks:
    """This process's ranks as torchrun sets them (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``)."""
    return Ranks(rank=int(os.environ["RANK"]), world=int(os.environ["WORLD_SIZE"]),
                 local_rank=int(os.environ.get("LOCAL_RANK", os.environ["RANK"])))


def device_of(ranks: Ranks) -> torch.device:
    """The process's device: GPU number ``local_rank`` when CUDA is present, else the CPU; a
    run's only process takes ``pick_device()`` (as it always did)."""
    if not ranks.distributed:
        return pick_device()
    if torch.cuda.is_available():
        return torch.device("cuda", ranks.local_rank)
    return torch.device("cpu")


def join(ranks: Ranks) -> None:
    """Join the run's process group (NCCL on CUDA, gloo on CPU), from torchrun's rendezvous."""
    if torch.cuda.is_available():
        torch.cuda.set_device(ranks.local_rank)  # NCCL talks from the current device
    dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo", rank=ranks.rank,
                            world_size=ranks.world)


def leave() -> None:
    """Leave the process group (each process, once its training is over)."""
    if dist.is_initialized():
        dist.destroy_process_group()


def refuse_several_optimizers(optimizers: dict) -> None:
    """A step that updates several networks itself (a GAN's turns) never hands the engine a loss,
    so DDP has no backward to average the gradients in: such tasks train on one device."""
    if len(optimizers) > 1:
        raise UserError(f"devices > 1 trains one loss with one optimiser; this task's model takes turns between "
                        f"{len(optimizers)} optimisers ({', '.join(optimizers)}, a GAN), which DDP does not "
                        f"average: set devices: 1 (--set devices=1)")


def refuse_self_updating_step() -> None:
    """The same refusal, met at the first step: a step that made its own updates (no loss)."""
    raise UserError("devices > 1 averages the gradients of the loss a step returns; this task's step updates "
                    "its networks itself (no loss), so DDP cannot keep the processes' models equal: set devices: 1")


def wrap(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` in ``DistributedDataParallel`` (the same parameters; rank 0's are broadcast),
    its batch norms synchronised first on GPUs (``synced_batch_norm``)."""
    return _DataParallel(synced_batch_norm(model, device), device_ids=[device.index] if device.type == "cuda" else None)


class _DataParallel(DistributedDataParallel):
    """DDP through which a task's step still reads its model's own attributes (SSD's default
    boxes, ``model.priors``), as it does on the bare model: the forward pass goes through DDP
    (which prepares the gradients' averaging), an attribute DDP lacks comes from the model."""

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name == "module":  # not set yet (inside DDP's own __init__)
                raise
            return getattr(self.module, name)


def synced_batch_norm(model: nn.Module, device: torch.device) -> nn.Module:
    """On GPUs, every batch norm of ``model`` becomes a ``SyncBatchNorm``, in place: its
    statistics are then those of the global batch, as with one process (a per-rank batch of 2
    would otherwise normalise over 2 samples; PSPNet's pooled 1x1 branch cannot train on 1).
    The parameters and buffers stay the same objects under the same names, so the optimisers,
    checkpoints and saved weights are unchanged. PyTorch synchronises batch norms over GPUs only:
    CPU processes (gloo) keep their own, per-rank statistics."""
    if device.type != "cuda":
        return model
    return nn.SyncBatchNorm.convert_sync_batchnorm(model)


class RankShare(Sampler[int]):
    """Rank ``r``'s share of an epoch: every ``world``-th index of rank 0's draw of ``order``,
    from ``r``. Samples past the last multiple of ``world`` are left out, so every rank takes
    the same number of batches (at most ``world - 1`` samples an epoch)."""

    def __init__(self, order: Sampler, ranks: Ranks, device: torch.device):
        self.order, self.ranks, self.device = order, ranks, device
        self.usable = len(order) - len(order) % ranks.world

    def __iter__(self) -> Iterator[int]:
        # Every rank draws (so its RNG moves as a single process's would); rank 0's draw wins.
        drawn = torch.tensor(list(self.order), dtype=torch.int64, device=self.device)
        dist.broadcast(drawn, src=0)
        return iter(drawn[self.ranks.rank:self.usable:self.ranks.world].tolist())

    def __len__(self) -> int:
        return self.usable // self.ranks.world


def shard(loader: DataLoader, ranks: Ranks, device: torch.device) -> DataLoader:
    """The task's training loader, as this rank's share: the same dataset, collate and workers,
    ``batch_size / world`` samples per batch, drawn by ``RankShare``."""
    if not isinstance(loader, DataLoader) or loader.batch_size is None:
        raise UserError(f"devices > 1 needs the task's training batches as a torch DataLoader with a batch_size "
                        f"(got {type(loader).__name__}); train this task with devices: 1")
    if loader.batch_size % ranks.world:
        raise UserError(f"batch_size {loader.batch_size} does not split evenly over {ranks.world} devices")
    return DataLoader(loader.dataset, batch_size=loader.batch_size // ranks.world,
                      sampler=RankShare(loader.sampler, ranks, device), drop_last=loader.drop_last,
                      collate_fn=loader.collate_fn, num_workers=loader.num_workers, pin_memory=loader.pin_memory,
                      worker_init_fn=loader.worker_init_fn, persistent_workers=loader.persistent_workers,
                      timeout=loader.timeout, generator=loader.generator, prefetch_factor=loader.prefetch_factor,
                      multiprocessing_context=loader.multiprocessing_context)


def summed(sums: dict[str, float], samples: int, device: torch.device) -> tuple[dict[str, float], int]:
    """``sums`` and ``samples`` added up over every rank (the same keys on each)."""
    keys = sorted(sums)
    totals = torch.tensor([sums[key] for key in keys] + [float(samples)], dtype=torch.float64, device=device)
    dist.all_reduce(totals)
    values = totals.tolist()
    return dict(zip(keys, values[:-1])), int(values[-1])
