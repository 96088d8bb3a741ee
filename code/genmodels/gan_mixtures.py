r"""The 2-D mixtures of the mode-collapse chapter (a ring and a grid of Gaussians) and the GANs trained on them.

with snapshots of :math:`p_g` and :math:`D(x)` on a grid as training proceeds.
* :class:`MixtureGenerator`, :class:`MixtureDiscriminator` and :func:`train_mixture_gan`: 2-D GANs on the
  ring and grid of Gaussians, with the saturating or non-saturating generator loss, minibatch
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import (
    Dict,
    List,
    Optional,
    Tuple,
)

import torch
from torch import nn

from .core import UserError
from .gan import MinibatchDiscrimination, discriminator_loss, generator_loss

__all__ = [
    "ring_of_gaussians",
    "grid_of_gaussians",
    "MixtureGenerator",
    "MixtureDiscriminator",
    "gradient_penalty",
    "MIXTURE_METHODS",
    "mixture_sampler",
    "MixtureRun",
    "train_mixture_gan",
]


def ring_of_gaussians(
    n: int, *, modes: int = 8, radius: float = 2.0, std: float = 0.02, generator: Optional[torch.Generator] = None
) -> Tuple[torch.Tensor, torch.Tensor]:
    """``n`` points from ``modes`` Gaussians evenly spaced on a circle; returns ``(points [n, 2], centres [modes, 2])``."""
    angles = 2 * math.pi * torch.arange(modes) / modes
    centres = radius * torch.stack([angles.cos(), angles.sin()], dim=1)
    which = torch.randint(modes, (n,), generator=generator)
    return centres[which] + std * torch.randn(n, 2, generator=generator), centres


def grid_of_gaussians(
    n: int, *, side: int = 5, spacing: float = 2.0, std: float = 0.02, generator: Optional[torch.Generator] = None
) -> Tuple[torch.Tensor, torch.Tensor]:
    """``n`` points from a ``side``×``side`` grid of Gaussians centred on the origin; returns ``(points, centres)``."""
    ticks = spacing * (torch.arange(side) - (side - 1) / 2)
    centres = torch.cartesian_prod(ticks, ticks)
    which = torch.randint(len(centres), (n,), generator=generator)
    return centres[which] + std * torch.randn(n, 2, generator=generator), centres




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
        raise UserError(f"mixture must be 'ring' or 'grid', got {mixture!r}")
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
        raise UserError(f"method must be one of {MIXTURE_METHODS}, got {method!r}")
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
