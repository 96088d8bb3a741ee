"""The gradient estimators of genmodels.gradient_estimators against calculus and against independent computations.

Means are compared with exact gradients within a few standard errors computed from the same samples;
variances with values derived by hand from the moments of the standard normal
(E ε² = 1, E ε⁴ = 3, E ε⁶ = 15), within a few standard errors of the sample variance.
"""

import math

import numpy as np
import pytest
import torch

import genmodels as gm
from genmodels import gradient_estimators

pytestmark = pytest.mark.usefixtures("float64")  # every check here runs in float64 (tests/conftest.py)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def assert_within(estimate, exact, se, k=5.0):
    """|estimate - exact| < k standard errors, elementwise."""
    estimate, exact, se = (torch.as_tensor(t, dtype=torch.float64) for t in (estimate, exact, se))
    assert bool(((estimate - exact).abs() < k * se + 1e-12).all()), (estimate, exact, se)


def variance_and_se(samples):
    """Sample variance along dim 0 and its standard error sqrt((m4 - s^4) / M)."""
    m = samples.shape[0]
    centred = samples - samples.mean(0)
    var = centred.pow(2).mean(0)
    m4 = centred.pow(4).mean(0)
    return var * m / (m - 1), ((m4 - var**2) / m).sqrt()


# --- the score ------------------------------------------------------------------------------------


def test_gaussian_score_matches_autograd_of_the_log_density():
    g = gen(1)
    mu, logvar = torch.randn(4, 3, generator=g), torch.randn(4, 3, generator=g)
    z = torch.randn(4, 3, generator=g)
    mu_, logvar_ = mu.clone().requires_grad_(), logvar.clone().requires_grad_()
    gm.gaussian_log_prob(z, mu_, logvar_).sum().backward()
    s_mu, s_logvar = gradient_estimators.gaussian_score(z, mu, logvar)
    torch.testing.assert_close(s_mu, mu_.grad)
    torch.testing.assert_close(s_logvar, logvar_.grad)


# --- unbiasedness ---------------------------------------------------------------------------------


def sine_objective():
    """E[Σ sin z_j] = Σ sin μ_j exp(-σ_j²/2): the exact gradient with respect to μ and log σ²."""
    mu = torch.tensor([0.3, -1.2, 2.0])
    logvar = torch.tensor([-1.0, 0.0, 0.7])
    var = logvar.exp()
    damp = (-0.5 * var).exp()
    exact = torch.cat([mu.cos() * damp, mu.sin() * damp * (-0.5 * var)])
    return (lambda z: z.sin().sum(-1)), mu, logvar, exact


@pytest.mark.parametrize("estimator", gradient_estimators.ESTIMATORS)
def test_both_estimators_are_unbiased_for_a_nonlinear_objective(estimator):
    f, mu, logvar, exact = sine_objective()
    g = gradient_estimators.per_sample_gradients(estimator, f, mu, logvar, 200_000, generator=gen(2))  # (M, 6)
    assert g.shape == (200_000, 6)
    assert_within(g.mean(0), exact, g.std(0) / math.sqrt(g.shape[0]))


def test_a_constant_baseline_keeps_the_mean_and_lowers_the_variance():
    f0, mu, logvar, exact = sine_objective()
    f = lambda z: f0(z) + 10.0  # noqa: E731  (an offset changes no gradient, but the plain estimator's variance)
    b = float(f(mu + (0.5 * logvar).exp() * torch.randn(10_000, 3, generator=gen(3))).mean())
    plain = gradient_estimators.per_sample_gradients("score_function", f, mu, logvar, 200_000, generator=gen(4))
    based = gradient_estimators.per_sample_gradients(
        "score_function", f, mu, logvar, 200_000, baseline=b, generator=gen(4)
    )
    assert_within(based.mean(0), exact, based.std(0) / math.sqrt(based.shape[0]))
    assert_within(plain.mean(0), exact, plain.std(0) / math.sqrt(plain.shape[0]))
    assert based.var(0).sum() < 0.1 * plain.var(0).sum()


