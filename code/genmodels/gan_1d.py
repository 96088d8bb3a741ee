r"""The 1-D GAN of the minimax chapter: densities known, so the optimal discriminator, the JSD and the
value can be computed by quadrature and compared with what training does.

* :func:`optimal_discriminator`, :func:`jsd_quadrature`, :func:`value_quadrature`: the optimal
  discriminator :math:`D^*(x) = p_\text{data}(x) / (p_\text{data}(x) + p_g(x))` and the value
  :math:`V(D^*, G) = -\log 4 + 2\,\mathrm{JSD}(p_\text{data}\,\|\,p_g)` on a 1-D grid, where both
  densities are known.
* :func:`fit_discriminator`: train a :class:`~genmodels.toys.ToyDiscriminator` between two fixed
  samplers, to compare it with :math:`D^*`.
* :func:`train_toy_gan`: the 1-D toy GAN (softplus generator, tanh discriminator, Gaussian target),
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import (
    Callable,
    Dict,
    List,
    Optional,
)

import torch
from torch import nn

from .core import UserError
from .gan import discriminator_loss, generator_loss

__all__ = [
    "ToyGenerator",
    "ToyDiscriminator",
    "gaussian_density",
    "optimal_discriminator",
    "jsd_quadrature",
    "value_quadrature",
    "fit_discriminator",
    "ToyGANRun",
    "train_toy_gan",
    "diagnose_toy_gan",
]


class ToyGenerator(nn.Module):
    """The 1-D toy generator: noise → linear → softplus → linear, one number out."""

    def __init__(self, hidden_dim: int = 8, noise_dim: int = 1):
        super().__init__()
        self.noise_dim = noise_dim
        self.net = nn.Sequential(nn.Linear(noise_dim, hidden_dim), nn.Softplus(), nn.Linear(hidden_dim, 1))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)  # (N, 1)


class ToyDiscriminator(nn.Module):
    """The 1-D toy discriminator: three tanh layers, then one logit."""

    def __init__(self, hidden_dim: int = 16):
        super().__init__()
        h = hidden_dim
        self.net = nn.Sequential(
            nn.Linear(1, 2 * h), nn.Tanh(),
            nn.Linear(2 * h, 2 * h), nn.Tanh(),
            nn.Linear(2 * h, 2 * h), nn.Tanh(),
            nn.Linear(2 * h, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(-1)  # (N,) logits




Sampler = Callable[[int], torch.Tensor]




def gaussian_density(x: torch.Tensor, mean: float, std: float) -> torch.Tensor:
    r""":math:`\mathcal N(x; \mu, s^2)`, elementwise."""
    return torch.exp(-0.5 * ((x - mean) / std) ** 2) / (std * math.sqrt(2 * math.pi))


def optimal_discriminator(p_data: torch.Tensor, p_g: torch.Tensor) -> torch.Tensor:
    r""":math:`D^*(x) = p_\text{data}(x) / (p_\text{data}(x) + p_g(x))` from the two densities evaluated at the
    same points; ``nan`` where both vanish (there :math:`D` does not matter)."""
    total = p_data + p_g
    return torch.where(total > 0, p_data / total.clamp_min(torch.finfo(total.dtype).tiny), torch.full_like(total, math.nan))


def _xlogy_ratio(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    r""":math:`p \log(p / q)` with the convention :math:`0 \log 0 = 0`."""
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
    data_mean: float = 4.0
    data_std: float = 0.5
    noise_range: float = 8.0


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
                    generator=generator, discriminator=discriminator, data_mean=data_mean, data_std=data_std,
                    noise_range=noise_range)
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


def diagnose_toy_gan(run: ToyGANRun, *, num_points: int = 10_000, dead_gradient: float = 1e-4) -> Dict:
    r"""What a finished :func:`train_toy_gan` run did, with a ``verdict`` that separates a generator that
    collapsed from one that stopped because its discriminator died.

    Returns ``mean`` and ``std`` of ``num_points`` generated points (fixed noise), ``narrowest`` (the
    smallest standard deviation of a training batch) and its ``narrowest_step``, ``d_spread``
    (:math:`\max_x |D(x) - \tfrac12|` over the run's grid) and ``input_gradient``, the mean of
    :math:`|\partial D / \partial x|` at the generated points: the generator's only signal, since its
    gradient is that slope times its own Jacobian. The verdict, first that applies:

    * ``"fits"``: the mean within one target standard deviation of the target's, the width within a
      factor 2 of the target's;
    * ``"dead discriminator"``: ``input_gradient`` below ``dead_gradient``: :math:`D` is flat where the
      generator puts its mass (saturated units), so the generator receives no signal and stops wherever it
      is; an optimiser failure, not a property of the game;
    * ``"collapsed"``: narrower than a fifth of the target's width while still receiving a gradient;
    * ``"off target"``: anything else.
    """
    if run.generator is None or run.discriminator is None:
        raise UserError("diagnose_toy_gan needs the run's generator and discriminator (a run of train_toy_gan)")
    z = (torch.rand(num_points, 1, generator=torch.Generator().manual_seed(12345)) * 2 - 1) * run.noise_range
    with torch.no_grad():
        fake = run.generator(z)
        d_grid = torch.sigmoid(run.discriminator(run.grid.unsqueeze(-1))).squeeze(-1)
    fake = fake.detach().requires_grad_(True)
    (slope,) = torch.autograd.grad(torch.sigmoid(run.discriminator(fake)).sum(), fake)
    mean, std = fake.detach().mean().item(), fake.detach().std().item()
    widths = torch.tensor(run.steps.get("g_std", [float("nan")]))
    out = {
        "mean": mean,
        "std": std,
        "narrowest": widths.min().item(),
        "narrowest_step": int(widths.argmin()) + 1,
        "d_spread": (d_grid - 0.5).abs().max().item(),
        "input_gradient": slope.abs().mean().item(),
    }
    mu, sigma = run.data_mean, run.data_std
    if abs(mean - mu) <= sigma and sigma / 2 <= std <= 2 * sigma:
        out["verdict"] = "fits"
    elif out["input_gradient"] < dead_gradient:
        out["verdict"] = "dead discriminator"
    elif std < sigma / 5:
        out["verdict"] = "collapsed"
    else:
        out["verdict"] = "off target"
    return out
