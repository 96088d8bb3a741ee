r"""The variational autoencoder: networks that return logits, and the objective that wraps them.

Generative model :math:`p(z) = \mathcal N(0, I)`, :math:`p(x\mid z) = \prod_i \mathrm{Bernoulli}(x_i; \sigma(a_i(z)))`
with :math:`a = \text{decoder}(z)` the logits; inference model
:math:`q(z\mid x) = \mathcal N(\mu(x), \operatorname{diag}\exp(\log\sigma^2(x)))`. The encoder outputs the
log-variance, an unconstrained real number, so :math:`\sigma^2 = \exp(\log\sigma^2)` is positive
without clamping and :math:`\log\sigma^2` never has to be computed from a :math:`\sigma` that could reach 0.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Optional

import torch
from torch import nn

from . import distributions as D

__all__ = ["VAEConfig", "VAE", "MLPEncoder", "MLPDecoder", "ConvEncoder", "ConvDecoder", "as_images"]

IMAGE_SHAPE = (1, 28, 28)
NUM_PIXELS = 784
ARCHS = ("mlp", "conv")


def _check_positive_int(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


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
        Width of the hidden layer (MLP) or of the fully connected layer after the convolutions.
    channels : int
        Channels of the first convolution (conv only); the second has twice as many.
    """

    latent_dim: int = 20
    arch: str = "mlp"
    hidden_dim: int = 400
    channels: int = 32

    def __post_init__(self):
        _check_positive_int("latent_dim", self.latent_dim)
        _check_positive_int("hidden_dim", self.hidden_dim)
        _check_positive_int("channels", self.channels)
        if self.arch not in ARCHS:
            raise ValueError(f"arch must be one of {ARCHS}, got {self.arch!r}")

    def to_dict(self) -> dict:
        return asdict(self)


def as_images(x: torch.Tensor) -> torch.Tensor:
    """Bring a batch of MNIST-sized images to float ``[B, 1, 28, 28]``.

    Accepts ``[B, 1, 28, 28]``, ``[B, 28, 28]`` or ``[B, 784]``; uint8 input is scaled to [0, 1].
    """
    if x.dtype == torch.uint8:
        x = x.float().div(255)
    elif not x.is_floating_point():
        x = x.float()
    if x.shape[-3:] == IMAGE_SHAPE:
        return x
    if x.shape[-2:] == IMAGE_SHAPE[1:]:
        return x.unsqueeze(-3)
    if x.shape[-1] == NUM_PIXELS:
        return x.reshape(*x.shape[:-1], *IMAGE_SHAPE)
    raise ValueError(
        f"expected images shaped [B, 1, 28, 28], [B, 28, 28] or [B, 784], got {list(x.shape)}"
    )


class MLPEncoder(nn.Module):
    """784 → ``hidden_dim`` (ReLU) → 2·``latent_dim`` (mean and log-variance)."""

    def __init__(self, latent_dim: int, hidden_dim: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.Flatten(),  # (B, 784)
            nn.Linear(NUM_PIXELS, hidden_dim),  # (B, H)
            nn.ReLU(),
            nn.Linear(hidden_dim, 2 * latent_dim),  # (B, 2D)
        )

    def forward(self, x: torch.Tensor):
        mu, logvar = self.net(x).chunk(2, dim=-1)  # (B, D), (B, D)
        return mu, logvar


class MLPDecoder(nn.Module):
    """``latent_dim`` → ``hidden_dim`` (ReLU) → 784 logits, shaped ``[B, 1, 28, 28]``."""

    def __init__(self, latent_dim: int, hidden_dim: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(latent_dim, hidden_dim),  # (B, H)
            nn.ReLU(),
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


class ConfiguredModel(nn.Module):
    """What the book's models share: ``self.config`` (a frozen config dataclass with ``latent_dim``)
    builds them, ``from_config`` rebuilds them, and they report their latent size and device."""

    config: Any

    @classmethod
    def from_config(cls, config):
        return cls(config=config)

    @property
    def latent_dim(self) -> int:
        return self.config.latent_dim

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device


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
        config: Optional[VAEConfig] = None,
    ):
        super().__init__()
        if config is None:
            config = VAEConfig(latent_dim=latent_dim, arch=arch, hidden_dim=hidden_dim, channels=channels)
        self.config = config
        if config.arch == "mlp":
            self.encoder = MLPEncoder(config.latent_dim, config.hidden_dim)
            self.decoder = MLPDecoder(config.latent_dim, config.hidden_dim)
        else:
            self.encoder = ConvEncoder(config.latent_dim, config.hidden_dim, config.channels)
            self.decoder = ConvDecoder(config.latent_dim, config.hidden_dim, config.channels)

    # --- the two networks -------------------------------------------------------------------
    def encode(self, x: torch.Tensor):
        """Parameters of :math:`q(z\\mid x)`: ``mu`` and ``logvar``, each ``[B, latent_dim]``."""
        return self.encoder(as_images(x))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Logits of :math:`p(x\\mid z)`, ``[..., 1, 28, 28]``; ``z`` may have leading sample dimensions."""
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
        if eps is None:
            z = D.reparameterize(mu, logvar)  # (B, D)
        else:
            z = mu + (0.5 * logvar).exp() * eps  # (B, D): the same formula with the given noise
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
        _check_positive_int("k", k)
        x = as_images(x)
        mu, logvar = self.encoder(x)
        log_w = []
        for start in range(0, k, chunk_size):
            n = min(chunk_size, k - start)
            z = D.reparameterize(mu, logvar, n_samples=n)  # (n, B, D)
            logits = self.decode(z).float()  # (n, B, 1, 28, 28)
            log_w.append(
                D.bernoulli_log_likelihood(logits, x)
                + D.standard_normal_log_prob(z.float())
                - D.gaussian_log_prob(z.float(), mu.float(), logvar.float())
            )
        log_w = torch.cat(log_w)  # (k, B)
        return torch.logsumexp(log_w, dim=0) - math.log(k)

    # --- using the model -------------------------------------------------------------------
    @torch.no_grad()
    def sample(self, n: int, *, generator: Optional[torch.Generator] = None, z: Optional[torch.Tensor] = None):
        """``n`` images from the model, ``[n, 1, 28, 28]`` in [0, 1]: the decoder's Bernoulli means
        :math:`\\sigma(a)` at :math:`z \\sim \\mathcal N(0, I)` (or at the given ``z``)."""
        if z is None:
            _check_positive_int("n", n)
            z = torch.randn(n, self.latent_dim, device=self.device, generator=generator)
        elif z.shape[-1] != self.latent_dim:
            raise ValueError(f"z has {z.shape[-1]} dimensions but this VAE has latent_dim={self.latent_dim}")
        return torch.sigmoid(self.decode(z.to(self.device)))

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Decode the posterior mean: :math:`\\sigma(\\text{decoder}(\\mu(x)))`, ``[B, 1, 28, 28]`` in [0, 1]."""
        mu, _ = self.encode(x)
        return torch.sigmoid(self.decode(mu))
