r"""The two directions of the KL divergence, fitted to a bimodal target.

Fit one Gaussian :math:`q = \mathcal N(\mu, \sigma^2)` to a one-dimensional mixture of Gaussians :math:`p`:

* the **forward** divergence :math:`\mathrm{KL}(p\,\|\,q)` (what maximum likelihood minimises, with
  :math:`p` the data) is minimised by matching moments: :math:`q` takes :math:`p`'s mean and variance, and spreads
  over every mode (mode-covering);
* the **reverse** divergence :math:`\mathrm{KL}(q\,\|\,p)` (what the ELBO's gap is, with :math:`p` the posterior)
  punishes :math:`q` for mass where :math:`p` has little; with well-separated modes it has one local minimum per
  mode, where :math:`q` is close to that component (mode-seeking).

The divergences are computed by the trapezoidal rule on a fixed grid, in float64, from log-densities (never by
taking the log of an underflowed density). Everything here is differentiable in :math:`(\mu, \log\sigma)`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple, Optional, Tuple

import torch

from .core import UserError
from .distributions import gaussian_log_prob

__all__ = [
    "GaussianMixture1D",
    "GaussianFit",
    "normal_log_prob",
    "kl_on_grid",
    "default_grid",
    "forward_kl",
    "reverse_kl",
    "fit_forward_kl",
    "fit_reverse_kl",
    "minimize_over_gaussian",
]

F64 = torch.float64


def normal_log_prob(x: torch.Tensor, mu, sigma) -> torch.Tensor:
    r"""Log-density of the one-dimensional :math:`\mathcal N(\mu, \sigma^2)` at every element of ``x``:
    :math:`-\tfrac12\big(\log 2\pi + \log\sigma^2 + (x - \mu)^2/\sigma^2\big)` (``distributions.gaussian_log_prob``
    with one event dimension). ``mu`` and ``sigma`` are numbers or scalar tensors (then differentiable)."""
    mu = torch.as_tensor(mu, dtype=x.dtype)
    logvar = 2.0 * torch.log(torch.as_tensor(sigma, dtype=x.dtype))
    return gaussian_log_prob(x[..., None], mu.reshape(1), logvar.reshape(1))


@dataclass(frozen=True)
class GaussianMixture1D:
    r"""A one-dimensional mixture :math:`p(x) = \sum_k w_k\, \mathcal N(x; m_k, s_k^2)`.

    Parameters
    ----------
    weights : tuple of float, positive, summing to one
    means : tuple of float
    stds : tuple of float, positive
    """

    weights: Tuple[float, ...]
    means: Tuple[float, ...]
    stds: Tuple[float, ...]

    def __post_init__(self):
        if not (len(self.weights) == len(self.means) == len(self.stds) >= 1):
            raise UserError("a mixture needs as many weights as means and stds, at least one of each")
        if min(self.weights) <= 0 or abs(sum(self.weights) - 1.0) > 1e-12:
            raise UserError(f"mixture weights must be positive and sum to one, got {self.weights}")
        if min(self.stds) <= 0:
            raise UserError(f"mixture stds must be positive, got {self.stds}")

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        r""":math:`\log p(x) = \operatorname{logsumexp}_k\big(\log w_k + \log\mathcal N(x; m_k, s_k^2)\big)`, elementwise."""
        parts = [math.log(w) + normal_log_prob(x, m, s) for w, m, s in zip(self.weights, self.means, self.stds)]
        return torch.logsumexp(torch.stack(parts), dim=0)

    @property
    def mean(self) -> float:
        r""":math:`\mathbb E_p[x] = \sum_k w_k m_k`."""
        return sum(w * m for w, m in zip(self.weights, self.means))

    @property
    def variance(self) -> float:
        r""":math:`\operatorname{Var}_p[x] = \sum_k w_k (s_k^2 + m_k^2) - (\sum_k w_k m_k)^2` (law of total variance)."""
        second = sum(w * (s * s + m * m) for w, m, s in zip(self.weights, self.means, self.stds))
        return second - self.mean**2


class GaussianFit(NamedTuple):
    r"""A fitted :math:`\mathcal N(\mu, \sigma^2)` and the divergence it reached (nats)."""

    mu: float
    sigma: float
    kl: float


def kl_on_grid(log_p: torch.Tensor, log_q: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    r""":math:`\mathrm{KL}(p\,\|\,q) = \int p(x)\big(\log p(x) - \log q(x)\big)\,\mathrm dx` by the trapezoidal rule.

    Parameters
    ----------
    log_p, log_q : Tensor ``[G]``
        The two log-densities at the points of ``grid``.
    grid : Tensor ``[G]``
        Increasing points that cover the mass of ``p`` (its tails beyond the grid are dropped).

    Returns
    -------
    Tensor ``[]``: the divergence in nats (differentiable in both log-densities).
    """
    if not (log_p.shape == log_q.shape == grid.shape) or grid.dim() != 1:
        raise UserError(
            f"log_p, log_q and grid must be one-dimensional and alike, got {log_p.shape}, {log_q.shape}, {grid.shape}"
        )
    return torch.trapezoid(log_p.exp() * (log_p - log_q), grid)


def default_grid(p: GaussianMixture1D, *, points: int = 8001, width: float = 12.0) -> torch.Tensor:
    """An evenly spaced float64 grid from ``width`` component standard deviations below the lowest component
    to as far above the highest."""
    lo = min(m - width * s for m, s in zip(p.means, p.stds))
    hi = max(m + width * s for m, s in zip(p.means, p.stds))
    return torch.linspace(lo, hi, points, dtype=F64)


def forward_kl(p: GaussianMixture1D, mu, sigma, *, grid: Optional[torch.Tensor] = None) -> torch.Tensor:
    r""":math:`\mathrm{KL}(p\,\|\,\mathcal N(\mu, \sigma^2))` on ``grid`` (default :func:`default_grid`)."""
    grid = default_grid(p) if grid is None else grid
    return kl_on_grid(p.log_prob(grid), normal_log_prob(grid, mu, sigma), grid)


def reverse_kl(p: GaussianMixture1D, mu, sigma, *, grid: Optional[torch.Tensor] = None) -> torch.Tensor:
    r""":math:`\mathrm{KL}(\mathcal N(\mu, \sigma^2)\,\|\,p)` on ``grid`` (default :func:`default_grid`); ``q``'s mass
    must lie inside the grid."""
    grid = default_grid(p) if grid is None else grid
    return kl_on_grid(normal_log_prob(grid, mu, sigma), p.log_prob(grid), grid)


def fit_forward_kl(p: GaussianMixture1D, *, grid: Optional[torch.Tensor] = None) -> GaussianFit:
    r"""The Gaussian that minimises :math:`\mathrm{KL}(p\,\|\,q)`: moment matching, in closed form.

    .. math::

        \mathrm{KL}(p\,\|\,q) = -H(p) + \tfrac12\log(2\pi\sigma^2) + \frac{\operatorname{Var}_p + (\mathbb E_p - \mu)^2}{2\sigma^2},

    so the minimiser is :math:`\mu = \mathbb E_p[x]` and :math:`\sigma^2 = \operatorname{Var}_p[x]`. The divergence it
    reaches is computed on ``grid``.
    """
    mu, sigma = p.mean, math.sqrt(p.variance)
    return GaussianFit(mu, sigma, forward_kl(p, mu, sigma, grid=grid).item())


def fit_reverse_kl(
    p: GaussianMixture1D,
    *,
    mu0: float,
    sigma0: float,
    grid: Optional[torch.Tensor] = None,
    max_iter: int = 500,
) -> GaussianFit:
    r"""A local minimiser of :math:`\mathrm{KL}(q\,\|\,p)` over :math:`q = \mathcal N(\mu, \sigma^2)`, from a start.

    .. math::

        \mathrm{KL}(q\,\|\,p) = -\tfrac12\log(2\pi e\,\sigma^2) - \mathbb E_{q}\big[\log p(x)\big]

    is not convex in :math:`(\mu, \sigma)`; with well-separated modes each mode holds a local minimum, and which one
    L-BFGS reaches depends on the start ``(mu0, sigma0)``. The optimisation runs over :math:`(\mu, \log\sigma)` on
    ``grid`` (default :func:`default_grid`), in float64.
    """
    if sigma0 <= 0:
        raise UserError(f"sigma0 must be positive, got {sigma0}")
    grid = default_grid(p) if grid is None else grid
    log_p = p.log_prob(grid)
    mu, sigma = minimize_over_gaussian(
        lambda log_q: kl_on_grid(log_q, log_p, grid), grid, mu0=mu0, sigma0=sigma0, max_iter=max_iter
    )
    return GaussianFit(mu, sigma, reverse_kl(p, mu, sigma, grid=grid).item())


def minimize_over_gaussian(
    objective,
    grid: torch.Tensor,
    *,
    mu0: float,
    sigma0: float,
    max_iter: int = 500,
    tolerance_grad: float = 1e-12,
    tolerance_change: float = 1e-15,
) -> Tuple[float, float]:
    r"""``(mu, sigma)`` of a local minimum of ``objective(log N(grid; mu, sigma^2))`` by L-BFGS (strong Wolfe line
    search) over :math:`(\mu, \log\sigma)` from ``(mu0, sigma0)``, in float64: the optimiser every quadrature fit of
    a Gaussian in the book shares (:func:`fit_reverse_kl`, :func:`genmodels.fgan.fit_gaussian_by_quadrature`)."""
    mu = torch.tensor(float(mu0), dtype=F64, requires_grad=True)
    log_sigma = torch.tensor(math.log(sigma0), dtype=F64, requires_grad=True)
    opt = torch.optim.LBFGS(
        [mu, log_sigma],
        lr=1.0,
        max_iter=max_iter,
        tolerance_grad=tolerance_grad,
        tolerance_change=tolerance_change,
        line_search_fn="strong_wolfe",
    )

    def closure():
        opt.zero_grad()
        loss = objective(normal_log_prob(grid, mu, log_sigma.exp()))
        loss.backward()
        return loss

    opt.step(closure)
    return mu.item(), log_sigma.exp().item()
