"""What the benchmark scripts share: a run context on the demo data, pre-materialised batches,
a bare PyTorch training pass, timers, one table and one JSON file per script.

Not a test and not part of the package: the scripts import it from their own folder
(``python benchmarks/<script>.py`` puts ``benchmarks/`` first on ``sys.path``).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import platform
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable

REPO = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
# Caches the tasks write while building loaders (the digit judge of the generation task) go to
# a scratch project that outlives one invocation, so the judge trains once, not every run.
SCRATCH = Path(tempfile.gettempdir()) / "zooflow-benchmarks"

os.environ.setdefault("ZOOFLOW_OFFLINE", "1")  # a benchmark never downloads weights
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")  # no weight-loading reports between the figures
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


def use_scratch_home(folder: Path = SCRATCH) -> Path:
    """Point zooflow's project root (caches, judges) at ``folder`` unless the caller chose one."""
    folder.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("ZOOFLOW_HOME", str(folder))
    return Path(os.environ["ZOOFLOW_HOME"])


def data_root_for(folder: str, scratch: Path = SCRATCH) -> Path:
    """A data root that holds ``<root>/<folder>``: the repo's own ``data/`` when it has that
    folder (only read), else the demo data built once into the scratch folder."""
    if (REPO / "data" / folder).is_dir():
        return REPO / "data"
    from zooflow.data.demo import BUILDERS

    root = scratch / "data"
    if not (root / folder).is_dir():
        print(f"building the demo data of {folder} into {root}", flush=True)
        BUILDERS[folder](root / folder)
    return root


def context(task_name: str, model_name: str, profile: str, overrides: dict | None = None):
    """(task, RunContext) for one model's profile on its demo data, the way a run builds them."""
    from zooflow import config
    from zooflow.tasks import get_task
    from zooflow.tasks.base import RunContext

    cfg = config.resolve(task_name, model_name, profile, overrides=overrides or None)
    task = get_task(cfg.module)
    root = data_root_for(cfg.data.folder)
    return task, RunContext(cfg=cfg, info=task.data_info(cfg, root), data_root=root)


def materialise(loader: Iterable, count: int, size: int | None = None) -> list:
    """``count`` batches of ``loader``, starting it again when it runs out, held in memory: both
    loops of a comparison then consume the very same batches, and the DataLoader is not measured.
    ``size``: keep only batches of that many samples (an epoch's short last batch would change
    the shapes a GPU kernel or ``torch.compile`` sees), unless the loader yields none that big."""
    batches: list = []
    for _ in range(count + 1):  # each pass adds at least one batch, or none is ever that big
        for batch in itertools.islice(iter(loader), count):
            if size is None or batch_samples(batch) == size:
                batches.append(batch)
            if len(batches) == count:
                return batches
    if not batches and size is not None:
        return materialise(loader, count)
    if not batches:
        raise ValueError("the training loader yields no batch")
    return (batches * count)[:count]


def first_tensor(batch):
    """The first tensor in a batch (a tensor, or tuples/lists/dicts of them), or None."""
    import torch

    if isinstance(batch, torch.Tensor):
        return batch
    items = batch.values() if isinstance(batch, dict) else batch if isinstance(batch, (list, tuple)) else ()
    for item in items:
        found = first_tensor(item)
        if found is not None:
            return found
    return None


def batch_samples(batch) -> int:
    """Samples in a batch: the leading size of its first tensor (images, token ids, real digits).
    Counted from the batch, not ``Step.samples``, because a self-updating GAN step reports 1."""
    tensor = first_tensor(batch)
    return int(tensor.shape[0]) if tensor is not None and tensor.dim() else 1


def synchronize(device) -> None:
    """Wait for queued GPU work, so a wall-clock time covers it (a no-op on the CPU)."""
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset(model, state: dict, seed: int) -> None:
    """The model's starting weights again, and the seed, so every pass starts from the same
    point and draws the same dropout masks and GAN noise."""
    from zooflow.training.device import seed_everything

    model.load_state_dict(state)
    seed_everything(seed)


def snapshot(model) -> dict:
    """A copy of the model's weights and buffers (on the CPU) to ``reset`` to."""
    return {key: value.detach().cpu().clone() for key, value in model.state_dict().items()}


