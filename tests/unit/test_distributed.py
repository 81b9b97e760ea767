"""What DDP training does to a model before wrapping it (no process group needed)."""

import torch
from torch import nn

from zooflow.training.distributed import synced_batch_norm


def _model() -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Sequential(nn.Conv2d(4, 4, 1), nn.BatchNorm2d(4)))


def test_gpu_processes_share_batch_norm_statistics_with_the_same_parameters_and_names():
    model = _model()
    names, parameters = list(model.state_dict()), [id(p) for p in model.parameters()]
    converted = synced_batch_norm(model, torch.device("cuda", 0))  # converting needs no GPU; running does
    assert converted is model  # in place: the engine's handle on the model stays the trained one
    assert isinstance(model[1], nn.SyncBatchNorm) and isinstance(model[2][1], nn.SyncBatchNorm)
    # the optimisers hold these very parameters, and checkpoints / saved weights use these names
    assert list(model.state_dict()) == names and [id(p) for p in model.parameters()] == parameters


def test_cpu_processes_keep_their_own_batch_norms():
    model = _model()
    assert synced_batch_norm(model, torch.device("cpu")) is model
    assert type(model[1]) is nn.BatchNorm2d and type(model[2][1]) is nn.BatchNorm2d
