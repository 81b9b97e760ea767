"""The engine with a step that updates its networks itself (GANs): a moving average of the
weights (``ema_decay``), a learning-rate schedule, NaN stops, and what such a step refuses."""

import pytest
import torch

from tests.tiny_tasks import Adversarial, image_batches
from zooflow.models.gan import ImageGAN
from zooflow.training.device import seed_everything
from zooflow.training.engine import Options, train
from zooflow.training.gan_steps import ImageGanSteps


def _train(folder, decay, stop=None, seen=None, schedule="none", optimizers=None):
    images = torch.linspace(-1, 1, 32 * 16 * 16).reshape(32, 1, 16, 16)
    model = ImageGAN(z_dim=4, image_size=16, width=0.25, attention=False)
    steps = ImageGanSteps({"generator": 1e-2, "discriminator": 1e-2}, (0.5, 0.999), "bce")
    built = steps.optimizers(model)
    if optimizers is not None:  # the caller reads the optimisers' final rates
        optimizers.update(built)

    def select(scored):
        if seen is not None:
            seen.append({k: v.detach().clone() for k, v in scored.state_dict().items()})
        return {"score": 1.0}

    result = train(model, Adversarial(steps, select), None, image_batches(images, 8), built,
                   Options(epochs=3, select_metric="score", select_goal="min", ema_decay=decay, lr_schedule=schedule),
                   folder, stop_after_epoch=stop, show_progress=False)
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


def test_clipping_or_accumulation_with_a_step_that_updates_itself_is_refused(tmp_path):
    from zooflow.errors import UserError

    images = torch.linspace(-1, 1, 16 * 16 * 16).reshape(16, 1, 16, 16)
    model = ImageGAN(z_dim=4, image_size=16, width=0.25, attention=False)
    steps = ImageGanSteps({"generator": 1e-2, "discriminator": 1e-2}, (0.5, 0.999), "bce")
    task = Adversarial(steps, lambda scored: {"score": 1.0})
    with pytest.raises(UserError, match="grad_clip_norm and accumulate_batches apply to tasks with one loss"):
        train(model, task, None, image_batches(images, 8), steps.optimizers(model),
              Options(epochs=1, grad_clip_norm=1.0), tmp_path, show_progress=False)


def test_the_cycle_term_teaches_g_and_e_to_reconstruct_and_the_books_loss_has_none():
    from zooflow.models.efficientgan import EfficientGAN
    from zooflow.training.gan_steps import BiGanSteps

    real = -torch.ones(16, 1, 28, 28)  # two kinds of image: a vertical bar or a horizontal one
    real[:8, :, 4:24, 12:16] = 1
    real[8:, :, 12:16, 4:24] = 1
    lr = {"generator": 1e-3, "encoder": 1e-3, "discriminator": 1e-4}

    def reconstruction_after_training(weight: float) -> tuple[float, float, dict]:
        seed_everything(0)
        model = EfficientGAN(z_dim=8, width=0.25)
        steps = BiGanSteps(lr, (0.5, 0.999), reconstruction_weight=weight)
        optimizers = steps.optimizers(model)
        error = lambda: (real - model.generator(model.encoder(real))).abs().mean().item()  # noqa: E731
        before = error()
        for _ in range(40):
            found = steps.step(model, real, optimizers)
        return before, error(), found

    before, book_error, book_found = reconstruction_after_training(0.0)
    _, cycle_error, cycle_found = reconstruction_after_training(1.0)
    assert "reconstruction" not in book_found and "reconstruction" in cycle_found
    assert cycle_error < 0.75 * min(before, book_error), (before, book_error, cycle_error)


def test_a_nan_loss_in_adversarial_training_stops_and_names_the_loss(tmp_path):
    from zooflow.errors import TrainingDiverged

    class Diverging(ImageGanSteps):
        def step(self, model, real, optimizers):
            return {**super().step(model, real, optimizers), "d_loss": float("inf")}

    images = torch.linspace(-1, 1, 16 * 16 * 16).reshape(16, 1, 16, 16)
    model = ImageGAN(z_dim=4, image_size=16, width=0.25, attention=False)
    steps = Diverging({"generator": 1e-2, "discriminator": 1e-2}, (0.5, 0.999), "bce")
    with pytest.raises(TrainingDiverged, match=r"epoch 1/2 train, batch 1/2: the training loss 'd_loss' is inf"):
        train(model, Adversarial(steps, lambda scored: {"score": 1.0}), None, image_batches(images, 8),
              steps.optimizers(model), Options(epochs=2, select_metric="score", select_goal="min"), tmp_path,
              show_progress=False)


def test_several_devices_refuse_a_gan_by_its_optimisers(tmp_path):
    from zooflow.errors import UserError
    from zooflow.training.distributed import Ranks

    images = torch.linspace(-1, 1, 16 * 16 * 16).reshape(16, 1, 16, 16)
    model = ImageGAN(z_dim=4, image_size=16, width=0.25, attention=False)
    steps = ImageGanSteps({"generator": 1e-2, "discriminator": 1e-2}, (0.5, 0.999), "bce")
    task = Adversarial(steps, lambda scored: {"score": 1.0})
    # refused before joining any process group: no second process is needed to see it
    with pytest.raises(UserError, match=r"2 optimisers \(generator, discriminator, a GAN\).*devices: 1"):
        train(model, task, None, image_batches(images, 8), steps.optimizers(model), Options(epochs=1), tmp_path,
              show_progress=False, ranks=Ranks(rank=0, world=2))
