"""Chapters 5-6 models: the book's sizes, one update of each network lowers its own loss, the
anomaly scores rank an out-of-distribution image above normal digits, generators serve
deterministic PNGs."""

import io

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from zooflow import config
from zooflow.evaluation import anomaly as scoring
from zooflow.evaluation import generation as judging
from zooflow.models.efficientgan import EfficientGAN
from zooflow.models.gan import ImageGAN, SelfAttention, parameter_count
from zooflow.training.gan_steps import BiGanSteps, ImageGanSteps


def conv(cin, cout, k=4):
    return cin * cout * k * k + cout


def test_dcgan_has_the_books_parameter_counts():
    gan = ImageGAN(z_dim=20, image_size=64, width=1.0, attention=False)
    # G: ConvT 20->512 (k4), 512->256, 256->128, 128->64, 64->1, and a batch norm after each but the last.
    g = conv(20, 512) + conv(512, 256) + conv(256, 128) + conv(128, 64) + conv(64, 1) + 2 * (512 + 256 + 128 + 64)
    d = conv(1, 64) + conv(64, 128) + conv(128, 256) + conv(256, 512) + conv(512, 1)
    assert parameter_count(gan.generator) == g == 2_920_257  # book: G 2.92 M
    assert parameter_count(gan.discriminator) == d == 2_762_689  # book: D 2.76 M


