"""The update rules of the book's GANs, one class each, for ``training.adversarial``.

Fixes of the book's code: real/fake targets are float tensors (the book built them as integer
tensors, which BCE-with-logits rejects on current PyTorch), and each network's step leaves the
other's parameters out of the graph instead of relying on zeroing their gradients afterwards.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from zooflow.training.adversarial import frozen


def _adam(module: nn.Module, lr: float, betas: tuple[float, float]) -> torch.optim.Adam:
    return torch.optim.Adam(module.parameters(), lr=lr, betas=betas)


def _belief(logits: torch.Tensor) -> float:
    """The discriminator's mean probability that these images are real."""
    return torch.sigmoid(logits.detach()).mean().item()


class ImageGanSteps:
    """DCGAN (BCE with logits) or SAGAN (hinge loss) on ``model.generator`` / ``model.discriminator``:
    one discriminator update on a real batch and as many generated images, then one generator
    update on a fresh z."""

    def __init__(self, lr: dict[str, float], betas: tuple[float, float], loss: str = "bce"):
        if loss not in ("bce", "hinge"):
            raise ValueError(f"loss must be 'bce' or 'hinge', got {loss!r}")
        self.lr, self.betas, self.loss = lr, betas, loss

    def optimizers(self, model: nn.Module) -> dict[str, torch.optim.Optimizer]:
        return {"generator": _adam(model.generator, self.lr["generator"], self.betas),
                "discriminator": _adam(model.discriminator, self.lr["discriminator"], self.betas)}

    def _d_loss(self, real_logits, fake_logits):
        if self.loss == "hinge":
            return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()
        return (F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
                + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits)))

    def _g_loss(self, fake_logits):
        if self.loss == "hinge":
            return -fake_logits.mean()
        return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))

    def losses(self, model, real, z) -> tuple[torch.Tensor, torch.Tensor]:
        """(D loss, G loss) for a real batch and a z batch."""
        fake = model.generator(z)
        fake_logits = model.discriminator(fake)
        return self._d_loss(model.discriminator(real), fake_logits), self._g_loss(fake_logits)

    def discriminator_step(self, model, real, z, optimizers) -> dict[str, float]:
        with torch.no_grad():
            fake = model.generator(z)
        real_logits, fake_logits = model.discriminator(real), model.discriminator(fake)
        d_loss = self._d_loss(real_logits, fake_logits)
        optimizers["discriminator"].zero_grad(set_to_none=True)
        d_loss.backward()
        optimizers["discriminator"].step()
        return {"d_loss": d_loss.item(), "d_real": _belief(real_logits), "d_fake": _belief(fake_logits)}

    def generator_step(self, model, real, z, optimizers) -> dict[str, float]:
        with frozen(model.discriminator):
            g_loss = self._g_loss(model.discriminator(model.generator(z)))
            optimizers["generator"].zero_grad(set_to_none=True)
            g_loss.backward()
            optimizers["generator"].step()
        return {"g_loss": g_loss.item()}

    def step(self, model, real, optimizers):
        draw = lambda: torch.randn(len(real), model.z_dim, device=real.device)  # noqa: E731
        return self.discriminator_step(model, real, draw(), optimizers) | self.generator_step(model, real, draw(), optimizers)


class BiGanSteps:
    """EfficientGAN: D learns to tell (x, E(x)) from (G(z), z); G learns to make D call
    (G(z), z) real and E to make D call (x, E(x)) fake, which drives E towards G's inverse."""

    def __init__(self, lr: dict[str, float], betas: tuple[float, float]):
        self.lr, self.betas = lr, betas

    def optimizers(self, model: nn.Module) -> dict[str, torch.optim.Optimizer]:
        return {"generator": _adam(model.generator, self.lr["generator"], self.betas),
                "encoder": _adam(model.encoder, self.lr["encoder"], self.betas),
                "discriminator": _adam(model.discriminator, self.lr["discriminator"], self.betas)}

    def losses(self, model, real, z) -> tuple[torch.Tensor, torch.Tensor]:
        """(D loss, G + E loss) for a real batch and a z batch."""
        real_logits = model.discriminator(real, model.encoder(real))
        fake_logits = model.discriminator(model.generator(z), z)
        ones, zeros = torch.ones_like(real_logits), torch.zeros_like(real_logits)
        d_loss = (F.binary_cross_entropy_with_logits(real_logits, ones)
                  + F.binary_cross_entropy_with_logits(fake_logits, zeros))
        ge_loss = (F.binary_cross_entropy_with_logits(fake_logits, ones)
                   + F.binary_cross_entropy_with_logits(real_logits, zeros))
        return d_loss, ge_loss

    def discriminator_step(self, model, real, z, optimizers) -> dict[str, float]:
        G, E, D = model.generator, model.encoder, model.discriminator
        with torch.no_grad():
            fake, encoded = G(z), E(real)
        real_logits, fake_logits = D(real, encoded), D(fake, z)
        d_loss = (F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
                  + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits)))
        optimizers["discriminator"].zero_grad(set_to_none=True)
        d_loss.backward()
        optimizers["discriminator"].step()
        return {"d_loss": d_loss.item(), "d_real": _belief(real_logits), "d_fake": _belief(fake_logits)}

    def generator_step(self, model, real, z, optimizers) -> dict[str, float]:
        G, E, D = model.generator, model.encoder, model.discriminator
        with frozen(D):
            fooled, exposed = D(G(z), z), D(real, E(real))
            g_loss = F.binary_cross_entropy_with_logits(fooled, torch.ones_like(fooled))
            e_loss = F.binary_cross_entropy_with_logits(exposed, torch.zeros_like(exposed))
            optimizers["generator"].zero_grad(set_to_none=True)
            optimizers["encoder"].zero_grad(set_to_none=True)
            (g_loss + e_loss).backward()
            optimizers["generator"].step()
            optimizers["encoder"].step()
        return {"g_loss": g_loss.item(), "e_loss": e_loss.item()}

    def step(self, model, real, optimizers):
        z = torch.randn(len(real), model.z_dim, device=real.device)
        return self.discriminator_step(model, real, z, optimizers) | self.generator_step(model, real, z, optimizers)
