"""The update rules of the book's GANs, one class each: a GAN task's ``training_step`` hands
the engine (``training.engine``) the figures of one ``step``, which updates the networks itself.

Fixes of the book's code: real/fake targets are float tensors (the book built them as integer
tensors, which BCE-with-logits rejects on current PyTorch), and each network's step leaves the
other's parameters out of the graph instead of relying on zeroing their gradients afterwards.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn


@contextmanager
def frozen(*modules: nn.Module):
    """A context in which ``modules``' parameters take no gradients: the other network's step,
    or a search over inputs that must not spend a backward pass on the weights."""
    parameters = [p for m in modules for p in m.parameters() if p.requires_grad]
    for p in parameters:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in parameters:
            p.requires_grad_(True)


def _adam(module: nn.Module, lr: float, betas: tuple[float, float]) -> torch.optim.Adam:
    return torch.optim.Adam(module.parameters(), lr=lr, betas=betas)


def _belief(logits: torch.Tensor) -> float:
    """The discriminator's mean probability that these images are real."""
    return torch.sigmoid(logits.detach()).mean().item()


def _bce(logits: torch.Tensor, target: float) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


def _update(loss: torch.Tensor, *optimizers: torch.optim.Optimizer) -> None:
    for optimizer in optimizers:
        optimizer.zero_grad(set_to_none=True)
    loss.backward()
    for optimizer in optimizers:
        optimizer.step()


# loss name -> (discriminator loss(real logits, fake logits), generator loss(fake logits))
LOSSES = {
    "bce": (lambda real, fake: _bce(real, 1.0) + _bce(fake, 0.0), lambda fake: _bce(fake, 1.0)),
    "hinge": (lambda real, fake: F.relu(1 - real).mean() + F.relu(1 + fake).mean(), lambda fake: -fake.mean()),
}


class ImageGanSteps:
    """DCGAN (BCE with logits) or SAGAN (hinge loss) on ``model.generator`` / ``model.discriminator``:
    one discriminator update on a real batch and as many generated images, then one generator
    update on a fresh z."""

    def __init__(self, lr: dict[str, float], betas: tuple[float, float], loss: str = "bce"):
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {', '.join(LOSSES)}, got {loss!r}")
        self.lr, self.betas = lr, betas
        self.d_loss, self.g_loss = LOSSES[loss]

    def optimizers(self, model: nn.Module) -> dict[str, torch.optim.Optimizer]:
        return {"generator": _adam(model.generator, self.lr["generator"], self.betas),
                "discriminator": _adam(model.discriminator, self.lr["discriminator"], self.betas)}

    def losses(self, model, real, z) -> tuple[torch.Tensor, torch.Tensor]:
        """(D loss, G loss) for a real batch and a z batch."""
        fake_logits = model.discriminator(model.generator(z))
        return self.d_loss(model.discriminator(real), fake_logits), self.g_loss(fake_logits)

    def discriminator_step(self, model, real, z, optimizers) -> dict[str, float]:
        with torch.no_grad():
            fake = model.generator(z)
        real_logits, fake_logits = model.discriminator(real), model.discriminator(fake)
        d_loss = self.d_loss(real_logits, fake_logits)
        _update(d_loss, optimizers["discriminator"])
        return {"d_loss": d_loss.item(), "d_real": _belief(real_logits), "d_fake": _belief(fake_logits)}

    def generator_step(self, model, real, z, optimizers) -> dict[str, float]:
        with frozen(model.discriminator):
            g_loss = self.g_loss(model.discriminator(model.generator(z)))
            _update(g_loss, optimizers["generator"])
        return {"g_loss": g_loss.item()}

    def step(self, model, real, optimizers):
        draw = lambda: torch.randn(len(real), model.z_dim, device=real.device)  # noqa: E731
        return self.discriminator_step(model, real, draw(), optimizers) | self.generator_step(model, real, draw(), optimizers)


class BiGanSteps:
    """EfficientGAN: D learns to tell (x, E(x)) from (G(z), z); G learns to make D call
    (G(z), z) real and E to make D call (x, E(x)) fake, which drives E towards G's inverse.

    ``reconstruction_weight`` > 0 adds ``w * mean |x - G(E(x))|`` to G and E's loss (the
    cycle-consistency term of ALICE, Li et al. 2017; not in the book): the adversarial game
    alone inverts G only loosely, so the reconstruction the anomaly score rests on swings from
    epoch to epoch; with the term, E and G learn to reconstruct normal images and keep to it."""

    def __init__(self, lr: dict[str, float], betas: tuple[float, float], reconstruction_weight: float = 0.0):
        self.lr, self.betas, self.reconstruction_weight = lr, betas, reconstruction_weight

    def optimizers(self, model: nn.Module) -> dict[str, torch.optim.Optimizer]:
        return {"generator": _adam(model.generator, self.lr["generator"], self.betas),
                "encoder": _adam(model.encoder, self.lr["encoder"], self.betas),
                "discriminator": _adam(model.discriminator, self.lr["discriminator"], self.betas)}

    def losses(self, model, real, z) -> tuple[torch.Tensor, torch.Tensor]:
        """(D loss, G + E loss) for a real batch and a z batch: the same BCE, labels swapped (G
        and E's with the cycle term when ``reconstruction_weight`` is set, as their step has)."""
        encoded = model.encoder(real)
        real_logits = model.discriminator(real, encoded)
        fake_logits = model.discriminator(model.generator(z), z)
        ge_loss = _bce(fake_logits, 1.0) + _bce(real_logits, 0.0)
        if self.reconstruction_weight:
            ge_loss = ge_loss + self.reconstruction_weight * (real - model.generator(encoded)).abs().mean()
        return _bce(real_logits, 1.0) + _bce(fake_logits, 0.0), ge_loss

    def discriminator_step(self, model, real, z, optimizers) -> dict[str, float]:
        G, E, D = model.generator, model.encoder, model.discriminator
        with torch.no_grad():
            fake, encoded = G(z), E(real)
        real_logits, fake_logits = D(real, encoded), D(fake, z)
        d_loss = _bce(real_logits, 1.0) + _bce(fake_logits, 0.0)
        _update(d_loss, optimizers["discriminator"])
        return {"d_loss": d_loss.item(), "d_real": _belief(real_logits), "d_fake": _belief(fake_logits)}

    def generator_step(self, model, real, z, optimizers) -> dict[str, float]:
        G, E, D = model.generator, model.encoder, model.discriminator
        with frozen(D):
            encoded = E(real)
            g_loss, e_loss = _bce(D(G(z), z), 1.0), _bce(D(real, encoded), 0.0)
            loss = g_loss + e_loss
            found = {"g_loss": g_loss.item(), "e_loss": e_loss.item()}
            if self.reconstruction_weight:
                reconstruction = (real - G(encoded)).abs().mean()
                loss = loss + self.reconstruction_weight * reconstruction
                found["reconstruction"] = reconstruction.item()
            _update(loss, optimizers["generator"], optimizers["encoder"])
        return found

    def step(self, model, real, optimizers):
        z = torch.randn(len(real), model.z_dim, device=real.device)
        return self.discriminator_step(model, real, z, optimizers) | self.generator_step(model, real, z, optimizers)
