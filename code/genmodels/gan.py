r"""Generative adversarial networks: the networks, and the two players' losses on logits.

The discriminator returns a logit :math:`a`, with :math:`D(x) = \sigma(a)`. The value function of
Goodfellow et al. (2014) is

.. math::

    V(D, G) = \mathbb E_{x \sim p_\text{data}}[\log D(x)] + \mathbb E_{z \sim p(z)}[\log(1 - D(G(z)))]

which the discriminator maximises and the generator minimises. Every log below is computed from the
logit with :math:`\log\sigma(a) = -\operatorname{softplus}(-a)` and
:math:`\log(1-\sigma(a)) = -\operatorname{softplus}(a)`, so no loss can become NaN or infinite.
"""
from __future__ import annotations

import copy
from dataclasses import asdict, dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from .core import (
    IMAGE_SHAPE,
    NUM_PIXELS,
    ConfiguredModel,
    UserError,
    check_int,
    eval_mode,
    latent_codes,
)

__all__ = [
    "GENERATOR_LOSSES",
    "DCGAN_RECIPE",
    "generator_loss",
    "discriminator_loss",
    "GANConfig",
    "GAN",
    "MinibatchDiscrimination",
    "MLPGenerator",
    "MLPDiscriminator",
    "DCGANGenerator",
    "DCGANDiscriminator",
]

GENERATOR_LOSSES = ("saturating", "non_saturating")
ARCHS = ("mlp", "dcgan")

#: The book's DCGAN recipe: the settings of the networks (:class:`GANConfig` fields, under ``"model"``) and of
#: training (:class:`~genmodels.engine.loops.GANTrainConfig` fields, under ``"train"``) that differ from the
#: plain DCGAN of Radford et al. (2016), each measured one at a time in the DCGAN chapter.
#: ``python -m genmodels train gan`` uses them as its defaults, and the zoo's GANs are trained with them.
DCGAN_RECIPE = {
    "model": {"spectral_norm": True, "ema": 0.999, "discriminator_hidden": 512},
    "train": {"lr": 4e-4},
}


def generator_loss(fake_logits: torch.Tensor, kind: str = "non_saturating") -> torch.Tensor:
    r"""The generator's loss (a scalar to minimise) from the discriminator's logits :math:`a` on fakes.

    ``"saturating"`` is the original minimax objective,

    .. math:: \min_G \; \mathbb E_z \log\big(1 - D(G(z))\big) = \mathbb E_z\big[-\operatorname{softplus}(a)\big],
        \qquad \frac{\partial}{\partial a} = -\sigma(a) = -D(G(z)),

    whose gradient vanishes when the discriminator confidently rejects the fakes (:math:`D(G(z)) \to 0`),
    that is, exactly when the generator is bad. ``"non_saturating"`` is the fix proposed in the same paper,

    .. math:: \min_G \; -\mathbb E_z \log D(G(z)) = \mathbb E_z\big[\operatorname{softplus}(-a)\big],
        \qquad \frac{\partial}{\partial a} = -(1 - \sigma(a)) = -(1 - D(G(z))),

    whose gradient is largest there. Both are at rest at :math:`p_g = p_\text{data}`, but at the optimal
    discriminator the first descends :math:`2\,\mathrm{JSD}(p_\text{data}\,\|\,p_g)` and the second
    :math:`\mathrm{KL}(p_g\,\|\,p_\text{data}) - 2\,\mathrm{JSD}(p_\text{data}\,\|\,p_g)` (Arjovsky & Bottou 2017).
    """
    if kind == "saturating":
        return -F.softplus(fake_logits).mean()
    if kind == "non_saturating":
        return F.softplus(-fake_logits).mean()
    raise UserError(f"unknown generator loss {kind!r}; choose one of {GENERATOR_LOSSES}")


def discriminator_loss(
    real_logits: torch.Tensor, fake_logits: torch.Tensor, *, real_label: float = 1.0
) -> torch.Tensor:
    r"""The discriminator's loss (a scalar to minimise): :math:`-V(D, G)` estimated on a batch,

    .. math::

        -\mathbb E_x \log D(x) - \mathbb E_z \log\big(1 - D(G(z))\big)
        = \mathbb E_x\big[\operatorname{softplus}(-a_\text{real})\big] + \mathbb E_z\big[\operatorname{softplus}(a_\text{fake})\big]

    the binary cross-entropy with label 1 for real and 0 for fake. Its minimum over :math:`D` is
    :math:`\log 4 - 2\,\mathrm{JSD}(p_\text{data}\,\|\,p_g)`.

    ``real_label`` below 1 is *one-sided label smoothing* (Salimans et al. 2016, §3.4): the real images'
    target becomes :math:`t`, their term the cross-entropy
    :math:`t\,\operatorname{softplus}(-a) + (1-t)\,\operatorname{softplus}(a)`, whose minimum is at
    :math:`D(x) = t`, so the discriminator gains nothing by pushing real logits to infinity. The fakes keep
    the target 0 (smoothing that side too would reward the generator's current mistakes).
    """
    if not 0.0 < real_label <= 1.0:
        raise UserError(f"real_label must be in (0, 1], got {real_label!r} (0.9 is the usual smoothing)")
    real_term = F.softplus(-real_logits).mean()
    if real_label < 1.0:
        real_term = real_label * real_term + (1.0 - real_label) * F.softplus(real_logits).mean()
    return real_term + F.softplus(fake_logits).mean()


