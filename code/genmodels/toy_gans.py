r"""Small GANs whose answers are known or cheap to measure: the checks behind the GAN chapters.

* :func:`optimal_discriminator`, :func:`jsd_quadrature`, :func:`value_quadrature`: the optimal
  discriminator :math:`D^*(x) = p_\text{data}(x) / (p_\text{data}(x) + p_g(x))` and the value
  :math:`V(D^*, G) = -\log 4 + 2\,\mathrm{JSD}(p_\text{data}\,\|\,p_g)` on a 1-D grid, where both
  densities are known.
* :func:`fit_discriminator`: train a :class:`~genmodels.toys.ToyDiscriminator` between two fixed
  samplers, to compare it with :math:`D^*`.
* :func:`train_toy_gan`: the 1-D toy GAN (softplus generator, tanh discriminator, Gaussian target),
  with snapshots of :math:`p_g` and :math:`D(x)` on a grid as training proceeds.
* :class:`MixtureGenerator`, :class:`MixtureDiscriminator` and :func:`train_mixture_gan`: 2-D GANs on the
  ring and grid of Gaussians, with the saturating or non-saturating generator loss, minibatch
  discrimination (Salimans et al. 2016) or WGAN-GP (Gulrajani et al. 2017, :func:`gradient_penalty`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .gan import MinibatchDiscrimination, discriminator_loss, generator_loss
from .toys import ToyDiscriminator, ToyGenerator, grid_of_gaussians, ring_of_gaussians

__all__ = [
    "gaussian_density",
    "optimal_discriminator",
    "jsd_quadrature",
    "value_quadrature",
    "fit_discriminator",
    "ToyGANRun",
    "train_toy_gan",
    "MixtureGenerator",
    "MixtureDiscriminator",
    "gradient_penalty",
    "MIXTURE_METHODS",
    "MixtureRun",
    "train_mixture_gan",
    "mixture_sampler",
]

Sampler = Callable[[int], torch.Tensor]


# ----------------------------------------------------------------------------------------------
# Densities known: D*, the JSD and the value by quadrature
# ----------------------------------------------------------------------------------------------


def gaussian_density(x: torch.Tensor, mean: float, std: float) -> torch.Tensor:
    r""":math:`\mathcal N(x; \mu, s^2)`, elementwise."""
    return torch.exp(-0.5 * ((x - mean) / std) ** 2) / (std * math.sqrt(2 * math.pi))


def optimal_discriminator(p_data: torch.Tensor, p_g: torch.Tensor) -> torch.Tensor:
    r""":math:`D^*(x) = p_\text{data}(x) / (p_\text{data}(x) + p_g(x))` from the two densities evaluated at the
    same points; ``nan`` where both vanish (there :math:`D` does not matter)."""
    total = p_data + p_g
    return torch.where(total > 0, p_data / total.clamp_min(torch.finfo(total.dtype).tiny), torch.full_like(total, math.nan))


def _xlogy_ratio(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """:math:`p \\log(p / q)` with the convention :math:`0 \\log 0 = 0`."""
    return torch.where(p > 0, p * (p.clamp_min(1e-300).log() - q.clamp_min(1e-300).log()), torch.zeros_like(p))


def jsd_quadrature(p: torch.Tensor, q: torch.Tensor, x: torch.Tensor) -> float:
    r"""The Jensen–Shannon divergence in nats by the trapezoidal rule on the grid ``x``,

    .. math:: \mathrm{JSD}(p\,\|\,q) = \tfrac12 \mathrm{KL}(p\,\|\,m) + \tfrac12 \mathrm{KL}(q\,\|\,m),
        \qquad m = \tfrac12 (p + q),

    from the densities ``p`` and ``q`` evaluated on ``x``. Between 0 and :math:`\log 2`.
    """
    m = 0.5 * (p + q)
    integrand = 0.5 * _xlogy_ratio(p, m) + 0.5 * _xlogy_ratio(q, m)
    return float(torch.trapezoid(integrand, x))


def value_quadrature(p_data: torch.Tensor, p_g: torch.Tensor, d: torch.Tensor, x: torch.Tensor) -> float:
    r"""The value function :math:`V(D, G) = \int p_\text{data}\log D + p_g \log(1 - D)\,\mathrm dx` by the
    trapezoidal rule, for a discriminator given by its values ``d`` on the grid ``x``."""
    d = d.clamp(1e-300, 1.0)
    log_d, log_1md = d.log(), (1 - d).clamp_min(1e-300).log()
    integrand = torch.where(p_data > 0, p_data * log_d, torch.zeros_like(d)) + torch.where(
        p_g > 0, p_g * log_1md, torch.zeros_like(d)
    )
    return float(torch.trapezoid(integrand, x))


def fit_discriminator(
    sample_data: Sampler,
    sample_g: Sampler,
    *,
    steps: int = 3000,
    batch_size: int = 512,
    lr: float = 1e-3,
    hidden_dim: int = 16,
    seed: int = 0,
) -> ToyDiscriminator:
    r"""Train a :class:`~genmodels.toys.ToyDiscriminator` to maximise :math:`V(D, G)` for a *fixed* generator:
    ``steps`` Adam steps on :func:`~genmodels.gan.discriminator_loss`, each on fresh samples
    ``sample_data(n)`` and ``sample_g(n)`` (both ``[n, 1]``). Returns the network (float64, eval mode)."""
    torch.manual_seed(seed)
    discriminator = ToyDiscriminator(hidden_dim).double()
    opt = torch.optim.Adam(discriminator.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    for _ in range(steps):
        loss = discriminator_loss(discriminator(sample_data(batch_size)), discriminator(sample_g(batch_size)))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    return discriminator.eval()


# ----------------------------------------------------------------------------------------------
# The 1-D toy GAN
# ----------------------------------------------------------------------------------------------


@dataclass
class ToyGANRun:
    """What :func:`train_toy_gan` recorded.

    ``grid``: the points where densities and :math:`D` are evaluated ``[G]``; ``p_data``: the target density
    there; ``bin_edges``: histogram bins ``[B + 1]``; ``snapshots``: one dict per recorded step with ``step``,
    ``hist`` (the density histogram of 10,000 generated points, ``[B]``), ``d`` (:math:`D(x)` on the grid) and
    ``g_mean``, ``g_std`` (of the generated points); ``steps``: per step ``d_loss``, ``g_loss``, ``g_std``.
    """

    grid: torch.Tensor
    p_data: torch.Tensor
    bin_edges: torch.Tensor
    snapshots: List[Dict] = field(default_factory=list)
    steps: Dict[str, List[float]] = field(default_factory=dict)
    generator: Optional[nn.Module] = None
    discriminator: Optional[nn.Module] = None


def train_toy_gan(
    *,
    data_mean: float = 4.0,
    data_std: float = 0.5,
    steps: int = 3000,
    snapshot_steps: Optional[List[int]] = None,
    batch_size: int = 128,
    lr: float = 1e-3,
    loss: str = "non_saturating",
    d_steps: int = 1,
    g_hidden: int = 8,
    d_hidden: int = 16,
    noise_range: float = 8.0,
    seed: int = 0,
) -> ToyGANRun:
    r"""Train the 1-D toy GAN: :class:`~genmodels.toys.ToyGenerator` (linear, softplus, linear) against
    :class:`~genmodels.toys.ToyDiscriminator` (three tanh layers, one logit), target
    :math:`\mathcal N(\text{data\_mean}, \text{data\_std}^2)`, noise :math:`z \sim U(-r, r)`.

    The update order is Algorithm 1 of Goodfellow et al. (2014): ``d_steps`` discriminator steps on
    :func:`~genmodels.gan.discriminator_loss` with fresh real and generated batches (fakes detached), then
    one generator step on :func:`~genmodels.gan.generator_loss` with fresh noise. Adam, float32, CPU.
    """
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    generator, discriminator = ToyGenerator(g_hidden), ToyDiscriminator(d_hidden)
    opt_g = torch.optim.Adam(generator.parameters(), lr=lr)
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=lr)
    lo, hi = data_mean - 8 * data_std - 4.0, data_mean + 8 * data_std + 4.0
    grid = torch.linspace(lo, hi, 801)
    edges = torch.linspace(lo, hi, 121)
    run = ToyGANRun(grid=grid, p_data=gaussian_density(grid, data_mean, data_std), bin_edges=edges,
                    generator=generator, discriminator=discriminator)
    if snapshot_steps is None:
        snapshot_steps = [0, steps // 10, steps // 3, steps]
    snapshot_steps = sorted(set(int(s) for s in snapshot_steps if 0 <= s <= steps))
    eval_z = (torch.rand(10_000, 1, generator=torch.Generator().manual_seed(seed + 1)) * 2 - 1) * noise_range

    def noise(n):
        return (torch.rand(n, 1, generator=g) * 2 - 1) * noise_range

    def snapshot(step):
        with torch.no_grad():
            fake = generator(eval_z).squeeze(-1)
            hist = torch.histogram(fake.clamp(lo, hi), bins=edges, density=True).hist
            d = torch.sigmoid(discriminator(grid.unsqueeze(-1)))
        run.snapshots.append({"step": step, "hist": hist, "d": d, "g_mean": fake.mean().item(), "g_std": fake.std().item()})

    for name in ("d_loss", "g_loss", "g_std"):
        run.steps[name] = []
    for step in range(steps + 1):
        if step in snapshot_steps:
            snapshot(step)
        if step == steps:
            break
        for _ in range(d_steps):
            real = data_mean + data_std * torch.randn(batch_size, 1, generator=g)
            with torch.no_grad():
                fake = generator(noise(batch_size))
            d_loss = discriminator_loss(discriminator(real), discriminator(fake))
            opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            opt_d.step()
        fake = generator(noise(batch_size))
        g_loss = generator_loss(discriminator(fake), kind=loss)
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_g.step()
        run.steps["d_loss"].append(d_loss.item())
        run.steps["g_loss"].append(g_loss.item())
        run.steps["g_std"].append(fake.detach().std().item())
    return run


# ----------------------------------------------------------------------------------------------
# 2-D mixtures: networks, WGAN-GP, training
# ----------------------------------------------------------------------------------------------


class MixtureGenerator(nn.Module):
    """``latent_dim`` → h → h → h → 2 (ReLU): a point in the plane."""

    def __init__(self, latent_dim: int = 8, hidden_dim: int = 128):
        super().__init__()
        self.latent_dim = latent_dim
        h = hidden_dim
        self.net = nn.Sequential(
            nn.Linear(latent_dim, h), nn.ReLU(),  # (N, h)
            nn.Linear(h, h), nn.ReLU(),  # (N, h)
            nn.Linear(h, h), nn.ReLU(),  # (N, h)
            nn.Linear(h, 2),  # (N, 2)
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class MixtureDiscriminator(nn.Module):
    """2 → h → h → (minibatch discrimination) → 1 logit (LeakyReLU 0.2). With ``minibatch_kernels > 0`` the
    last features are extended by :class:`~genmodels.gan.MinibatchDiscrimination`'s L1-distance features."""

    def __init__(self, hidden_dim: int = 128, *, minibatch_kernels: int = 0, minibatch_kernel_dim: int = 5):
        super().__init__()
        h = hidden_dim
        self.features = nn.Sequential(
            nn.Linear(2, h), nn.LeakyReLU(0.2),  # (N, h)
            nn.Linear(h, h), nn.LeakyReLU(0.2),  # (N, h)
        )
        head = []
        if minibatch_kernels:
            head.append(MinibatchDiscrimination(h, minibatch_kernels, minibatch_kernel_dim))  # (N, h + B)
        head.append(nn.Linear(h + minibatch_kernels, 1))  # (N, 1)
        self.head = nn.Sequential(*head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x)).squeeze(-1)  # (N,) logits (critic values for WGAN-GP)