def test_for_a_quadratic_both_estimators_converge_to_the_closed_form():
    """f(z) = Σ z_j², q = N(μ, σ²): E f = Σ (μ_j² + σ_j²), so ∂/∂μ_j = 2 μ_j and ∂/∂log σ_j² = σ_j².

    Per sample, the pathwise estimator is g_μ = 2 z and g_logvar = 2 z · σ ε / 2 = z (z − μ): with z = g_μ / 2
    that identity holds sample by sample whatever the noise was, and its variances are Var g_μ = 4 σ² and
    Var g_logvar = μ² σ² + 2 σ⁴ (from E ε² = 1, E ε⁴ = 3). The score-function estimator, which never sees
    the derivative of f, has the same mean and a variance more than ten times larger in every coordinate."""
    mu, logvar = torch.tensor([0.5, -1.0, 2.0]), torch.tensor([-0.5, 0.0, 0.4])
    var = logvar.exp()
    exact = torch.cat([2 * mu, var])
    f = lambda z: z.pow(2).sum(-1)  # noqa: E731
    pw = gradient_estimators.per_sample_gradients("pathwise", f, mu, logvar, 200_000, generator=gen(5))
    sf = gradient_estimators.per_sample_gradients("score_function", f, mu, logvar, 200_000, generator=gen(15))
    for g in (pw, sf):
        assert_within(g.mean(0), exact, g.std(0) / math.sqrt(g.shape[0]))
    z = pw[:, :3] / 2
    torch.testing.assert_close(pw[:, 3:], z * (z - mu))
    v, se = variance_and_se(pw)
    assert_within(v, torch.cat([4 * var, mu**2 * var + 2 * var**2]), se)
    assert (sf.var(0) > 10 * pw.var(0)).all(), (sf.var(0), pw.var(0))  # 16 to 90 times here


# --- variances against the moments of the normal --------------------------------------------------


def test_variances_for_the_identity_match_the_formulas():
    """f(z) = z in one dimension, q = N(μ, σ²):
    pathwise   Var ĝ_μ = 0,             Var ĝ_logvar = σ²/4;
    score fn.  Var ĝ_μ = μ²/σ² + 2,     Var ĝ_logvar = μ²/2 + 5σ²/2."""
    mu_v, sigma = 1.5, 0.5
    mu, logvar = torch.tensor([mu_v]), torch.tensor([math.log(sigma**2)])
    f = lambda z: z[..., 0]  # noqa: E731
    pw = gradient_estimators.per_sample_gradients("pathwise", f, mu, logvar, 400_000, generator=gen(6))
    sf = gradient_estimators.per_sample_gradients("score_function", f, mu, logvar, 400_000, generator=gen(7))
    assert float(pw[:, 0].var()) < 1e-20  # the pathwise gradient for μ is exactly 1 for every sample
    torch.testing.assert_close(pw[:, 0], torch.ones(400_000))
    var, se = variance_and_se(pw[:, 1:])
    assert_within(var, [sigma**2 / 4], se)
    var, se = variance_and_se(sf)
    assert_within(var, [mu_v**2 / sigma**2 + 2, mu_v**2 / 2 + 5 * sigma**2 / 2], se)


def test_variance_of_average_falls_as_one_over_n():
    per_sample = torch.randn(100_000, 2, generator=gen(8)) * torch.tensor([1.0, 2.0])  # total variance 5
    for n in (1, 10, 100):
        groups = 100_000 // n
        measured = gradient_estimators.variance_of_average(per_sample, n)
        se = (5.0 / n) * math.sqrt(2 / (groups - 1)) * 1.5  # Gaussian sample variance; 1.5: two coordinates
        assert abs(measured - 5.0 / n) < 5 * se
    with pytest.raises(ValueError):
        gradient_estimators.variance_of_average(per_sample[:10], 10)


def test_gradient_stats_matches_the_direct_computation():
    draws = torch.randn(50, 7, generator=gen(9)) * 3 + 100  # a large mean: Welford must not cancel
    it = iter(draws)
    stats = gradient_estimators.gradient_stats(lambda: next(it), repeats=50)
    torch.testing.assert_close(stats.mean, draws.mean(0))
    torch.testing.assert_close(stats.var, draws.var(0))
    assert stats.total_variance == pytest.approx(float(draws.var(0).sum()))
    torch.testing.assert_close(stats.standard_error, (draws.var(0) / 50).sqrt())
    out = gradient_estimators.variance_by_samples(lambda n: torch.randn(3, generator=gen(n)) / n, [1, 2], repeats=2)
    assert set(out) == {1, 2}