def bare_pass(task, model, ctx, batches: list, optimizers: dict, device, autocast: bool = False) -> float:
    """Seconds for one plain PyTorch pass over ``batches``: the task's own ``training_step`` for
    the forward and loss, then zero_grad / backward / step (a self-updating GAN step has updated
    the networks itself). No progress, no checks, no checkpoint: the floor the engine is held to.

    Frozen batch-norm layers stay in eval mode as the engine keeps them: that decides what the
    model computes, so both loops must agree on it."""
    import torch

    from zooflow.training.engine import keep_frozen_batchnorm_in_eval

    model.train()
    keep_frozen_batchnorm_in_eval(model)
    synchronize(device)
    started = time.perf_counter()
    for batch in batches:
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=autocast):
            step = task.training_step(model, batch, ctx, device, optimizers)
        if step.loss is not None:
            for optimizer in optimizers.values():
                optimizer.zero_grad(set_to_none=True)
            step.loss.backward()
            for optimizer in optimizers.values():
                optimizer.step()
    synchronize(device)
    return time.perf_counter() - started


class TimedBatches:
    """A list of batches that notes when the first batch is taken and when the consumer asks
    past the last one, i.e. the span of the training steps inside a call such as
    ``engine.train`` (its setup before and its checkpoint after are left out)."""

    def __init__(self, batches: list, device):
        self.batches, self.device = batches, device
        self.started = self.ended = None
        self.after_steps = None  # called once the steps are done (e.g. to read peak memory)

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self):
        synchronize(self.device)
        self.started = time.perf_counter()
        yield from self.batches
        synchronize(self.device)
        self.ended = time.perf_counter()
        if self.after_steps:
            self.after_steps()

    @property
    def seconds(self) -> float:
        return self.ended - self.started


@contextlib.contextmanager
def timed_checkpoints():
    """Times every checkpoint write the engine makes (``checkpoint.save``), by wrapping the
    function the engine calls; yields the list of (seconds, bytes) it fills."""
    from zooflow.training import checkpoint

    original, writes = checkpoint.save, []

    def save(folder, state):
        started = time.perf_counter()
        path = original(folder, state)
        writes.append((time.perf_counter() - started, Path(path).stat().st_size))
        return path

    checkpoint.save = save
    try:
        yield writes
    finally:
        checkpoint.save = original


def add_common_arguments(parser, set_example: str = "batch_size=8") -> None:
    """The options every benchmark script takes: ``--models``, ``--set``, ``--threads``."""
    parser.add_argument("--models", nargs="*", help="only these (substring of task:model, e.g. vgg16 sentiment:bert)")
    parser.add_argument("--set", dest="sets", action="append", metavar="KEY=VALUE",
                        help=f"config override for every model, as zooflow run --set (e.g. {set_example})")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's own, one per core)")


def start(args, scratch_home: bool = True) -> dict:
    """Apply the common options (threads; a scratch zooflow home for caches) and return the
    checked ``--set`` overrides."""
    set_threads(args.threads)
    if scratch_home:
        use_scratch_home()
    return parse_sets(args.sets)


def set_threads(count: int | None) -> None:
    """Pin torch's intra-op threads (None: torch's default, one per core). One thread gives
    steadier figures on a shared machine, where an OpenMP barrier waits on a descheduled thread."""
    import torch

    if count:
        torch.set_num_threads(count)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def parse_sets(pairs: list[str] | None) -> dict:
    """``--set key=value`` pairs, checked like ``zooflow run --set``."""
    from zooflow.config import parse_overrides

    return parse_overrides(pairs or [])


def selected(pairs: list[tuple[str, str]], patterns: list[str] | None) -> list[tuple[str, str]]:
    """The (task, model) pairs whose ``task:model`` or model name contains one of ``patterns``."""
    if not patterns:
        return pairs
    return [(t, m) for t, m in pairs if any(p in f"{t}:{m}" for p in patterns)]


def machine() -> dict:
    """Where the figures were taken: host, cores, torch, device, commit."""
    import torch

    try:
        commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return {"host": platform.node(), "cpus": os.cpu_count(), "torch": torch.__version__,
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "threads": torch.get_num_threads(), "commit": commit,
            "when": datetime.now(timezone.utc).isoformat(timespec="seconds")}


@dataclass
class Column:
    key: str
    title: str
    fmt: str = "{}"


def table(rows: list[dict], columns: list[Column]) -> str:
    """A markdown table (readable in a terminal and pasteable into the README)."""
    def cell(row, column):
        value = row.get(column.key)
        if value is None:
            return "-"
        try:
            return column.fmt.format(value)
        except (ValueError, TypeError):
            return str(value)

    lines = ["| " + " | ".join(c.title for c in columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(cell(row, c) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def write_json(name: str, payload: dict) -> Path:
    """``payload`` as ``<name>.json`` in ``$OUT`` when set (a lent machine hands that folder
    back), else in ``benchmarks/results/``."""
    folder = Path(os.environ["OUT"]) if os.environ.get("OUT") else RESULTS
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    return path
