"""The equations of genmodels.distributions against independent computations.

Every Monte-Carlo comparison uses a tolerance of a few standard errors computed from the same samples,
so a wrong formula (off by a factor, a sign, or σ where log σ² belongs) fails.
"""

import math

import numpy as np
import pytest
import torch
from torch.distributions import Normal, kl_divergence

import genmodels as gm
from genmodels import distributions as D

pytestmark = pytest.mark.usefixtures("float64")  # every check here runs in float64 (tests/conftest.py)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


# --- the closed-form Gaussian KL ------------------------------------------------------------------


@pytest.mark.parametrize("scale", [1.0, 5.0, 12.0])
def test_kl_to_standard_normal_matches_torch_distributions(scale):
    g = gen(1)
    mu = scale * torch.randn(64, 8, generator=g)
    logvar = scale * torch.randn(64, 8, generator=g)  # up to |log σ²| ≈ 40: extreme variances
    ours = gm.gaussian_kl(mu, logvar)
    theirs = kl_divergence(Normal(mu, (0.5 * logvar).exp()), Normal(0.0, 1.0)).sum(-1)
    assert ours.shape == (64,)
    torch.testing.assert_close(ours, theirs, rtol=1e-10, atol=1e-10)


def test_kl_between_two_diagonal_gaussians_matches_torch_distributions():
    g = gen(2)
    mu, logvar, mu_p, logvar_p = (3 * torch.randn(32, 5, generator=g) for _ in range(4))
    ours = gm.gaussian_kl(mu, logvar, mu_p, logvar_p)
    theirs = kl_divergence(Normal(mu, (0.5 * logvar).exp()), Normal(mu_p, (0.5 * logvar_p).exp())).sum(-1)
    torch.testing.assert_close(ours, theirs, rtol=1e-10, atol=1e-9)
    # with a standard-normal second argument the general form reduces to the special one
    zeros = torch.zeros_like(mu)
    torch.testing.assert_close(gm.gaussian_kl(mu, logvar, zeros, zeros), gm.gaussian_kl(mu, logvar))


def test_kl_is_zero_only_at_the_prior_and_positive_elsewhere():
    assert gm.gaussian_kl(torch.zeros(1, 4), torch.zeros(1, 4)).item() == 0.0
    g = gen(3)
    mu, logvar = torch.randn(1000, 4, generator=g), torch.randn(1000, 4, generator=g)
    assert (gm.gaussian_kl(mu, logvar) > 0).all()


def test_kl_formula_with_sigma_in_place_of_log_variance_is_caught():
    """Writing σ where log σ² belongs (exp(σ) + μ² − 1 − σ) gives a different number; the check catches it."""
    mu, logvar = torch.tensor([[0.3, -1.0]]), torch.tensor([[-2.0, 1.5]])
    sigma = (0.5 * logvar).exp()
    mixed_up = 0.5 * (sigma.exp() + mu**2 - 1 - sigma).sum(-1)
    reference = kl_divergence(Normal(mu, sigma), Normal(0.0, 1.0)).sum(-1)
    assert not torch.allclose(mixed_up, reference, atol=1e-3)
    torch.testing.assert_close(gm.gaussian_kl(mu, logvar), reference)


@pytest.mark.parametrize("logvar_value", [-8.0, 0.0, 3.0])
def test_kl_matches_monte_carlo_within_standard_error(logvar_value):
    g = gen(4)
    mu = torch.tensor([0.7, -1.2, 2.0])
    logvar = torch.tensor([logvar_value, 0.5, -1.0])
    n = 200_000
    z = gm.reparameterize(mu, logvar, n_samples=n, generator=g)  # (n, 3)
    log_ratio = D.gaussian_log_prob(z, mu, logvar) - D.standard_normal_log_prob(z)
    mc, se = log_ratio.mean(), log_ratio.std() / math.sqrt(n)
    closed = gm.gaussian_kl(mu, logvar)
    assert abs(mc - closed) < 4 * se, (mc.item(), closed.item(), se.item())


