r"""The variational autoencoder: networks that return logits, and the objective that wraps them.

Generative model :math:`p(z) = \mathcal N(0, I)`, :math:`p(x\mid z) = \prod_i \mathrm{Bernoulli}(x_i; \sigma(a_i(z)))`
with :math:`a = \text{decoder}(z)` the logits; inference model
:math:`q(z\mid x) = \mathcal N(\mu(x), \operatorname{diag}\exp(\log\sigma^2(x)))`. The encoder outputs the
log-variance, an unconstrained real number, so :math:`\sigma^2 = \exp(\log\sigma^2)` is positive
without clamping and :math:`\log\sigma^2` never has to be computed from a :math:`\sigma` that could reach 0.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Optional

import torch
from torch import nn

from . import distributions as D
from .core import (
    IMAGE_SHAPE,
    NUM_PIXELS,
    ConfiguredModel,
    UserError,
    as_images,
    check_int,
    latent_codes,
)

__all__ = ["VAEConfig", "VAE", "MLPEncoder", "MLPDecoder", "ConvEncoder", "ConvDecoder"]

ARCHS = ("mlp", "conv")


@dataclass(frozen=True)
class VAEConfig:
    """Everything needed to rebuild a VAE; stored in its checkpoints.

    Parameters
    ----------
    latent_dim : int
        Size of :math:`z`; any positive integer.
    arch : {"mlp", "conv"}
        Fully connected (784-``hidden_dim``-``latent_dim``) or convolutional encoder/decoder.
    hidden_dim : int
        Width of the hidden layers (MLP) or of the fully connected layer after the convolutions.
    channels : int
        Channels of the first convolution (conv only); the second has twice as many.
    depth : int
        Number of hidden layers of each MLP (``depth=2``: 784-H-H-``latent_dim`` and back); MLP only.
    """

    latent_dim: int = 20
    arch: str = "mlp"
    hidden_dim: int = 400
    channels: int = 32
    depth: int = 1

    def __post_init__(self):
        check_int("latent_dim", self.latent_dim)
        check_int("hidden_dim", self.hidden_dim)
        check_int("channels", self.channels)
        check_int("depth", self.depth)
        if self.arch not in ARCHS:
            raise UserError(f"arch must be one of {ARCHS}, got {self.arch!r}")
        if self.arch != "mlp" and self.depth != 1:
            raise UserError(
                f"depth sets the hidden layers of the MLP; the {self.arch} networks have depth=1, got {self.depth}"
            )

    def to_dict(self) -> dict:
        return asdict(self)


def _hidden_layers(width_in: int, hidden_dim: int, depth: int) -> list:
    """``depth`` fully connected layers of width ``hidden_dim``, each followed by a ReLU."""
    layers = []
    for i in range(depth):
        layers += [nn.Linear(width_in if i == 0 else hidden_dim, hidden_dim), nn.ReLU()]  # (B, H)
    return layers


class MLPEncoder(nn.Module):
    """784 → ``hidden_dim`` (ReLU, ``depth`` times) → 2·``latent_dim`` (mean and log-variance)."""

    def __init__(self, latent_dim: int, hidden_dim: int, depth: int = 1):
        super().__init__()
        self.net = nn.Sequential(
            nn.Flatten(),  # (B, 784)
            *_hidden_layers(NUM_PIXELS, hidden_dim, depth),  # (B, H)
            nn.Linear(hidden_dim, 2 * latent_dim),  # (B, 2D)
        )

    def forward(self, x: torch.Tensor):
        mu, logvar = self.net(x).chunk(2, dim=-1)  # (B, D), (B, D)
        return mu, logvar


class MLPDecoder(nn.Module):
    """``latent_dim`` → ``hidden_dim`` (ReLU, ``depth`` times) → 784 logits, shaped ``[B, 1, 28, 28]``."""

    def __init__(self, latent_dim: int, hidden_dim: int, depth: int = 1):
        super().__init__()
        self.net = nn.Sequential(
            *_hidden_layers(latent_dim, hidden_dim, depth),  # (B, H)
            nn.Linear(hidden_dim, NUM_PIXELS),  # (B, 784)
            nn.Unflatten(-1, IMAGE_SHAPE),  # (B, 1, 28, 28)
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class ConvEncoder(nn.Module):
    """Two stride-2 convolutions (28 → 14 → 7), a hidden layer, then mean and log-variance."""

    def __init__(self, latent_dim: int, hidden_dim: int, channels: int):
        super().__init__()
        c = channels
        self.net = nn.Sequential(
            nn.Conv2d(1, c, 4, stride=2, padding=1),  # (B, c, 14, 14)
            nn.ReLU(),
            nn.Conv2d(c, 2 * c, 4, stride=2, padding=1),  # (B, 2c, 7, 7)
            nn.ReLU(),
            nn.Flatten(),  # (B, 2c·49)
            nn.Linear(2 * c * 49, hidden_dim),  # (B, H)
            nn.ReLU(),
            nn.Linear(hidden_dim, 2 * latent_dim),  # (B, 2D)
        )

    def forward(self, x: torch.Tensor):
        mu, logvar = self.net(x).chunk(2, dim=-1)
        return mu, logvar


class ConvDecoder(nn.Module):
    """The mirror image of :class:`ConvEncoder`: two stride-2 transposed convolutions (7 → 14 → 28)."""

    def __init__(self, latent_dim: int, hidden_dim: int, channels: int):
        super().__init__()
        c = channels
        self.net = nn.Sequential(
            nn.Linear(latent_dim, hidden_dim),  # (B, H)
            nn.ReLU(),
            nn.Linear(hidden_dim, 2 * c * 49),  # (B, 2c·49)
            nn.ReLU(),
            nn.Unflatten(-1, (2 * c, 7, 7)),  # (B, 2c, 7, 7)
            nn.ConvTranspose2d(2 * c, c, 4, stride=2, padding=1),  # (B, c, 14, 14)
            nn.ReLU(),
            nn.ConvTranspose2d(c, 1, 4, stride=2, padding=1),  # (B, 1, 28, 28) logits
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class VAE(ConfiguredModel):
    r"""A VAE with a Bernoulli decoder on logits and a diagonal-Gaussian encoder.

    ``forward(x)`` returns the loss to minimise, the negative ELBO averaged over the batch;
    :meth:`elbo` gives it per datapoint, :meth:`iwae_bound` the tighter importance-weighted bound.

    Examples
    --------
    >>> vae = VAE(latent_dim=20, arch="mlp")
    >>> vae.elbo(torch.rand(8, 1, 28, 28)).shape
    torch.Size([8])
    """

    def __init__(
        self,
        latent_dim: int = 20,
        arch: str = "mlp",
        *,
        hidden_dim: int = 400,
        channels: int = 32,
        depth: int = 1,
        config: Optional[VAEConfig] = None,
    ):
        super().__init__()
        if config is None:
            config = VAEConfig(latent_dim=latent_dim, arch=arch, hidden_dim=hidden_dim, channels=channels, depth=depth)
        self.config = config
        if config.arch == "mlp":
            self.encoder = MLPEncoder(config.latent_dim, config.hidden_dim, config.depth)
            self.decoder = MLPDecoder(config.latent_dim, config.hidden_dim, config.depth)
        else:
            self.encoder = ConvEncoder(config.latent_dim, config.hidden_dim, config.channels)
            self.decoder = ConvDecoder(config.latent_dim, config.hidden_dim, config.channels)

    # --- the two networks -------------------------------------------------------------------
    def encode(self, x: torch.Tensor):
        r"""Parameters of :math:`q(z\mid x)`: ``mu`` and ``logvar``, each ``[B, latent_dim]``."""
        return self.encoder(as_images(x))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        r"""Logits of :math:`p(x\mid z)`, ``[..., 1, 28, 28]``; ``z`` may have leading sample dimensions."""
        lead = z.shape[:-1]
        logits = self.decoder(z.reshape(-1, z.shape[-1]))
        return logits.reshape(*lead, *IMAGE_SHAPE)

    # --- the objective ---------------------------------------------------------------------
    def elbo(self, x: torch.Tensor, *, return_parts: bool = False, eps: Optional[torch.Tensor] = None):
        r"""Single-sample ELBO per datapoint, in nats: :math:`\log p(x\mid z) - \mathrm{KL}(q(z\mid x)\,\|\,p(z))`.

        With ``return_parts=True`` returns ``(elbo, log_px_given_z, kl)``, each ``[B]``. ``eps``
        (``[B, latent_dim]``, standard normal) fixes the noise of :math:`z = \mu + \sigma \odot \varepsilon`;
        by default it is drawn here.
        """
        x = as_images(x)
        mu, logvar = self.encoder(x)  # (B, D) each
        z = D.reparameterize(mu, logvar, eps=eps)  # (B, D)
        logits = self.decoder(z)  # (B, 1, 28, 28)
        log_px = D.bernoulli_log_likelihood(logits.float(), x)  # (B,)
        kl = D.gaussian_kl(mu.float(), logvar.float())  # (B,)
        value = D.elbo(log_px, kl)
        return (value, log_px, kl) if return_parts else value

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The training loss: the negative ELBO averaged over the batch."""
        return -self.elbo(x).mean()

    @torch.no_grad()
    def iwae_bound(self, x: torch.Tensor, k: int = 100, *, chunk_size: int = 100) -> torch.Tensor:
        r"""Importance-weighted bound :math:`\mathcal L_k(x)` per datapoint (Burda et al. 2016).

        The ``k`` samples are decoded ``chunk_size`` at a time, so ``k = 1000`` fits in memory.
        """
        check_int("k", k)
        x = as_images(x)
        mu, logvar = self.encoder(x)
        parts = []  # (log p(x|z), log p(z), log q(z|x)) per chunk of samples, each (n, B)
        for start in range(0, k, chunk_size):
            n = min(chunk_size, k - start)
            z = D.reparameterize(mu, logvar, n_samples=n)  # (n, B, D)
            logits = self.decode(z).float()  # (n, B, 1, 28, 28)
            z, mu32, logvar32 = z.float(), mu.float(), logvar.float()
            parts.append(
                (
                    D.bernoulli_log_likelihood(logits, x),
                    D.standard_normal_log_prob(z),
                    D.gaussian_log_prob(z, mu32, logvar32),
                )
            )
        return D.iwae_bound(*(torch.cat(terms) for terms in zip(*parts)))  # (B,)

    # --- using the model -------------------------------------------------------------------
    @torch.no_grad()
    def sample(
        self, n: Optional[int] = None, *, z: Optional[torch.Tensor] = None, generator: Optional[torch.Generator] = None
    ) -> torch.Tensor:
        r"""Images from the model, ``[n, 1, 28, 28]`` in [0, 1]: the decoder's Bernoulli means
        :math:`\sigma(a)`, at ``n`` draws :math:`z \sim \mathcal N(0, I)` or at the given codes ``z``
        (``[m, latent_dim]``; give one of ``n`` and ``z``)."""
        z = latent_codes(n, z, self.latent_dim, self.device, generator)
        return torch.sigmoid(self.decode(z))

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        r"""Decode the posterior mean: :math:`\sigma(\text{decoder}(\mu(x)))`, ``[B, 1, 28, 28]`` in [0, 1]."""
        mu, _ = self.encode(x)
        return torch.sigmoid(self.decode(mu))
