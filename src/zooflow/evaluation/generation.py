"""Scoring generated digits: FID on the features of a digit classifier (the "judge"), and the
share of samples the judge reads, with confidence, as one of the digits the generator learnt.

Inception features (the usual FID) need ImageNet weights and 299x299 RGB inputs; for 28x28
digits a small classifier trained on the same data version is both available offline and a
better judge. The judge is trained deterministically and cached by the content hash of the
training images, so every model scored on one data version (a new version and the champion it
is compared with) is scored by the same judge.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from zooflow import progress
from zooflow.data.subsets import spread_per_class

JUDGE_SIDE = 28
JUDGE_SEED = 0
JUDGE_EPOCHS = 4
# The judge learns from at most this many training images of each class (an even spread), in
# every profile: the demo digits have 320 per class, full MNIST / Fashion-MNIST 4,800, on
# which 4 epochs took 7.5 minutes on 2 cores before a smoke run showed anything. 500 per class
# reads MNIST digits with ~97% accuracy; the rule depends on the data alone, so a champion and
# a challenger trained under different profiles are still scored by the same judge.
JUDGE_IMAGES_PER_CLASS = 500


class DigitJudge(nn.Module):
    """A small CNN digit classifier. ``forward`` returns its 128-d penultimate features (what
    FID compares); ``classify`` returns logits. Inputs: (B, 1, H, W) in [-1, 1], any H, W
    (resized to 28x28)."""

    num_features = 128

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(64 * 7 * 7, self.num_features), nn.ReLU())
        self.head = nn.Linear(self.num_features, 10)

    @staticmethod
    def _fit_size(x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != JUDGE_SIDE:
            x = F.interpolate(x, size=(JUDGE_SIDE, JUDGE_SIDE), mode="bilinear", antialias=True, align_corners=False)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(self._fit_size(x))

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward(x))


def to_signed(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W) -> float (N, 1, H, W) in [-1, 1], the range generators produce."""
    return torch.from_numpy(np.asarray(images, dtype=np.float32)).unsqueeze(1) / 127.5 - 1.0


def images_hash(images: np.ndarray, labels: np.ndarray) -> str:
    digest = hashlib.sha256(np.ascontiguousarray(images).tobytes())
    digest.update(np.ascontiguousarray(labels).tobytes())
    return digest.hexdigest()[:16]


def judge_sample(images: np.ndarray, labels: np.ndarray,
                 per_class: int = JUDGE_IMAGES_PER_CLASS) -> tuple[np.ndarray, np.ndarray]:
    """At most ``per_class`` images of each label, spread evenly through the file (the first
    ones of an idx file may not be typical of the rest)."""
    keep = spread_per_class(labels, per_class)
    return images[keep], np.asarray(labels)[keep]


def train_judge(images: np.ndarray, labels: np.ndarray, epochs: int = JUDGE_EPOCHS) -> DigitJudge:
    """Fit the judge on uint8 images (all classes), seeded, on CPU (deterministic)."""
    generator = torch.Generator().manual_seed(JUDGE_SEED)
    with torch.random.fork_rng(devices=[]):  # leave the caller's random stream untouched
        torch.manual_seed(JUDGE_SEED)
        judge = DigitJudge()
    optimizer = torch.optim.Adam(judge.parameters(), lr=1e-3)
    x, y = to_signed(images), torch.from_numpy(np.asarray(labels, dtype=np.int64))
    judge.train()
    with progress.phase(f"training the FID judge ({len(y):,} images x {epochs} epochs)", epochs * len(y),
                        "images") as shown:
        for _ in range(epochs):
            order = torch.randperm(len(y), generator=generator)
            for start in range(0, len(y), 64):
                batch = order[start:start + 64]
                loss = F.cross_entropy(judge.classify(x[batch]), y[batch])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                shown.advance(len(batch))
    return judge.eval()


def load_judge(cache: Path, images: np.ndarray, labels: np.ndarray) -> DigitJudge:
    """The judge for these training images (``judge_sample`` of them): from ``cache`` when
    trained before, else trained now and saved there."""
    images, labels = judge_sample(images, labels)
    file = Path(cache) / f"judge-{images_hash(images, labels)}.safetensors"
    if file.is_file():
        # Built inside fork_rng like a freshly trained one: otherwise its random init would draw
        # from the caller's stream, and a GAN trained after it would differ with the cache state.
        with torch.random.fork_rng(devices=[]):
            judge = DigitJudge()
        judge.load_state_dict(load_file(str(file)))
        return judge.eval()
    judge = train_judge(images, labels)
    file.parent.mkdir(parents=True, exist_ok=True)
    partial = file.with_suffix(".partial")
    save_file({k: v.contiguous() for k, v in judge.state_dict().items()}, str(partial))
    partial.replace(file)
    return judge


@torch.no_grad()
def judge_accuracy(judge: DigitJudge, images: torch.Tensor, labels: np.ndarray) -> float:
    guesses = torch.cat([judge.classify(chunk).argmax(1) for chunk in images.split(256)])
    return float((guesses.numpy() == np.asarray(labels)).mean())


@torch.no_grad()
def fid(judge: DigitJudge, real: torch.Tensor, fake: torch.Tensor) -> float:
    """Fréchet distance between the judge's features of ``real`` and ``fake`` images
    (both (N, 1, H, W) in [-1, 1]), computed by torchmetrics."""
    from torchmetrics.image.fid import FrechetInceptionDistance

    metric = FrechetInceptionDistance(feature=judge, normalize=True, input_img_size=(1, JUDGE_SIDE, JUDGE_SIDE))
    for chunk in real.split(256):
        metric.update(chunk.float(), real=True)
    for chunk in fake.split(256):
        metric.update(chunk.float(), real=False)
    return float(metric.compute())


@torch.no_grad()
def confident_share(judge: DigitJudge, fake: torch.Tensor, digits: list[int], confidence: float = 0.9) -> float:
    """The share of ``fake`` images the judge reads as one of ``digits`` with at least
    ``confidence`` probability."""
    probabilities = torch.cat([judge.classify(chunk.float()).softmax(1) for chunk in fake.split(256)])
    top, guess = probabilities.max(1)
    return float(((top >= confidence) & torch.isin(guess, torch.tensor(digits))).float().mean())


@torch.no_grad()
def sample(generator: nn.Module, z_dim: int, count: int, seed: int, device: torch.device | None = None) -> torch.Tensor:
    """``count`` images from ``generator`` in eval mode (the book sampled in train mode, so its
    batch-norm layers used the sample batch's statistics), z ~ N(0, 1) drawn from ``seed``."""
    device = device or next(generator.parameters()).device
    was_training = generator.training
    generator.eval()
    z = torch.randn(count, z_dim, generator=torch.Generator().manual_seed(seed))
    images = torch.cat([generator(chunk.to(device)).float().cpu() for chunk in z.split(256)])
    generator.train(was_training)
    return images