# --- reparameterization ---------------------------------------------------------------------------


def test_reparameterized_samples_have_the_right_moments():
    mu, logvar = torch.tensor([1.0, -3.0]), torch.tensor([0.0, 2.0])
    z = gm.reparameterize(mu, logvar, n_samples=400_000, generator=gen(5))
    n = z.shape[0]
    var = logvar.exp()
    assert ((z.mean(0) - mu).abs() < 4 * (var / n).sqrt()).all()
    assert ((z.var(0) - var).abs() < 4 * var * math.sqrt(2 / n)).all()


def test_reparameterized_gradient_of_a_quadratic_matches_the_analytic_gradient():
    """f(z) = Σ a z² + b z, E f = Σ a(μ² + σ²) + b μ, so ∂/∂μ = 2aμ + b and ∂/∂log σ² = a σ²."""
    a, b = torch.tensor([1.5, -0.5, 2.0]), torch.tensor([0.3, 1.0, -2.0])
    mu = torch.tensor([0.5, -1.0, 0.2], requires_grad=True)
    logvar = torch.tensor([-1.0, 0.3, 1.0], requires_grad=True)
    n = 200_000
    g = gen(6)
    z = gm.reparameterize(mu, logvar, n_samples=n, generator=g)
    ((a * z**2 + b * z).sum(-1).mean()).backward()

    sigma2 = logvar.detach().exp()
    torch.testing.assert_close(mu.grad, 2 * a * mu.detach() + b, rtol=0, atol=0.02)
    # standard errors from the per-sample pathwise gradients, computed independently
    eps = (z.detach() - mu.detach()) / sigma2.sqrt()
    per_sample_mu = 2 * a * z.detach() + b
    per_sample_lv = a * z.detach() * eps * sigma2.sqrt()
    se_mu, se_lv = per_sample_mu.std(0) / math.sqrt(n), per_sample_lv.std(0) / math.sqrt(n)
    assert ((mu.grad - (2 * a * mu.detach() + b)).abs() < 4 * se_mu).all()
    assert ((logvar.grad - a * sigma2).abs() < 4 * se_lv).all()


def test_reparameterization_is_exact_its_gradient_unbiased_in_sigma_too():
    """Reparameterization is an identity, not an approximation (one source write-up calls it one).

    For f(z) = z² and z ~ N(μ, σ²), E f = μ² + σ², so d/dμ = 2μ and d/dσ = 2σ. The pathwise gradients of one
    sample are 2z and 2zε with z = μ + σε; their expectations over ε, computed exactly by Gauss–Hermite
    quadrature (exact for polynomials), equal 2μ and 2σ to rounding; and a Monte-Carlo average of them,
    by autograd through gm.reparameterize with σ as the leaf, lands within four standard errors.
    """
    mu0, sigma0 = 0.7, 1.3
    nodes, weights = np.polynomial.hermite_e.hermegauss(20)  # ∫ g(ε) φ(ε) dε = Σ w g(ε) / √(2π)
    eps_q, w_q = torch.from_numpy(nodes), torch.from_numpy(weights) / math.sqrt(2 * math.pi)
    z_q = mu0 + sigma0 * eps_q
    assert abs((w_q * 2 * z_q).sum().item() - 2 * mu0) < 1e-12
    assert abs((w_q * 2 * z_q * eps_q).sum().item() - 2 * sigma0) < 1e-12

    mu = torch.tensor(mu0, requires_grad=True)
    sigma = torch.tensor(sigma0, requires_grad=True)
    n = 1_000_000
    eps = torch.randn(n, generator=gen(11))
    z = gm.reparameterize(mu, 2 * sigma.log(), eps=eps)
    z.pow(2).mean().backward()
    z = z.detach()
    se_mu, se_sigma = (2 * z).std() / math.sqrt(n), (2 * z * eps).std() / math.sqrt(n)
    assert abs(mu.grad.item() - 2 * mu0) < 4 * se_mu
    assert abs(sigma.grad.item() - 2 * sigma0) < 4 * se_sigma


