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


def test_a_step_reads_its_models_own_attributes_through_ddp():
    """SSD's step reads ``model.priors`` (a buffer of the model); under DDP the model it gets is
    the wrapper, which must answer the same, while the forward pass goes through DDP."""
    import torch.distributed as dist

    from tests.servers import free_port
    from zooflow.training.distributed import wrap

    class WithPriors(nn.Module):
        def __init__(self):
            super().__init__()
            self.layer = nn.Linear(2, 2)
            self.register_buffer("priors", torch.arange(4.0))
            self.stride = 8

        def forward(self, x):
            return self.layer(x)

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{free_port()}", rank=0, world_size=1)
    try:
        model = WithPriors()
        wrapped = wrap(model, torch.device("cpu"))
        assert wrapped.module is model
        assert torch.equal(wrapped.priors, model.priors) and wrapped.stride == 8
        assert wrapped(torch.ones(3, 2)).shape == (3, 2)
        try:
            wrapped.no_such_thing
        except AttributeError as error:
            assert "no_such_thing" in str(error)
        else:
            raise AssertionError("a missing attribute must stay an AttributeError")
    finally:
        dist.destroy_process_group()
