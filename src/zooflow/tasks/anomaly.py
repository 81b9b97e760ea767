"""Chapter 6: anomaly detection with AnoGAN and EfficientGAN.

Data: MNIST-format idx files (``data/anomaly/MNIST/raw``, class names in ``classes.txt`` when
they are not digits). The GANs learn the ``normal_labels`` classes (the book: digits 7 and 8) of
the training split; every other class is an anomaly. Validation split: picks the kept checkpoint
(best AUROC) and the score threshold; test split (all its normals and all other classes): the
reported figures. Models: ``anogan`` (a DCGAN; latent search at scoring time) and
``efficientgan`` (a BiGAN; z = E(x) in one pass). Primary metric: AUROC.

Baselines, on the very test samples the model is scored on, thresholds picked on validation the
same way: the L1 distance to the mean normal image, and the reconstruction error of an 8-component
PCA of the normal images (a GAN that does not beat PCA is not worth its cost).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image
from torch import nn

from zooflow.config import RunConfig
from zooflow.data.raw_images import decode_image, encode_png, image_items
from zooflow.data.subsets import capped, even_spread, spread_per_class
from zooflow.evaluation import anomaly as scoring
from zooflow.evaluation import gan_figures
from zooflow.models.efficientgan import EfficientGAN
from zooflow.models.gan import ImageGAN
from zooflow.tasks.base import RunContext
from zooflow.tasks.digits import (DigitsData, class_name, normal_digits, normal_names, require_from_scratch,
                                  to_model_space)
from zooflow.training.engine import Loaders, Step
from zooflow.training.gan_steps import BiGanSteps, ImageGanSteps


def _build_anogan(cfg: RunConfig) -> nn.Module:
    params = cfg.params
    return ImageGAN(params.latent_dim, params.input_size, params.width, attention=False,
                    discriminator_batchnorm=params.discriminator_batchnorm)


def _build_efficientgan(cfg: RunConfig) -> nn.Module:
    if cfg.params.input_size != 28:
        raise ValueError(f"{cfg.registered_name}: EfficientGAN works on 28x28 images; params.input_size must be 28, "
                         f"got {cfg.params.input_size}")
    return EfficientGAN(cfg.params.latent_dim, cfg.params.width)


def _anogan_scores(model, images, cfg: RunConfig):
    params = cfg.params
    return scoring.anogan_scores(model, images, steps=params.search_steps, lr=params.search_lr,
                                 feature_weight=params.feature_weight)


def _efficientgan_scores(model, images, cfg: RunConfig):
    return scoring.efficientgan_scores(model, images, feature_weight=cfg.params.feature_weight)


# architecture -> (builder, scorer, training steps)
ARCHITECTURES = {
    "anogan": (_build_anogan, _anogan_scores, lambda cfg: ImageGanSteps(cfg.lr, cfg.betas, "bce")),
    "efficientgan": (_build_efficientgan, _efficientgan_scores,
                     lambda cfg: BiGanSteps(cfg.lr, cfg.betas, cfg.params.reconstruction_weight)),
}


def decode_digit(item) -> np.ndarray:
    """A raw digit (encoded bytes or a uint8 array) as 28x28 grey uint8, resized when needed."""
    image = decode_image(item, mode="L")
    if image.size != (28, 28):
        image = image.resize((28, 28), Image.Resampling.BILINEAR)
    return np.asarray(image, dtype=np.uint8)


class AnomalyTask(DigitsData):
    name = "anomaly"
    primary_metric = "auroc"
    goal = "max"
    # Named baselines (``baseline`` returns {name: metrics}); each threshold is picked on the
    # validation split the way the model's is.
    baseline_description = {
        "mean_image": "L1 distance to the mean normal training image",
        "pca": (f"reconstruction error (L2) of a PCA with {scoring.PCA_COMPONENTS} components fitted on the normal "
                "training images"),
    }

    def _parts(self, cfg: RunConfig):
        if cfg.architecture not in ARCHITECTURES:
            raise ValueError(f"unknown architecture '{cfg.architecture}'; known: {', '.join(ARCHITECTURES)}")
        return ARCHITECTURES[cfg.architecture]

    # -- model ------------------------------------------------------------------------------
    def build_model(self, ctx: RunContext, pretrained: bool = True) -> nn.Module:
        cfg = ctx.cfg
        require_from_scratch(cfg)
        model = self._parts(cfg)[0](cfg)
        # The decision threshold is part of the model: picked on validation data after training,
        # saved with the weights and used by the served model.
        model.register_buffer("threshold", torch.tensor(float("nan")))
        return model

    def _scores(self, model, images, ctx: RunContext):
        return self._parts(ctx.cfg)[1](model, images, ctx.cfg)

    def _labelled(self, ctx: RunContext, split: str, anomalies_per_digit: int | None = None):
        """(model-space images, digits) of a split: every normal digit, and every anomalous one or
        ``anomalies_per_digit`` of each, spread through the file."""
        digits = self.digits(ctx, split)
        normal = normal_digits(ctx.cfg)
        anomalous = sorted(set(range(10)) - set(normal))
        keep = np.isin(digits.labels, normal) | spread_per_class(digits.labels, anomalies_per_digit, among=anomalous)
        return to_model_space(digits.images[keep], ctx.cfg.params.input_size), digits.labels[keep]

    def serving_packages(self, cfg: RunConfig) -> tuple[str, ...]:
        """The anomaly scores' metrics module imports scikit-learn."""
        return ("scikit-learn",)

    def adversarial_steps(self, cfg: RunConfig):
        return self._parts(cfg)[2](cfg)

    def _selection_set(self, ctx: RunContext) -> tuple[torch.Tensor, np.ndarray]:
        """(images, is_anomaly) the kept checkpoint and the threshold are picked on: every
        validation normal and ``select_anomalies_per_class`` of each anomalous class. AnoGAN's
        search makes scoring all of them each epoch costly; EfficientGAN scores in one pass and
        takes them all (0), as 20 per class made its pick follow noise (test AUROC 0.68-0.76
        over 3 seeds)."""
        cfg, params = ctx.cfg, ctx.cfg.params
        val_images, val_digits = self._labelled(ctx, "val", params.select_anomalies_per_class or None)
        cap = params.max_select_samples
        val_images, val_digits = capped(val_images, cap), capped(val_digits, cap)
        return val_images, ~np.isin(val_digits, normal_digits(cfg))

    def loaders(self, ctx: RunContext) -> Loaders:
        """The normal training digits, and one validation "batch": the selection set."""
        return Loaders(self.train_loader(ctx), [self._selection_set(ctx)])

    def validation_step(self, model: nn.Module, batch, ctx: RunContext, device) -> Step:
        """AUROC on the selection set (select_metric: auroc)."""
        images, is_anomaly = batch
        scores, _ = self._scores(model, images, ctx)
        return Step(None, {"auroc": scoring.auroc(scores, is_anomaly)})

    def after_training(self, model: nn.Module, ctx: RunContext) -> None:
        """The threshold goes with the kept weights: picked on the selection set."""
        images, is_anomaly = self._selection_set(ctx)
        scores, _ = self._scores(model, images, ctx)
        model.threshold.fill_(scoring.pick_threshold(scores, is_anomaly))

    # -- evaluation -------------------------------------------------------------------------
    def eval_picks(self, ctx: RunContext, count: int) -> np.ndarray:
        """Indices of the test samples scored: all ``count``, or an even spread of
        ``max_eval_samples`` of them (smoke runs). The model and the baselines use the same."""
        picks = even_spread(count, ctx.cfg.max_eval_samples)
        return np.arange(count) if picks is None else picks

    def predict_split(self, model: nn.Module, ctx: RunContext) -> dict:
        test = self.digits(ctx, "test")
        picks = self.eval_picks(ctx, len(test))
        images, digits = to_model_space(test.images[picks], ctx.cfg.params.input_size), test.labels[picks]
        scores, reconstructions = self._scores(model, images, ctx)
        return {"images": images, "digits": digits, "scores": scores, "reconstructions": reconstructions,
                "threshold": float(model.threshold)}

    def score(self, predictions: dict, ctx: RunContext) -> dict[str, float]:
        return scoring.metrics(predictions["scores"], predictions["digits"], normal_digits(ctx.cfg),
                               predictions["threshold"], ctx.info["classes"])

    def baseline(self, ctx: RunContext) -> dict[str, dict[str, float]]:
        """{baseline name: metrics} for the mean-image and PCA detectors, on 28x28 images: each
        fitted on the normal training images, its threshold picked on the validation split,
        scored on the test samples ``predict_split`` scores (the same ``eval_picks``)."""
        normal = normal_digits(ctx.cfg)
        train = to_model_space(self.digits(ctx, "train", only_normal=True).images, 28)
        val, test = self.digits(ctx, "val"), self.digits(ctx, "test")
        picks = self.eval_picks(ctx, len(test))
        val_images, test_images = to_model_space(val.images, 28), to_model_space(test.images[picks], 28)
        detectors = {"mean_image": lambda images: scoring.mean_image_scores(train, images),
                     "pca": scoring.pca_scorer(train)}
        found = {}
        for name, detect in detectors.items():
            threshold = scoring.pick_threshold(detect(val_images), ~np.isin(val.labels, normal))
            found[name] = scoring.metrics(detect(test_images), test.labels[picks], normal, threshold,
                                          ctx.info["classes"])
        return found

    def examples(self, model: nn.Module, ctx: RunContext, predictions: dict, folder: Path) -> list[Path]:
        folder.mkdir(parents=True, exist_ok=True)
        normal = normal_digits(ctx.cfg)
        scores, digits = predictions["scores"].numpy(), predictions["digits"]
        is_normal = np.isin(digits, normal)
        figures = [gan_figures.score_histogram(
            {f"normal ({', '.join(normal_names(ctx))})": scores[is_normal],
             "anomalous (other classes)": scores[~is_normal]},
            predictions["threshold"], folder / "score_histogram.png",
            f"{ctx.cfg.registered_name}: test-split anomaly scores")]
        # One example of each class (normal and anomalous), each the median-scored of its class.
        picks = []
        for digit in sorted(set(digits.tolist())):
            where = np.flatnonzero(digits == digit)
            ordered = where[np.argsort(scores[where])]
            picks.append(ordered[len(ordered) // 2])
        figures.append(gan_figures.residual_examples(
            predictions["images"][picks], predictions["reconstructions"][picks], scores[picks],
            [f"{class_name(ctx, digits[i])}{' (normal)' if is_normal[i] else ''}" for i in picks],
            folder / "residual_maps.png"))
        return figures

    # -- serving ----------------------------------------------------------------------------
    def predict(self, model: nn.Module, ctx: RunContext, raw) -> pd.DataFrame:
        """Anomaly score and verdict per 28x28 grey image: a DataFrame with an ``image`` column
        (encoded bytes), or a list of encoded bytes / uint8 arrays."""
        digits = np.stack([decode_digit(item) for item in image_items(raw)])
        images = to_model_space(digits, ctx.cfg.params.input_size).to(model.threshold.device)
        scores, _ = self._scores(model, images, ctx)
        threshold = float(model.threshold)
        return pd.DataFrame({"score": scores.numpy().astype(np.float64), "is_anomaly": (scores >= threshold).numpy(),
                             "threshold": threshold})

    def input_example(self, ctx: RunContext) -> pd.DataFrame:
        """Two test images (a normal one and an anomalous one) as PNG bytes."""
        test = self.digits(ctx, "test")
        normal = np.isin(test.labels, normal_digits(ctx.cfg))
        picks = (int(np.flatnonzero(normal)[0]), int(np.flatnonzero(~normal)[0]))
        return pd.DataFrame({"image": [encode_png(test.images[index]) for index in picks]})


TASK = AnomalyTask()