# --- likelihoods on logits ------------------------------------------------------------------------


def test_bernoulli_log_likelihood_matches_the_direct_formula_and_stays_finite():
    g = gen(7)
    logits = 3 * torch.randn(4, 1, 28, 28, generator=g)
    x = torch.bernoulli(torch.full((4, 1, 28, 28), 0.3), generator=g)
    p = torch.sigmoid(logits)
    direct = (x * p.log() + (1 - x) * (1 - p).log()).sum((1, 2, 3))
    torch.testing.assert_close(gm.bernoulli_log_likelihood(logits, x), direct)
    # at logits ±200 the direct formula gives log(0) = -inf times 0 = nan; the logit form stays finite
    extreme = torch.tensor([[[[200.0, -200.0]]]])
    target = torch.tensor([[[[1.0, 0.0]]]])
    naive = (1 - target) * torch.log(1 - torch.sigmoid(extreme)) + target * torch.log(torch.sigmoid(extreme))
    assert torch.isnan(naive.sum()) or torch.isinf(naive.sum())
    value = gm.bernoulli_log_likelihood(extreme, target)
    assert torch.isfinite(value).all() and value.abs().item() < 1e-80
    wrong = gm.bernoulli_log_likelihood(extreme, 1 - target)
    torch.testing.assert_close(wrong, torch.tensor([-400.0]))


def test_bernoulli_log_likelihood_broadcasts_over_sample_dimensions():
    logits = torch.randn(5, 3, 1, 28, 28, generator=gen(8))
    x = torch.rand(3, 1, 28, 28, generator=gen(9)).round()
    out = gm.bernoulli_log_likelihood(logits, x)
    assert out.shape == (5, 3)
    torch.testing.assert_close(out[2], gm.bernoulli_log_likelihood(logits[2], x))


def test_gaussian_log_densities_match_torch_distributions():
    g = gen(10)
    x, mu, logvar = (
        torch.randn(6, 1, 28, 28, generator=g),
        torch.randn(6, 1, 28, 28, generator=g),
        torch.randn(6, 1, 28, 28, generator=g),
    )
    ref = Normal(mu, (0.5 * logvar).exp()).log_prob(x).sum((1, 2, 3))
    torch.testing.assert_close(gm.gaussian_log_likelihood(x, mu, logvar), ref)
    z, m, lv = torch.randn(6, 4, generator=g), torch.randn(6, 4, generator=g), torch.randn(6, 4, generator=g)
    torch.testing.assert_close(gm.gaussian_log_prob(z, m, lv), Normal(m, (0.5 * lv).exp()).log_prob(z).sum(-1))
    torch.testing.assert_close(gm.standard_normal_log_prob(z), Normal(0.0, 1.0).log_prob(z).sum(-1))


# --- the ELBO and the IWAE bound on a model with an exact marginal likelihood ---------------------


@pytest.fixture
def lg():
    model = gm.LinearGaussian.random(data_dim=6, latent_dim=3, noise_std=0.7, generator=gen(11))
    x, _ = model.sample(16, generator=gen(12))
    return model, x


def test_exact_posterior_and_marginal_agree_with_bayes_rule(lg):
    """log p(x) = log p(x, z) − log p(z | x) at any z: checks marginal and posterior against each other."""
    model, x = lg
    mean, cov = model.posterior(x)
    z = torch.randn(16, 3, generator=gen(13))
    post = torch.distributions.MultivariateNormal(mean, covariance_matrix=cov)
    torch.testing.assert_close(model.log_joint(x, z) - post.log_prob(z), model.log_marginal(x))