def test_sagan_is_dcgan_plus_attention_with_spectral_norm_on_every_conv():
    gan = ImageGAN(z_dim=20, image_size=64, width=1.0, attention=True)

    def attention(c):
        return 2 * (c * (c // 8) + c // 8) + c * c + c + 1  # query, key, value 1x1 convs + gamma

    assert parameter_count(gan.generator) == 2_920_257 + attention(128) + attention(64)
    assert parameter_count(gan.discriminator) == 2_762_689 + attention(256) + attention(512)
    convs = [m for m in gan.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
    assert convs and all(hasattr(m, "parametrizations") and "weight" in m.parametrizations for m in convs)
    blocks = [m for m in gan.modules() if isinstance(m, SelfAttention)]
    assert len(blocks) == 4 and all(b.gamma.item() == 0.0 for b in blocks)  # starts as a plain convnet
    image = gan.generator(torch.randn(2, 20))
    assert image.shape == (2, 1, 64, 64) and image.abs().max() <= 1
    side = 32 * 32  # the generator's last attention block sees a 32x32 map
    assert blocks[1].last_attention.shape == (2, side, side)
    assert torch.allclose(blocks[1].last_attention.sum(-1), torch.ones(2, side))


def test_efficientgan_has_the_books_parameter_counts():
    model = EfficientGAN(z_dim=20, width=1.0)
    g = (20 * 1024 + 1024) + 2 * 1024 + (1024 * 6272 + 6272) + 2 * 6272 + conv(128, 64) + 2 * 64 + conv(64, 1)
    e = conv(1, 32, 3) + conv(32, 64, 3) + 2 * 64 + conv(64, 128, 3) + 2 * 128 + (128 * 49 * 20 + 20)
    d = conv(1, 64) + conv(64, 64) + 2 * 64 + (20 * 512 + 512) + ((64 * 49 + 512) * 1024 + 1024) + (1024 + 1)
    assert (parameter_count(model.generator), parameter_count(model.encoder),
            parameter_count(model.discriminator)) == (g, e, d) == (6_597_185, 218_516, 3_815_169)


@pytest.mark.parametrize("kind", ["dcgan", "sagan", "efficientgan"])
def test_one_update_of_each_network_lowers_its_own_loss(kind):
    torch.manual_seed(0)
    if kind == "efficientgan":
        model, steps = EfficientGAN(z_dim=8, width=0.25), BiGanSteps({"generator": 1e-3, "encoder": 1e-3,
                                                                     "discriminator": 1e-3}, (0.5, 0.999))
        side = 28
    else:
        model = ImageGAN(z_dim=8, image_size=16, width=0.25, attention=kind == "sagan")
        steps = ImageGanSteps({"generator": 1e-4, "discriminator": 1e-4}, (0.5, 0.999), "hinge" if kind == "sagan" else "bce")
        side = 16
    optimizers = steps.optimizers(model)
    real = torch.rand(8, 1, side, side) * 2 - 1
    z = torch.randn(8, model.z_dim)
    model.eval()  # batch statistics aside, the same batch gives the same loss before and after
    d_before, _ = steps.losses(model, real, z)
    steps.discriminator_step(model, real, z, optimizers)
    d_after, g_before = steps.losses(model, real, z)
    steps.generator_step(model, real, z, optimizers)
    _, g_after = steps.losses(model, real, z)
    assert d_after.item() < d_before.item()
    assert g_after.item() < g_before.item()


def test_targets_are_float_so_bce_takes_them():
    # The book built its labels with torch.full(..., 1) (an integer tensor); the loss must work.
    model = ImageGAN(z_dim=4, image_size=16, width=0.25, attention=False)
    steps = ImageGanSteps({"generator": 1e-3, "discriminator": 1e-3}, (0.0, 0.9), "bce")
    out = steps.step(model, torch.zeros(4, 1, 16, 16), steps.optimizers(model))
    assert set(out) == {"d_loss", "g_loss", "d_real", "d_fake"} and all(np.isfinite(v) for v in out.values())


def _normal_digits(n=64, side=16):
    """Stand-in "normal" images: a dark background with a bright vertical stroke."""
    images = -torch.ones(n, 1, side, side)
    for i in range(n):
        column = 4 + i % 8
        images[i, 0, 2:-2, column:column + 2] = 1.0
    return images


@pytest.mark.parametrize("kind", ["anogan", "efficientgan"])
def test_anomaly_score_ranks_a_planted_outlier_above_normals(kind):
    torch.manual_seed(0)
    side = 28 if kind == "efficientgan" else 16
    normals = _normal_digits(side=side)
    if kind == "efficientgan":
        model = EfficientGAN(z_dim=8, width=0.25)
        steps = BiGanSteps({"generator": 1e-3, "encoder": 1e-3, "discriminator": 1e-3}, (0.5, 0.999))
    else:
        model = ImageGAN(z_dim=8, image_size=side, width=0.25, attention=False, discriminator_batchnorm=True)
        steps = ImageGanSteps({"generator": 1e-3, "discriminator": 1e-3}, (0.5, 0.999), "bce")
    optimizers = steps.optimizers(model)
    model.train()
    for _ in range(60):  # a smoke training: a few dozen steps on the normals
        steps.step(model, normals[torch.randperm(len(normals))[:16]], optimizers)
    planted = -normals[:1]  # the negative of a normal image: a dark stroke on white
    images = torch.cat([normals[:16], planted])
    if kind == "efficientgan":
        scores, _ = scoring.efficientgan_scores(model, images, feature_weight=0.1)
    else:
        scores, _ = scoring.anogan_scores(model, images, steps=20, lr=0.05, feature_weight=0.1)
    assert scores[-1] > scores[:-1].max()


def test_anomaly_metrics_and_threshold():
    digits = np.array([7, 7, 8, 8, 1, 1, 3, 3])
    scores = torch.tensor([1.0, 2.0, 1.5, 2.5, 2.2, 9.0, 8.0, 7.0])
    result = scoring.metrics(scores, digits, [7, 8], threshold=5.0)
    assert result["auroc"] == pytest.approx(15 / 16)  # the 1 scored 2.2 ranks below one normal (2.5)
    assert result["auroc_class_3"] == 1.0 and result["auroc_class_1"] == pytest.approx(7 / 8)
    assert result["detected_class_1"] == 0.5 and result["false_alarm_rate"] == 0.0
    threshold = scoring.pick_threshold(scores, ~np.isin(digits, [7, 8]))
    assert 2.5 < threshold <= 7.0  # separates all normals from the 3s and the 9.0


def test_generator_pyfunc_answers_pngs_and_the_same_seed_gives_the_same_images(tmp_path):
    from zooflow.tasks.base import RunContext
    from zooflow.tasks.generation import TASK

    cfg = config.resolve("generation", "dcgan", "smoke")
    ctx = RunContext(cfg=cfg, info={}, data_root=tmp_path)
    model = TASK.build_model(ctx).eval()
    first = TASK.predict(model, ctx, pd.DataFrame({"seed": [3, 4], "count": [2, 1]}))
    again = TASK.predict(model, ctx, [(3, 2)])
    assert list(first["seed"]) == [3, 3, 4] and list(first["index"]) == [0, 1, 0]
    assert list(again["image"]) == list(first["image"][:2])
    assert first["image"][0] != first["image"][2]
    image = Image.open(io.BytesIO(first["image"][0]))
    assert image.mode == "L" and image.size == (cfg.params.input_size, cfg.params.input_size)
    with pytest.raises(ValueError, match="count must be 1-1024"):
        TASK.predict(model, ctx, [(1, 0)])


def test_judge_is_cached_by_data_content_and_reads_digits(tmp_path):
    rng = np.random.default_rng(0)
    images = np.zeros((40, 28, 28), np.uint8)
    labels = np.repeat(np.arange(2), 20)
    images[labels == 1, 5:23, 12:16] = 200  # class 1: a bar; class 0: blank (with noise)
    images += rng.integers(0, 30, images.shape, dtype=np.uint8)
    torch.manual_seed(5)
    stream = torch.get_rng_state()
    judge = judging.load_judge(tmp_path, images, labels)             # trained now
    assert len(list(tmp_path.glob("judge-*.safetensors"))) == 1
    again = judging.load_judge(tmp_path, images, labels)             # from the cache
    # Neither path draws from the caller's random stream: a GAN trained after loading the
    # judge gets the same weights whether or not the judge was cached.
    assert torch.equal(torch.get_rng_state(), stream)
    for a, b in zip(judge.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)
    signed = judging.to_signed(images)
    assert judging.judge_accuracy(judge, signed, labels) == 1.0
    # FID of a set with itself is ~0; against the other class it is large.
    assert judging.fid(judge, signed[labels == 1], signed[labels == 1]) < 1e-3
    assert judging.fid(judge, signed[labels == 1], signed[labels == 0]) > 1.0


def test_adversarial_training_resumes_to_the_same_weights_and_keeps_the_best_checkpoint(tmp_path):
    from tests.tiny_tasks import Adversarial, image_batches
    from zooflow.training.device import seed_everything
    from zooflow.training.engine import Options, train

    images = torch.rand(32, 1, 16, 16) * 2 - 1
    scores = {1: 9.0, 2: 5.0, 3: 7.0}  # validation score per epoch: epoch 2 is the best ("min")

    def run(folder, first_epoch=1, stop=None):
        model = ImageGAN(z_dim=4, image_size=16, width=0.25, attention=False)
        epochs = iter(range(first_epoch, 4))
        steps = ImageGanSteps({"generator": 1e-3, "discriminator": 1e-3}, (0.5, 0.999), "bce")
        task = Adversarial(steps, lambda gan: {"score": scores[next(epochs)]})
        result = train(model, task, None, image_batches(images, 8), steps.optimizers(model),
                       Options(epochs=3, select_metric="score", select_goal="min"), folder, stop_after_epoch=stop,
                       show_progress=False)
        return model, result

    seed_everything(0)
    straight, result = run(tmp_path / "a")
    assert result.selected_epoch == 2 and [h["selected_epoch"] for h in result.history] == [1, 2, 2]

    seed_everything(0)
    _, first = run(tmp_path / "b", stop=1)
    assert len(first.history) == 1 and first.selected_epoch is None
    seed_everything(123)  # a restart: the checkpoint, not this seed, decides what follows
    resumed, second = run(tmp_path / "b", first_epoch=2)
    assert second.resumed_from_epoch == 1 and second.selected_epoch == 2
    for a, b in zip(straight.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(a, b)
