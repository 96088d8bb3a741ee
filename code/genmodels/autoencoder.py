r"""A plain, deterministic autoencoder: the VAE's networks without the probability.

The encoder maps an image to one code :math:`z = e(x)` (no mean and variance, no sampling), the decoder
maps a code to Bernoulli logits :math:`a = d(z)`, and training minimises the reconstruction loss alone,

.. math::

    \ell(x) = -\log p(x \mid z = e(x)) = \sum_i \mathrm{BCE}_{\text{logits}}(a_i, x_i),

the same term as in the VAE's ELBO, so the two can be compared like for like. There is no prior over the
codes and no KL term, which is what the latent-variables chapter is about: the model reconstructs, but it
says nothing about which codes to decode when generating.

The decoder is the VAE's :class:`~genmodels.vae.MLPDecoder`; the encoder is the same MLP with a single
head of ``latent_dim`` outputs.
"""

from __future__ import annotations

import torch
from torch import nn

from . import distributions as D
from .core import NUM_PIXELS, as_images, check_int
from .vae import MLPDecoder

__all__ = ["Autoencoder"]


class Autoencoder(nn.Module):
    """784 → ``hidden_dim`` (ReLU) → ``latent_dim`` → ``hidden_dim`` (ReLU) → 784 logits.

    ``forward(x)`` returns the loss to minimise: the Bernoulli reconstruction loss in nats per image,
    averaged over the batch.
    """

    def __init__(self, latent_dim: int = 2, hidden_dim: int = 400):
        super().__init__()
        check_int("latent_dim", latent_dim), check_int("hidden_dim", hidden_dim)
        self.latent_dim, self.hidden_dim = latent_dim, hidden_dim
        self.encoder = nn.Sequential(
            nn.Flatten(),  # (B, 784)
            nn.Linear(NUM_PIXELS, hidden_dim),  # (B, H)
            nn.ReLU(),
            nn.Linear(hidden_dim, latent_dim),  # (B, D): the code itself
        )
        self.decoder = MLPDecoder(latent_dim, hidden_dim)  # (B, D) -> (B, 1, 28, 28) logits

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The code :math:`z = e(x)`, ``[B, latent_dim]``; the same ``x`` always gives the same ``z``."""
        return self.encoder(as_images(x))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, 1, 28, 28]``."""
        return self.decoder(z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = as_images(x)
        return -D.bernoulli_log_likelihood(self.decode(self.encode(x)), x).mean()

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        r""":math:`\sigma(d(e(x)))`, ``[B, 1, 28, 28]`` in [0, 1]."""
        return torch.sigmoid(self.decode(self.encode(x)))
