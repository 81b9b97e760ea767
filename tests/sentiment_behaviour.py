"""What the demo-behaviour tests share: clear sentences whose label no usable sentiment model
gets wrong, and training a model exactly as `make demo` does. The English Transformer's test
lives in a file of its own so the two slowest trainings of the suite run on different workers."""

from __future__ import annotations

from pathlib import Path

import torch

from zooflow.config import resolve
from zooflow.data.demo import BUILDERS
from zooflow.tasks import get_task
from zooflow.tasks.base import RunContext
from zooflow.training.device import seed_everything
from zooflow.training.engine import fit

CLEAR = {
    "sentiment": (["I absolutely love this, it is wonderful and amazing!",
                   "Great job, thank you so much, what a fantastic experience."],
                  ["This is terrible, I hate it. Awful.",
                   "Worst customer service ever, rude staff and a broken product."]),
    "sentiment-ja": (["とても素晴らしい映画でした。また見たいです。", "料理がおいしくて、店員さんも親切でした。"],
                     ["最悪の対応で、二度と行きません。", "すぐに壊れてしまい、本当にがっかりしました。"]),
}
FOLDERS = {"sentiment": "sentiment-en", "sentiment-ja": "sentiment-ja"}


def assert_demo_model_reads_clear_sentences(task_name: str, model: str, data_root: Path, checkpoints: Path) -> None:
    """Build the task's demo data, train its demo profile as `make demo` does - with torch's own
    thread count for this machine, whatever the test runner set: the count changes the order of
    float sums, so only the same count gives `make demo`'s weights - and check its answers."""
    from tests.conftest import TORCH_THREADS

    folder = data_root / FOLDERS[task_name]
    if not folder.exists():
        BUILDERS[FOLDERS[task_name]](folder)
    cfg = resolve(task_name, model, "demo")
    task = get_task(cfg.module)
    ctx = RunContext(cfg=cfg, info=task.data_info(cfg, data_root), data_root=data_root)
    saved = torch.get_num_threads()
    torch.set_num_threads(TORCH_THREADS)
    try:
        seed_everything(cfg.seed)
        trained = task.build_model(ctx)
        fit(task, trained, ctx, checkpoints, lambda epoch, metrics: None)
    finally:
        torch.set_num_threads(saved)
    positive, negative = CLEAR[task_name]
    answer = task.predict(trained, ctx, positive + negative)
    assert answer["label"].tolist() == ["pos"] * len(positive) + ["neg"] * len(negative), answer
