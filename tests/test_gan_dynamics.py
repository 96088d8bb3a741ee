"""genmodels.gan_dynamics: the Dirac-GAN's Jacobian, eigenvalues and one-step maps, each checked against an
independent computation (autograd, finite differences of the exact step, the closed-form spiral rate)."""

import math

import pytest
import torch

from genmodels import gan_dynamics as gd


@pytest.mark.parametrize("loss", gd.LOSSES)
@pytest.mark.parametrize("gamma", [0.0, 0.3])
def test_jacobian_closed_form_equals_autograd(loss, gamma):
    field = lambda p: torch.stack(gd.vector_field(p[0], p[1], loss=loss, gamma=gamma))
    numeric = torch.autograd.functional.jacobian(field, torch.zeros(2, dtype=torch.float64))
    torch.testing.assert_close(numeric, gd.jacobian_at_equilibrium(loss=loss, gamma=gamma))
    # and the equilibrium is a zero of the field
    assert all(float(v) == 0 for v in gd.vector_field(torch.tensor(0.0), torch.tensor(0.0), loss=loss, gamma=gamma))


@pytest.mark.parametrize("loss, a", [("gan", 0.5), ("wgan", 1.0)])
def test_eigenvalues_are_imaginary_without_the_penalty_and_damped_with_it(loss, a):
    assert gd.f_prime_at_zero(loss) == a
    ev = torch.linalg.eigvals(gd.jacobian_at_equilibrium(loss=loss))
    torch.testing.assert_close(ev.real, torch.zeros(2, dtype=torch.float64))
    torch.testing.assert_close(ev.imag.abs(), torch.full((2,), a, dtype=torch.float64))
    gamma = 0.4 * a  # below 2a: a damped rotation, real part -gamma/2
    ev = torch.linalg.eigvals(gd.jacobian_at_equilibrium(loss=loss, gamma=gamma))
    torch.testing.assert_close(ev.real, torch.full((2,), -gamma / 2, dtype=torch.float64))
    torch.testing.assert_close(
        ev.imag.abs(), torch.full((2,), math.sqrt(a * a - gamma * gamma / 4), dtype=torch.float64)
    )


@pytest.mark.parametrize("mode", ["simultaneous", "alternating"])
@pytest.mark.parametrize("gamma", [0.0, 0.5])
def test_update_matrix_is_the_linearisation_of_the_exact_step(mode, gamma):
    h, eps = 0.3, 1e-7
    M = gd.update_matrix(h, mode=mode, gamma=gamma)
    for j in range(2):
        start = [0.0, 0.0]
        start[j] = eps
        step = gd.trajectory(*start, h=h, steps=1, mode=mode, gamma=gamma)[1]
        torch.testing.assert_close(step / eps, M[:, j], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("h", [0.05, 0.2, 1.0])
def test_simultaneous_steps_spiral_out_and_alternating_steps_circle(h):
    a = 0.5
    sim = torch.linalg.eigvals(gd.update_matrix(h, mode="simultaneous")).abs()
    torch.testing.assert_close(sim, torch.full((2,), math.sqrt(1 + h * h * a * a), dtype=torch.float64))
    alt = gd.update_matrix(h, mode="alternating")
    assert torch.linalg.det(alt).item() == pytest.approx(1.0, abs=1e-12)  # area preserving
    torch.testing.assert_close(torch.linalg.eigvals(alt).abs(), torch.ones(2, dtype=torch.float64))
    # with the penalty: det = 1 - h gamma
    assert torch.linalg.det(gd.update_matrix(h, mode="alternating", gamma=0.3)).item() == pytest.approx(1 - 0.3 * h)


def test_trajectories_near_the_equilibrium_follow_the_linear_rates():
    h, a, n, r0 = 0.1, 0.5, 400, 1e-4
    sim = gd.trajectory(r0, 0.0, h=h, steps=n, mode="simultaneous")
    radius = sim.norm(dim=1)
    assert radius[-1].item() == pytest.approx(r0 * (1 + h * h * a * a) ** (n / 2), rel=1e-4)  # spirals out
    alt = gd.trajectory(r0, 0.0, h=h, steps=n, mode="alternating").norm(dim=1)
    assert 0.9 * r0 < alt.min().item() and alt.max().item() < 1.1 * r0  # circles: neither in nor out
    # the angle turns by about h*a per step: the orbit is a rotation, not a drift
    angle = torch.atan2(sim[:, 1], sim[:, 0])
    turned = torch.remainder(angle[1:] - angle[:-1], 2 * math.pi)
    torch.testing.assert_close(turned, torch.full_like(turned, math.atan(h * a)), rtol=1e-6, atol=1e-9)


def test_the_penalty_with_a_small_step_converges_and_without_it_nothing_does():
    far = lambda t: t[-1].norm().item()
    assert far(gd.trajectory(1.0, 1.0, h=0.1, steps=3000, mode="simultaneous", gamma=1.0)) < 1e-6
    assert far(gd.trajectory(1.0, 1.0, h=0.1, steps=3000, mode="alternating", gamma=1.0)) < 1e-6
    # simultaneous with the penalty is stable only for h < gamma / a^2 (= 4 here): at h = 5 it diverges
    assert far(gd.trajectory(0.01, 0.01, h=5.0, steps=200, mode="simultaneous", gamma=1.0)) > 1.0
    assert far(gd.trajectory(1.0, 1.0, h=0.1, steps=3000, mode="alternating")) > 1.0
    assert far(gd.trajectory(1.0, 1.0, h=0.1, steps=3000, mode="simultaneous")) > 2**0.5


def test_bad_arguments_say_what_is_wrong():
    with pytest.raises(ValueError, match="loss must be one of"):
        gd.jacobian_at_equilibrium(loss="lsgan")
    with pytest.raises(ValueError, match="gamma"):
        gd.vector_field(torch.tensor(0.0), torch.tensor(0.0), gamma=-1.0)
    with pytest.raises(ValueError, match="mode must be one of"):
        gd.update_matrix(0.1, mode="sequential")
    with pytest.raises(ValueError, match="step size"):
        gd.trajectory(1.0, 0.0, h=0.0, steps=3)
    with pytest.raises(ValueError):
        gd.trajectory(1.0, 0.0, h=0.1, steps=0)
