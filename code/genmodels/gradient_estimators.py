r"""Monte-Carlo estimators of the gradient of an expectation, and the measurement of their variance.

The quantity is the gradient of an expectation under a diagonal Gaussian whose parameters are the
mean ``mu`` and the log-variance ``logvar`` (:math:`\phi = (\mu, \log\sigma^2)`):

.. math::

    \nabla_\phi\, \mathbb E_{z \sim \mathcal N(\mu, \operatorname{diag}\sigma^2)}\big[f(z)\big].

Two unbiased estimators of it are implemented, each returning one estimate *per sample* so that the
caller can average ``n`` of them (the ``n``-sample estimator) and measure how its variance falls with ``n``:

* the **pathwise** (reparameterization) estimator: write :math:`z = \mu + \sigma \odot \varepsilon`,
  :math:`\varepsilon \sim \mathcal N(0, I)`, and differentiate :math:`f(z)` through the sample,

  .. math::

      \hat g_\mu = \nabla_z f(z), \qquad \hat g_{\log\sigma^2} = \nabla_z f(z) \odot \varepsilon \odot \tfrac12 \sigma ;

* the **score-function** (REINFORCE, likelihood-ratio) estimator: weight the score of :math:`q` by the
  value of :math:`f`, minus an optional constant baseline :math:`b`,

  .. math::

      \hat g_\phi = \big(f(z) - b\big)\, \nabla_\phi \log q_\phi(z), \qquad
      \nabla_\mu \log q = \frac{z - \mu}{\sigma^2}, \quad
      \nabla_{\log\sigma^2} \log q = \tfrac12\Big(\frac{(z - \mu)^2}{\sigma^2} - 1\Big).

:func:`encoder_gradient` applies both to the reconstruction term of a VAE,
:math:`\mathbb E_{q_\phi(z\mid x)}[\log p_\theta(x\mid z)]`, and returns the gradient with respect to every
parameter of the encoder; :func:`gradient_stats` and :func:`variance_by_samples` measure the mean and
the variance of any such estimator over independent repeats.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, Optional, Sequence, Tuple, Union

import torch

from . import distributions as D
from .core import UserError, as_images, check_int
from .vae import VAE

__all__ = [
    "ESTIMATORS",
    "gaussian_score",
    "pathwise_gradients",
    "score_function_gradients",
    "per_sample_gradients",
    "variance_of_average",
    "GradientStats",
    "gradient_stats",
    "variance_by_samples",
    "encoder_gradient",
]

#: The estimators understood by :func:`per_sample_gradients` and :func:`encoder_gradient`.
ESTIMATORS = ("pathwise", "score_function")

Baseline = Union[float, torch.Tensor]


def _check_estimator(estimator: str) -> None:
    if estimator not in ESTIMATORS:
        raise UserError(f"estimator must be one of {ESTIMATORS}, got {estimator!r}")


def _noise(mu: torch.Tensor, n_samples: int, generator: Optional[torch.Generator]) -> torch.Tensor:
    return torch.randn((n_samples, *mu.shape), dtype=mu.dtype, device=mu.device, generator=generator)


def gaussian_score(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    r"""The score :math:`\nabla_\phi \log \mathcal N(z; \mu, \operatorname{diag}\sigma^2)` with respect to
    :math:`\mu` and :math:`\log\sigma^2`, coordinate by coordinate.

    .. math::

        \frac{\partial \log q}{\partial \mu_j} = \frac{z_j - \mu_j}{\sigma_j^2}, \qquad
        \frac{\partial \log q}{\partial \log\sigma_j^2} = \frac12\Big(\frac{(z_j - \mu_j)^2}{\sigma_j^2} - 1\Big)

    Both have mean zero under :math:`z \sim q`, which is why a constant baseline leaves the
    score-function estimator unbiased.

    Returns
    -------
    (score_mu, score_logvar), each shaped like ``z`` (``mu`` and ``logvar`` broadcast against it).
    """
    inv_var = (-logvar).exp()
    diff = z - mu
    return diff * inv_var, 0.5 * (diff.pow(2) * inv_var - 1.0)


def pathwise_gradients(
    f: Callable[[torch.Tensor], torch.Tensor],
    mu: torch.Tensor,
    logvar: torch.Tensor,
    n_samples: int,
    *,
    generator: Optional[torch.Generator] = None,
) -> Tuple[torch.Tensor, torch.Tensor]:
    r"""Per-sample pathwise (reparameterization) estimates of :math:`\nabla_{\mu, \log\sigma^2} \mathbb E_q[f(z)]`.

    Each sample :math:`z_i = \mu + \sigma \odot \varepsilon_i` is built from its own copy of ``mu`` and
    ``logvar``, so one backward pass through ``f`` gives every sample's own gradient.

    Parameters
    ----------
    f : callable
        Maps ``z`` shaped ``[n, *mu.shape]`` to values ``[n, *mu.shape[:-1]]``; value ``i`` must depend
        on sample ``i`` only (no batch statistics across samples). It must be differentiable in ``z``.
    mu, logvar : Tensor ``[..., D]``
        Parameters of :math:`q`; they are not modified and need not require gradients.
    n_samples : int
    generator : torch.Generator, optional
        Source of :math:`\varepsilon`.

    Returns
    -------
    (grad_mu, grad_logvar), each ``[n_samples, *mu.shape]``: the average over the first dimension is the
    ``n_samples``-sample estimate.
    """
    check_int("n_samples", n_samples)
    eps = _noise(mu, n_samples, generator)
    mu_i = mu.detach().expand_as(eps).clone().requires_grad_(True)  # one copy per sample
    logvar_i = logvar.detach().expand_as(eps).clone().requires_grad_(True)
    with torch.enable_grad():
        z = D.reparameterize(mu_i, logvar_i, eps=eps)  # (n, ..., D)
        values = f(z)
        if values.shape != eps.shape[:-1]:
            raise UserError(f"f must map z {list(z.shape)} to values {list(eps.shape[:-1])}, got {list(values.shape)}")
        grad_mu, grad_logvar = torch.autograd.grad(values.sum(), (mu_i, logvar_i), allow_unused=True)
    grad_mu = torch.zeros_like(eps) if grad_mu is None else grad_mu
    grad_logvar = torch.zeros_like(eps) if grad_logvar is None else grad_logvar
    return grad_mu, grad_logvar


def score_function_gradients(
    f: Callable[[torch.Tensor], torch.Tensor],
    mu: torch.Tensor,
    logvar: torch.Tensor,
    n_samples: int,
    *,
    baseline: Baseline = 0.0,
    generator: Optional[torch.Generator] = None,
) -> Tuple[torch.Tensor, torch.Tensor]:
    r"""Per-sample score-function (REINFORCE) estimates of :math:`\nabla_{\mu, \log\sigma^2} \mathbb E_q[f(z)]`:
    :math:`(f(z_i) - b)\, \nabla_\phi \log q(z_i)` with :math:`z_i \sim q`.

    ``f`` is only evaluated, never differentiated: it may be discrete, non-differentiable or a black box.
    The ``baseline`` :math:`b` (a number, or a tensor broadcastable to ``mu.shape[:-1]``) must not depend
    on the samples; any such constant keeps the estimator unbiased and a good one lowers its variance.

    Returns
    -------
    (grad_mu, grad_logvar), each ``[n_samples, *mu.shape]``.
    """
    check_int("n_samples", n_samples)
    with torch.no_grad():
        mu, logvar = mu.detach(), logvar.detach()
        eps = _noise(mu, n_samples, generator)
        z = D.reparameterize(mu, logvar, eps=eps)
        values = f(z)
        if values.shape != eps.shape[:-1]:
            raise UserError(f"f must map z {list(z.shape)} to values {list(eps.shape[:-1])}, got {list(values.shape)}")
        weight = (values - torch.as_tensor(baseline, dtype=values.dtype, device=values.device)).unsqueeze(-1)
        score_mu, score_logvar = gaussian_score(z, mu, logvar)
        return weight * score_mu, weight * score_logvar


def per_sample_gradients(
    estimator: str,
    f: Callable[[torch.Tensor], torch.Tensor],
    mu: torch.Tensor,
    logvar: torch.Tensor,
    n_samples: int,
    *,
    baseline: Baseline = 0.0,
    generator: Optional[torch.Generator] = None,
) -> torch.Tensor:
    """Either estimator by name (:data:`ESTIMATORS`), with the two gradients concatenated along the last
    dimension: ``[n_samples, ..., 2D]`` (first the ``mu`` part, then the ``logvar`` part)."""
    _check_estimator(estimator)
    if estimator == "pathwise":
        g_mu, g_logvar = pathwise_gradients(f, mu, logvar, n_samples, generator=generator)
    else:
        g_mu, g_logvar = score_function_gradients(f, mu, logvar, n_samples, baseline=baseline, generator=generator)
    return torch.cat([g_mu, g_logvar], dim=-1)


def variance_of_average(per_sample: torch.Tensor, n: int) -> float:
    r"""The total variance of the ``n``-sample average, measured by splitting ``per_sample`` into groups.

    The ``M`` independent per-sample estimates ``[M, ...]`` are cut into ``M // n`` groups of ``n``
    (a remainder is dropped); each group's average is one ``n``-sample estimate, and the result is the
    sum over coordinates of the unbiased variance of those averages (the trace of their covariance).
    For independent samples it estimates :math:`\operatorname{tr}\operatorname{Cov}(\hat g_1)/n`.
    """
    check_int("n", n)
    groups = per_sample.shape[0] // n
    if groups < 2:
        raise UserError(f"need at least 2 groups of {n} samples, got {per_sample.shape[0]} samples")
    means = per_sample[: groups * n].reshape(groups, n, -1).mean(1)
    return float(means.double().var(0, unbiased=True).sum())


@dataclass
class GradientStats:
    """Mean and variance, coordinate by coordinate, of repeated independent gradient estimates.

    Attributes
    ----------
    mean, var : Tensor ``[P]`` (float64)
        Sample mean and unbiased sample variance over the repeats.
    repeats : int
    """

    mean: torch.Tensor
    var: torch.Tensor
    repeats: int

    @property
    def total_variance(self) -> float:
        r""":math:`\operatorname{tr}\operatorname{Cov}(\hat g) = \mathbb E\lVert \hat g - \mathbb E\hat g\rVert^2`,
        the sum of the coordinate variances."""
        return float(self.var.sum())

    @property
    def standard_error(self) -> torch.Tensor:
        """Standard error of each coordinate of :attr:`mean`."""
        return (self.var / self.repeats).sqrt()


def gradient_stats(draw: Callable[[], torch.Tensor], repeats: int) -> GradientStats:
    """Call ``draw()`` ``repeats`` times (each call one independent estimate, any shape) and return the
    coordinate-wise mean and unbiased variance, accumulated in float64 with Welford's update (nothing
    but two vectors is kept, so million-parameter gradients are fine)."""
    check_int("repeats", repeats)
    if repeats < 2:
        raise UserError("repeats must be at least 2 to estimate a variance")
    mean = m2 = None
    for i in range(1, repeats + 1):
        g = draw().detach().reshape(-1).double()
        if mean is None:
            mean, m2 = g.clone(), torch.zeros_like(g)
            continue
        delta = g - mean
        mean += delta / i
        m2 += delta * (g - mean)
    return GradientStats(mean=mean, var=m2 / (repeats - 1), repeats=repeats)


def variance_by_samples(
    draw: Callable[[int], torch.Tensor], n_samples: Sequence[int], *, repeats: int
) -> Dict[int, GradientStats]:
    """:func:`gradient_stats` of the ``n``-sample estimator ``draw(n)`` for each ``n`` in ``n_samples``."""
    return {n: gradient_stats(lambda n=n: draw(n), repeats) for n in n_samples}


def encoder_gradient(
    vae: VAE,
    x: torch.Tensor,
    *,
    estimator: str,
    n_samples: int = 1,
    baseline: Baseline = 0.0,
    generator: Optional[torch.Generator] = None,
) -> torch.Tensor:
    r"""One ``n_samples``-sample estimate of the gradient of the VAE's reconstruction term with respect to
    every encoder parameter, flattened to ``[P]``:

    .. math::

        \nabla_\phi \sum_{b} \mathbb E_{q_\phi(z\mid x_b)}\big[\log p_\theta(x_b \mid z)\big]

    summed over the images of the batch ``x``. The KL term is left out on purpose: it is computed in closed
    form, so it adds the same exact gradient to both estimators and no variance.

    * ``"pathwise"``: autograd through :math:`z = \mu_\phi(x) + \sigma_\phi(x) \odot \varepsilon`.
    * ``"score_function"``: autograd of the surrogate
      :math:`\frac1n \sum_i \big(\log p_\theta(x\mid z_i) - b\big) \log q_\phi(z_i\mid x)` with the samples
      :math:`z_i` and the decoder's values held constant, whose gradient is the REINFORCE estimate.
      ``baseline`` may be a number or a per-image tensor ``[B]``.
    """
    _check_estimator(estimator)
    check_int("n_samples", n_samples)
    x = as_images(x)
    params = [p for p in vae.encoder.parameters() if p.requires_grad]
    with torch.enable_grad():
        mu, logvar = vae.encoder(x)  # (B, D) each
        eps = _noise(mu, n_samples, generator)  # (n, B, D)
        if estimator == "pathwise":
            z = D.reparameterize(mu, logvar, eps=eps)
            surrogate = D.bernoulli_log_likelihood(vae.decode(z), x).mean(0).sum()
        else:
            with torch.no_grad():
                z = D.reparameterize(mu, logvar, eps=eps)
                weight = D.bernoulli_log_likelihood(vae.decode(z), x) - torch.as_tensor(baseline, device=z.device)
            surrogate = (weight * D.gaussian_log_prob(z, mu, logvar)).mean(0).sum()
        grads = torch.autograd.grad(surrogate, params)
    return torch.cat([g.reshape(-1) for g in grads])