def test_bad_arguments_are_refused():
    f, mu, logvar, _ = sine_objective()
    with pytest.raises(ValueError, match="estimator"):
        gradient_estimators.per_sample_gradients("reinforce", f, mu, logvar, 3)
    with pytest.raises(ValueError, match="n_samples"):
        gradient_estimators.pathwise_gradients(f, mu, logvar, 0)
    with pytest.raises(ValueError, match="f must map"):
        gradient_estimators.score_function_gradients(lambda z: z, mu, logvar, 3)


# --- a real VAE encoder ---------------------------------------------------------------------------


def tiny_vae():
    torch.manual_seed(0)
    return gm.VAE(latent_dim=2, hidden_dim=16).double()


def images(n=2):
    return torch.rand(n, 1, 28, 28, generator=gen(10)).round()


def exact_encoder_gradient(vae, x, nodes=30):
    r"""∇_φ Σ_b E_{q_φ(z|x_b)}[log p(x_b|z)] for a 2-D latent, without sampling: the expectation over
    ε ~ N(0, I) is a tensor-product Gauss–Hermite rule, exact to ~1e-9 here because the decoder is
    smooth (tanh), and autograd differentiates that deterministic sum (the derivative of the integral)."""
    t, w = np.polynomial.hermite_e.hermegauss(nodes)  # ∫ g(t) exp(-t²/2) dt ≈ Σ w_i g(t_i)
    t, w = torch.as_tensor(t), torch.as_tensor(w) / math.sqrt(2 * math.pi)
    eps = torch.cartesian_prod(t, t)  # (nodes², 2)
    weight = (w[:, None] * w[None, :]).flatten()  # (nodes²,), sums to 1
    mu, logvar = vae.encoder(x)  # (B, 2)
    z = mu + (0.5 * logvar).exp() * eps[:, None, :]  # (nodes², B, 2)
    logits = vae.decode(z)  # (nodes², B, 1, 28, 28)
    log_px = torch.distributions.Bernoulli(logits=logits).log_prob(x.expand_as(logits)).flatten(2).sum(-1)
    grads = torch.autograd.grad((weight[:, None] * log_px).sum(), list(vae.encoder.parameters()))
    return torch.cat([g.reshape(-1) for g in grads])


def test_both_encoder_gradients_are_unbiased_for_the_exact_gradient():
    """The averages of 100 independent estimates of each kind against the quadrature gradient: the 20 largest
    coordinates each within 5 standard errors, and the whole vector within 10 % of the exact one (their
    standard errors, summed in quadrature, are 2 to 4 % of it)."""
    vae, x = tiny_vae(), images()
    vae.decoder.net[1] = torch.nn.Tanh()  # a smooth decoder, for the quadrature; the encoder is unchanged
    exact = exact_encoder_gradient(vae, x)
    assert abs(exact_encoder_gradient(vae, x, nodes=40) - exact).max() < 1e-6  # the rule has converged
    g = gen(13)
    with torch.no_grad():
        mu, logvar = vae.encode(x)
        z = gm.reparameterize(mu, logvar, n_samples=1000, generator=g)
        baseline = gm.bernoulli_log_likelihood(vae.decode(z), x).mean(0)  # per image, from separate samples
    pw = gradient_estimators.gradient_stats(
        lambda: gradient_estimators.encoder_gradient(vae, x, estimator="pathwise", n_samples=20, generator=g), 100
    )
    sf = gradient_estimators.gradient_stats(
        lambda: gradient_estimators.encoder_gradient(
            vae, x, estimator="score_function", n_samples=200, baseline=baseline, generator=g
        ),
        100,
    )
    top = exact.abs().argsort(descending=True)[:20]
    for stats in (pw, sf):
        se = stats.standard_error
        assert se.norm() < 0.05 * exact.norm()
        assert (stats.mean - exact).norm() < 0.1 * exact.norm()
        assert_within(stats.mean[top], exact[top], se[top], k=5.0)
    # and the score-function estimator is the noisier one here, per sample
    assert sf.total_variance * 200 > pw.total_variance * 20
