"""The two directions of the KL, checked against closed forms: the grid quadrature against the Gaussian KL,
the forward fit against the mixture's moments and its stationarity, the reverse fit against the component it
settles on and the bound -log w_k."""

from __future__ import annotations

import math

import pytest
import torch

import genmodels as gm
from genmodels import divergences as dv

P = dv.GaussianMixture1D(weights=(0.4, 0.6), means=(-3.0, 3.0), stds=(0.7, 1.0))  # modes about 7 sd apart


@pytest.mark.parametrize("mu_p, s_p, mu_q, s_q", [(0.0, 1.0, 0.0, 1.0), (0.3, 0.5, -1.2, 2.0), (2.0, 3.0, 1.0, 0.8)])
def test_grid_kl_matches_the_gaussian_closed_form(mu_p, s_p, mu_q, s_q):
    grid = torch.linspace(-40, 40, 20001, dtype=torch.float64)
    quad = dv.kl_on_grid(dv.normal_log_prob(grid, mu_p, s_p), dv.normal_log_prob(grid, mu_q, s_q), grid)
    t = lambda v: torch.tensor([v], dtype=torch.float64)  # noqa: E731
    closed = gm.gaussian_kl(t(mu_p), t(math.log(s_p**2)), t(mu_q), t(math.log(s_q**2)))
    assert abs(quad.item() - closed.item()) < 1e-9


def test_mixture_density_integrates_to_one_and_has_its_closed_form_moments():
    grid = dv.default_grid(P)
    density = P.log_prob(grid).exp()
    assert abs(torch.trapezoid(density, grid).item() - 1.0) < 1e-10
    mean = torch.trapezoid(grid * density, grid).item()
    var = torch.trapezoid((grid - mean) ** 2 * density, grid).item()
    # E x = sum w m;  Var x = sum w (s^2 + m^2) - (E x)^2
    assert abs(mean - (0.4 * -3.0 + 0.6 * 3.0)) < 1e-9
    assert abs(var - (0.4 * (0.49 + 9) + 0.6 * (1 + 9) - 0.6**2)) < 1e-9
    assert P.mean == pytest.approx(mean, abs=1e-9) and P.variance == pytest.approx(var, abs=1e-9)


def test_forward_fit_is_moment_matching_and_a_minimum_of_the_forward_kl():
    fit = dv.fit_forward_kl(P)
    assert fit.mu == pytest.approx(0.6, abs=1e-12)
    assert fit.sigma == pytest.approx(math.sqrt(0.4 * 9.49 + 0.6 * 10.0 - 0.36), abs=1e-12)
    # stationary: the quadrature gradient of KL(p || q) vanishes at the moments (an independent computation)
    mu = torch.tensor(fit.mu, dtype=torch.float64, requires_grad=True)
    log_sigma = torch.tensor(math.log(fit.sigma), dtype=torch.float64, requires_grad=True)
    grads = torch.autograd.grad(dv.forward_kl(P, mu, log_sigma.exp()), (mu, log_sigma))
    assert max(abs(g.item()) for g in grads) < 1e-9
    for dmu, dsig in [(0.1, 1.0), (-0.1, 1.0), (0.0, 1.05), (0.0, 0.95)]:
        assert dv.forward_kl(P, fit.mu + dmu, fit.sigma * dsig).item() > fit.kl
    # KL(p || q) = -H(p) + E_p[-log q], and E_p[-log q] at the moments is (1 + log 2 pi sigma^2) / 2
    grid = dv.default_grid(P)
    entropy = -torch.trapezoid(P.log_prob(grid).exp() * P.log_prob(grid), grid).item()
    assert fit.kl == pytest.approx(-entropy + 0.5 * (1 + math.log(2 * math.pi * fit.sigma**2)), abs=1e-9)


@pytest.mark.parametrize("k, start", [(0, -2.0), (1, 2.0)])
def test_reverse_fit_settles_on_the_mode_it_starts_near(k, start):
    fit = dv.fit_reverse_kl(P, mu0=start, sigma0=1.5)
    assert abs(fit.mu - P.means[k]) < 0.01
    assert abs(fit.sigma / P.stds[k] - 1) < 0.01
    # p >= w_k N_k, so KL(N_k || p) <= -log w_k, and the optimum is no worse than N_k; with the other mode far away
    # the difference is tiny
    at_component = dv.reverse_kl(P, P.means[k], P.stds[k]).item()
    assert fit.kl <= at_component + 1e-12 <= -math.log(P.weights[k]) + 1e-12
    assert -math.log(P.weights[k]) - fit.kl < 1e-2
    # and it beats the moment-matched q by far in its own divergence
    forward = dv.fit_forward_kl(P)
    assert fit.kl < dv.reverse_kl(P, forward.mu, forward.sigma).item() - 0.3
    # stationary
    mu = torch.tensor(fit.mu, dtype=torch.float64, requires_grad=True)
    log_sigma = torch.tensor(math.log(fit.sigma), dtype=torch.float64, requires_grad=True)
    grads = torch.autograd.grad(dv.reverse_kl(P, mu, log_sigma.exp()), (mu, log_sigma))
    assert max(abs(g.item()) for g in grads) < 1e-7


def test_one_gaussian_is_its_own_fit_in_both_directions():
    p = dv.GaussianMixture1D(weights=(1.0,), means=(0.7,), stds=(1.3,))
    for fit in (dv.fit_forward_kl(p), dv.fit_reverse_kl(p, mu0=-1.0, sigma0=0.5)):
        assert fit.mu == pytest.approx(0.7, abs=1e-6) and fit.sigma == pytest.approx(1.3, abs=1e-6)
        assert abs(fit.kl) < 1e-9


def test_bad_mixtures_are_refused():
    with pytest.raises(gm.UserError):
        dv.GaussianMixture1D(weights=(0.5, 0.6), means=(0.0, 1.0), stds=(1.0, 1.0))
    with pytest.raises(gm.UserError):
        dv.GaussianMixture1D(weights=(0.5, 0.5), means=(0.0, 1.0), stds=(1.0, 0.0))
    with pytest.raises(gm.UserError):
        dv.GaussianMixture1D(weights=(1.0,), means=(0.0, 1.0), stds=(1.0,))
