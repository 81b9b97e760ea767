"""The CUDA path of the shared loop: bf16 autocast, channels_last, device recorded."""

import pytest
import torch

from zooflow.config import resolve
from zooflow.tasks.base import RunContext, evaluate
from zooflow.tasks.classification import TASK
from zooflow.training.device import device_label, seed_everything
from zooflow.training.engine import fit


@pytest.mark.gpu
def test_training_runs_on_cuda_with_bf16_and_channels_last(image_folder, tmp_path):
    cfg = resolve("classification", "vgg16-finetune", "smoke", overrides={"epochs": 2})
    cfg = cfg.model_copy(update={"data": cfg.data.model_copy(update={"folder": image_folder.name})})
    ctx = RunContext(cfg=cfg, info=TASK.data_info(cfg, image_folder.parent), data_root=image_folder.parent)
    seed_everything(cfg.seed)
    model = TASK.build_model(ctx)
    result = fit(TASK, model, ctx, tmp_path, lambda epoch, metrics: None)
    assert result.device.type == "cuda" and device_label(result.device).startswith("cuda:")
    assert next(model.parameters()).is_cuda
    assert model.features[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert all(torch.isfinite(torch.tensor(h["train_loss"])) for h in result.history)
    assert 0.0 <= evaluate(TASK, model, ctx)["accuracy"] <= 1.0
