"""Generative image models for small images: a conditional VAE and a conditional DCGAN-style GAN.

Both produce images in [0, 1] of the shape they were trained on (channels × height × width).
With `n_classes > 0` they are conditioned on a class label (a one-hot code beside the latent
vector), so `sample(n, labels)` can ask for a given digit; with 0 they are unconditional.

- `vae`: MLP encoder q(z | x, y) and decoder p(x | z, y) with Bernoulli pixels; the loss is the
  negative ELBO per image (reconstruction BCE summed over pixels + beta × KL to N(0, I)).
- `gan`: a transposed-conv generator (2 upsamplings, batch norm) and a spectral-norm conv
  discriminator with a class projection, trained with the hinge loss (the usual stabilisers).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from modelforge.errors import ConfigError
from modelforge.models.registry import register_model


@dataclass(frozen=True)
class ImageGenerationSpec:
    """What a generator is trained on: image shape and the number of classes it is conditioned on."""

    channels: int
    height: int
    width: int
    n_classes: int = 0

    @property
    def pixels(self) -> int:
        return self.channels * self.height * self.width


def _check(spec: object, name: str) -> ImageGenerationSpec:
    if not isinstance(spec, ImageGenerationSpec):
        raise ConfigError(f"model.type {name} needs task: generation")
    return spec


def one_hot(labels: torch.Tensor | None, n_classes: int, n: int) -> torch.Tensor:
    """n × n_classes one-hot codes (n × 0 when unconditional)."""
    if n_classes == 0:
        return torch.zeros(n, 0)
    assert labels is not None, "a conditional model needs labels"
    return nn.functional.one_hot(labels, n_classes).float()


class ConditionalVAE(nn.Module):
    def __init__(self, spec: ImageGenerationSpec, latent: int, hidden: int, beta: float) -> None:
        super().__init__()
        self.spec, self.latent, self.beta = spec, latent, beta
        k = spec.n_classes
        self.encoder = nn.Sequential(
            nn.Linear(spec.pixels + k, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU()
        )
        self.mean, self.log_var = nn.Linear(hidden, latent), nn.Linear(hidden, latent)
        self.decoder = nn.Sequential(
            nn.Linear(latent + k, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, spec.pixels),
        )

    def encode(self, images: torch.Tensor, labels: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        code = one_hot(labels, self.spec.n_classes, len(images))
        hidden = self.encoder(torch.cat([images.flatten(1), code], dim=1))
        return self.mean(hidden), self.log_var(hidden).clamp(-10, 10)

    def decode_logits(self, z: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        code = one_hot(labels, self.spec.n_classes, z.shape[0])
        spec = self.spec
        return self.decoder(torch.cat([z, code], dim=1)).view(z.shape[0], spec.channels, spec.height, spec.width)

    def loss(self, images: torch.Tensor, labels: torch.Tensor | None) -> tuple[torch.Tensor, dict[str, float]]:
        """Negative ELBO per image (reparameterised sample of z), with its two parts."""
        mean, log_var = self.encode(images, labels)
        z = mean + torch.randn_like(mean) * (0.5 * log_var).exp()
        logits = self.decode_logits(z, labels)
        reconstruction = nn.functional.binary_cross_entropy_with_logits(logits, images, reduction="sum") / len(images)
        kl = -0.5 * (1 + log_var - mean.pow(2) - log_var.exp()).sum() / len(images)
        return reconstruction + self.beta * kl, {"reconstruction": reconstruction.item(), "kl": kl.item()}

    @torch.no_grad()
    def sample(self, labels: torch.Tensor | None, n: int, generator: torch.Generator, temperature: float = 1.0):
        z = torch.randn(n, self.latent, generator=generator) * temperature
        return torch.sigmoid(self.decode_logits(z, labels))

    @torch.no_grad()
    def reconstruct(self, images: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        mean, _ = self.encode(images, labels)
        return torch.sigmoid(self.decode_logits(mean, labels))

    @torch.no_grad()
    def interpolate(
        self, first: torch.Tensor, second: torch.Tensor, labels: torch.Tensor | None, steps: int
    ) -> torch.Tensor:
        """Decoded points on the straight line between the latent means of two images (one row per step)."""
        mean, _ = self.encode(torch.stack([first, second]), labels[:2] if labels is not None else None)
        weights = torch.linspace(0, 1, steps)[:, None]
        z = (1 - weights) * mean[0] + weights * mean[1]
        row_labels = None if labels is None else torch.where(weights[:, 0] < 0.5, labels[0], labels[1])
        return torch.sigmoid(self.decode_logits(z, row_labels))


class ConvGenerator(nn.Module):
    """z ⊕ class code → (4·width) × H/4 × W/4 → two stride-2 transposed convs → C × H × W in [0, 1]."""

    def __init__(self, spec: ImageGenerationSpec, latent: int, width: int) -> None:
        super().__init__()
        self.spec, self.width = spec, width
        self.project = nn.Sequential(
            nn.Linear(latent + spec.n_classes, 4 * width * (spec.height // 4) * (spec.width // 4)),
            nn.BatchNorm1d(4 * width * (spec.height // 4) * (spec.width // 4)),
            nn.ReLU(),
        )
        self.upsample = nn.Sequential(
            nn.ConvTranspose2d(4 * width, 2 * width, 4, 2, 1),
            nn.BatchNorm2d(2 * width),
            nn.ReLU(),
            nn.ConvTranspose2d(2 * width, spec.channels, 4, 2, 1),
            nn.Sigmoid(),
        )

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        code = one_hot(labels, self.spec.n_classes, z.shape[0])
        hidden = self.project(torch.cat([z, code], dim=1))
        return self.upsample(hidden.view(z.shape[0], 4 * self.width, self.spec.height // 4, self.spec.width // 4))


class ProjectionDiscriminator(nn.Module):
    """Spectral-norm convs → features; score = linear(features) + <class embedding, features>."""

    def __init__(self, spec: ImageGenerationSpec, width: int) -> None:
        super().__init__()
        self.features = nn.Sequential(
            spectral_norm(nn.Conv2d(spec.channels, 2 * width, 3, 1, 1)),
            nn.LeakyReLU(0.2),
            spectral_norm(nn.Conv2d(2 * width, 4 * width, 4, 2, 1)),
            nn.LeakyReLU(0.2),
            spectral_norm(nn.Conv2d(4 * width, 4 * width, 4, 2, 1)),
            nn.LeakyReLU(0.2),
            nn.Flatten(),
        )
        size = 4 * width * (spec.height // 4) * (spec.width // 4)
        self.score = spectral_norm(nn.Linear(size, 1))
        self.classes = spectral_norm(nn.Embedding(spec.n_classes, size)) if spec.n_classes else None

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        features = self.features(images)
        score = self.score(features).squeeze(1)
        if self.classes is not None and labels is not None:
            score = score + (self.classes(labels) * features).sum(1)
        return score


class ConditionalGAN(nn.Module):
    def __init__(self, spec: ImageGenerationSpec, latent: int, width: int) -> None:
        super().__init__()
        if spec.height % 4 or spec.width % 4:
            raise ConfigError(f"model.type gan: image sides must be multiples of 4, got {spec.height}×{spec.width}")
        self.spec, self.latent = spec, latent
        self.generator = ConvGenerator(spec, latent, width)
        self.discriminator = ProjectionDiscriminator(spec, width)

    @torch.no_grad()
    def sample(self, labels: torch.Tensor | None, n: int, generator: torch.Generator, temperature: float = 1.0):
        was_training = self.generator.training
        self.generator.eval()
        images = self.generator(torch.randn(n, self.latent, generator=generator) * temperature, labels)
        self.generator.train(was_training)
        return images


@register_model("vae", accepts=("images",), description="conditional variational autoencoder (task: generation)")
def vae(spec: ImageGenerationSpec, output_dim: int = 0, *, latent: int = 16, hidden: int = 256, beta: float = 1.0):
    return ConditionalVAE(_check(spec, "vae"), latent, hidden, beta)


@register_model("gan", accepts=("images",), description="conditional DCGAN, spectral norm + hinge (task: generation)")
def gan(spec: ImageGenerationSpec, output_dim: int = 0, *, latent: int = 32, width: int = 32):
    return ConditionalGAN(_check(spec, "gan"), latent, width)