def gradient_penalty(
    critic: nn.Module, real: torch.Tensor, fake: torch.Tensor, *, eps: Optional[torch.Tensor] = None,
    generator: Optional[torch.Generator] = None,
) -> torch.Tensor:
    r"""The gradient penalty of WGAN-GP (Gulrajani et al. 2017, eq. 3), without its weight :math:`\lambda`:

    .. math:: \mathbb E_{\hat x}\big[(\lVert \nabla_{\hat x} D(\hat x) \rVert_2 - 1)^2\big], \qquad
        \hat x = \epsilon x + (1 - \epsilon)\tilde x, \quad \epsilon \sim U[0, 1],

    on random interpolates between real points :math:`x` and generated points :math:`\tilde x` (one
    :math:`\epsilon` per pair; pass ``eps`` ``[N, 1]`` to fix them). Differentiable with respect to the
    critic's parameters (``create_graph=True``).
    """
    if eps is None:
        eps = torch.rand(real.shape[0], *([1] * (real.dim() - 1)), generator=generator, dtype=real.dtype, device=real.device)
    x_hat = (eps * real + (1 - eps) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)
    return (grad.flatten(1).norm(dim=1) - 1).pow(2).mean()


MIXTURE_METHODS = ("saturating", "non_saturating", "minibatch", "wgan_gp")


