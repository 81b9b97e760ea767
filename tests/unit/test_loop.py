import pytest
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


def _fit(folder, stop=None, schedule="cosine"):
    """A tiny classifier on separable points, 4 epochs, checkpointed in ``folder``."""
    from torch.utils.data import DataLoader, TensorDataset

    from zooflow.training.loop import train_supervised

    generator = torch.Generator().manual_seed(0)  # the data is the same whatever the global seed
    inputs = torch.randn(64, 2, generator=generator) + torch.cat([torch.full((32, 2), 2.0), torch.full((32, 2), -2.0)])
    targets = torch.cat([torch.zeros(32, dtype=torch.long), torch.ones(32, dtype=torch.long)])
    loader = DataLoader(TensorDataset(inputs, targets), batch_size=16, shuffle=True)
    model = nn.Linear(2, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    result = train_supervised(model, optimizer, loader, loader, epochs=4, checkpoint_dir=folder,
                              stop_after_epoch=stop, show_progress=False, lr_schedule=schedule)
    return model, optimizer, result


def test_a_cosine_schedule_lowers_the_rate_each_epoch_and_a_resumed_run_ends_with_the_same_weights(tmp_path):
    from zooflow.training.device import seed_everything

    seed_everything(0)
    straight, optimizer, result = _fit(tmp_path / "a")
    rates = [row["lr"] for row in result.history]
    assert rates[0] == 0.1 and all(later < earlier for earlier, later in zip(rates, rates[1:]))
    assert optimizer.param_groups[0]["lr"] < 1e-9          # down to zero after the last epoch
    seed_everything(0)
    _fit(tmp_path / "b", stop=2)
    seed_everything(99)  # the checkpoint (schedule included), not this seed, decides what follows
    resumed, optimizer, second = _fit(tmp_path / "b")
    assert second.resumed_from_epoch == 2
    assert [row["lr"] for row in second.history] == rates
    for a, b in zip(straight.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(a, b)


def test_without_a_schedule_the_rate_stays_put(tmp_path):
    _, optimizer, result = _fit(tmp_path, schedule="none")
    assert {row["lr"] for row in result.history} == {0.1} and optimizer.param_groups[0]["lr"] == 0.1


def test_a_nan_loss_stops_training_and_names_the_epoch_and_batch(tmp_path):
    from torch.utils.data import DataLoader, TensorDataset

    from zooflow.errors import TrainingDiverged, UserError
    from zooflow.training.loop import train_supervised

    inputs = torch.randn(64, 2)
    inputs[20] = float("nan")  # a broken sample in the second batch of 16
    loader = DataLoader(TensorDataset(inputs, torch.zeros(64, dtype=torch.long)), batch_size=16)
    model = nn.Linear(2, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(TrainingDiverged, match=r"epoch 1/3 train, batch 2/4: the loss is nan") as stopped:
        train_supervised(model, optimizer, loader, loader, epochs=3, checkpoint_dir=tmp_path, show_progress=False)
    assert isinstance(stopped.value, UserError) and "grad_clip_norm" in str(stopped.value)
    assert torch.isfinite(model.weight).all()  # the bad batch never reached the weights
    assert not any(tmp_path.iterdir())          # no checkpoint of an unfinished epoch


@pytest.mark.parametrize("clip", [None, 1e-3])
def test_gradient_clipping_bounds_each_step(tmp_path, clip):
    from torch.utils.data import DataLoader, TensorDataset

    from zooflow.training.loop import train_supervised

    torch.manual_seed(0)
    loader = DataLoader(TensorDataset(torch.randn(16, 2) * 10, torch.ones(16, dtype=torch.long)), batch_size=16)
    model = nn.Linear(2, 2)
    before = torch.cat([p.detach().flatten().clone() for p in model.parameters()])
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0, momentum=0.0)
    train_supervised(model, optimizer, loader, loader, epochs=1, checkpoint_dir=tmp_path, show_progress=False,
                     grad_clip_norm=clip)
    moved = (torch.cat([p.detach().flatten() for p in model.parameters()]) - before).norm().item()
    if clip:
        assert moved <= clip * 1.0001   # one step of lr 1 with a gradient of norm <= clip
    else:
        assert moved > 0.1              # the same step unclipped