@dataclass(frozen=True)
class GANConfig:
    r"""Everything needed to rebuild a GAN; stored in its checkpoints.

    Parameters
    ----------
    latent_dim : int
        Size of the noise :math:`z \sim \mathcal N(0, I)`.
    arch : {"mlp", "dcgan"}
        Fully connected networks, or the DCGAN layout (Radford et al. 2016) at MNIST's native 28×28.
    hidden_dim : int
        MLP width unit: generator 1·2·4 × ``hidden_dim``, discriminator 2·1 × ``hidden_dim``.
    channels : int
        DCGAN: channels of the 14×14 feature maps (the 7×7 maps have twice as many).
    minibatch_kernels : int
        Number of minibatch-discrimination kernels in the discriminator (0 = off).
    minibatch_kernel_dim : int
        Dimension of each kernel's projection.
    spectral_norm : bool
        Spectral normalisation (Miyato et al. 2018) of every weight of the discriminator: each layer's
        weight is divided by its largest singular value (one power iteration per step), which bounds the
        discriminator's Lipschitz constant; its batch normalisation is then left out, as in that paper.
    discriminator_hidden : int
        DCGAN: width of a hidden fully connected layer (LeakyReLU(0.2); batch norm unless ``spectral_norm``)
        between the discriminator's convolutional features and its logit, as in InfoGAN's MNIST discriminator
        (Chen et al. 2016); 0 = none (the logit is a linear function of the features).
    ema : float
        Decay :math:`\beta` of an exponential moving average of the generator's weights (Yazıcı et al. 2019),
        :math:`\bar\theta \leftarrow \beta\bar\theta + (1-\beta)\theta` after every generator step; 0 = none.
        With it, :meth:`GAN.sample` and ``forward`` draw from the averaged generator ``generator_ema``.
    """

    latent_dim: int = 100
    arch: str = "dcgan"
    hidden_dim: int = 256
    channels: int = 64
    minibatch_kernels: int = 0
    minibatch_kernel_dim: int = 5
    spectral_norm: bool = False
    ema: float = 0.0
    discriminator_hidden: int = 0

    def __post_init__(self):
        for name in ("latent_dim", "hidden_dim", "channels", "minibatch_kernel_dim"):
            check_int(name, getattr(self, name))
        for name in ("minibatch_kernels", "discriminator_hidden"):
            check_int(name, getattr(self, name), minimum=0)
        if self.arch != "dcgan" and self.discriminator_hidden:
            raise UserError(
                "discriminator_hidden adds a layer to the DCGAN discriminator; the MLP networks set their "
                f"widths with hidden_dim: leave it at 0 with arch={self.arch!r}"
            )
        if not 0.0 <= self.ema < 1.0:
            raise UserError(f"ema must be in [0, 1) (0 = no average; 0.999 is usual), got {self.ema!r}")
        if self.arch not in ARCHS:
            raise UserError(f"arch must be one of {ARCHS}, got {self.arch!r}")

    def to_dict(self) -> dict:
        return asdict(self)


class MinibatchDiscrimination(nn.Module):
    r"""Minibatch discrimination (Salimans et al. 2016, §3.2).

    Features :math:`f(x_i) \in \mathbb R^A` are projected by a tensor :math:`T \in \mathbb R^{A \times B \times C}`
    to matrices :math:`M_i \in \mathbb R^{B \times C}`. For each kernel :math:`b`,

    .. math::

        c_b(x_i, x_j) = \exp\big(-\lVert M_{i,b} - M_{j,b} \rVert_{L_1}\big), \qquad
        o(x_i)_b = \sum_{j \ne i} c_b(x_i, x_j)

    and the layer outputs :math:`[f(x_i), o(x_i)] \in \mathbb R^{A + B}`. A batch of near-identical
    fakes gets large :math:`o`, which the discriminator can learn to reject: a signal against collapse.
    """

    def __init__(self, in_features: int, num_kernels: int, kernel_dim: int):
        super().__init__()
        self.num_kernels, self.kernel_dim = num_kernels, kernel_dim
        self.T = nn.Parameter(0.1 * torch.randn(in_features, num_kernels * kernel_dim))

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        m = (f @ self.T).view(-1, self.num_kernels, self.kernel_dim)  # (N, B, C)
        l1 = (m.unsqueeze(0) - m.unsqueeze(1)).abs().sum(-1)  # (N, N, B)
        o = torch.exp(-l1).sum(1) - 1.0  # (N, B): the j = i term is exp(0) = 1
        return torch.cat([f, o], dim=1)  # (N, A + B)


