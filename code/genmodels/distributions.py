r"""The probability the VAE chapters derive, one function per equation.

Conventions: a diagonal Gaussian is given by its mean ``mu`` and its log-variance ``logvar``
(:math:`\log\sigma^2`), both shaped ``[..., D]``; every log-density is *summed* over the event
dimensions and returned per datapoint, in nats. Nothing here calls ``sigmoid`` and then ``log``:
likelihoods take logits, which keeps them finite for any input.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F

from .core import UserError

__all__ = [
    "LOG_2PI",
    "gaussian_kl",
    "reparameterize",
    "gaussian_log_prob",
    "standard_normal_log_prob",
    "bernoulli_log_likelihood",
    "gaussian_log_likelihood",
    "elbo",
    "iwae_bound",
]

LOG_2PI = math.log(2.0 * math.pi)


def _flat_sum(t: torch.Tensor, event_dims: int) -> torch.Tensor:
    """Sum the last ``event_dims`` dimensions."""
    if event_dims == 0:
        return t
    return t.flatten(start_dim=t.dim() - event_dims).sum(-1)


def gaussian_kl(
    mu: torch.Tensor,
    logvar: torch.Tensor,
    mu_p: Optional[torch.Tensor] = None,
    logvar_p: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    r"""KL divergence between diagonal Gaussians, in closed form, summed over the last dimension.

    .. math::

        \mathrm{KL}\big(\mathcal N(\mu, \operatorname{diag}\sigma^2)\,\|\,\mathcal N(\mu_p, \operatorname{diag}\sigma_p^2)\big)
        = \tfrac12 \sum_j \Big( \log\sigma_{p,j}^2 - \log\sigma_j^2
          + \frac{\sigma_j^2 + (\mu_j - \mu_{p,j})^2}{\sigma_{p,j}^2} - 1 \Big)

    With the prior omitted (``mu_p = logvar_p = None``) it is the KL to :math:`\mathcal N(0, I)`:

    .. math::

        \mathrm{KL}\big(q \,\|\, \mathcal N(0, I)\big) = \tfrac12 \sum_j \big(\sigma_j^2 + \mu_j^2 - 1 - \log\sigma_j^2\big)

    Parameters
    ----------
    mu, logvar : Tensor ``[..., D]``
        Mean and log-variance of the first Gaussian (the encoder's :math:`q(z\mid x)`).
    mu_p, logvar_p : Tensor ``[..., D]``, optional
        Mean and log-variance of the second Gaussian; both or neither.

    Returns
    -------
    Tensor ``[...]``: the divergence in nats, non-negative.
    """
    if (mu_p is None) != (logvar_p is None):
        raise UserError("give both mu_p and logvar_p, or neither (then the prior is N(0, I))")
    if mu_p is None:
        return 0.5 * (logvar.exp() + mu.pow(2) - 1.0 - logvar).sum(-1)
    return 0.5 * (logvar_p - logvar + (logvar - logvar_p).exp() + (mu - mu_p).pow(2) * (-logvar_p).exp() - 1.0).sum(-1)


def reparameterize(
    mu: torch.Tensor,
    logvar: torch.Tensor,
    *,
    n_samples: Optional[int] = None,
    generator: Optional[torch.Generator] = None,
    eps: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    r"""Draw :math:`z \sim \mathcal N(\mu, \operatorname{diag}\sigma^2)` as a differentiable function of ``mu`` and ``logvar``.

    .. math::

        z = \mu + \sigma \odot \varepsilon, \qquad \sigma = \exp(\tfrac12 \log\sigma^2),
        \qquad \varepsilon \sim \mathcal N(0, I)

    The randomness sits in :math:`\varepsilon`, which does not depend on the parameters, so
    gradients flow through ``mu`` and ``logvar`` (the pathwise estimator).

    Parameters
    ----------
    mu, logvar : Tensor ``[..., D]``
    n_samples : int, optional
        If given, draw that many samples: the result gets a leading dimension ``[n_samples, ..., D]``.
    generator : torch.Generator, optional
        Source of :math:`\varepsilon` (for reproducible draws).
    eps : Tensor, optional
        The standard-normal noise itself, broadcastable against ``mu`` (``n_samples`` and ``generator``
        are then not used): the same map with noise drawn elsewhere.
    """
    if eps is None:
        shape = mu.shape if n_samples is None else (n_samples, *mu.shape)
        eps = torch.randn(shape, dtype=mu.dtype, device=mu.device, generator=generator)
    return mu + (0.5 * logvar).exp() * eps


def gaussian_log_prob(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    r"""Log-density of a diagonal Gaussian, summed over the last dimension.

    .. math::

        \log \mathcal N(z; \mu, \operatorname{diag}\sigma^2)
        = -\tfrac12 \sum_j \Big( \log 2\pi + \log\sigma_j^2 + \frac{(z_j - \mu_j)^2}{\sigma_j^2} \Big)
    """
    return -0.5 * (LOG_2PI + logvar + (z - mu).pow(2) * (-logvar).exp()).sum(-1)


def standard_normal_log_prob(z: torch.Tensor) -> torch.Tensor:
    r"""Log-density of :math:`\mathcal N(0, I)`, summed over the last dimension:
    :math:`-\tfrac12 \sum_j (\log 2\pi + z_j^2)`."""
    return -0.5 * (LOG_2PI + z.pow(2)).sum(-1)


def bernoulli_log_likelihood(logits: torch.Tensor, x: torch.Tensor, *, event_dims: int = 3) -> torch.Tensor:
    r"""Bernoulli log-likelihood of ``x`` given the decoder's logits, summed over the event dimensions.

    .. math::

        \log p(x \mid z) = \sum_i \big( x_i \log \sigma(a_i) + (1 - x_i) \log(1 - \sigma(a_i)) \big)
        = -\sum_i \mathrm{BCE}_{\text{logits}}(a_i, x_i)

    with :math:`a` the logits. Computed by ``binary_cross_entropy_with_logits``, i.e. through
    :math:`\log\sigma(a) = -\operatorname{softplus}(-a)`, so it is finite for every logit. ``x`` may
    be binary or in [0, 1] (then it is the cross-entropy, not a normalised density).

    ``logits`` may carry extra leading sample dimensions (``[K, B, 1, 28, 28]`` against ``x`` of
    ``[B, 1, 28, 28]``); the result is then ``[K, B]``.
    """
    x = x.to(logits.dtype).expand_as(logits)
    bce = F.binary_cross_entropy_with_logits(logits, x, reduction="none")
    return -_flat_sum(bce, event_dims)


def gaussian_log_likelihood(
    x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, *, event_dims: int = 3
) -> torch.Tensor:
    r"""Gaussian log-likelihood :math:`\log \mathcal N(x; \mu, \operatorname{diag}\sigma^2)` of images, summed over
    the event dimensions (``event_dims=3`` for ``[B, C, H, W]``). ``logvar`` may be a scalar tensor
    (a fixed observation noise)."""
    logvar = torch.as_tensor(logvar, dtype=mu.dtype, device=mu.device).expand_as(mu)
    return _flat_sum(-0.5 * (LOG_2PI + logvar + (x - mu).pow(2) * (-logvar).exp()), event_dims)


def elbo(log_px_given_z: torch.Tensor, kl: torch.Tensor) -> torch.Tensor:
    r"""The single-sample evidence lower bound, per datapoint.

    .. math::

        \mathcal L(x) = \mathbb E_{q(z\mid x)}\big[\log p(x \mid z)\big] - \mathrm{KL}\big(q(z\mid x)\,\|\,p(z)\big)
        \;\approx\; \log p(x \mid z^{(1)}) - \mathrm{KL}\big(q(z\mid x)\,\|\,p(z)\big),
        \quad z^{(1)} \sim q(z \mid x)

    The expectation is estimated with one reparameterized sample; the KL is exact (closed form).
    :math:`\mathcal L(x) \le \log p(x)`, with equality when :math:`q(z\mid x) = p(z\mid x)`.
    """
    return log_px_given_z - kl


def iwae_bound(log_px_given_z: torch.Tensor, log_pz: torch.Tensor, log_qz: torch.Tensor) -> torch.Tensor:
    r"""The importance-weighted bound of Burda et al. (2016) from ``k`` samples :math:`z_i \sim q(z\mid x)`.

    .. math::

        \mathcal L_k(x) = \log \frac1k \sum_{i=1}^k \frac{p(x, z_i)}{q(z_i \mid x)}
        = \operatorname{logsumexp}_i\big(\log p(x\mid z_i) + \log p(z_i) - \log q(z_i\mid x)\big) - \log k

    computed with ``logsumexp`` (never by exponentiating the weights). In expectation
    :math:`\mathcal L_1 \le \mathcal L_k \le \mathcal L_{k+1} \le \log p(x)`, and :math:`\mathcal L_1`
    is the ELBO.

    Parameters
    ----------
    log_px_given_z, log_pz, log_qz : Tensor ``[k, ...]``
        The three log-densities at each of the ``k`` samples (the sample dimension first).

    Returns
    -------
    Tensor ``[...]``
    """
    log_w = log_px_given_z + log_pz - log_qz
    k = log_w.shape[0]
    return torch.logsumexp(log_w, dim=0) - math.log(k)
