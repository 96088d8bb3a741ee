r"""The Dirac-GAN of Mescheder, Geiger & Nowozin (2018): the smallest GAN whose training dynamics can be solved.

The data are a point mass at 0, the generator a point mass at :math:`\theta`, the discriminator
:math:`D_\psi(x) = \sigma(-\psi x)`, linear in its logit (the sign is the paper's convention). With
:math:`f(t) = -\log(1 + e^{-t}) = \log\sigma(t)` (the GAN of Goodfellow et al.: then :math:`L` is the value
:math:`\log D(0) + \log(1 - D(\theta))`) or :math:`f(t) = t` (the Wasserstein critic) the game is

.. math::

    \min_\theta \max_\psi \; L(\theta, \psi) = f(\psi\theta) + f(0),

and its only equilibrium is :math:`(\theta, \psi) = (0, 0)`: the generator on the data and a discriminator that
cannot tell. Gradient play follows the vector field

.. math::

    v(\theta, \psi) = \big(-\partial_\theta L,\; \partial_\psi L - \gamma\psi\big)
    = \big(-\psi f'(\psi\theta),\; \theta f'(\psi\theta) - \gamma\psi\big),

where :math:`\gamma \ge 0` is the weight of the gradient penalty :math:`\tfrac{\gamma}{2}\lVert\nabla_x
D_\psi\rVert^2 = \tfrac{\gamma}{2}\psi^2` on the real data (the R1 penalty; here it penalises the critic's
slope). At the equilibrium the Jacobian of :math:`v` is

.. math::

    J = \begin{pmatrix} 0 & -a \\ a & -\gamma \end{pmatrix}, \qquad a = f'(0),

with eigenvalues :math:`\tfrac12\big(-\gamma \pm \sqrt{\gamma^2 - 4a^2}\big)`: :math:`\pm i a` without the
penalty, purely imaginary, so the linearised flow circles the equilibrium and never reaches it.

* :func:`vector_field`, :func:`jacobian_at_equilibrium`: :math:`v` and :math:`J` (closed form).
* :func:`update_matrix`: the linearised map of one step of size :math:`h`, simultaneous
  (:math:`I + hJ`) or alternating (the discriminator first, then the generator against the new
  :math:`\psi`, the order of :func:`genmodels.gan_step`).
* :func:`trajectory`: iterate either kind of step on the exact (not linearised) field.
"""

from __future__ import annotations

import math
from typing import Tuple

import torch

from .core import UserError, check_int

__all__ = [
    "LOSSES",
    "f_prime_at_zero",
    "vector_field",
    "jacobian_at_equilibrium",
    "update_matrix",
    "trajectory",
]

LOSSES = ("gan", "wgan")
MODES = ("simultaneous", "alternating")


def _check(loss: str, gamma: float) -> None:
    if loss not in LOSSES:
        raise UserError(f"loss must be one of {LOSSES}, got {loss!r}")
    if not gamma >= 0:
        raise UserError(f"gamma (the gradient penalty's weight) must be >= 0, got {gamma!r}")


def _f_prime(t: torch.Tensor, loss: str) -> torch.Tensor:
    # f(t) = -log(1 + e^{-t}) has f'(t) = sigmoid(-t); the critic's f(t) = t has f' = 1
    return torch.sigmoid(-t) if loss == "gan" else torch.ones_like(t)


def f_prime_at_zero(loss: str = "gan") -> float:
    """:math:`a = f'(0)`: 1/2 for the GAN, 1 for the Wasserstein critic."""
    _check(loss, 0.0)
    return 0.5 if loss == "gan" else 1.0


def vector_field(
    theta: torch.Tensor, psi: torch.Tensor, *, loss: str = "gan", gamma: float = 0.0
) -> Tuple[torch.Tensor, torch.Tensor]:
    r"""The gradient-play direction :math:`v(\theta, \psi)` (module docstring), for tensors of any shape."""
    _check(loss, gamma)
    fp = _f_prime(psi * theta, loss)
    return -psi * fp, theta * fp - gamma * psi


def jacobian_at_equilibrium(*, loss: str = "gan", gamma: float = 0.0) -> torch.Tensor:
    r""":math:`J = \partial v / \partial(\theta, \psi)` at :math:`(0, 0)`, float64 ``[2, 2]``."""
    _check(loss, gamma)
    a = f_prime_at_zero(loss)
    return torch.tensor([[0.0, -a], [a, -gamma]], dtype=torch.float64)


def update_matrix(h: float, *, mode: str = "simultaneous", loss: str = "gan", gamma: float = 0.0) -> torch.Tensor:
    r"""The linearised step :math:`(\theta, \psi) \mapsto M (\theta, \psi)` at the equilibrium, float64 ``[2, 2]``.

    Simultaneous: :math:`M = I + hJ`. Alternating: :math:`\psi' = \psi + h(a\theta - \gamma\psi)`, then
    :math:`\theta' = \theta - ha\psi'`, so

    .. math:: M = \begin{pmatrix} 1 - h^2a^2 & -ha(1 - h\gamma) \\ ha & 1 - h\gamma \end{pmatrix},
        \qquad \det M = 1 - h\gamma .
    """
    if mode not in MODES:
        raise UserError(f"mode must be one of {MODES}, got {mode!r}")
    if not h > 0:
        raise UserError(f"the step size h must be > 0, got {h!r}")
    a = f_prime_at_zero(loss)
    _check(loss, gamma)
    if mode == "simultaneous":
        return torch.eye(2, dtype=torch.float64) + h * jacobian_at_equilibrium(loss=loss, gamma=gamma)
    return torch.tensor(
        [[1.0 - h * h * a * a, -h * a * (1.0 - h * gamma)], [h * a, 1.0 - h * gamma]], dtype=torch.float64
    )


def trajectory(
    theta0: float,
    psi0: float,
    *,
    h: float,
    steps: int,
    mode: str = "simultaneous",
    loss: str = "gan",
    gamma: float = 0.0,
) -> torch.Tensor:
    r"""``steps`` steps of gradient play of size ``h`` from :math:`(\theta_0, \psi_0)` on the exact field.

    Returns a float64 ``[steps + 1, 2]`` tensor of :math:`(\theta, \psi)`, the start first. ``"alternating"``
    moves the discriminator first and the generator against the new :math:`\psi`, as
    :func:`genmodels.gan_step` orders its updates.
    """
    if mode not in MODES:
        raise UserError(f"mode must be one of {MODES}, got {mode!r}")
    check_int("steps", steps)
    if not (h > 0 and math.isfinite(h)):
        raise UserError(f"the step size h must be > 0, got {h!r}")
    _check(loss, gamma)
    theta = torch.tensor(float(theta0), dtype=torch.float64)
    psi = torch.tensor(float(psi0), dtype=torch.float64)
    out = torch.empty(steps + 1, 2, dtype=torch.float64)
    out[0, 0], out[0, 1] = theta, psi
    for n in range(1, steps + 1):
        if mode == "simultaneous":
            d_theta, d_psi = vector_field(theta, psi, loss=loss, gamma=gamma)
            theta, psi = theta + h * d_theta, psi + h * d_psi
        else:
            psi = psi + h * vector_field(theta, psi, loss=loss, gamma=gamma)[1]
            theta = theta + h * vector_field(theta, psi, loss=loss, gamma=gamma)[0]
        out[n, 0], out[n, 1] = theta, psi
    return out
