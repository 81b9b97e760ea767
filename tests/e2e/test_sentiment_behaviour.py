"""Behaviour of the demo-profile text models (trained here, as `make demo` trains them): clearly
positive and clearly negative sentences, in English and Japanese, get the right label.
These train real models for a few minutes: the slowest tests of the suite."""

import pytest

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


@pytest.fixture(scope="module", autouse=True)
def threads_of_make_demo():
    """Train with the threads `make demo` uses (one per core), whatever the test runner set:
    the thread count changes the order of float sums, so the weights (and the answers of these
    borderline demo models) are those of `make demo` only with the same count."""
    import torch

    from tests.conftest import TORCH_THREADS

    saved = torch.get_num_threads()
    torch.set_num_threads(TORCH_THREADS)
    yield
    torch.set_num_threads(saved)


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("behaviour")
    for folder in ("sentiment-en", "sentiment-ja"):
        BUILDERS[folder](root / folder)
    return root


@pytest.mark.slow
@pytest.mark.parametrize("task_name,model", [("sentiment-ja", "transformer"), ("sentiment", "transformer"),
                                             ("sentiment", "bert")])
def test_demo_model_reads_clear_sentences_right(data_root, tmp_path, task_name, model):
    cfg = resolve(task_name, model, "demo")
    task = get_task(cfg.module)
    ctx = RunContext(cfg=cfg, info=task.data_info(cfg, data_root), data_root=data_root)
    seed_everything(cfg.seed)
    trained = task.build_model(ctx)
    fit(task, trained, ctx, tmp_path / "checkpoints", lambda epoch, metrics: None)
    positive, negative = CLEAR[task_name]
    answer = task.predict(trained, ctx, positive + negative)
    assert answer["label"].tolist() == ["pos"] * len(positive) + ["neg"] * len(negative), answer