def _discriminator_head(features: int, config: GANConfig) -> nn.Sequential:
    """Optional minibatch discrimination, an optional hidden layer (``config.discriminator_hidden``, DCGAN
    only), then the linear layer to one logit."""
    layers = []
    if config.minibatch_kernels:
        layers.append(MinibatchDiscrimination(features, config.minibatch_kernels, config.minibatch_kernel_dim))
        features += config.minibatch_kernels
    if config.discriminator_hidden:
        width = config.discriminator_hidden
        layers.append(nn.Linear(features, width, bias=config.spectral_norm))  # (N, width)
        layers += [] if config.spectral_norm else [nn.BatchNorm1d(width)]
        layers.append(nn.LeakyReLU(0.2))
        features = width
    layers.append(nn.Linear(features, 1))  # (N, 1) logit
    return nn.Sequential(*layers)


class MLPGenerator(nn.Module):
    """``latent_dim`` → h → 2h → 4h → 784, LeakyReLU(0.2), sigmoid output in [0, 1]."""

    def __init__(self, config: GANConfig):
        super().__init__()
        h = config.hidden_dim
        self.net = nn.Sequential(
            nn.Linear(config.latent_dim, h), nn.LeakyReLU(0.2),  # (N, h)
            nn.Linear(h, 2 * h), nn.LeakyReLU(0.2),  # (N, 2h)
            nn.Linear(2 * h, 4 * h), nn.LeakyReLU(0.2),  # (N, 4h)
            nn.Linear(4 * h, NUM_PIXELS), nn.Sigmoid(),  # (N, 784)
            nn.Unflatten(-1, IMAGE_SHAPE),  # (N, 1, 28, 28)
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class MLPDiscriminator(nn.Module):
    """784 → 2h → h → (minibatch discrimination) → 1 logit, LeakyReLU(0.2)."""

    def __init__(self, config: GANConfig):
        super().__init__()
        h = config.hidden_dim
        self.features = nn.Sequential(
            nn.Flatten(),  # (N, 784)
            nn.Linear(NUM_PIXELS, 2 * h), nn.LeakyReLU(0.2),  # (N, 2h)
            nn.Linear(2 * h, h), nn.LeakyReLU(0.2),  # (N, h)
        )
        self.head = _discriminator_head(h, config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x)).squeeze(-1)  # (N,) logits


class DCGANGenerator(nn.Module):
    """DCGAN generator at 28×28: project to 2c×7×7, then two stride-2 transposed convolutions."""

    def __init__(self, config: GANConfig):
        super().__init__()
        c = config.channels
        self.net = nn.Sequential(
            nn.Linear(config.latent_dim, 2 * c * 49, bias=False),  # (N, 2c·49)
            nn.Unflatten(-1, (2 * c, 7, 7)),  # (N, 2c, 7, 7)
            nn.BatchNorm2d(2 * c), nn.ReLU(),
            nn.ConvTranspose2d(2 * c, c, 4, stride=2, padding=1, bias=False),  # (N, c, 14, 14)
            nn.BatchNorm2d(c), nn.ReLU(),
            nn.ConvTranspose2d(c, 1, 4, stride=2, padding=1),  # (N, 1, 28, 28)
            nn.Sigmoid(),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class DCGANDiscriminator(nn.Module):
    """DCGAN discriminator at 28×28: two stride-2 convolutions with LeakyReLU(0.2) (batch norm on the second,
    unless ``spectral_norm``), then one logit."""

    def __init__(self, config: GANConfig):
        super().__init__()
        c = config.channels
        self.features = nn.Sequential(
            nn.Conv2d(1, c, 4, stride=2, padding=1),  # (N, c, 14, 14)
            nn.LeakyReLU(0.2),
            nn.Conv2d(c, 2 * c, 4, stride=2, padding=1, bias=config.spectral_norm),  # (N, 2c, 7, 7)
            *([] if config.spectral_norm else [nn.BatchNorm2d(2 * c)]),
            nn.LeakyReLU(0.2),
            nn.Flatten(),  # (N, 2c·49)
        )
        self.head = _discriminator_head(2 * c * 49, config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x)).squeeze(-1)  # (N,) logits


