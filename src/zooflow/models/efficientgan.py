"""EfficientGAN (book 6-2; Zenati et al. 2018, a BiGAN for anomaly detection) on 28x28 digits.

Three networks: a generator G (z -> x), an encoder E (x -> z) and a discriminator D on (x, z)
pairs that tells (x, E(x)) from (G(z), z). After training, E inverts G in one pass, so an
image's anomaly score needs no latent search (AnoGAN's cost).

Book sizes (``width=1``, z 20-d): G = Linear(z, 1024) -> Linear(1024, 128x7x7) -> two stride-2
transposed convs (128->64->1, tanh); E = three convs (1->32, 32->64 s2, 64->128 s2) -> Linear
to z; D = two convs on x (1->64 s2, 64->64 s2) joined with Linear(z, 512), then Linear(.., 1024)
-> Linear(1024, 1). LeakyReLU(0.1) throughout E and D.
"""

from __future__ import annotations

import torch
from torch import nn

from zooflow.models.gan import init_weights

SIDE = 28  # EfficientGAN works on MNIST's own size


def _c(channels: int, width: float) -> int:
    return max(int(channels * width), 4)


class Generator(nn.Module):
    def __init__(self, z_dim: int = 20, width: float = 1.0):
        super().__init__()
        self.z_dim, self.top = z_dim, _c(128, width)
        self.dense = nn.Sequential(nn.Linear(z_dim, _c(1024, width)), nn.BatchNorm1d(_c(1024, width)), nn.ReLU(True),
                                   nn.Linear(_c(1024, width), self.top * 7 * 7), nn.BatchNorm1d(self.top * 7 * 7),
                                   nn.ReLU(True))
        self.conv = nn.Sequential(nn.ConvTranspose2d(self.top, _c(64, width), 4, 2, 1), nn.BatchNorm2d(_c(64, width)),
                                  nn.ReLU(True), nn.ConvTranspose2d(_c(64, width), 1, 4, 2, 1), nn.Tanh())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.conv(self.dense(z).view(len(z), self.top, 7, 7))


class Encoder(nn.Module):
    def __init__(self, z_dim: int = 20, width: float = 1.0):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(1, _c(32, width), 3, 1, 1), nn.LeakyReLU(0.1, True),
            nn.Conv2d(_c(32, width), _c(64, width), 3, 2, 1), nn.BatchNorm2d(_c(64, width)), nn.LeakyReLU(0.1, True),
            nn.Conv2d(_c(64, width), _c(128, width), 3, 2, 1), nn.BatchNorm2d(_c(128, width)), nn.LeakyReLU(0.1, True))
        self.head = nn.Linear(_c(128, width) * 7 * 7, z_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.conv(x).flatten(1))


class Discriminator(nn.Module):
    """(x, z) -> one logit; ``features`` also returns the joint hidden layer."""

    def __init__(self, z_dim: int = 20, width: float = 1.0):
        super().__init__()
        self.image = nn.Sequential(
            nn.Conv2d(1, _c(64, width), 4, 2, 1), nn.LeakyReLU(0.1, True),
            nn.Conv2d(_c(64, width), _c(64, width), 4, 2, 1), nn.BatchNorm2d(_c(64, width)), nn.LeakyReLU(0.1, True))
        self.latent = nn.Sequential(nn.Linear(z_dim, _c(512, width)), nn.LeakyReLU(0.1, True))
        self.joint = nn.Sequential(nn.Linear(_c(64, width) * 7 * 7 + _c(512, width), _c(1024, width)),
                                   nn.LeakyReLU(0.1, True))
        self.last = nn.Linear(_c(1024, width), 1)

    def features(self, x: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = self.joint(torch.cat([self.image(x).flatten(1), self.latent(z)], dim=1))
        return self.last(hidden).squeeze(1), hidden

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.features(x, z)[0]


class EfficientGAN(nn.Module):
    """G, E and D, saved and registered as one model."""

    def __init__(self, z_dim: int = 20, width: float = 1.0):
        super().__init__()
        self.z_dim, self.image_size = z_dim, SIDE
        self.generator = Generator(z_dim, width)
        self.encoder = Encoder(z_dim, width)
        self.discriminator = Discriminator(z_dim, width)
        self.apply(init_weights)