def mixture_sampler(mixture: str, *, std: float = 0.05):
    """``(sample(n, generator) -> [n, 2], centres [K, 2])`` for ``"ring"`` (8 Gaussians, radius 2) or
    ``"grid"`` (5×5 Gaussians, spacing 2), each component with standard deviation ``std``."""
    if mixture == "ring":
        fn = ring_of_gaussians
    elif mixture == "grid":
        fn = grid_of_gaussians
    else:
        raise ValueError(f"mixture must be 'ring' or 'grid', got {mixture!r}")
    _, centres = fn(1, std=std)
    return (lambda n, generator=None: fn(n, std=std, generator=generator)[0]), centres


@dataclass
class MixtureRun:
    """What :func:`train_mixture_gan` recorded: the two networks, ``samples`` (``[num_eval, 2]`` generated
    at the end from fixed noise), ``centres``, ``std``, and per generator step ``steps["d_loss"|"g_loss"]``."""

    generator: nn.Module
    discriminator: nn.Module
    samples: torch.Tensor
    centres: torch.Tensor
    std: float
    steps: Dict[str, List[float]] = field(default_factory=dict)
    snapshots: List[Dict] = field(default_factory=list)


def train_mixture_gan(
    mixture: str = "ring",
    method: str = "non_saturating",
    *,
    steps: int = 2000,
    batch_size: int = 128,
    std: float = 0.05,
    latent_dim: int = 8,
    hidden_dim: int = 128,
    lr: Optional[float] = None,
    minibatch_kernels: int = 8,
    minibatch_kernel_dim: int = 5,
    gp_weight: float = 10.0,
    critic_steps: int = 5,
    num_eval: int = 2500,
    snapshot_steps: Optional[List[int]] = None,
    seed: int = 0,
) -> MixtureRun:
    r"""Train a small GAN on a 2-D mixture of Gaussians (:func:`mixture_sampler`) for ``steps`` generator steps.

    ``method``:

    * ``"saturating"``: one discriminator step, then one generator step on :math:`\log(1 - D(G(z)))`;
    * ``"non_saturating"``: the same with :math:`-\log D(G(z))`;
    * ``"minibatch"``: non-saturating, with ``minibatch_kernels`` minibatch-discrimination kernels
      (Salimans et al. 2016) before the discriminator's last layer;
    * ``"wgan_gp"``: WGAN-GP (Gulrajani et al. 2017): ``critic_steps`` critic steps on
      :math:`\mathbb E[D(\tilde x)] - \mathbb E[D(x)] + \lambda\,\mathbb E[(\lVert\nabla D(\hat x)\rVert - 1)^2]`
      (:func:`gradient_penalty`, :math:`\lambda` = ``gp_weight``), then one generator step on
      :math:`-\mathbb E[D(G(z))]`; Adam with betas (0.5, 0.9) as in that paper.

    Adam with ``lr`` (default 1e-3 for the GANs, 1e-4 for WGAN-GP), betas (0.5, 0.999) for the GANs.
    Everything runs in float32 on the CPU and is seeded by ``seed`` (data, noise and initialisation).
    """
    if method not in MIXTURE_METHODS:
        raise ValueError(f"method must be one of {MIXTURE_METHODS}, got {method!r}")
    sample, centres = mixture_sampler(mixture, std=std)
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    generator = MixtureGenerator(latent_dim, hidden_dim)
    discriminator = MixtureDiscriminator(
        hidden_dim, minibatch_kernels=minibatch_kernels if method == "minibatch" else 0, minibatch_kernel_dim=minibatch_kernel_dim
    )
    wgan = method == "wgan_gp"
    if lr is None:
        lr = 1e-4 if wgan else 1e-3
    betas = (0.5, 0.9) if wgan else (0.5, 0.999)
    opt_g = torch.optim.Adam(generator.parameters(), lr=lr, betas=betas)
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=lr, betas=betas)
    eval_z = torch.randn(num_eval, latent_dim, generator=torch.Generator().manual_seed(10_000 + seed))
    run = MixtureRun(generator, discriminator, torch.empty(0, 2), centres, std, {"d_loss": [], "g_loss": []})
    snapshot_steps = set(snapshot_steps or [])
    kind = "saturating" if method == "saturating" else "non_saturating"

    for step in range(steps):
        if step in snapshot_steps:
            with torch.no_grad():
                run.snapshots.append({"step": step, "samples": generator(eval_z)})
        for _ in range(critic_steps if wgan else 1):
            real = sample(batch_size, generator=g)
            with torch.no_grad():
                fake = generator(torch.randn(batch_size, latent_dim, generator=g))
            real_out, fake_out = discriminator(real), discriminator(fake)
            if wgan:
                d_loss = fake_out.mean() - real_out.mean() + gp_weight * gradient_penalty(discriminator, real, fake, generator=g)
            else:
                d_loss = discriminator_loss(real_out, fake_out)
            opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            opt_d.step()
        fake_out = discriminator(generator(torch.randn(batch_size, latent_dim, generator=g)))
        g_loss = -fake_out.mean() if wgan else generator_loss(fake_out, kind=kind)
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_g.step()
        run.steps["d_loss"].append(d_loss.item())
        run.steps["g_loss"].append(g_loss.item())
    with torch.no_grad():
        run.samples = generator(eval_z)
        if steps in snapshot_steps:
            run.snapshots.append({"step": steps, "samples": run.samples})
    return run