def test_elbo_is_below_log_marginal_and_the_gap_is_the_kl_to_the_posterior(lg):
    model, x = lg
    g = gen(14)
    log_px = model.log_marginal(x)
    for _ in range(20):
        mu, logvar = 2 * torch.randn(16, 3, generator=g), torch.randn(16, 3, generator=g)
        bound = model.elbo(x, mu, logvar)
        assert (bound <= log_px).all()
        torch.testing.assert_close(log_px - bound, model.kl_to_posterior(x, mu, logvar))


def test_elbo_equals_log_marginal_at_the_exact_posterior(lg):
    model, x = lg
    mu, logvar = model.posterior_diagonal(x)
    torch.testing.assert_close(model.elbo(x, mu, logvar), model.log_marginal(x))
    # sharper: at the posterior the ratio log p(x, z) − log q(z|x) equals log p(x) for every draw z
    z = gm.reparameterize(mu, logvar, n_samples=50, generator=gen(15))
    log_ratio = model.log_joint(x, z) - D.gaussian_log_prob(z, mu, logvar)
    torch.testing.assert_close(log_ratio, model.log_marginal(x).expand(50, -1))


def test_single_sample_elbo_estimator_is_unbiased(lg):
    model, x = lg
    mu, logvar = torch.randn(16, 3, generator=gen(16)), torch.randn(16, 3, generator=gen(17)) - 1
    n = 20_000
    z = gm.reparameterize(mu, logvar, n_samples=n, generator=gen(18))
    estimates = gm.elbo(model.log_likelihood(x, z), gm.gaussian_kl(mu, logvar))  # (n, 16)
    se = estimates.std(0) / math.sqrt(n)
    assert ((estimates.mean(0) - model.elbo(x, mu, logvar)).abs() < 4 * se).all()


def test_iwae_bound_increases_with_k_towards_log_marginal(lg):
    model, x = lg
    x = x[:4]
    mu, logvar = torch.randn(4, 3, generator=gen(19)), torch.full((4, 3), -0.5)  # a poor q
    log_px = model.log_marginal(x)
    g = gen(20)
    means, ses = [], []
    for k in (1, 10, 100, 1000):
        reps = 400
        z = gm.reparameterize(mu, logvar, n_samples=k * reps, generator=g).reshape(k, reps, 4, 3)
        bound = gm.iwae_bound(
            model.log_likelihood(x, z), D.standard_normal_log_prob(z), D.gaussian_log_prob(z, mu, logvar)
        )  # (reps, 4)
        means.append(bound.mean(0))
        ses.append(bound.std(0) / math.sqrt(reps))
    # L_1 is the ELBO
    assert ((means[0] - model.elbo(x, mu, logvar)).abs() < 4 * ses[0]).all()
    for lo, hi, se_lo, se_hi in zip(means, means[1:], ses, ses[1:]):
        assert (hi > lo - 3 * (se_lo + se_hi)).all()
    assert (means[-1] > means[0]).all()
    assert (means[-1] <= log_px + 4 * ses[-1]).all()
    # the gap to log p(x) shrinks by at least half from k = 1 to k = 1000 for this q
    assert ((log_px - means[-1]) < 0.5 * (log_px - means[0])).all()


def test_iwae_bound_is_computed_stably_with_logsumexp():
    log_w = torch.tensor([[-10_000.0], [-10_001.0], [-10_002.0]])  # exp underflows to 0 in float64
    zero = torch.zeros_like(log_w)
    expected = -10_000.0 + math.log((1 + math.exp(-1) + math.exp(-2)) / 3)
    torch.testing.assert_close(gm.iwae_bound(log_w, zero, zero), torch.tensor([expected]))
    assert torch.isinf(torch.log(log_w.exp().mean(0))).all()  # the naive way fails


def test_kl_to_posterior_is_zero_only_at_the_posterior(lg):
    model, x = lg
    mu, logvar = model.posterior_diagonal(x)
    torch.testing.assert_close(model.kl_to_posterior(x, mu, logvar), torch.zeros(16), atol=1e-10, rtol=0)
    assert (model.kl_to_posterior(x, mu + 0.1, logvar) > 0).all()