def _spectral_normalize(module: nn.Module) -> None:
    """Wrap every convolution and linear weight of ``module`` in ``torch.nn.utils.parametrizations.spectral_norm``."""
    for child in list(module.modules()):
        if isinstance(child, (nn.Conv2d, nn.Linear)):
            nn.utils.parametrizations.spectral_norm(child)


def _dcgan_init(module: nn.Module) -> None:
    """Weights from N(0, 0.02), batch-norm scales from N(1, 0.02), as in Radford et al. (2016)."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


class GAN(ConfiguredModel):
    """A generator and a discriminator built from one :class:`GANConfig`.

    The training loop (:func:`genmodels.train.train_gan`) updates the two in the order of
    Algorithm 1 of Goodfellow et al. (2014). ``forward(z)`` is the generator.
    """

    def __init__(
        self,
        latent_dim: int = 100,
        arch: str = "dcgan",
        *,
        hidden_dim: int = 256,
        channels: int = 64,
        minibatch_kernels: int = 0,
        minibatch_kernel_dim: int = 5,
        spectral_norm: bool = False,
        ema: float = 0.0,
        discriminator_hidden: int = 0,
        config: Optional[GANConfig] = None,
    ):
        super().__init__()
        if config is None:
            config = GANConfig(
                latent_dim=latent_dim, arch=arch, hidden_dim=hidden_dim, channels=channels,
                minibatch_kernels=minibatch_kernels, minibatch_kernel_dim=minibatch_kernel_dim,
                spectral_norm=spectral_norm, ema=ema, discriminator_hidden=discriminator_hidden,
            )
        self.config = config
        if config.arch == "mlp":
            self.generator, self.discriminator = MLPGenerator(config), MLPDiscriminator(config)
        else:
            self.generator, self.discriminator = DCGANGenerator(config), DCGANDiscriminator(config)
            self.generator.apply(_dcgan_init)
            self.discriminator.apply(_dcgan_init)
        if config.spectral_norm:
            _spectral_normalize(self.discriminator)
        self.generator_ema: Optional[nn.Module] = None
        if config.ema:
            self.generator_ema = copy.deepcopy(self.generator).requires_grad_(False)
            self.register_buffer("ema_updates", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def update_ema(self) -> None:
        r"""One step of the generator's weight average: :math:`\bar\theta \leftarrow \beta_n\bar\theta + (1-\beta_n)\theta`
        for every parameter (``torch._foreach_lerp_``), and a copy of the batch-norm statistics. A no-op
        without ``config.ema``.

        The decay warms up, :math:`\beta_n = \min\big(\beta, \tfrac{1+n}{10+n}\big)` at the :math:`n`-th update
        (as TensorFlow's ``ExponentialMovingAverage`` with ``num_updates``): with a fixed
        :math:`\beta = 0.999` the initial, untrained weights would still hold
        :math:`0.999^{469} \approx 63\,\%` of the average after a whole epoch of MNIST."""
        if self.generator_ema is None:
            return
        n = int(self.ema_updates)
        decay = min(self.config.ema, (1.0 + n) / (10.0 + n))
        self.ema_updates += 1
        averaged = list(self.generator_ema.parameters())
        torch._foreach_lerp_(averaged, [p.detach() for p in self.generator.parameters()], 1.0 - decay)
        for b_avg, b in zip(self.generator_ema.buffers(), self.generator.buffers()):
            b_avg.copy_(b)

    @property
    def sampler(self) -> nn.Module:
        """The network that draws the samples: ``generator_ema`` when there is one, else ``generator``."""
        return self.generator if self.generator_ema is None else self.generator_ema

    def sample_noise(self, n: int, *, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        r""":math:`z \sim \mathcal N(0, I)`, ``[n, latent_dim]`` on the model's device."""
        return latent_codes(n, None, self.latent_dim, self.device, generator)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.sampler(z)

    @torch.no_grad()
    def sample(
        self, n: Optional[int] = None, *, z: Optional[torch.Tensor] = None, generator: Optional[torch.Generator] = None
    ) -> torch.Tensor:
        """Generated images ``[n, 1, 28, 28]`` in [0, 1], from ``n`` draws of the noise or from the given
        ``z`` (``[m, latent_dim]``; give one of ``n`` and ``z``), with the generator (its weight average, if the
        config has ``ema``) in eval mode."""
        z = latent_codes(n, z, self.latent_dim, self.device, generator)
        with eval_mode(self.sampler):
            return self.sampler(z)
