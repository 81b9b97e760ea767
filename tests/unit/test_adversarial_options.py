"""Adversarial training options: a moving average of the weights (``ema_decay``) and a
learning-rate schedule (``lr_schedule``)."""

import pytest
import torch

from zooflow.models.gan import ImageGAN
from zooflow.training.adversarial import train_adversarial
from zooflow.training.device import seed_everything
from zooflow.training.gan_steps import ImageGanSteps


def _train(folder, decay, stop=None, seen=None, schedule="none", optimizers=None):
    images = torch.linspace(-1, 1, 32 * 16 * 16).reshape(32, 1, 16, 16)
    model = ImageGAN(z_dim=4, image_size=16, width=0.25, attention=False)
    steps = ImageGanSteps({"generator": 1e-2, "discriminator": 1e-2}, (0.5, 0.999), "bce")
    if optimizers is not None:  # keep the optimisers the loop builds, to read their final rates
        build = steps.optimizers
        steps.optimizers = lambda model: optimizers.update(build(model)) or optimizers

    def select(scored):
        if seen is not None:
            seen.append({k: v.detach().clone() for k, v in scored.state_dict().items()})
        return {"score": 1.0}

    result = train_adversarial(model, steps, images, epochs=3, batch_size=8, checkpoint_dir=folder, select=select,
                               select_metric="score", goal="min", stop_after_epoch=stop, show_progress=False,
                               average_decay=decay, lr_schedule=schedule)
    return model, result


def test_the_average_is_what_is_scored_and_kept_and_it_differs_from_the_raw_weights(tmp_path):
    seed_everything(0)
    raw, _ = _train(tmp_path / "raw", None)
    seed_everything(0)
    seen = []
    averaged, result = _train(tmp_path / "avg", 0.9, seen=seen)
    # Same seed, same steps: the raw weights of both runs are equal, so any difference in the
    # kept model comes from keeping the average (the first epoch scores best: ties keep the first).
    assert result.selected_epoch == 1
    kept = averaged.generator.state_dict()
    assert any(not torch.equal(kept[k], raw.generator.state_dict()[k]) for k in kept if kept[k].is_floating_point())
    assert all(torch.equal(seen[0][k], v) for k, v in averaged.state_dict().items())


def test_an_interrupted_run_with_an_average_resumes_to_the_same_weights(tmp_path):
    seed_everything(0)
    straight, _ = _train(tmp_path / "a", 0.9)
    seed_everything(0)
    _train(tmp_path / "b", 0.9, stop=1)
    seed_everything(99)  # the checkpoint (average included), not this seed, decides what follows
    resumed, second = _train(tmp_path / "b", 0.9)
    assert second.resumed_from_epoch == 1
    for a, b in zip(straight.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(a, b)


def test_a_cosine_schedule_ends_near_zero_and_an_interrupted_run_resumes_to_the_same_weights(tmp_path):
    built = {}
    seed_everything(0)
    straight, _ = _train(tmp_path / "a", None, schedule="cosine", optimizers=built)
    # three epochs: 1e-2 -> 7.5e-3 -> 2.5e-3 -> 0 after the last
    assert all(group["lr"] < 1e-9 for o in built.values() for group in o.param_groups)
    seed_everything(0)
    _train(tmp_path / "b", None, stop=1, schedule="cosine")
    seed_everything(99)
    resumed, second = _train(tmp_path / "b", None, schedule="cosine", optimizers=built)
    assert second.resumed_from_epoch == 1
    for a, b in zip(straight.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(a, b)


def test_an_unknown_schedule_is_named(tmp_path):
    with pytest.raises(ValueError, match="lr_schedule must be 'none' or 'cosine', got 'poly'"):
        _train(tmp_path / "c", None, schedule="poly")
