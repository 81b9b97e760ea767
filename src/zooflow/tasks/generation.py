"""Chapter 5: image generation with DCGAN and Self-Attention GAN.

Data: MNIST-format idx files (``data/generation/MNIST/raw``, class names in ``classes.txt`` when
they are not digits); generators learn the classes of ``normal_labels`` (the book: digits 7 and
8) from the training split, upscaled to ``input_size``.
Models: ``dcgan`` (BCE loss) and ``sagan`` (spectral norm, self-attention, hinge loss).
Primary metric: FID (lower is better) of 1,000 samples against the held-out test digits, on the
features of a digit classifier trained on the same data version; also the share of samples
that classifier reads as a learnt digit with confidence >= 0.9. During training the weights
kept are those with the best FID on the validation split.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from zooflow.data.raw_images import encode_png
from zooflow.data.subsets import capped
from zooflow.evaluation import gan_figures
from zooflow.evaluation import generation as judging
from zooflow.models.gan import ImageGAN
from zooflow.tasks.base import RunContext, evaluate
from zooflow.tasks.digits import DigitsData, normal_digits, require_from_scratch
from zooflow.training.engine import Loaders, Step
from zooflow.training.gan_steps import ImageGanSteps

EVAL_SAMPLES = 1000
EVAL_SEED = 2019          # the samples every version is scored on (same z for champion and challenger)
SELECT_SAMPLES = 500
SELECT_SEED = 7
LOSSES = {"dcgan": "bce", "sagan": "hinge"}


class GenerationTask(DigitsData):
    name = "generation"
    primary_metric = "fid"
    goal = "min"
    baseline_description = ("an untrained generator of the same architecture (the book's initialisation, seed 0), "
                            "sampled with the same z")

    # -- model ------------------------------------------------------------------------------
    def build_model(self, ctx: RunContext, pretrained: bool = True) -> nn.Module:
        cfg = ctx.cfg
        if cfg.architecture not in LOSSES:
            raise ValueError(f"unknown architecture '{cfg.architecture}'; known: {', '.join(LOSSES)}")
        require_from_scratch(cfg)
        params = cfg.params
        return ImageGAN(params.latent_dim, params.input_size, params.width, attention=cfg.architecture == "sagan",
                        discriminator_batchnorm=params.discriminator_batchnorm)

    def adversarial_steps(self, cfg) -> ImageGanSteps:
        return ImageGanSteps(cfg.lr, cfg.betas, LOSSES[cfg.architecture])

    def loaders(self, ctx: RunContext) -> Loaders:
        """The training digits, and one validation "batch": what FID needs to score a generator
        (the digit judge and the validation split's normal digits, capped in demo and smoke)."""
        train = self.train_loader(ctx)
        judge = self.judge(ctx)
        val_real = capped(judging.to_signed(self.digits(ctx, "val", only_normal=True).images),
                          ctx.cfg.params.max_select_samples)
        return Loaders(train, [(judge, val_real)])

    def validation_step(self, model: nn.Module, batch, ctx: RunContext, device) -> Step:
        """FID of samples from a fixed z against the validation digits (select_metric: fid)."""
        judge, val_real = batch
        fake = judging.sample(model.generator, model.z_dim, SELECT_SAMPLES, SELECT_SEED)
        return Step(None, {"fid": judging.fid(judge, val_real, fake)})

    # -- evaluation -------------------------------------------------------------------------
    def predict_split(self, model: nn.Module, ctx: RunContext) -> dict:
        """Samples from fixed z and the held-out test digits they are compared with."""
        model.eval()
        count = min(EVAL_SAMPLES, ctx.cfg.max_eval_samples or EVAL_SAMPLES)
        return {"fake": judging.sample(model.generator, model.z_dim, count, EVAL_SEED),
                "real": judging.to_signed(self.digits(ctx, "test", only_normal=True).images)}

    def score(self, predictions: dict, ctx: RunContext) -> dict[str, float]:
        judge = self.judge(ctx)
        digits = normal_digits(ctx.cfg)
        return {"fid": judging.fid(judge, predictions["real"], predictions["fake"]),
                "confident_share": judging.confident_share(judge, predictions["fake"], digits),
                "real_confident_share": judging.confident_share(judge, predictions["real"], digits)}

    def baseline(self, ctx: RunContext) -> dict[str, float]:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            untrained = self.build_model(ctx)
        return evaluate(self, untrained, ctx)

    def examples(self, model: nn.Module, ctx: RunContext, predictions: dict, folder: Path) -> list[Path]:
        folder.mkdir(parents=True, exist_ok=True)
        real, fake = predictions["real"], predictions["fake"]
        picks = np.linspace(0, len(real) - 1, num=min(20, len(real))).round().astype(int)
        figures = [gan_figures.image_rows(
            [("real (test)", real[picks[:10]]), ("real (test)", real[picks[10:]]),
             ("generated", fake[:10]), ("generated", fake[10:20])], folder / "real_vs_generated.png")]
        blocks = model.attention_blocks("generator")
        if blocks:
            with torch.no_grad():
                model.generator(torch.randn(1, model.z_dim, generator=torch.Generator().manual_seed(EVAL_SEED)))
            image = fake[0]
            for index, block in enumerate(blocks):
                side = int(round(block.last_attention.shape[-1] ** 0.5))
                queries = [(side // 4, side // 2), (side // 2, side // 2), (3 * side // 4, side // 3)]
                figures.append(gan_figures.attention_maps(
                    image, block.last_attention[0], queries, folder / f"attention_generator_{index + 1}.png",
                    layer=f"(generator block {index + 1}, {side}x{side} positions, gamma {block.gamma.item():.3f})"))
        return figures

    # -- serving ----------------------------------------------------------------------------
    def predict(self, model: nn.Module, ctx: RunContext, raw) -> pd.DataFrame:
        """``count`` PNG digits per ``seed``: a DataFrame with columns ``seed`` and ``count``
        (or a list of (seed, count) pairs). The same seed always gives the same images."""
        table = raw if isinstance(raw, pd.DataFrame) else pd.DataFrame(list(raw), columns=["seed", "count"])
        missing = {"seed", "count"} - set(table.columns)
        if missing:
            raise ValueError(f"expected columns 'seed' and 'count', missing {sorted(missing)}")
        rows = []
        for seed, count in zip(table["seed"], table["count"]):
            if not 1 <= int(count) <= 1024:
                raise ValueError(f"count must be 1-1024 images per seed, got {count}")
            images = judging.sample(model.generator, model.z_dim, int(count), int(seed))
            for index, image in enumerate(images):
                pixels = ((image.squeeze(0).clamp(-1, 1) + 1) * 127.5).round().byte().numpy()
                rows.append({"seed": int(seed), "index": index, "image": encode_png(pixels)})
        return pd.DataFrame(rows)

    def input_example(self, ctx: RunContext) -> pd.DataFrame:
        return pd.DataFrame({"seed": [0, 1], "count": [2, 2]})


TASK = GenerationTask()
