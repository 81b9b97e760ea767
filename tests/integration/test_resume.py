"""An interrupted training resumes from its last checkpoint and ends where an uninterrupted
run ends (same random state, same batches)."""

import torch

from zooflow.config import resolve
from zooflow.tasks.base import RunContext
from zooflow.tasks.classification import TASK
from zooflow.training import checkpoint
from zooflow.training.device import seed_everything
from zooflow.training.engine import fit


def _context(image_folder):
    cfg = resolve("classification", "vgg16-finetune", "smoke", overrides={"epochs": 3, "max_batches": 2})
    root = image_folder.parent
    cfg = cfg.model_copy(update={"data": cfg.data.model_copy(update={"folder": image_folder.name})})
    return RunContext(cfg=cfg, info=TASK.data_info(cfg, root), data_root=root)


def _fresh_model(ctx):
    seed_everything(ctx.cfg.seed)
    return TASK.build_model(ctx)


def test_interrupted_training_resumes_from_its_checkpoint(image_folder, tmp_path):
    ctx = _context(image_folder)
    epochs_seen = []

    straight = _fresh_model(ctx)
    full = fit(TASK, straight, ctx, tmp_path / "straight", lambda epoch, m: None)
    assert full.resumed_from_epoch == 0 and len(full.history) == 3

    interrupted = _fresh_model(ctx)
    first = fit(TASK, interrupted, ctx, tmp_path / "resumed", lambda epoch, m: epochs_seen.append(epoch), stop_after_epoch=1)
    assert len(first.history) == 1
    assert checkpoint.load(tmp_path / "resumed")["epoch"] == 1

    # A new process would rebuild the model from scratch; the checkpoint restores the rest.
    resumed_model = _fresh_model(ctx)
    second = fit(TASK, resumed_model, ctx, tmp_path / "resumed", lambda epoch, m: epochs_seen.append(epoch))
    assert second.resumed_from_epoch == 1
    assert epochs_seen == [1, 2, 3]  # epoch 1 is not trained twice
    assert [h["epoch"] for h in second.history] == [1, 2, 3]
    for key, value in straight.state_dict().items():
        assert torch.allclose(value, resumed_model.state_dict()[key]), key
    assert second.history[-1]["val_loss"] == full.history[-1]["val_loss"]
