"""The linear-Gaussian latent model (probabilistic PCA): marginal likelihood and posterior exact,
so an ELBO or an importance-weighted bound can be compared with log p(x) itself.
"""

from __future__ import annotations

import math
from typing import (
    Optional,
    Tuple,
)

import torch

from . import distributions as D
from .core import UserError

__all__ = [
    "LinearGaussian",
]


class LinearGaussian:
    r"""The linear-Gaussian latent model (probabilistic PCA).

    .. math::

        p(z) = \mathcal N(0, I_d), \qquad p(x \mid z) = \mathcal N(Wz + b, s^2 I_n)

    Everything is exact: the marginal :math:`p(x) = \mathcal N(b, WW^\top + s^2 I)` and the posterior
    :math:`p(z\mid x) = \mathcal N\big(\Sigma W^\top (x - b)/s^2,\; \Sigma\big)` with
    :math:`\Sigma = (I + W^\top W / s^2)^{-1}`. When the columns of :math:`W` are orthogonal,
    :math:`\Sigma` is diagonal and a diagonal-Gaussian :math:`q` can equal the posterior exactly.

    Parameters
    ----------
    W : Tensor ``[n, d]``
    b : Tensor ``[n]``
    noise_std : float
        :math:`s`.
    """

    def __init__(self, W: torch.Tensor, b: torch.Tensor, noise_std: float):
        if W.dim() != 2 or b.shape != (W.shape[0],):
            raise UserError(f"W must be [n, d] and b [n]; got {list(W.shape)} and {list(b.shape)}")
        if noise_std <= 0:
            raise UserError(f"noise_std must be positive, got {noise_std}")
        self.W, self.b, self.noise_std = W, b, float(noise_std)

    @classmethod
    def random(
        cls,
        data_dim: int = 5,
        latent_dim: int = 2,
        *,
        noise_std: float = 0.5,
        orthogonal: bool = True,
        generator: Optional[torch.Generator] = None,
        dtype: torch.dtype = torch.float64,
    ) -> "LinearGaussian":
        """A random model; ``orthogonal=True`` gives :math:`W` orthogonal columns of different lengths
        (so the exact posterior is a diagonal Gaussian)."""
        A = torch.randn(data_dim, latent_dim, generator=generator, dtype=dtype)
        if orthogonal:
            Q, _ = torch.linalg.qr(A)  # (n, d), orthonormal columns
            scales = 0.5 + 2.0 * torch.rand(latent_dim, generator=generator, dtype=dtype)
            A = Q * scales
        b = torch.randn(data_dim, generator=generator, dtype=dtype)
        return cls(A, b, noise_std)

    @property
    def data_dim(self) -> int:
        return self.W.shape[0]

    @property
    def latent_dim(self) -> int:
        return self.W.shape[1]

    def sample(self, n: int, *, generator: Optional[torch.Generator] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        """``(x, z)`` drawn from the joint, ``[n, data_dim]`` and ``[n, latent_dim]``."""
        z = torch.randn(n, self.latent_dim, generator=generator, dtype=self.W.dtype)
        eps = torch.randn(n, self.data_dim, generator=generator, dtype=self.W.dtype)
        return z @ self.W.T + self.b + self.noise_std * eps, z

    def log_likelihood(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        r""":math:`\log p(x\mid z)`; ``z`` may have leading sample dimensions."""
        logvar = torch.tensor(2 * math.log(self.noise_std), dtype=self.W.dtype)
        return D.gaussian_log_likelihood(x, z @ self.W.T + self.b, logvar, event_dims=1)

    def log_joint(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        r""":math:`\log p(x, z) = \log p(x\mid z) + \log p(z)`."""
        return self.log_likelihood(x, z) + D.standard_normal_log_prob(z)

    def marginal(self) -> torch.distributions.MultivariateNormal:
        r""":math:`p(x) = \mathcal N(b, WW^\top + s^2 I)`."""
        cov = self.W @ self.W.T + self.noise_std**2 * torch.eye(self.data_dim, dtype=self.W.dtype)
        return torch.distributions.MultivariateNormal(self.b, covariance_matrix=cov)

    def log_marginal(self, x: torch.Tensor) -> torch.Tensor:
        r"""The exact :math:`\log p(x)`, ``[B]``."""
        return self.marginal().log_prob(x)

    def posterior(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        r"""The exact posterior :math:`p(z\mid x)`: its means ``[B, d]`` and its covariance ``[d, d]``
        (the same for every :math:`x`)."""
        s2 = self.noise_std**2
        cov = torch.linalg.inv(torch.eye(self.latent_dim, dtype=self.W.dtype) + self.W.T @ self.W / s2)
        mean = (x - self.b) @ self.W @ cov / s2  # Σ symmetric: (Σ Wᵀ (x−b))ᵀ = (x−b)ᵀ W Σ
        return mean, cov

    def posterior_diagonal(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        r"""The posterior as ``(mu, logvar)`` of a diagonal Gaussian; exact only when :math:`W^\top W` is
        diagonal (``random(orthogonal=True)``), otherwise a ``ValueError``."""
        mean, cov = self.posterior(x)
        off = cov - torch.diag(torch.diag(cov))
        if off.abs().max() > 1e-8 * cov.abs().max():
            raise UserError("the posterior is not diagonal here: build the model with orthogonal columns")
        return mean, torch.diag(cov).log().expand_as(mean)

    def elbo(self, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        r"""The ELBO of a diagonal :math:`q = \mathcal N(\mu, \operatorname{diag}\sigma^2)`, in closed form:

        .. math::

            \mathbb E_q \log p(x\mid z) = -\frac n2 \log(2\pi s^2)
              - \frac{\lVert x - W\mu - b \rVert^2 + \sum_j \sigma_j^2 \lVert W_{:,j} \rVert^2}{2 s^2}

        minus :math:`\mathrm{KL}(q \,\|\, \mathcal N(0, I))`.
        """
        s2 = self.noise_std**2
        resid = (x - mu @ self.W.T - self.b).pow(2).sum(-1)
        trace = (logvar.exp() * self.W.pow(2).sum(0)).sum(-1)
        expected_loglik = -0.5 * self.data_dim * math.log(2 * math.pi * s2) - (resid + trace) / (2 * s2)
        return expected_loglik - D.gaussian_kl(mu, logvar)

    def kl_to_posterior(self, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        r""":math:`\mathrm{KL}(q(z)\,\|\,p(z\mid x))` for a diagonal :math:`q`, exact (full-covariance posterior)."""
        mean, cov = self.posterior(x)
        q = torch.distributions.MultivariateNormal(mu, covariance_matrix=torch.diag_embed(logvar.exp()))
        p = torch.distributions.MultivariateNormal(mean, covariance_matrix=cov)
        return torch.distributions.kl_divergence(q, p)
