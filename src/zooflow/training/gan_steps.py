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

    def step(self, model, real, optimizers):
        G, D = model.generator, model.discriminator
        z = torch.randn(len(real), model.z_dim, device=real.device)
        with torch.no_grad():
            fake = G(z)
        real_logits, fake_logits = D(real), D(fake)
        d_loss = self._d_loss(real_logits, fake_logits)
        optimizers["discriminator"].zero_grad(set_to_none=True)
        d_loss.backward()
        optimizers["discriminator"].step()

        with frozen(D):
            fooled = D(G(torch.randn(len(real), model.z_dim, device=real.device)))
            g_loss = self._g_loss(fooled)
            optimizers["generator"].zero_grad(set_to_none=True)
            g_loss.backward()
            optimizers["generator"].step()
        return {"d_loss": d_loss.item(), "g_loss": g_loss.item(),
                "d_real": _belief(real_logits), "d_fake": _belief(fake_logits)}


class BiGanSteps:
    """EfficientGAN: D learns to tell (x, E(x)) from (G(z), z); G learns to make D call
    (G(z), z) real and E to make D call (x, E(x)) fake, which drives E towards G's inverse."""

    def __init__(self, lr: dict[str, float], betas: tuple[float, float]):
        self.lr, self.betas = lr, betas

    def optimizers(self, model: nn.Module) -> dict[str, torch.optim.Optimizer]:
        return {"generator": _adam(model.generator, self.lr["generator"], self.betas),
                "encoder": _adam(model.encoder, self.lr["encoder"], self.betas),
                "discriminator": _adam(model.discriminator, self.lr["discriminator"], self.betas)}

    def step(self, model, real, optimizers):
        G, E, D = model.generator, model.encoder, model.discriminator
        z = torch.randn(len(real), model.z_dim, device=real.device)
        with torch.no_grad():
            fake, encoded = G(z), E(real)
        real_logits, fake_logits = D(real, encoded), D(fake, z)
        ones, zeros = torch.ones_like(real_logits), torch.zeros_like(real_logits)
        d_loss = (F.binary_cross_entropy_with_logits(real_logits, ones)
                  + F.binary_cross_entropy_with_logits(fake_logits, zeros))
        optimizers["discriminator"].zero_grad(set_to_none=True)
        d_loss.backward()
        optimizers["discriminator"].step()

        with frozen(D):
            g_loss = F.binary_cross_entropy_with_logits(D(G(z), z), ones)
            e_loss = F.binary_cross_entropy_with_logits(D(real, E(real)), zeros)
            optimizers["generator"].zero_grad(set_to_none=True)
            optimizers["encoder"].zero_grad(set_to_none=True)
            (g_loss + e_loss).backward()
            optimizers["generator"].step()
            optimizers["encoder"].step()
        return {"d_loss": d_loss.item(), "g_loss": g_loss.item(), "e_loss": e_loss.item(),
                "d_real": _belief(real_logits), "d_fake": _belief(fake_logits)}
