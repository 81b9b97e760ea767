"""What the demo-behaviour tests share: clear sentences whose label no usable sentiment model
gets wrong, and training a model on its demo profile. The English Transformer's test lives in a
file of its own so the two slowest trainings of the suite run on different workers.

The sentences must hold for any demo-trained model, not one set of weights: the thread count
changes the order of float sums and so the weights (`make demo` uses torch's own count, `make
test` one thread a worker). The Japanese model learns its embeddings from 532 reviews and reads
some plain sentences either way by seed and thread count ("料理がおいしくて、店員さんも親切でした。"
was negative for seed 1234 on 1 and 2 threads, positive for seeds 1 and 2); the Japanese
sentences below were read right, p >= 0.99, by seeds 1234, 1 and 2 on one thread and seed 1234
on two."""

from __future__ import annotations

from pathlib import Path

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
    "sentiment-ja": (["スタッフの対応が素晴らしく、とても満足しています。", "丁寧に対応していただき、本当に助かりました。"],
                     ["期待外れで、お金の無駄でした。", "すぐに壊れてしまい、本当にがっかりしました。"]),
}
FOLDERS = {"sentiment": "sentiment-en", "sentiment-ja": "sentiment-ja"}


def assert_demo_model_reads_clear_sentences(task_name: str, model: str, data_root: Path, checkpoints: Path) -> None:
    """Build the task's demo data, train its demo profile (with the thread count the test
    runner set: one a worker, so two trainings never fight over the two cores) and check its
    answers."""
    folder = data_root / FOLDERS[task_name]
    if not folder.exists():
        BUILDERS[FOLDERS[task_name]](folder)
    cfg = resolve(task_name, model, "demo")
    task = get_task(cfg.module)
    ctx = RunContext(cfg=cfg, info=task.data_info(cfg, data_root), data_root=data_root)
    seed_everything(cfg.seed)
    trained = task.build_model(ctx)
    fit(task, trained, ctx, checkpoints, lambda epoch, metrics: None)
    positive, negative = CLEAR[task_name]
    answer = task.predict(trained, ctx, positive + negative)
    assert answer["label"].tolist() == ["pos"] * len(positive) + ["neg"] * len(negative), answer
