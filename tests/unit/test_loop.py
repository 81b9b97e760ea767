import torch
from torch import nn

from zooflow.training.loop import keep_frozen_batchnorm_in_eval


def test_frozen_batchnorm_keeps_its_running_statistics():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 4, 3), nn.BatchNorm2d(4))
    for parameter in list(model[0].parameters()) + list(model[1].parameters()):
        parameter.requires_grad_(False)
    frozen_mean = model[1].running_mean.clone()
    trained_mean = model[4].running_mean.clone()
    model.train()
    keep_frozen_batchnorm_in_eval(model)
    model(torch.randn(8, 3, 9, 9) * 5 + 3)
    assert torch.equal(model[1].running_mean, frozen_mean)       # frozen: untouched
    assert not torch.equal(model[4].running_mean, trained_mean)  # trainable: still learns its statistics
