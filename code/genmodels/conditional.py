r"""Conditional models: a VAE and a DCGAN that draw a digit of the class they are asked for.

Both models take the class :math:`y \in \{0, \dots, K-1\}` of every image as a second input (int64 labels
``[B]``, as ``gm.load_mnist`` returns them) and the same class again when they generate.

**Conditional VAE** (Sohn, Lee & Yan 2015). Generative model :math:`p(z) = \mathcal N(0, I)`,
:math:`p(x \mid z, y) = \prod_i \mathrm{Bernoulli}(x_i; \sigma(a_i(z, y)))`; inference model
:math:`q(z \mid x, y) = \mathcal N(\mu(x, y), \operatorname{diag}\sigma^2(x, y))`. The same derivation as the
VAE's, with :math:`y` held fixed throughout, bounds the conditional likelihood:

.. math::

    \log p(x \mid y) \;\ge\; \mathbb E_{q(z\mid x, y)}\big[\log p(x \mid z, y)\big]
        - \mathrm{KL}\big(q(z \mid x, y)\,\|\,p(z)\big) \;=\; \mathcal L(x; y).

Sohn et al. write the condition as :math:`x` and the output as :math:`y` and give the latent a prior
network :math:`p(z \mid x)` of its own; a prior :math:`\mathcal N(0, I)` that ignores the condition is the
common simplification (it is also the M2 model of Kingma et al. 2014 with the label observed), and the one
used here. Its consequence is worth seeing: the KL term pulls every class's codes towards the same
:math:`\mathcal N(0, I)`, so at best :math:`z` carries only what the label does not, the style (slant, width,
stroke), and one :math:`z` decoded with each of the ten labels writes the ten digits in one hand. The pull is
weak, though: taking the class out of :math:`z` saves at most :math:`I(z; y) \le \log K` = 2.3 nats per image,
so a large code that learned the digit early can keep it, and the decoder then leans on the label little.

**Conditional DCGAN.** The generator :math:`G(z, y)` is the book's DCGAN generator fed :math:`[z, e_y]`,
the noise concatenated with the one-hot class (the conditional GAN of Mirza & Osindero 2014). A learned
class embedding in place of :math:`e_y` would add nothing: the first layer is linear, and
:math:`W[z, e_y] = W_z z + W_y e_y` already gives each class a learned vector, the column :math:`W_y e_y`.
The discriminator is a *projection discriminator* (Miyato & Koyama 2018),

.. math::

    D(x, y) = \psi(\phi(x)) + \langle \mathrm{embed}(y), \phi(x) \rangle,

a logit, with :math:`\phi` the DCGAN discriminator's convolutional features, :math:`\psi` a linear layer and
:math:`\mathrm{embed}(y)` a learned vector per class. The form is not a guess. The logit of the optimal
discriminator of the GAN value function is the log density ratio
:math:`D^*(x, y) = \log \frac{q(x, y)}{p(x, y)} = \log \frac{q(y \mid x)}{p(y \mid x)} + \log \frac{q(x)}{p(x)}`
(data :math:`q`, model :math:`p`); if both conditionals are softmax models on shared features,
:math:`q(y\mid x) \propto \exp(v^q_y \cdot \phi(x))` and :math:`p(y\mid x) \propto \exp(v^p_y \cdot \phi(x))`, the first
term is :math:`(v^q_y - v^p_y) \cdot \phi(x)` up to a function of :math:`x` alone: an inner product of a class
vector with the features, plus a term that the unconditional part :math:`\psi(\phi(x))` absorbs. Feeding
:math:`y` in by concatenation (to the image or the features) does not have this form, and Miyato & Koyama
found it worse; an auxiliary classifier (AC-GAN, Odena et al. 2017) rewards the generator for samples the
classifier finds easy to label, which can shrink the variety within a class.

The discriminator is spectrally normalised, the projection's embedding included (as in Miyato & Koyama's
code), and the generator's weights averaged: the defaults of :class:`CGANConfig` are the book's DCGAN recipe
(:data:`~genmodels.gan.DCGAN_RECIPE`), and its losses are the DCGAN's, :func:`~genmodels.gan.generator_loss`
and :func:`~genmodels.gan.discriminator_loss` on the projection's logits.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass
from typing import Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import nn

from . import distributions as D
from .core import IMAGE_SHAPE, NUM_PIXELS, ConfiguredModel, UserError, as_images, check_int, eval_mode, latent_codes
from .gan import DCGAN_RECIPE, GAN, DCGANDiscriminator, DCGANGenerator, GANConfig, _dcgan_init, _spectral_normalize
from .vae import MLPDecoder, _hidden_layers

__all__ = [
    "NUM_CLASSES",
    "check_labels",
    "CVAEConfig",
    "CVAE",
    "ConditionalMLPEncoder",
    "CGANConfig",
    "CGAN",
    "ConditionalDCGANGenerator",
    "ProjectionDiscriminator",
]

NUM_CLASSES = 10  # the digits

Labels = Union[int, Sequence[int], torch.Tensor]


def check_labels(y: Labels, num_classes: int, *, n: Optional[int] = None, device=None) -> torch.Tensor:
    """Class labels as int64 ``[n]`` on ``device``, or a :class:`~genmodels.core.UserError` that says what is wrong.

    ``y`` is one class for all ``n`` (an int; ``n`` is then required) or one per item (a sequence or a 1-D integer
    tensor, of length ``n`` if ``n`` is given). Every label must lie in ``0..num_classes-1``.
    """
    if isinstance(y, bool) or (isinstance(y, torch.Tensor) and y.dtype == torch.bool):
        raise UserError(f"y must be class labels (integers in 0..{num_classes - 1}), got booleans")
    if isinstance(y, int):
        if n is None:
            raise UserError(f"y={y} is one class for every image: say how many images with n")
        y = torch.full((check_int("n", n),), y, dtype=torch.long)
    y = torch.as_tensor(y)
    if y.is_floating_point() or y.is_complex():
        raise UserError(f"y must be integer class labels in 0..{num_classes - 1}, got a {y.dtype} tensor")
    if y.ndim != 1:
        raise UserError(f"y must be one label per image, shaped [n], got shape {list(y.shape)}")
    if n is not None and y.shape[0] != n:
        raise UserError(f"y has {y.shape[0]} labels for {n} images: give one label per image (or one int for all)")
    if y.numel() and (int(y.min()) < 0 or int(y.max()) >= num_classes):
        raise UserError(f"y holds labels in {int(y.min())}..{int(y.max())}; this model knows 0..{num_classes - 1}")
    return y.to(device=device, dtype=torch.long)


def _check_batch_labels(y: torch.Tensor, batch: int) -> None:
    """Labels for a batch of ``batch`` images: an integer tensor ``[batch]``. Only the shape and type are checked
    here, which costs nothing on any device; the range is checked where labels enter (:func:`check_labels` in
    ``sample`` and the training loops) and, on the CPU, again by ``F.one_hot``."""
    if not isinstance(y, torch.Tensor) or y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        what = f"a {y.dtype} tensor" if isinstance(y, torch.Tensor) else type(y).__name__
        raise UserError(f"y must be an integer tensor of class labels [B], got {what}")
    if y.shape != (batch,):
        raise UserError(f"y must hold one label per image, shape [{batch}], got {list(y.shape)}")


def _one_hot(y: torch.Tensor, num_classes: int, batch: int, dtype: torch.dtype) -> torch.Tensor:
    r"""The one-hot codes :math:`e_y`, ``[batch, num_classes]``, of labels ``[batch]``."""
    _check_batch_labels(y, batch)
    return F.one_hot(y.long(), num_classes).to(dtype)  # (B, K)


def _codes_and_labels(model, n: Optional[int], y: Labels, z: Optional[torch.Tensor], generator):
    """``(z, y)`` for ``sample``: the codes (``n`` draws or the given ``z``) and one checked label per code."""
    if n is None and z is None and not isinstance(y, int):
        y = check_labels(y, model.num_classes)
        n = y.shape[0]
    z = latent_codes(n, z, model.latent_dim, model.device, generator)
    return z, check_labels(y, model.num_classes, n=z.shape[0], device=model.device)


# ----------------------------------------------------------------------------------------------
# Conditional VAE
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CVAEConfig:
    """Everything needed to rebuild a :class:`CVAE`; stored in its checkpoints.

    Parameters
    ----------
    latent_dim : int
        Size of :math:`z`.
    hidden_dim : int
        Width of the hidden layers (the book's MLP VAE: 400).
    depth : int
        Hidden layers of each MLP.
    num_classes : int
        Number of classes :math:`K` of the condition (10 digits).
    """

    latent_dim: int = 20
    hidden_dim: int = 400
    depth: int = 1
    num_classes: int = NUM_CLASSES

    def __post_init__(self):
        for name in ("latent_dim", "hidden_dim", "depth"):
            check_int(name, getattr(self, name))
        check_int("num_classes", self.num_classes, minimum=2)

    def to_dict(self) -> dict:
        return asdict(self)


class ConditionalMLPEncoder(nn.Module):
    """The VAE's MLP encoder with the one-hot class appended to the pixels: 784 + K → H (ReLU) → 2·D."""

    def __init__(self, latent_dim: int, hidden_dim: int, num_classes: int, depth: int = 1):
        super().__init__()
        self.net = nn.Sequential(
            *_hidden_layers(NUM_PIXELS + num_classes, hidden_dim, depth),  # (B, H)
            nn.Linear(hidden_dim, 2 * latent_dim),  # (B, 2D)
        )

    def forward(self, x: torch.Tensor, onehot: torch.Tensor):
        mu, logvar = self.net(torch.cat([x.flatten(1), onehot], dim=-1)).chunk(2, dim=-1)  # (B, D) each
        return mu, logvar


class CVAE(ConfiguredModel):
    r"""A conditional VAE: :math:`q(z \mid x, y)`, :math:`p(x \mid z, y)` with Bernoulli logits, :math:`p(z) = \mathcal N(0, I)`.

    The networks are the book's MLP VAE (784-``hidden_dim``-``latent_dim``) with the one-hot class
    concatenated to the input of each: the encoder reads :math:`[x, e_y]`, the decoder
    (:class:`~genmodels.vae.MLPDecoder` with :math:`D + K` inputs) reads :math:`[z, e_y]`.
    ``forward(x, y)`` returns the loss, the negative conditional ELBO averaged over the batch;
    :meth:`elbo` gives the bound per datapoint (see the module docstring).

    Examples
    --------
    >>> cvae = CVAE(latent_dim=20)
    >>> cvae.elbo(torch.rand(8, 1, 28, 28).round(), torch.arange(8)).shape
    torch.Size([8])
    >>> cvae.sample(y=torch.arange(10)).shape  # one of each digit
    torch.Size([10, 1, 28, 28])
    """

    def __init__(
        self,
        latent_dim: int = 20,
        *,
        hidden_dim: int = 400,
        depth: int = 1,
        num_classes: int = NUM_CLASSES,
        config: Optional[CVAEConfig] = None,
    ):
        super().__init__()
        if config is None:
            config = CVAEConfig(latent_dim=latent_dim, hidden_dim=hidden_dim, depth=depth, num_classes=num_classes)
        self.config = config
        k = config.num_classes
        self.encoder = ConditionalMLPEncoder(config.latent_dim, config.hidden_dim, k, config.depth)
        self.decoder = MLPDecoder(config.latent_dim + k, config.hidden_dim, config.depth)  # reads [z, e_y]

    @property
    def num_classes(self) -> int:
        return self.config.num_classes

    # --- the two networks -------------------------------------------------------------------
    def encode(self, x: torch.Tensor, y: torch.Tensor):
        r"""Parameters of :math:`q(z\mid x, y)`: ``mu`` and ``logvar``, each ``[B, latent_dim]``."""
        x = as_images(x)
        return self.encoder(x, _one_hot(y, self.num_classes, x.shape[0], x.dtype))

    def decode(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        r"""Logits of :math:`p(x\mid z, y)`, ``[..., B, 1, 28, 28]`` for codes ``[..., B, latent_dim]`` (leading
        sample dimensions allowed) and labels ``[B]``."""
        onehot = _one_hot(y, self.num_classes, z.shape[-2], z.dtype).expand(*z.shape[:-1], -1)  # (..., B, K)
        lead = z.shape[:-1]
        logits = self.decoder(torch.cat([z, onehot], dim=-1).reshape(-1, z.shape[-1] + self.num_classes))
        return logits.reshape(*lead, *IMAGE_SHAPE)

    # --- the objective ---------------------------------------------------------------------
    def elbo(self, x: torch.Tensor, y: torch.Tensor, *, return_parts: bool = False, eps: Optional[torch.Tensor] = None):
        r"""Single-sample conditional ELBO per datapoint, in nats:
        :math:`\log p(x\mid z, y) - \mathrm{KL}(q(z\mid x, y)\,\|\,p(z))` at :math:`z = \mu + \sigma \odot \varepsilon`.

        With ``return_parts=True`` returns ``(elbo, log_px_given_zy, kl)``, each ``[B]``. ``eps``
        (``[B, latent_dim]``, standard normal) fixes the noise; by default it is drawn here.
        """
        x = as_images(x)
        mu, logvar = self.encode(x, y)  # (B, D) each
        z = D.reparameterize(mu, logvar, eps=eps)  # (B, D)
        logits = self.decode(z, y)  # (B, 1, 28, 28)
        log_px = D.bernoulli_log_likelihood(logits.float(), x)  # (B,)
        kl = D.gaussian_kl(mu.float(), logvar.float())  # (B,): to p(z) = N(0, I), whatever y
        value = D.elbo(log_px, kl)
        return (value, log_px, kl) if return_parts else value

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The training loss: the negative conditional ELBO averaged over the batch."""
        return -self.elbo(x, y).mean()

    @torch.no_grad()
    def iwae_bound(self, x: torch.Tensor, y: torch.Tensor, k: int = 100, *, chunk_size: int = 100) -> torch.Tensor:
        r"""Importance-weighted bound on :math:`\log p(x \mid y)` per datapoint (Burda et al. 2016), with
        :math:`k` samples of :math:`q(z \mid x, y)` decoded ``chunk_size`` at a time."""
        check_int("k", k)
        x = as_images(x)
        mu, logvar = self.encode(x, y)
        parts = []  # (log p(x|z,y), log p(z), log q(z|x,y)) per chunk, each (n, B)
        for start in range(0, k, chunk_size):
            z = D.reparameterize(mu, logvar, n_samples=min(chunk_size, k - start))  # (n, B, D)
            logits = self.decode(z, y).float()  # (n, B, 1, 28, 28)
            z = z.float()
            parts.append(
                (
                    D.bernoulli_log_likelihood(logits, x),
                    D.standard_normal_log_prob(z),
                    D.gaussian_log_prob(z, mu.float(), logvar.float()),
                )
            )
        return D.iwae_bound(*(torch.cat(terms) for terms in zip(*parts)))  # (B,)

    # --- using the model -------------------------------------------------------------------
    @torch.no_grad()
    def sample(
        self,
        n: Optional[int] = None,
        *,
        y: Labels,
        z: Optional[torch.Tensor] = None,
        generator: Optional[torch.Generator] = None,
    ) -> torch.Tensor:
        r"""Images of the classes ``y``, ``[n, 1, 28, 28]`` in [0, 1]: the decoder's Bernoulli means
        :math:`\sigma(a(z, y))` at draws :math:`z \sim \mathcal N(0, I)` or at the given codes ``z``.

        ``y`` is one class for all (an int, with ``n`` or ``z``) or one label per image (a sequence or a 1-D
        integer tensor; ``n`` may then be left out). Labels outside ``0..num_classes-1``, or a count that
        disagrees with ``n`` or ``z``, raise a :class:`~genmodels.core.UserError`.
        """
        z, y = _codes_and_labels(self, n, y, z, generator)
        return torch.sigmoid(self.decode(z, y))


# ----------------------------------------------------------------------------------------------
# Conditional DCGAN with a projection discriminator
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CGANConfig:
    r"""Everything needed to rebuild a :class:`CGAN`; stored in its checkpoints.

    Parameters
    ----------
    latent_dim : int
        Size of the noise :math:`z \sim \mathcal N(0, I)`.
    channels : int
        Channels of the 14×14 feature maps of both networks (the 7×7 maps have twice as many).
    num_classes : int
        Number of classes :math:`K` (10 digits).
    spectral_norm : bool
        Spectral normalisation of every weight of the discriminator, the class embedding included (then without
        batch normalisation), as in :class:`~genmodels.gan.GANConfig`. Default: the book's recipe.
    ema : float
        Decay of the generator's weight average (0: none), as in :class:`~genmodels.gan.GANConfig`. Default: the
        book's recipe.
    """

    latent_dim: int = 100
    channels: int = 64
    num_classes: int = NUM_CLASSES
    spectral_norm: bool = DCGAN_RECIPE["model"]["spectral_norm"]
    ema: float = DCGAN_RECIPE["model"]["ema"]

    def __post_init__(self):
        check_int("latent_dim", self.latent_dim)
        check_int("channels", self.channels)
        check_int("num_classes", self.num_classes, minimum=2)
        if not 0.0 <= self.ema < 1.0:
            raise UserError(f"ema must be in [0, 1) (0 = no average; 0.999 is usual), got {self.ema!r}")

    def to_dict(self) -> dict:
        return asdict(self)


class ConditionalDCGANGenerator(nn.Module):
    r"""The DCGAN generator fed :math:`[z, e_y]`: ``latent_dim`` + K → 2c×7×7 → c×14×14 → 1×28×28 in [0, 1]."""

    def __init__(self, config: CGANConfig):
        super().__init__()
        self.num_classes = config.num_classes
        body = GANConfig(latent_dim=config.latent_dim + config.num_classes, channels=config.channels)
        self.body = DCGANGenerator(body)

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        onehot = _one_hot(y, self.num_classes, z.shape[0], z.dtype)  # (N, K)
        return self.body(torch.cat([z, onehot], dim=1))  # (N, 1, 28, 28)


class ProjectionDiscriminator(nn.Module):
    r"""A projection discriminator (Miyato & Koyama 2018) on the DCGAN discriminator's features:

    .. math:: D(x, y) = \psi(\phi(x)) + \langle \mathrm{embed}(y), \phi(x) \rangle

    :math:`\phi` = ``features`` (two stride-2 convolutions, ``[N, 2c·49]``), :math:`\psi` = ``head`` (a linear
    layer to one logit), ``embed`` one vector of the feature size per class. Returns logits ``[N]``.
    """

    def __init__(self, config: CGANConfig):
        super().__init__()
        body = DCGANDiscriminator(GANConfig(channels=config.channels, spectral_norm=config.spectral_norm))
        num_features = 2 * config.channels * 49
        self.num_classes = config.num_classes
        self.features = body.features  # φ: (N, 2c·49)
        self.head = nn.Linear(num_features, 1)  # ψ: (N, 1)
        self.embed = nn.Embedding(config.num_classes, num_features)  # (K, 2c·49)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = self.features(x)  # (N, F)
        _check_batch_labels(y, h.shape[0])
        return self.head(h).squeeze(-1) + (self.embed(y) * h).sum(-1)  # (N,) logits


class CGAN(ConfiguredModel):
    """A conditional generator :math:`G(z, y)` and a projection discriminator :math:`D(x, y)` built from one
    :class:`CGANConfig`.

    The training loop (:func:`~genmodels.engine.loops.train_cgan`) updates the two in the order of Algorithm 1 of
    Goodfellow et al. (2014), each label carried along with its image (:func:`~genmodels.engine.steps.cgan_step`).
    ``forward(z, y)`` is the generator (its weight average, with ``ema``). The weight average, ``sampler`` and
    ``sample_noise`` are the unconditional :class:`~genmodels.gan.GAN`'s own.
    """

    def __init__(
        self,
        latent_dim: int = 100,
        *,
        channels: int = 64,
        num_classes: int = NUM_CLASSES,
        spectral_norm: bool = DCGAN_RECIPE["model"]["spectral_norm"],
        ema: float = DCGAN_RECIPE["model"]["ema"],
        config: Optional[CGANConfig] = None,
    ):
        super().__init__()
        if config is None:
            config = CGANConfig(
                latent_dim=latent_dim, channels=channels, num_classes=num_classes, spectral_norm=spectral_norm, ema=ema
            )
        self.config = config
        self.generator = ConditionalDCGANGenerator(config)
        self.discriminator = ProjectionDiscriminator(config)
        self.generator.apply(_dcgan_init)
        self.discriminator.apply(_dcgan_init)
        nn.init.normal_(self.discriminator.embed.weight, 0.0, 0.02)  # like every other DCGAN weight
        if config.spectral_norm:
            _spectral_normalize(self.discriminator)
            nn.utils.parametrizations.spectral_norm(self.discriminator.embed)
        self.generator_ema: Optional[nn.Module] = None
        if config.ema:
            self.generator_ema = copy.deepcopy(self.generator).requires_grad_(False)
            self.register_buffer("ema_updates", torch.zeros((), dtype=torch.long))

    update_ema = GAN.update_ema
    sampler = GAN.sampler
    sample_noise = GAN.sample_noise

    @property
    def num_classes(self) -> int:
        return self.config.num_classes

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.sampler(z, y)

    @torch.no_grad()
    def sample(
        self,
        n: Optional[int] = None,
        *,
        y: Labels,
        z: Optional[torch.Tensor] = None,
        generator: Optional[torch.Generator] = None,
    ) -> torch.Tensor:
        """Generated images of the classes ``y``, ``[n, 1, 28, 28]`` in [0, 1], from ``n`` draws of the noise or
        from the given ``z``, with the generator (its weight average, with ``ema``) in eval mode. ``y`` as in
        :meth:`CVAE.sample`: one int for all, or one label per image."""
        z, y = _codes_and_labels(self, n, y, z, generator)
        with eval_mode(self.sampler):
            return self.sampler(z, y)
