"""The book's image GANs (chapter 5-6): DCGAN, Self-Attention GAN, and the DCGAN that AnoGAN
searches.

Book sizes (``image_size=64``, ``width=1``): the generator maps z (20-d) through a 4x4
transposed conv to 512 channels, then four stride-2 transposed convs (512->256->128->64->1,
the last with tanh); the discriminator mirrors it with four stride-2 convs (1->64->...->512)
and LeakyReLU(0.1), then a 4x4 conv to one logit. DCGAN: G 2,920,257 and D 2,762,689
parameters. ``image_size`` 32 drops one stage; ``width`` scales every channel count.

SAGAN: spectral norm on every conv (attention's 1x1 convs included) and a self-attention block
after each of the last two hidden stages of G and of D, whose output is ``gamma * attention +
input`` with ``gamma`` learnt from 0 (the network starts as a plain convnet).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm


def init_weights(module: nn.Module) -> None:
    """The book's (and DCGAN paper's) initialisation: conv weights N(0, 0.02), batch-norm
    scales N(1, 0.02), biases 0. Without it the book's settings collapse faster on CPU."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        weight = module.parametrizations.weight.original if hasattr(module, "parametrizations") else module.weight
        nn.init.normal_(weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


def _stages(image_size: int) -> int:
    stages = int(math.log2(image_size)) - 2
    if image_size < 16 or 2 ** (stages + 2) != image_size:
        raise ValueError(f"image_size must be a power of two >= 16 (the book uses 64), got {image_size}")
    return stages


class SelfAttention(nn.Module):
    """SAGAN's self-attention over all positions of a feature map. Keeps its last attention map
    (batch, query position, key position) for the model card's figures."""

    def __init__(self, channels: int, normalise=lambda layer: layer):
        super().__init__()
        self.query = normalise(nn.Conv2d(channels, max(channels // 8, 1), 1))
        self.key = normalise(nn.Conv2d(channels, max(channels // 8, 1), 1))
        self.value = normalise(nn.Conv2d(channels, channels, 1))
        self.gamma = nn.Parameter(torch.zeros(1))
        self.last_attention: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = x.shape
        query = self.query(x).flatten(2).transpose(1, 2)          # (B, N, C/8)
        key = self.key(x).flatten(2)                              # (B, C/8, N)
        attention = torch.softmax(torch.bmm(query, key), dim=-1)  # (B, N query, N key)
        value = self.value(x).flatten(2)                          # (B, C, N)
        out = torch.bmm(value, attention.transpose(1, 2)).view(batch, channels, height, width)
        self.last_attention = attention.detach()
        return x + self.gamma * out


class Generator(nn.Module):
    """z (B, z_dim) -> image (B, 1, size, size) in [-1, 1]."""

    def __init__(self, z_dim: int = 20, image_size: int = 64, width: float = 1.0, attention: bool = False):
        super().__init__()
        stages = _stages(image_size)
        base = max(int(64 * width), 8)
        norm = spectral_norm if attention else (lambda layer: layer)
        channels = [base * 2 ** (stages - 1 - i) for i in range(stages)]  # 512, 256, 128, 64 at book size
        self.z_dim = z_dim
        blocks: list[nn.Module] = [nn.Sequential(norm(nn.ConvTranspose2d(z_dim, channels[0], 4, 1)),
                                                 nn.BatchNorm2d(channels[0]), nn.ReLU(inplace=True))]
        for i in range(1, stages):
            blocks.append(nn.Sequential(norm(nn.ConvTranspose2d(channels[i - 1], channels[i], 4, 2, 1)),
                                        nn.BatchNorm2d(channels[i]), nn.ReLU(inplace=True)))
            if attention and i >= stages - 2:
                blocks.append(SelfAttention(channels[i], norm))
        blocks.append(nn.Sequential(norm(nn.ConvTranspose2d(channels[-1], 1, 4, 2, 1)), nn.Tanh()))
        self.blocks = nn.Sequential(*blocks)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.blocks(z.view(len(z), self.z_dim, 1, 1))


class Discriminator(nn.Module):
    """image -> one logit per image. ``features`` also returns the last hidden feature map
    (AnoGAN's discrimination loss compares them)."""

    def __init__(self, image_size: int = 64, width: float = 1.0, attention: bool = False, batch_norm: bool = False):
        super().__init__()
        stages = _stages(image_size)
        base = max(int(64 * width), 8)
        norm = spectral_norm if attention else (lambda layer: layer)
        channels = [base * 2 ** i for i in range(stages)]  # 64, 128, 256, 512 at book size
        blocks: list[nn.Module] = []
        for i in range(stages):
            conv = norm(nn.Conv2d(1 if i == 0 else channels[i - 1], channels[i], 4, 2, 1))
            # Optional batch norm (the DCGAN paper's D; not the book's): a batch statistic lets D
            # see that a batch of samples lacks variety, which resists mode collapse.
            bn = [nn.BatchNorm2d(channels[i])] if batch_norm and i > 0 else []
            blocks.append(nn.Sequential(conv, *bn, nn.LeakyReLU(0.1, inplace=True)))
            if attention and i >= stages - 2:
                blocks.append(SelfAttention(channels[i], norm))
        self.blocks = nn.Sequential(*blocks)
        self.last = norm(nn.Conv2d(channels[-1], 1, 4, 1))

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = self.blocks(x)
        return self.last(hidden).flatten(1).squeeze(1), hidden

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)[0]


class ImageGAN(nn.Module):
    """A generator and its discriminator, saved and registered as one model."""

    def __init__(self, z_dim: int, image_size: int, width: float, attention: bool,
                 discriminator_batchnorm: bool = False):
        super().__init__()
        self.z_dim, self.image_size = z_dim, image_size
        self.generator = Generator(z_dim, image_size, width, attention)
        self.discriminator = Discriminator(image_size, width, attention, discriminator_batchnorm)
        self.apply(init_weights)

    def attention_blocks(self, part: str = "generator") -> list[SelfAttention]:
        return [m for m in getattr(self, part).modules() if isinstance(m, SelfAttention)]


def parameter_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
