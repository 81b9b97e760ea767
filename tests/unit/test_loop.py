"""The training engine with an ordinary one-loss step: schedules, resume, NaN stop, clipping,
accumulation, keeping the best epoch and evaluate-only runs."""

import pytest
import torch
from torch import nn

from tests.tiny_tasks import Points, separable_points
from zooflow.training.engine import Loaders, Options, keep_frozen_batchnorm_in_eval, train


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


def _fit(folder, stop=None, task=None, val=None, **options):
    """A tiny classifier on separable points, 4 epochs, checkpointed in ``folder``."""
    loader = separable_points()
    model = nn.Linear(2, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    result = train(model, task or Points(), None, Loaders(loader, val or loader), {"model": optimizer},
                   Options(**{"epochs": 4, **options}), folder, stop_after_epoch=stop, show_progress=False)
    return model, optimizer, result


def test_a_cosine_schedule_lowers_the_rate_each_epoch_and_a_resumed_run_ends_with_the_same_weights(tmp_path):
    from zooflow.training.device import seed_everything

    seed_everything(0)
    straight, optimizer, result = _fit(tmp_path / "a", lr_schedule="cosine")
    rates = [row["lr"] for row in result.history]
    assert rates[0] == 0.1 and all(later < earlier for earlier, later in zip(rates, rates[1:]))
    assert optimizer.param_groups[0]["lr"] < 1e-9          # down to zero after the last epoch
    seed_everything(0)
    _fit(tmp_path / "b", stop=2, lr_schedule="cosine")
    seed_everything(99)  # the checkpoint (schedule included), not this seed, decides what follows
    resumed, optimizer, second = _fit(tmp_path / "b", lr_schedule="cosine")
    assert second.resumed_from_epoch == 2
    assert [row["lr"] for row in second.history] == rates
    for a, b in zip(straight.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(a, b)


def test_without_a_schedule_the_rate_stays_put(tmp_path):
    _, optimizer, result = _fit(tmp_path)
    assert {row["lr"] for row in result.history} == {0.1} and optimizer.param_groups[0]["lr"] == 0.1


@pytest.mark.parametrize("schedule,extra,expected", [
    ("step", {"lr_step_epochs": 2, "lr_gamma": 0.5}, [0.1, 0.1, 0.05, 0.05]),
    ("poly", {"lr_poly_power": 0.9}, [0.1 * (1 - e / 4) ** 0.9 for e in range(4)]),
])
def test_step_and_poly_schedules_set_the_book_rates_per_epoch(tmp_path, schedule, extra, expected):
    _, _, result = _fit(tmp_path, lr_schedule=schedule, **extra)
    assert [row["lr"] for row in result.history] == pytest.approx(expected)


def test_an_unknown_schedule_is_named(tmp_path):
    with pytest.raises(ValueError, match="lr_schedule must be one of none, step, cosine, poly, got 'linear'"):
        _fit(tmp_path, lr_schedule="linear")


def test_a_nan_loss_stops_training_and_names_the_epoch_and_batch(tmp_path):
    from torch.utils.data import DataLoader, TensorDataset

    from zooflow.errors import TrainingDiverged, UserError

    inputs = torch.randn(64, 2)
    inputs[20] = float("nan")  # a broken sample in the second batch of 16
    loader = DataLoader(TensorDataset(inputs, torch.zeros(64, dtype=torch.long)), batch_size=16)
    model = nn.Linear(2, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(TrainingDiverged, match=r"epoch 1/3 train, batch 2/4: the loss is nan") as stopped:
        train(model, Points(), None, Loaders(loader, loader), {"model": optimizer}, Options(epochs=3), tmp_path,
              show_progress=False)
    assert isinstance(stopped.value, UserError) and "grad_clip_norm" in str(stopped.value)
    assert torch.isfinite(model.weight).all()  # the bad batch never reached the weights
    assert not any(tmp_path.iterdir())          # no checkpoint of an unfinished epoch


@pytest.mark.parametrize("clip", [None, 1e-3])
def test_gradient_clipping_bounds_each_step(tmp_path, clip):
    from torch.utils.data import DataLoader, TensorDataset

    torch.manual_seed(0)
    loader = DataLoader(TensorDataset(torch.randn(16, 2) * 10, torch.ones(16, dtype=torch.long)), batch_size=16)
    model = nn.Linear(2, 2)
    before = torch.cat([p.detach().flatten().clone() for p in model.parameters()])
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0, momentum=0.0)
    train(model, Points(), None, Loaders(loader, loader), {"model": optimizer},
          Options(epochs=1, grad_clip_norm=clip), tmp_path, show_progress=False)
    moved = (torch.cat([p.detach().flatten() for p in model.parameters()]) - before).norm().item()
    if clip:
        assert moved <= clip * 1.0001   # one step of lr 1 with a gradient of norm <= clip
    else:
        assert moved > 0.1              # the same step unclipped


def test_accumulating_two_batches_updates_like_one_batch_twice_the_size(tmp_path):
    def one_epoch(batch_size, accumulate, folder):
        torch.manual_seed(0)
        model = nn.Linear(2, 2)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.0)
        loader = separable_points(batch_size, shuffle=False)
        train(model, Points(), None, Loaders(loader, None), {"model": optimizer},
              Options(epochs=1, accumulate_batches=accumulate), folder, show_progress=False)
        return torch.cat([p.detach().flatten() for p in model.parameters()])

    big = one_epoch(32, 1, tmp_path / "big")            # two updates of 32 points
    accumulated = one_epoch(16, 2, tmp_path / "acc")    # two updates of 2 x 16 points
    every_batch = one_epoch(16, 1, tmp_path / "each")   # four updates of 16 points
    assert torch.allclose(big, accumulated, atol=1e-6)
    assert not torch.allclose(big, every_batch, atol=1e-3)


def test_keep_best_on_validation_keeps_the_best_epochs_weights_and_survives_a_resume(tmp_path):
    """``select_metric`` works for any task: here the validation figure is scripted per epoch."""
    from zooflow.training.device import seed_everything
    from zooflow.training.engine import Step

    class Scripted(Points):
        def __init__(self, first_epoch=1):
            self.epochs = iter(range(first_epoch, 5))
            self.weights = {}

        def validation_step(self, model, batch, ctx, device):
            epoch = next(self.epochs)
            self.weights[epoch] = model.weight.detach().clone()
            return Step(None, {"score": {1: 0.2, 2: 0.9, 3: 0.5, 4: 0.7}[epoch]})

    one_batch = [None]  # the scripted step reads no data: one validation batch per epoch
    seed_everything(0)
    task = Scripted()
    model, _, result = _fit(tmp_path / "a", task=task, val=one_batch, select_metric="score", select_goal="max")
    assert result.selected_epoch == 2 and [h["selected_epoch"] for h in result.history] == [1, 2, 2, 2]
    assert torch.equal(model.weight, task.weights[2]) and not torch.equal(model.weight, task.weights[4])
    seed_everything(0)
    _fit(tmp_path / "b", stop=3, task=Scripted(), val=one_batch, select_metric="score", select_goal="max")
    resumed, _, second = _fit(tmp_path / "b", task=Scripted(first_epoch=4), val=one_batch, select_metric="score",
                              select_goal="max")
    assert second.resumed_from_epoch == 3 and second.selected_epoch == 2
    assert torch.equal(resumed.weight, model.weight)


def test_a_select_metric_the_task_does_not_report_is_named(tmp_path):
    from zooflow.errors import UserError

    with pytest.raises(UserError, match="select_metric 'auroc' is not a validation figure.*accuracy, loss"):
        _fit(tmp_path, select_metric="auroc")


def test_a_batch_norm_given_one_sample_stops_with_what_to_change(tmp_path):
    """Torch's own ValueError from deep inside the model becomes one message naming the epoch,
    the batch and the batch size to raise."""
    from zooflow.errors import UserError

    loader = separable_points(batch_size=1)
    model = nn.Sequential(nn.Linear(2, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(UserError, match=r"epoch 1, batch 1: a batch norm layer cannot train on one sample.*"
                                        r"batch_size 1.*raise batch_size"):
        train(model, Points(), None, Loaders(loader, None), {"model": optimizer}, Options(epochs=1), tmp_path,
              show_progress=False)
