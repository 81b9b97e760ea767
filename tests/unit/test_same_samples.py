"""In capped (smoke) runs, a task's baseline is scored on the very samples its model is."""

from pathlib import Path

import torch

from zooflow import config
from zooflow.data.demo import BUILDERS
from zooflow.tasks.base import RunContext
from zooflow.tasks.sentiment import EVAL_SPLIT, TASK


def test_the_sentiment_baseline_scores_the_samples_the_model_scores(tmp_path, monkeypatch):
    BUILDERS["sentiment-en"](tmp_path / "sentiment-en")
    cfg = config.resolve("sentiment", "transformer", "smoke")
    ctx = RunContext(cfg=cfg, info=TASK.data_info(cfg, tmp_path), data_root=tmp_path)
    model_targets = torch.cat([labels for _, labels in TASK._loader(ctx, EVAL_SPLIT, False)])
    assert len(TASK._dataset(ctx, EVAL_SPLIT)) > cfg.max_eval_samples == len(model_targets)
    scored = []
    real = type(TASK)._scores
    monkeypatch.setattr(type(TASK), "_scores",
                        lambda self, probabilities, targets, classes: scored.append(targets) or
                        real(self, probabilities, targets, classes))
    TASK.baseline(ctx)
    assert torch.equal(scored[0], model_targets)
