r"""The f-GAN family: every f-divergence as a game between a generator and a critic.

For a convex :math:`f: (0, \infty) \to \mathbb R` with :math:`f(1) = 0`, the f-divergence of :math:`P` from
:math:`Q` (densities :math:`p`, :math:`q`) is

.. math::

    D_f(P\,\|\,Q) = \mathbb E_{x \sim Q}\Big[f\Big(\frac{p(x)}{q(x)}\Big)\Big] = \int q(x)\, f\Big(\frac{p(x)}{q(x)}\Big)\,\mathrm dx .

Its convex conjugate :math:`f^*(t) = \sup_u \big(ut - f(u)\big)` gives the Fenchel–Young inequality
:math:`f(u) \ge ut - f^*(t)` for every :math:`t`, with equality at :math:`t = f'(u)`. Put :math:`u = p(x)/q(x)` and
:math:`t = T(x)` for any function :math:`T`, multiply by :math:`q(x)` and integrate (Nguyen, Wainwright & Jordan
2010; Nowozin, Cseke & Tomioka 2016):

.. math::

    D_f(P\,\|\,Q) \;\ge\; \mathbb E_{x \sim P}\big[T(x)\big] - \mathbb E_{x \sim Q}\big[f^*(T(x))\big],
    \qquad \text{with equality at } T^*(x) = f'\Big(\frac{p(x)}{q(x)}\Big).

The right-hand side needs only *samples* of :math:`P` and :math:`Q`, so a critic network :math:`T_\omega` trained
to maximise it estimates the divergence, and a generator :math:`Q_\theta` trained to minimise the maximum
minimises it: the f-GAN saddle problem :math:`\min_\theta\max_\omega F(\theta, \omega)`. ``P`` is the data
throughout, ``Q`` the model; so ``"kl"`` is the forward divergence :math:`\mathrm{KL}(P\,\|\,Q)` that maximum
likelihood minimises, and ``"reverse_kl"`` is :math:`\mathrm{KL}(Q\,\|\,P)`.

The critic's network returns a raw output :math:`v \in \mathbb R`, and an output activation :math:`g_f` maps it
into the domain of :math:`f^*`, :math:`T = g_f(v)` (Nowozin et al. 2016, Table 2). Every loss below is computed from
:math:`v` with the composite :math:`f^*(g_f(v))` written out in closed form (``softplus``, ``exp``), never by
evaluating :math:`g_f` and then :math:`f^*`: for the GAN divergence that would be a sigmoid followed by a log.

* :data:`F_DIVERGENCES`: the registry of :class:`FDivergence` (``f``, ``f_prime``, ``conjugate``, ``activation``,
  and the stable composites), for ``kl``, ``reverse_kl``, ``pearson``, ``hellinger``, ``js`` and ``gan``.
* :func:`variational_bound`, :func:`critic_loss`, :func:`generator_loss`: the objective on raw critic outputs.
* :func:`divergence_by_quadrature`, :func:`bound_at_optimal_critic`, :func:`bound_at_optimal_critic_mc`,
  :func:`closed_form_normal`: the divergence and the bound at :math:`T^*` where the densities are known (1-D).
* :class:`Critic`, :func:`fit_critic`: a critic network trained on samples, to compare with the quadrature.
* :class:`GaussianGenerator`, :func:`train_fgan_1d`, :func:`fit_gaussian_by_quadrature`: a Gaussian fitted to a
  1-D target by the f-GAN game, and the same fit by direct minimisation of the divergence.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Callable, Dict, List, Mapping, NamedTuple, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn

from .core import UserError, check_choice, check_int, check_positive
from .distributions import gaussian_kl
from .divergences import GaussianMixture1D, minimize_over_gaussian, normal_log_prob

__all__ = [
    "FDivergence",
    "F_DIVERGENCES",
    "KINDS",
    "GENERATOR_VARIANTS",
    "variational_bound",
    "critic_loss",
    "generator_loss",
    "default_grid",
    "divergence_on_grid",
    "divergence_by_quadrature",
    "bound_on_grid",
    "bound_at_optimal_critic",
    "MCEstimate",
    "bound_at_optimal_critic_mc",
    "closed_form_normal",
    "sampler",
    "Critic",
    "CriticFit",
    "fit_critic",
    "GaussianGenerator",
    "FGANRun",
    "train_fgan_1d",
    "GaussianFit",
    "gan_non_saturating_objective",
    "fit_gaussian_by_quadrature",
]

F64 = torch.float64
LOG2 = math.log(2.0)
INF = math.inf

# ----------------------------------------------------------------------------------------------
# The divergences
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FDivergence:
    r"""One f-divergence, with everything the variational bound needs.

    Attributes
    ----------
    name : str
        The registry key.
    label : str
        What :math:`D_f(P\,\|\,Q)` is, in words and symbols.
    f : callable
        :math:`u \mapsto f(u)` for :math:`u > 0`: convex, with :math:`f(1) = 0` so that :math:`D_f(P\,\|\,P) = 0`;
        except ``"gan"``, whose :math:`f(1) = -\log 4` is the constant of the GAN's value.
    f_prime : callable
        :math:`u \mapsto f'(u)`; the optimal critic is :math:`T^*(x) = f'(p(x)/q(x))`.
    conjugate : callable
        :math:`t \mapsto f^*(t) = \sup_{u > 0} (ut - f(u))`; :math:`+\infty` outside its domain.
    domain_sup : float
        The supremum of the domain of :math:`f^*` (:math:`+\infty`, or the bound that :math:`t` must stay below).
    activation : callable
        :math:`v \mapsto g_f(v)`, the output activation: any raw output lands in the domain of :math:`f^*`.
    conjugate_at_activation : callable
        :math:`v \mapsto f^*(g_f(v))`, in a closed form that stays finite for every finite :math:`v`.
    optimal_output : callable
        :math:`r \mapsto v^*` with :math:`g_f(v^*) = f'(e^r)`: the raw output of the optimal critic where
        :math:`\log p(x) - \log q(x) = r`.
    perspective : callable
        ``(log_p, log_q) -> q f(p/q)``, the integrand of :math:`D_f`, stable where either density is tiny.
    tex : dict
        LaTeX for the chapter's table: ``f``, ``conjugate``, ``domain``, ``activation``, ``critic`` (:math:`T^*`).
    """

    name: str
    label: str
    f: Callable[[torch.Tensor], torch.Tensor]
    f_prime: Callable[[torch.Tensor], torch.Tensor]
    conjugate: Callable[[torch.Tensor], torch.Tensor]
    domain_sup: float
    activation: Callable[[torch.Tensor], torch.Tensor]
    conjugate_at_activation: Callable[[torch.Tensor], torch.Tensor]
    optimal_output: Callable[[torch.Tensor], torch.Tensor]
    perspective: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    tex: Mapping[str, str] = field(default_factory=dict)


def _off_domain(t: torch.Tensor, sup: float, value: torch.Tensor) -> torch.Tensor:
    r""":math:`f^*(t)` is :math:`+\infty` for :math:`t \ge` ``sup`` (the supremum over :math:`u` is unbounded)."""
    return torch.where(t < sup, value, torch.full_like(value, INF))


def _p_times(log_a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    r""":math:`e^{\log a}\, b` with :math:`0 \cdot b = 0` where the density :math:`a` vanishes (then :math:`b` may be
    infinite)."""
    a = log_a.exp()
    return torch.where(a > 0, a * b, torch.zeros_like(a))


def _kl_perspective(log_p, log_q):
    return _p_times(log_p, log_p - log_q)  # p log(p/q)


def _reverse_kl_perspective(log_p, log_q):
    return _p_times(log_q, log_q - log_p)  # q log(q/p)


def _pearson_perspective(log_p, log_q):
    # q (p/q - 1)^2 = exp(log q + 2 log|expm1(r)|) with r = log p - log q: no density is exponentiated on its own, so
    # far tails where both underflow give 0, not 0/0 or an overflowing p^2/q
    r = log_p - log_q
    r_pos, r_neg = r.clamp_min(1e-300), r.clamp_max(-1e-300)
    log_abs = torch.where(r > 0, r_pos + torch.log(-torch.expm1(-r_pos)), torch.log(-torch.expm1(r_neg)))
    value = torch.exp(log_q + 2.0 * log_abs)
    value = torch.where(r == 0, torch.zeros_like(value), value)
    # where q vanishes: infinite if p does not, else nothing
    return torch.where(torch.isneginf(log_q), torch.where(torch.isneginf(log_p), 0.0, INF), value)


def _hellinger_perspective(log_p, log_q):
    return ((0.5 * log_p).exp() - (0.5 * log_q).exp()) ** 2  # q (sqrt(p/q) - 1)^2 = (sqrt p - sqrt q)^2


def _js_perspective(log_p, log_q):
    log_m = torch.logaddexp(log_p, log_q) - LOG2  # m = (p + q) / 2
    return 0.5 * (_p_times(log_p, log_p - log_m) + _p_times(log_q, log_q - log_m))


def _gan_perspective(log_p, log_q):
    log_s = torch.logaddexp(log_p, log_q)  # p + q
    return _p_times(log_p, log_p - log_s) + _p_times(log_q, log_q - log_s)


def _xlogx(u):
    return torch.special.xlogy(u, u)


_REGISTRY = {
    "kl": FDivergence(
        name="kl",
        label="forward KL, KL(P || Q)",
        f=_xlogx,
        f_prime=lambda u: 1.0 + torch.log(u),
        conjugate=lambda t: torch.exp(t - 1.0),
        domain_sup=INF,
        activation=lambda v: v,
        conjugate_at_activation=lambda v: torch.exp(v - 1.0),
        optimal_output=lambda r: 1.0 + r,
        perspective=_kl_perspective,
        tex={
            "f": r"u \log u",
            "conjugate": r"e^{t - 1}",
            "domain": r"\mathbb R",
            "activation": r"v",
            "critic": r"1 + \log \frac{p}{q}",
        },
    ),
    "reverse_kl": FDivergence(
        name="reverse_kl",
        label="reverse KL, KL(Q || P)",
        f=lambda u: -torch.log(u),
        f_prime=lambda u: -1.0 / u,
        conjugate=lambda t: _off_domain(t, 0.0, -1.0 - torch.log(-t.clamp_max(0.0))),
        domain_sup=0.0,
        activation=lambda v: -torch.exp(-v),
        conjugate_at_activation=lambda v: v - 1.0,  # -1 - log(exp(-v))
        optimal_output=lambda r: r,
        perspective=_reverse_kl_perspective,
        tex={
            "f": r"-\log u",
            "conjugate": r"-1 - \log(-t)",
            "domain": r"t < 0",
            "activation": r"-e^{-v}",
            "critic": r"-\frac{q}{p}",
        },
    ),
    "pearson": FDivergence(
        name="pearson",
        label="Pearson chi-squared, chi2(P || Q)",
        f=lambda u: (u - 1.0) ** 2,
        f_prime=lambda u: 2.0 * (u - 1.0),
        # the conjugate over u >= 0: (t/2 + 1)^2 - 1 where the maximiser u = 1 + t/2 is >= 0, else -1 (at u = 0)
        conjugate=lambda t: torch.relu(0.5 * t + 1.0) ** 2 - 1.0,
        domain_sup=INF,
        activation=lambda v: v,
        conjugate_at_activation=lambda v: torch.relu(0.5 * v + 1.0) ** 2 - 1.0,
        optimal_output=lambda r: 2.0 * torch.expm1(r),
        perspective=_pearson_perspective,
        tex={
            "f": r"(u - 1)^2",
            "conjugate": r"\max(\tfrac t2 + 1, 0)^2 - 1",
            "domain": r"\mathbb R",
            "activation": r"v",
            "critic": r"2\big(\frac{p}{q} - 1\big)",
        },
    ),
    "hellinger": FDivergence(
        name="hellinger",
        label="squared Hellinger, H^2(P, Q) = int (sqrt p - sqrt q)^2",
        f=lambda u: (torch.sqrt(u) - 1.0) ** 2,
        f_prime=lambda u: 1.0 - torch.rsqrt(u),
        conjugate=lambda t: _off_domain(t, 1.0, t / (1.0 - t.clamp_max(1.0 - 1e-300))),
        domain_sup=1.0,
        activation=lambda v: -torch.expm1(-v),  # 1 - exp(-v)
        conjugate_at_activation=lambda v: torch.expm1(v),  # t / (1 - t) at t = 1 - exp(-v)
        optimal_output=lambda r: 0.5 * r,
        perspective=_hellinger_perspective,
        tex={
            "f": r"(\sqrt u - 1)^2",
            "conjugate": r"\frac{t}{1 - t}",
            "domain": r"t < 1",
            "activation": r"1 - e^{-v}",
            "critic": r"1 - \sqrt{q / p}",
        },
    ),
    "js": FDivergence(
        name="js",
        label="Jensen-Shannon, JSD(P || Q)",
        f=lambda u: 0.5 * (_xlogx(u) - (u + 1.0) * torch.log(0.5 * (u + 1.0))),
        f_prime=lambda u: 0.5 * torch.log(2.0 * u / (1.0 + u)),
        conjugate=lambda t: _off_domain(
            t, 0.5 * LOG2, -0.5 * torch.log(2.0 - torch.exp(2.0 * t.clamp_max(0.5 * LOG2)))
        ),
        domain_sup=0.5 * LOG2,
        activation=lambda v: 0.5 * (LOG2 - F.softplus(-v)),  # (log 2 + log sigmoid(v)) / 2
        conjugate_at_activation=lambda v: 0.5 * (F.softplus(v) - LOG2),  # -(log 2 + log sigmoid(-v)) / 2
        optimal_output=lambda r: r,
        perspective=_js_perspective,
        tex={
            "f": r"\tfrac12\big(u \log u - (u + 1) \log \tfrac{u + 1}{2}\big)",
            "conjugate": r"-\tfrac12 \log\big(2 - e^{2t}\big)",
            "domain": r"t < \tfrac12 \log 2",
            "activation": r"\tfrac12\big(\log 2 - \log(1 + e^{-v})\big)",
            "critic": r"\tfrac12 \log \frac{2p}{p + q}",
        },
    ),
    "gan": FDivergence(
        name="gan",
        label="GAN, 2 JSD(P || Q) - log 4",
        f=lambda u: _xlogx(u) - (u + 1.0) * torch.log(u + 1.0),
        f_prime=lambda u: torch.log(u / (u + 1.0)),
        conjugate=lambda t: _off_domain(t, 0.0, -torch.log(-torch.expm1(t.clamp_max(0.0)))),
        domain_sup=0.0,
        activation=lambda v: -F.softplus(-v),  # log sigmoid(v) = log D
        conjugate_at_activation=F.softplus,  # -log(1 - sigmoid(v)) = -log(1 - D)
        optimal_output=lambda r: r,
        perspective=_gan_perspective,
        tex={
            "f": r"u \log u - (u + 1) \log(u + 1)",
            "conjugate": r"-\log(1 - e^t)",
            "domain": r"t < 0",
            "activation": r"-\log(1 + e^{-v})",
            "critic": r"\log \frac{p}{p + q}",
        },
    ),
}

#: The registry: ``F_DIVERGENCES["kl"]`` is the :class:`FDivergence` of :math:`\mathrm{KL}(P\,\|\,Q)`. Read-only.
#:
#: * ``kl``: :math:`f(u) = u \log u`, :math:`D_f = \mathrm{KL}(P\,\|\,Q)` (forward, mass-covering when :math:`Q` is
#:   the model);
#: * ``reverse_kl``: :math:`f(u) = -\log u`, :math:`D_f = \mathrm{KL}(Q\,\|\,P)` (mode-seeking);
#: * ``pearson``: :math:`f(u) = (u - 1)^2`, :math:`D_f = \chi^2(P\,\|\,Q) = \int p^2/q - 1`. Nowozin et al. list
#:   :math:`f^*(t) = t^2/4 + t`, the conjugate of the parabola on the whole line; on :math:`u \ge 0` the conjugate is
#:   :math:`\max(t/2 + 1, 0)^2 - 1`, the same for :math:`t \ge -2` (where :math:`T^* = 2(p/q - 1)` lives) and smaller
#:   below, so the bound here is never looser;
#: * ``hellinger``: :math:`f(u) = (\sqrt u - 1)^2`, :math:`D_f = \int (\sqrt p - \sqrt q)^2 \in [0, 2]`;
#: * ``js``: :math:`f(u) = \tfrac12\big(u \log u - (u + 1)\log\tfrac{u + 1}{2}\big)`,
#:   :math:`D_f = \mathrm{JSD}(P\,\|\,Q) = \tfrac12\mathrm{KL}(P\,\|\,M) + \tfrac12\mathrm{KL}(Q\,\|\,M) \in [0, \log 2]`,
#:   the book's JSD. The Jensen–Shannon row of Nowozin et al.'s tables has twice this :math:`f`, whose :math:`D_f`
#:   is :math:`2\,\mathrm{JSD}`; its :math:`g_f(v) = \log 2 - \log(1 + e^{-v})` is twice ours, and its
#:   :math:`f^*(t) = -\log(2 - e^t)` is twice ours at half the argument, :math:`(cf)^*(t) = c f^*(t / c)`;
#: * ``gan``: :math:`f(u) = u \log u - (u + 1)\log(u + 1)`, :math:`D_f = 2\,\mathrm{JSD}(P\,\|\,Q) - \log 4`. Its
#:   activation is :math:`\log\sigma(v) = \log D` with :math:`D = \sigma(v)`, and the bound is the GAN's value
#:   :math:`V(D, G) = \mathbb E_P \log D + \mathbb E_Q \log(1 - D)`.
F_DIVERGENCES: Mapping[str, FDivergence] = MappingProxyType(_REGISTRY)
KINDS = tuple(_REGISTRY)
GENERATOR_VARIANTS = ("saddle", "non_saturating")


def _divergence(kind: str) -> FDivergence:
    return F_DIVERGENCES[check_choice("kind", kind, KINDS)]


# ----------------------------------------------------------------------------------------------
# The objective, on raw critic outputs
# ----------------------------------------------------------------------------------------------


def variational_bound(real_v: torch.Tensor, fake_v: torch.Tensor, kind: str) -> torch.Tensor:
    r"""The variational lower bound on :math:`D_f(P\,\|\,Q)` from a critic's raw outputs, a batch estimate:

    .. math::

        \hat F = \frac1{n}\sum_{i} g_f(v_i^P) - \frac1{m}\sum_j f^*\big(g_f(v_j^Q)\big)
        \;\approx\; \mathbb E_P\big[T(x)\big] - \mathbb E_Q\big[f^*(T(x))\big] \;\le\; D_f(P\,\|\,Q),
        \qquad T = g_f \circ v .

    Parameters
    ----------
    real_v : Tensor ``[N]``
        Raw critic outputs :math:`v` on samples of :math:`P` (the data).
    fake_v : Tensor ``[M]``
        Raw critic outputs on samples of :math:`Q` (the model).
    kind : one of :data:`KINDS`

    Returns
    -------
    Tensor ``[]``: the estimate (nats for the logarithmic divergences), differentiable in both inputs. For
    ``"gan"`` it is the GAN's value :math:`V(D, G)` with :math:`D = \sigma(v)`, that is
    ``-gan.discriminator_loss(real_v, fake_v)``.
    """
    d = _divergence(kind)
    return d.activation(real_v).mean() - d.conjugate_at_activation(fake_v).mean()


def critic_loss(real_v: torch.Tensor, fake_v: torch.Tensor, kind: str) -> torch.Tensor:
    r"""The critic's loss (a scalar to minimise): :math:`-\hat F`, the negative of :func:`variational_bound`.

    For ``"gan"`` this is the binary cross-entropy :math:`\mathbb E_P[\operatorname{softplus}(-v)] +
    \mathbb E_Q[\operatorname{softplus}(v)]` of :func:`genmodels.gan.discriminator_loss`.
    """
    return -variational_bound(real_v, fake_v, kind)


def generator_loss(fake_v: torch.Tensor, kind: str, *, variant: str = "saddle") -> torch.Tensor:
    r"""The generator's loss (a scalar to minimise) from the critic's raw outputs on generated samples.

    ``"saddle"``: the generator plays the game that the critic plays, :math:`\min_\theta \hat F`; only the
    :math:`Q_\theta` term depends on :math:`\theta`, so the loss is

    .. math:: -\mathbb E_{x \sim Q_\theta}\big[f^*(g_f(v(x)))\big],

    and at the optimal critic its gradient is that of :math:`D_f(P\,\|\,Q_\theta)` (the envelope theorem: the
    critic's dependence on :math:`\theta` does not contribute at its maximum). For ``"gan"`` it is
    :math:`\mathbb E[\log(1 - D)] = -\mathbb E[\operatorname{softplus}(v)]`, the book's ``"saturating"`` loss.

    ``"non_saturating"``: Nowozin et al.'s heuristic (their section 3.2), maximise
    :math:`\mathbb E_{Q_\theta}[g_f(v)]` instead,

    .. math:: -\mathbb E_{x \sim Q_\theta}\big[g_f(v(x))\big];

    for ``"gan"`` this is :math:`-\mathbb E[\log D] = \mathbb E[\operatorname{softplus}(-v)]`, the book's
    ``"non_saturating"`` loss of Goodfellow et al. For other divergences it follows another objective: for ``"kl"``,
    at the optimal critic :math:`T^* = 1 + \log p/q`, its gradient is that of :math:`\mathrm{KL}(Q_\theta\,\|\,P)`.
    """
    d = _divergence(kind)
    check_choice("variant", variant, GENERATOR_VARIANTS)
    if variant == "saddle":
        return -d.conjugate_at_activation(fake_v).mean()
    return -d.activation(fake_v).mean()


# ----------------------------------------------------------------------------------------------
# Quadrature and Monte Carlo on known 1-D densities
# ----------------------------------------------------------------------------------------------

Density = Union[torch.distributions.Distribution, GaussianMixture1D, Callable[[torch.Tensor], torch.Tensor]]


def _log_density(d: Density) -> Callable[[torch.Tensor], torch.Tensor]:
    """``x -> log d(x)``: through ``log_prob`` where ``d`` has one, else ``log`` of the density callable ``d``."""
    if hasattr(d, "log_prob"):
        return d.log_prob
    if callable(d):
        return lambda x: torch.log(torch.as_tensor(d(x), dtype=x.dtype))
    raise UserError(f"a density must be a torch distribution, a GaussianMixture1D or a callable, got {type(d)}")


def _components(d: Density) -> Optional[Tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """``(weights, means, stds)`` of a 1-D normal or mixture of normals (float64), else None."""
    D = torch.distributions
    if isinstance(d, GaussianMixture1D):
        return tuple(torch.tensor(v, dtype=F64) for v in (d.weights, d.means, d.stds))
    if isinstance(d, D.Normal) and d.batch_shape in ((), (1,)):
        one = torch.ones(1, dtype=F64)
        return one, d.loc.reshape(1).to(F64), d.scale.reshape(1).to(F64)
    if (
        isinstance(d, D.MixtureSameFamily)
        and isinstance(d.component_distribution, D.Normal)
        and len(d.mixture_distribution.batch_shape) == 0
    ):
        comp = d.component_distribution
        return d.mixture_distribution.probs.to(F64), comp.loc.to(F64), comp.scale.to(F64)
    return None


def default_grid(p: Density, q: Density, *, points: int = 20001, width: float = 12.0) -> torch.Tensor:
    r"""An evenly spaced float64 grid that covers both densities: from ``width`` component standard deviations
    below the lowest component of either to as far above the highest. Only for normals and mixtures of normals
    (:class:`torch.distributions.Normal`, :class:`~torch.distributions.MixtureSameFamily` of normals,
    :class:`~genmodels.divergences.GaussianMixture1D`); give a ``grid`` for anything else."""
    parts = [_components(p), _components(q)]
    if any(c is None for c in parts):
        raise UserError("pass grid=... for densities that are not 1-D normals or mixtures of normals")
    lo = min((m - width * s).min().item() for _, m, s in parts)
    hi = max((m + width * s).max().item() for _, m, s in parts)
    return torch.linspace(lo, hi, check_int("points", points, minimum=3), dtype=F64)


def divergence_on_grid(log_p: torch.Tensor, log_q: torch.Tensor, grid: torch.Tensor, kind: str) -> torch.Tensor:
    r""":math:`D_f(P\,\|\,Q) = \int q f(p/q)\,\mathrm dx` by the trapezoidal rule, from the two log-densities on
    ``grid`` (all ``[G]``); differentiable in both. The tails beyond the grid are dropped."""
    if not (log_p.shape == log_q.shape == grid.shape) or grid.dim() != 1:
        raise UserError(f"log_p, log_q and grid must be 1-D and alike, got {log_p.shape}, {log_q.shape}, {grid.shape}")
    return torch.trapezoid(_divergence(kind).perspective(log_p, log_q), grid)


def divergence_by_quadrature(p: Density, q: Density, kind: str, *, grid: Optional[torch.Tensor] = None) -> float:
    r""":math:`D_f(P\,\|\,Q)` for 1-D densities by the trapezoidal rule on a fine grid.

    Parameters
    ----------
    p, q : Density
        A :class:`torch.distributions.Distribution` (its ``log_prob`` is used), a
        :class:`~genmodels.divergences.GaussianMixture1D`, or a callable ``x -> density(x)``.
    kind : one of :data:`KINDS`
    grid : Tensor ``[G]``, optional
        Increasing float64 points; default :func:`default_grid` (normals and their mixtures only).
    """
    grid = default_grid(p, q) if grid is None else grid
    return divergence_on_grid(_log_density(p)(grid), _log_density(q)(grid), grid, kind).item()


def bound_on_grid(log_p: torch.Tensor, log_q: torch.Tensor, v: torch.Tensor, grid: torch.Tensor, kind: str):
    r"""The variational bound :math:`\int p\, g_f(v) - q\, f^*(g_f(v))\,\mathrm dx` for a critic given by its raw
    outputs ``v`` on ``grid`` (all ``[G]``), by the trapezoidal rule. At :math:`v = v^*` it is :math:`D_f`."""
    d = _divergence(kind)
    integrand = _p_times(log_p, d.activation(v)) - _p_times(log_q, d.conjugate_at_activation(v))
    return torch.trapezoid(integrand, grid)


def bound_at_optimal_critic(p: Density, q: Density, kind: str, *, grid: Optional[torch.Tensor] = None) -> float:
    r"""The variational bound evaluated at the optimal critic :math:`T^*(x) = f'(p(x)/q(x))`, by quadrature:

    .. math:: \int p(x)\, T^*(x) - q(x)\, f^*\big(T^*(x)\big)\,\mathrm dx ,

    which Fenchel–Young's equality :math:`f^*(f'(u)) = u f'(u) - f(u)` makes equal to :math:`D_f(P\,\|\,Q)`. The
    critic is built from the log-ratio :math:`r = \log p - \log q` as the raw output :math:`v^*(r)` of
    :attr:`FDivergence.optimal_output` and then goes through the same :math:`g_f` and :math:`f^* \circ g_f` as a
    trained critic. Arguments as in :func:`divergence_by_quadrature`.
    """
    grid = default_grid(p, q) if grid is None else grid
    log_p, log_q = _log_density(p)(grid), _log_density(q)(grid)
    v_star = _divergence(kind).optimal_output(log_p - log_q)
    return bound_on_grid(log_p, log_q, v_star, grid, kind).item()


class MCEstimate(NamedTuple):
    """A Monte Carlo estimate and its standard error."""

    value: float
    stderr: float


def sampler(d: Density, generator: torch.Generator) -> Callable[[int], torch.Tensor]:
    """``n -> Tensor [n]`` (float64) of draws from a 1-D normal or mixture of normals, from ``generator``, so that
    runs are reproducible without touching the global seed."""
    parts = _components(d)
    if parts is None:
        raise UserError("sampling needs a 1-D Normal, a MixtureSameFamily of Normals or a GaussianMixture1D")
    weights, means, stds = parts

    def draw(n: int) -> torch.Tensor:
        k = torch.multinomial(weights, n, replacement=True, generator=generator)
        return means[k] + stds[k] * torch.randn(n, generator=generator, dtype=F64)

    return draw


def bound_at_optimal_critic_mc(
    p: Density, q: Density, kind: str, *, num_samples: int = 100_000, seed: int = 0
) -> MCEstimate:
    r"""The bound at :math:`T^*` by Monte Carlo: ``num_samples`` draws from each of :math:`P` and :math:`Q`,

    .. math:: \frac1n \sum_i T^*(x_i) - \frac1n \sum_j f^*\big(T^*(y_j)\big), \qquad x_i \sim P,\; y_j \sim Q,

    with its standard error :math:`\sqrt{(s_P^2 + s_Q^2)/n}`. ``p`` and ``q`` must be 1-D normals or mixtures of
    normals (see :func:`sampler`)."""
    check_int("num_samples", num_samples, minimum=2)
    d = _divergence(kind)
    g = torch.Generator().manual_seed(seed)
    log_p, log_q = _log_density(p), _log_density(q)
    x, y = sampler(p, g)(num_samples), sampler(q, g)(num_samples)
    a = d.activation(d.optimal_output(log_p(x) - log_q(x)))
    b = d.conjugate_at_activation(d.optimal_output(log_p(y) - log_q(y)))
    stderr = math.sqrt((a.var().item() + b.var().item()) / num_samples)
    return MCEstimate(a.mean().item() - b.mean().item(), stderr)


def closed_form_normal(kind: str, mu_p: float, sigma_p: float, mu_q: float, sigma_q: float) -> float:
    r""":math:`D_f\big(\mathcal N(\mu_p, \sigma_p^2)\,\|\,\mathcal N(\mu_q, \sigma_q^2)\big)` in closed form, where there is one.

    * ``kl``, ``reverse_kl``: :func:`genmodels.distributions.gaussian_kl`,
      :math:`\log\frac{\sigma_q}{\sigma_p} + \frac{\sigma_p^2 + (\mu_p - \mu_q)^2}{2\sigma_q^2} - \frac12` (and swapped);
    * ``pearson``: completing the square in :math:`\int p^2/q`,

      .. math:: \chi^2 = \frac{\sigma_q^2}{\sigma_p\sqrt{2\sigma_q^2 - \sigma_p^2}}
         \exp\Big(\frac{(\mu_p - \mu_q)^2}{2\sigma_q^2 - \sigma_p^2}\Big) - 1,

      finite only if :math:`2\sigma_q^2 > \sigma_p^2` (else :math:`p^2/q` grows in the tails; ``inf`` is returned);
    * ``hellinger``: :math:`2 - 2\,\mathrm{BC}` with the Bhattacharyya coefficient
      :math:`\mathrm{BC} = \int\sqrt{pq} = \sqrt{\frac{2\sigma_p\sigma_q}{\sigma_p^2 + \sigma_q^2}}
      \exp\Big(-\frac{(\mu_p - \mu_q)^2}{4(\sigma_p^2 + \sigma_q^2)}\Big)`.

    The Jensen–Shannon and GAN divergences between normals have no closed form (``UserError``).
    """
    check_choice("kind", kind, ("kl", "reverse_kl", "pearson", "hellinger"))
    for name, s in (("sigma_p", sigma_p), ("sigma_q", sigma_q)):
        check_positive(name, s)
    if kind in ("kl", "reverse_kl"):
        a, b = ((mu_p, sigma_p), (mu_q, sigma_q)) if kind == "kl" else ((mu_q, sigma_q), (mu_p, sigma_p))
        t = lambda m, s: (torch.tensor([float(m)], dtype=F64), torch.tensor([2.0 * math.log(s)], dtype=F64))  # noqa: E731
        return gaussian_kl(*t(*a), *t(*b)).item()
    if kind == "pearson":
        c = 2.0 * sigma_q**2 - sigma_p**2
        if c <= 0:
            return INF
        return sigma_q**2 / (sigma_p * math.sqrt(c)) * math.exp((mu_p - mu_q) ** 2 / c) - 1.0
    s2 = sigma_p**2 + sigma_q**2
    bc = math.sqrt(2.0 * sigma_p * sigma_q / s2) * math.exp(-((mu_p - mu_q) ** 2) / (4.0 * s2))
    return 2.0 - 2.0 * bc


# ----------------------------------------------------------------------------------------------
# A trained critic
# ----------------------------------------------------------------------------------------------


class Critic(nn.Module):
    """The 1-D critic: two hidden layers of SiLU units, then one raw output :math:`v` (no activation)."""

    def __init__(self, hidden_dim: int = 64):
        super().__init__()
        h = check_int("hidden_dim", hidden_dim)
        self.net = nn.Sequential(nn.Linear(1, h), nn.SiLU(), nn.Linear(h, h), nn.SiLU(), nn.Linear(h, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.reshape(-1, 1)).squeeze(-1)  # (N,) raw outputs v


@dataclass
class CriticFit:
    r"""What :func:`fit_critic` returns: the trained ``critic`` (eval mode), ``history`` (the minibatch bound at
    every step), and ``estimate``, the bound of the final critic on fresh samples (:class:`MCEstimate`): a lower
    bound on :math:`D_f` in expectation, for any critic."""

    critic: Critic
    history: List[float]
    estimate: MCEstimate


def _evaluate_critic(critic: nn.Module, sample_p, sample_q, kind: str, n: int, chunk: int = 50_000) -> MCEstimate:
    """The bound of a fixed critic on ``n`` fresh draws from each side, in chunks, with its standard error."""
    d = _divergence(kind)
    dtype = next(critic.parameters()).dtype
    a, b = [], []
    with torch.no_grad():
        for start in range(0, n, chunk):
            m = min(chunk, n - start)
            a.append(d.activation(critic(sample_p(m).to(dtype))).double())
            b.append(d.conjugate_at_activation(critic(sample_q(m).to(dtype))).double())
    a, b = torch.cat(a), torch.cat(b)
    return MCEstimate(a.mean().item() - b.mean().item(), math.sqrt((a.var().item() + b.var().item()) / n))


def fit_critic(
    p: Density,
    q: Density,
    kind: str,
    *,
    steps: int = 2000,
    batch_size: int = 512,
    lr: float = 3e-3,
    hidden_dim: int = 64,
    eval_samples: int = 200_000,
    seed: int = 0,
) -> CriticFit:
    r"""Train a :class:`Critic` to maximise the variational bound between two fixed 1-D distributions.

    ``steps`` Adam steps on :func:`critic_loss`, each on fresh batches of ``batch_size`` draws from ``p`` and
    ``q`` (normals or mixtures of normals), the step size decayed to zero on a cosine, float32; then the bound of
    the trained critic on ``eval_samples`` fresh draws from each. A critic error :math:`\delta(x)` around
    :math:`T^*` costs :math:`\approx \tfrac12\mathbb E_Q\big[f^{*\prime\prime}(T^*)\,\delta^2\big]` (the bound is flat
    at its maximum), so a critic that is roughly right gives a bound close to the divergence.
    """
    check_int("steps", steps)
    check_int("batch_size", batch_size)
    check_positive("lr", lr)
    _divergence(kind)
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    critic = Critic(hidden_dim)
    sample_p, sample_q = sampler(p, g), sampler(q, g)
    opt = torch.optim.Adam(critic.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    history = []
    for _ in range(steps):
        loss = critic_loss(critic(sample_p(batch_size).float()), critic(sample_q(batch_size).float()), kind)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        history.append(-loss.item())
    critic.eval()
    return CriticFit(critic, history, _evaluate_critic(critic, sample_p, sample_q, kind, eval_samples))


# ----------------------------------------------------------------------------------------------
# The toy f-GAN: a Gaussian generator against a critic
# ----------------------------------------------------------------------------------------------


class GaussianGenerator(nn.Module):
    r"""The smallest generator: :math:`x = \mu + \sigma z` with :math:`z \sim \mathcal N(0, 1)`, reparameterized, so
    :math:`Q_\theta = \mathcal N(\mu, \sigma^2)` with :math:`\theta = (\mu, \log\sigma)`."""

    def __init__(self, mu: float = 0.0, sigma: float = 1.0):
        super().__init__()
        check_positive("sigma", sigma)
        self.mu = nn.Parameter(torch.tensor(float(mu)))
        self.log_sigma = nn.Parameter(torch.tensor(math.log(sigma)))

    @property
    def sigma(self) -> torch.Tensor:
        return self.log_sigma.exp()

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.mu + self.sigma * z  # (N,)


@dataclass
class FGANRun:
    r"""What :func:`train_fgan_1d` recorded.

    ``kind``, ``variant``: the divergence and the generator's loss; ``history``: per generator step ``mu``,
    ``sigma`` and ``bound`` (the critic's minibatch estimate of :math:`D_f` at its last step), and every
    ``record_every`` steps ``step`` and ``divergence`` (:math:`D_f(P\,\|\,Q_\theta)` by quadrature, for comparison);
    ``generator``, ``critic``: the trained networks.
    """

    kind: str
    variant: str
    history: Dict[str, List[float]]
    generator: GaussianGenerator
    critic: Critic

    @property
    def mu(self) -> float:
        return self.generator.mu.item()

    @property
    def sigma(self) -> float:
        return self.generator.sigma.item()

    def tail_mean(self, name: str, fraction: float = 1 / 3) -> float:
        """The mean of ``history[name]`` over the last ``fraction`` of the generator steps: the fitted value with
        the step-to-step jitter of stochastic gradients averaged out."""
        values = self.history[name]
        tail = values[-max(1, int(len(values) * fraction)) :]
        return sum(tail) / len(tail)


def train_fgan_1d(
    target: Density,
    kind: str,
    *,
    mu0: float = 1.0,
    sigma0: float = 1.0,
    steps: int = 1500,
    critic_steps: int = 2,
    batch_size: int = 256,
    lr_generator: float = 1e-2,
    lr_critic: float = 2e-3,
    hidden_dim: int = 32,
    variant: str = "saddle",
    record_every: int = 25,
    seed: int = 0,
) -> FGANRun:
    r"""Fit a :class:`GaussianGenerator` to a 1-D ``target`` by the f-GAN game of ``kind``.

    The update order is Algorithm 1 of Goodfellow et al. (2014): ``critic_steps`` critic steps, each maximising
    :func:`variational_bound` on a fresh batch of the target and a fresh batch of generated points (detached), then
    one generator step on :func:`generator_loss` (``variant``) with fresh noise, the gradient flowing through the
    critic into :math:`(\mu, \log\sigma)`. (Nowozin et al.'s single-step method updates both players at once from
    one batch.) Adam for both, float32, CPU; all noise is drawn from one seeded generator, so a run is
    deterministic.

    Parameters
    ----------
    target : Density
        :math:`P`, a 1-D normal or mixture of normals (see :func:`sampler`).
    kind : one of :data:`KINDS`
    mu0, sigma0 : float
        The generator's start.
    """
    check_int("steps", steps)
    check_int("critic_steps", critic_steps)
    check_int("record_every", record_every)
    check_choice("variant", variant, GENERATOR_VARIANTS)
    _divergence(kind)
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    generator, critic = GaussianGenerator(mu0, sigma0), Critic(hidden_dim)
    opt_g = torch.optim.Adam(generator.parameters(), lr=lr_generator)
    opt_c = torch.optim.Adam(critic.parameters(), lr=lr_critic)
    sample_p = sampler(target, g)
    log_p_target = _log_density(target)
    parts = _components(target)
    lo, hi = (parts[1] - 12 * parts[2]).min().item(), (parts[1] + 12 * parts[2]).max().item()
    history: Dict[str, List[float]] = {k: [] for k in ("mu", "sigma", "bound", "step", "divergence")}

    def record(step: int) -> None:
        with torch.no_grad():
            mu, sigma = generator.mu.double(), generator.sigma.double()
            grid = torch.linspace(
                min(lo, mu.item() - 12 * sigma.item()), max(hi, mu.item() + 12 * sigma.item()), 4001, dtype=F64
            )
            div = divergence_on_grid(log_p_target(grid), normal_log_prob(grid, mu, sigma), grid, kind)
        history["step"].append(step)
        history["divergence"].append(div.item())

    for step in range(steps):
        if step % record_every == 0:
            record(step)
        for _ in range(critic_steps):
            real = sample_p(batch_size).float()
            with torch.no_grad():
                fake = generator(torch.randn(batch_size, generator=g))
            loss_c = critic_loss(critic(real), critic(fake), kind)
            opt_c.zero_grad(set_to_none=True)
            loss_c.backward()
            opt_c.step()
        fake = generator(torch.randn(batch_size, generator=g))
        loss_g = generator_loss(critic(fake), kind, variant=variant)
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        history["mu"].append(generator.mu.item())
        history["sigma"].append(generator.sigma.item())
        history["bound"].append(-loss_c.item())
    record(steps)
    return FGANRun(kind, variant, history, generator, critic.eval())


class GaussianFit(NamedTuple):
    r"""A fitted :math:`\mathcal N(\mu, \sigma^2)` and the divergence :math:`D_f(P\,\|\,\mathcal N(\mu, \sigma^2))` it reached."""

    mu: float
    sigma: float
    divergence: float


def gan_non_saturating_objective(log_p: torch.Tensor, log_q: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    r""":math:`\mathrm{KL}(Q\,\|\,P) - 2\,\mathrm{JSD}(P\,\|\,Q)` on ``grid``: at the optimal discriminator, the
    non-saturating generator of the GAN follows the gradient of this (Arjovsky & Bottou 2017), so its fits are this
    objective's local minima."""
    return divergence_on_grid(log_p, log_q, grid, "reverse_kl") - 2.0 * divergence_on_grid(log_p, log_q, grid, "js")


def fit_gaussian_by_quadrature(
    target: Density,
    kind: str,
    *,
    mu0: float,
    sigma0: float,
    variant: str = "saddle",
    grid: Optional[torch.Tensor] = None,
    max_iter: int = 500,
) -> GaussianFit:
    r"""A local minimiser of :math:`D_f(P\,\|\,\mathcal N(\mu, \sigma^2))` over :math:`(\mu, \log\sigma)`, by L-BFGS
    on the quadrature of :func:`divergence_on_grid`, from ``(mu0, sigma0)``: the fit that the f-GAN game
    approaches when its critic is optimal. For ``"kl"`` it is moment matching
    (:func:`genmodels.divergences.fit_forward_kl`); for ``"reverse_kl"`` it is
    :func:`genmodels.divergences.fit_reverse_kl`. With ``kind="gan", variant="non_saturating"`` the objective is
    :func:`gan_non_saturating_objective` instead, the one that the non-saturating generator descends; the other
    divergences' non-saturating generators follow no objective derived here. ``grid`` defaults to the target's
    grid widened to 30 standard deviations, so that the Gaussian's mass stays inside it; ``divergence`` in the
    result is the objective's value."""
    check_positive("sigma0", sigma0)
    _divergence(kind)
    check_choice("variant", variant, GENERATOR_VARIANTS)
    if variant == "non_saturating" and kind != "gan":
        raise UserError("the non-saturating fit is derived for kind='gan' only")
    objective = (
        gan_non_saturating_objective
        if variant == "non_saturating"
        else lambda lp, lq, x: divergence_on_grid(lp, lq, x, kind)
    )
    if grid is None:
        parts = _components(target)
        if parts is None:
            raise UserError("pass grid=... for a target that is not a normal or a mixture of normals")
        _, m, s = parts
        grid = torch.linspace((m - 30 * s).min().item(), (m + 30 * s).max().item(), 24001, dtype=F64)
    log_p = _log_density(target)(grid)
    mu, sigma = minimize_over_gaussian(
        lambda log_q: objective(log_p, log_q, grid),
        grid,
        mu0=mu0,
        sigma0=sigma0,
        max_iter=max_iter,
        tolerance_grad=1e-11,
        tolerance_change=1e-14,
    )
    with torch.no_grad():
        value = objective(log_p, normal_log_prob(grid, mu, sigma), grid)
    return GaussianFit(mu, sigma, value.item())
