"""The f-GAN module checked against mathematics: each f against its derivative (autograd) and its conjugate (a
brute-force supremum), the quadrature against closed forms and Monte Carlo with exact densities, the bound at the
optimal critic against the divergence (Fenchel-Young), the GAN row against the book's discriminator loss, the
generator's gradient at the optimal critic against the divergence's gradient, a trained critic against the
quadrature, and the toy f-GAN against the direct fits of genmodels.divergences."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

import genmodels as gm
from genmodels import divergences as dv
from genmodels import fgan, gan_1d

D = torch.distributions
F64 = torch.float64
LOG4 = math.log(4.0)
KINDS = fgan.KINDS
TARGET = dv.GaussianMixture1D(weights=(0.4, 0.6), means=(-3.0, 3.0), stds=(0.7, 1.0))  # the comparison page's


def t(*v):
    return torch.tensor(v if len(v) > 1 else v[0], dtype=F64)


def normal(mu, sigma):
    return D.Normal(t(mu), t(sigma))


def mixture(weights, means, stds):
    return D.MixtureSameFamily(D.Categorical(probs=t(*weights)), D.Normal(t(*means), t(*stds)))


MIX = mixture((0.4, 0.6), (-3.0, 3.0), (0.7, 1.0))
WIDE = normal(0.6, 3.0)


# ---------------------------------------------------------------------------------------------------------
# The registry: f, f', f*, g_f and the composites agree with each other and with first principles


def test_the_registry_has_the_six_divergences_and_is_read_only():
    assert set(KINDS) == {"kl", "reverse_kl", "pearson", "hellinger", "js", "gan"}
    assert all(fgan.F_DIVERGENCES[k].name == k for k in KINDS)
    with pytest.raises(TypeError):
        fgan.F_DIVERGENCES["kl"] = fgan.F_DIVERGENCES["js"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        fgan.F_DIVERGENCES["kl"].name = "other"
    with pytest.raises(gm.UserError):
        fgan.variational_bound(torch.zeros(2), torch.zeros(2), "wasserstein")


@pytest.mark.parametrize("kind", KINDS)
def test_f_is_convex_vanishes_at_one_and_f_prime_is_its_derivative(kind):
    """f(1) = 0 makes D_f(P || P) = 0; the GAN's f(1) = -log 4 is the constant of its value, D_f = 2 JSD - log 4."""
    d = fgan.F_DIVERGENCES[kind]
    assert abs(d.f(t(1.0)).item() - (-LOG4 if kind == "gan" else 0.0)) < 1e-15
    u = torch.logspace(-3, 3, 601, dtype=F64)
    fu = d.f(u)
    # convex: slopes of the chords increase
    slopes = (fu[1:] - fu[:-1]) / (u[1:] - u[:-1])
    assert (slopes[1:] - slopes[:-1] >= -1e-9).all()
    u = u.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(d.f(u).sum(), u)
    assert torch.allclose(grad, d.f_prime(u.detach()), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("kind", KINDS)
def test_conjugate_is_the_supremum_of_ut_minus_f(kind):
    """f*(t) = sup_{u >= 0} (ut - f(u)), by brute force over u, at slopes t = f'(u0) whose maximiser u0 is inside
    the search grid; and Fenchel-Young's equality f(u) + f*(f'(u)) = u f'(u)."""
    d = fgan.F_DIVERGENCES[kind]
    u_grid = torch.cat([torch.zeros(1, dtype=F64), torch.logspace(-6, 4, 400_001, dtype=F64)])
    f_grid = torch.where(u_grid > 0, d.f(u_grid.clamp_min(1e-300)), d.f(t(1e-300)))  # f(0) as a limit
    for u0 in (0.05, 0.3, 1.0, 3.0, 20.0):
        slope = d.f_prime(t(u0))
        brute = (u_grid * slope - f_grid).max()
        assert abs(brute.item() - d.conjugate(slope).item()) < 1e-6, (u0, brute, d.conjugate(slope))
        fy = d.f(t(u0)) + d.conjugate(slope) - u0 * slope
        assert abs(fy.item()) < 1e-12
    if kind == "pearson":  # below t = -2 the maximiser is u = 0: f*(t) = -f(0) = -1, not t^2/4 + t
        assert abs((u_grid * -3.0 - f_grid).max().item() - d.conjugate(t(-3.0)).item()) < 1e-9
        assert d.conjugate(t(-3.0)).item() == -1.0


@pytest.mark.parametrize("kind", KINDS)
def test_activation_lands_in_the_domain_and_the_composite_is_the_conjugate_there(kind):
    d = fgan.F_DIVERGENCES[kind]
    v = torch.linspace(-8, 8, 1601, dtype=F64)
    t_ = d.activation(v)
    assert (t_ < d.domain_sup).all()
    assert torch.isfinite(d.conjugate(t_)).all()
    assert torch.allclose(d.conjugate_at_activation(v), d.conjugate(t_), rtol=1e-9, atol=1e-9)
    if math.isfinite(d.domain_sup):  # and outside the domain the supremum is infinite
        assert d.conjugate(t(d.domain_sup + 0.1)).item() == math.inf
    # the optimal raw output, from the log-ratio, is activated into f'(p/q)
    r = torch.linspace(-6, 6, 121, dtype=F64)
    assert torch.allclose(d.activation(d.optimal_output(r)), d.f_prime(r.exp()), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("kind", KINDS)
def test_perspective_is_q_times_f_of_the_ratio(kind):
    d = fgan.F_DIVERGENCES[kind]
    g = torch.Generator().manual_seed(0)
    log_p, log_q = torch.randn(500, generator=g, dtype=F64) * 3 - 2, torch.randn(500, generator=g, dtype=F64) * 3 - 2
    expected = log_q.exp() * d.f((log_p - log_q).exp())
    assert torch.allclose(d.perspective(log_p, log_q), expected, rtol=1e-9, atol=1e-12)


def test_the_js_row_is_half_of_the_papers_row():
    """Nowozin et al.'s JS row: f2(u) = u log u - (u+1) log((1+u)/2) = 2 f_js(u), with f2*(t) = -log(2 - e^t) and
    g(v) = log 2 - log(1 + e^-v): its g is twice ours, its f* is (2 f)*(t) = 2 f*(t/2), so the paper's bound with
    the same raw outputs is exactly twice ours: it estimates 2 JSD."""
    js = fgan.F_DIVERGENCES["js"]
    tt = torch.linspace(-5, math.log(2) - 1e-3, 200, dtype=F64)
    assert torch.allclose(2 * js.conjugate(tt / 2), -torch.log(2 - tt.exp()), atol=1e-12)
    v = torch.linspace(-10, 10, 201, dtype=F64)
    paper_g = math.log(2) - torch.log1p(torch.exp(-v))
    assert torch.allclose(2 * js.activation(v), paper_g, atol=1e-12)
    assert torch.allclose(2 * js.conjugate_at_activation(v), -torch.log(2 - paper_g.exp()), atol=1e-9)
    u = torch.logspace(-3, 3, 50, dtype=F64)
    assert torch.allclose(2 * js.f(u), u * u.log() - (u + 1) * torch.log((1 + u) / 2), atol=1e-12)


# ---------------------------------------------------------------------------------------------------------
# The GAN is the "gan" row


def test_gan_bound_is_the_value_and_minus_the_books_discriminator_loss():
    g = torch.Generator().manual_seed(1)
    real, fake = torch.randn(1000, generator=g, dtype=F64) * 4, torch.randn(700, generator=g, dtype=F64) * 4
    bound = fgan.variational_bound(real, fake, "gan")
    assert torch.allclose(bound, -gm.discriminator_loss(real, fake), atol=1e-12)
    # V(D, G) = E_P log D + E_Q log(1 - D), D = sigmoid(v), computed the naive way in float64 (moderate logits)
    value = torch.sigmoid(real).log().mean() + (1 - torch.sigmoid(fake)).log().mean()
    assert torch.allclose(bound, value, atol=1e-10)
    assert torch.allclose(fgan.critic_loss(real, fake, "gan"), gm.discriminator_loss(real, fake), atol=1e-12)
    # the JS bound with the same critic is (V + log 4) / 2
    assert torch.allclose(fgan.variational_bound(real, fake, "js"), 0.5 * (value + LOG4), atol=1e-10)
    # the generator's two losses are the book's two
    saddle = fgan.generator_loss(fake, "gan", variant="saddle")
    assert torch.allclose(saddle, gm.generator_loss(fake, kind="saturating"), atol=1e-12)
    non_saturating = fgan.generator_loss(fake, "gan", variant="non_saturating")
    assert torch.allclose(non_saturating, gm.generator_loss(fake, kind="non_saturating"), atol=1e-12)
    with pytest.raises(gm.UserError):
        fgan.generator_loss(fake, "gan", variant="minimax")


@pytest.mark.parametrize("kind", ["gan", "js"])
def test_the_logit_losses_stay_finite_for_confident_critics(kind):
    v = torch.tensor([-1e4, -50.0, 0.0, 50.0, 1e4], requires_grad=True)  # float32, as in training
    loss = (
        fgan.critic_loss(v, v.flip(0), kind)
        + fgan.generator_loss(v, kind)
        + fgan.generator_loss(v, kind, variant="non_saturating")
    )
    (grad,) = torch.autograd.grad(loss, v)
    assert torch.isfinite(loss) and torch.isfinite(grad).all()


# ---------------------------------------------------------------------------------------------------------
# Quadrature, closed forms, and the bound at the optimal critic

NORMAL_PAIRS = [(0.0, 1.0, 0.5, 1.3), (0.3, 0.5, -1.2, 2.0), (2.0, 1.5, 1.0, 1.2)]


@pytest.mark.parametrize("mu_p, s_p, mu_q, s_q", NORMAL_PAIRS)
def test_quadrature_matches_the_closed_forms_between_normals(mu_p, s_p, mu_q, s_q):
    p, q = normal(mu_p, s_p), normal(mu_q, s_q)
    kl = D.kl_divergence(p, q).item()  # torch's own closed form
    assert fgan.closed_form_normal("kl", mu_p, s_p, mu_q, s_q) == pytest.approx(kl, abs=1e-12)
    assert fgan.closed_form_normal("reverse_kl", mu_p, s_p, mu_q, s_q) == pytest.approx(
        D.kl_divergence(q, p).item(), abs=1e-12
    )
    for kind in ("kl", "reverse_kl", "pearson", "hellinger"):
        closed = fgan.closed_form_normal(kind, mu_p, s_p, mu_q, s_q)
        assert math.isfinite(closed)
        assert fgan.divergence_by_quadrature(p, q, kind) == pytest.approx(closed, rel=1e-8, abs=1e-10), kind


def test_pearson_closed_form_is_infinite_when_p_squared_over_q_is_not_integrable():
    assert fgan.closed_form_normal("pearson", 0.0, 2.0, 0.0, 1.0) == math.inf  # 2 s_q^2 = 2 < s_p^2 = 4
    assert math.isfinite(fgan.closed_form_normal("pearson", 0.0, 1.0, 0.0, 2.0))
    with pytest.raises(gm.UserError):
        fgan.closed_form_normal("js", 0.0, 1.0, 0.0, 2.0)


def test_pearson_and_hellinger_closed_forms_against_monte_carlo():
    """Independent of the quadrature: chi2 = E_q[(p/q)^2] - 1 and H^2 = 2 - 2 E_q[sqrt(p/q)], with exact
    densities and 10^6 draws from q."""
    mu_p, s_p, mu_q, s_q = 0.3, 0.8, -0.2, 1.1
    p, q = normal(mu_p, s_p), normal(mu_q, s_q)
    torch.manual_seed(0)
    y = q.sample((1_000_000,))
    log_u = p.log_prob(y) - q.log_prob(y)
    for kind, terms in (("pearson", (2 * log_u).exp() - 1), ("hellinger", 2 - 2 * (0.5 * log_u).exp())):
        se = terms.std().item() / math.sqrt(len(terms))
        assert abs(terms.mean().item() - fgan.closed_form_normal(kind, mu_p, s_p, mu_q, s_q)) < 4 * se


def test_js_and_gan_quadrature_against_the_minimax_chapter():
    """gan_1d.jsd_quadrature is an independent implementation (densities, not log-densities)."""
    p, q = normal(0.0, 1.0), normal(1.5, 0.7)
    x = torch.linspace(-10, 10, 20001, dtype=F64)
    jsd = gan_1d.jsd_quadrature(p.log_prob(x).exp(), q.log_prob(x).exp(), x)
    assert fgan.divergence_by_quadrature(p, q, "js") == pytest.approx(jsd, abs=1e-9)
    assert fgan.divergence_by_quadrature(p, q, "gan") == pytest.approx(2 * jsd - LOG4, abs=1e-9)
    assert 0 < jsd < math.log(2)


# For the Monte Carlo check the terms must have finite variance: E_P[(q/p)^2] (reverse KL) needs P's tails no lighter
# than Q's, E_Q[(p/q)^4] (Pearson) the converse; these pairs have both. (MIX against WIDE does not: there
# E_P[(q/p)^2] = int q^2/p diverges, and the reverse KL's standard error means nothing; see the quadrature test.)
MC_PAIRS = {
    "normals": (normal(0.0, 1.0), normal(0.5, 1.1)),
    "mixtures": (MIX, mixture((0.5, 0.5), (-2.5, 2.5), (0.8, 1.0))),
}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("pair", ["normals", "mixtures", "mixture-normal"])
def test_the_bound_at_the_optimal_critic_is_the_divergence(kind, pair):
    """Fenchel-Young's equality, integrated: by quadrature to rounding, and by Monte Carlo within 4 standard errors
    where the estimator's variance is finite."""
    p, q = MC_PAIRS.get(pair, (MIX, WIDE))
    div = fgan.divergence_by_quadrature(p, q, kind)
    assert fgan.bound_at_optimal_critic(p, q, kind) == pytest.approx(div, abs=1e-9)
    if pair in MC_PAIRS:
        mc = fgan.bound_at_optimal_critic_mc(p, q, kind, num_samples=200_000, seed=3)
        assert abs(mc.value - div) < 4 * mc.stderr, (mc, div)
        assert mc.stderr < 0.05


def test_the_reverse_kl_estimator_has_infinite_variance_when_the_model_has_heavier_tails():
    """E_P[(q/p)^2] = chi2(Q || P) + 1 grows without bound as the grid widens when Q = N(0.6, 3^2) and P's widest
    component has standard deviation 1: the reverse-KL bound's P-term, E_P[-q/p] = -1, has no finite variance."""
    narrow = torch.linspace(-15, 15, 30001, dtype=F64)
    wide = torch.linspace(-25, 25, 50001, dtype=F64)
    a = fgan.divergence_by_quadrature(WIDE, MIX, "pearson", grid=narrow)
    b = fgan.divergence_by_quadrature(WIDE, MIX, "pearson", grid=wide)
    assert b > 1e6 * a > 0
    # while for the pair above it converges
    q = MC_PAIRS["mixtures"][1]
    assert fgan.divergence_by_quadrature(q, MIX, "pearson", grid=wide) == pytest.approx(
        fgan.divergence_by_quadrature(q, MIX, "pearson", grid=torch.linspace(-40, 40, 80001, dtype=F64)), rel=1e-8
    )


@pytest.mark.parametrize("kind", KINDS)
def test_any_other_critic_gives_less(kind):
    """The inequality: perturbing the optimal raw output lowers the bound, and the bound is flat at the optimum
    (the loss of a perturbation eps * h is second order in eps)."""
    p, q = MIX, WIDE
    grid = fgan.default_grid(p, q)
    log_p, log_q = p.log_prob(grid), q.log_prob(grid)
    v_star = fgan.F_DIVERGENCES[kind].optimal_output(log_p - log_q)
    best = fgan.bound_on_grid(log_p, log_q, v_star, grid, kind).item()
    h = torch.sin(grid)  # a bounded perturbation
    losses = []
    for eps in (0.2, 0.1, 0.05):
        value = fgan.bound_on_grid(log_p, log_q, v_star + eps * h, grid, kind).item()
        assert value < best
        losses.append(best - value)
    assert losses[1] / losses[0] == pytest.approx(0.25, abs=0.05) and losses[2] / losses[1] == pytest.approx(
        0.25, abs=0.05
    )


def test_densities_as_callables_and_mixtures_agree_with_distributions():
    grid = torch.linspace(-20, 20, 20001, dtype=F64)
    dens_p = lambda x: TARGET.log_prob(x).exp()
    dens_q = lambda x: WIDE.log_prob(x).exp()
    for kind in KINDS:
        a = fgan.divergence_by_quadrature(dens_p, dens_q, kind, grid=grid)
        b = fgan.divergence_by_quadrature(MIX, WIDE, kind)
        c = fgan.divergence_by_quadrature(TARGET, WIDE, kind)
        assert a == pytest.approx(b, abs=1e-8) and b == pytest.approx(c, abs=1e-10), kind
    with pytest.raises(gm.UserError):
        fgan.divergence_by_quadrature(dens_p, dens_q, "kl")  # no grid for a bare callable
    # KL between mixtures has no closed form: Monte Carlo with exact log-densities
    other = mixture((0.5, 0.5), (-2.0, 2.5), (1.0, 1.2))
    torch.manual_seed(1)
    x = MIX.sample((400_000,))
    terms = MIX.log_prob(x) - other.log_prob(x)
    se = terms.std().item() / math.sqrt(len(terms))
    assert abs(fgan.divergence_by_quadrature(MIX, other, "kl") - terms.mean().item()) < 4 * se


# ---------------------------------------------------------------------------------------------------------
# The generator's gradient at the optimal critic


def _gaussian_grads(fn, mu0=0.8, log_s0=0.2):
    mu = torch.tensor(mu0, dtype=F64, requires_grad=True)
    log_s = torch.tensor(log_s0, dtype=F64, requires_grad=True)
    return torch.stack(torch.autograd.grad(fn(mu, log_s), (mu, log_s)))


@pytest.mark.parametrize("kind", KINDS)
def test_saddle_generator_gradient_at_the_optimal_critic_is_the_divergence_gradient(kind):
    """The envelope theorem: with the critic frozen at T* for Q_theta0, the gradient of the saddle loss
    -E_{Q_theta}[f*(T*)] at theta0 is the gradient of D_f(P || Q_theta). Both by quadrature."""
    d = fgan.F_DIVERGENCES[kind]
    grid = torch.linspace(-20, 20, 40001, dtype=F64)
    log_p = TARGET.log_prob(grid)
    log_q0 = dv.normal_log_prob(grid, 0.8, math.exp(0.2))
    v_star = d.optimal_output(log_p - log_q0)

    def saddle(mu, log_s):
        q = dv.normal_log_prob(grid, mu, log_s.exp()).exp()
        return -torch.trapezoid(q * d.conjugate_at_activation(v_star), grid)

    def divergence(mu, log_s):
        return fgan.divergence_on_grid(log_p, dv.normal_log_prob(grid, mu, log_s.exp()), grid, kind)

    assert torch.allclose(_gaussian_grads(saddle), _gaussian_grads(divergence), atol=1e-7)


def test_non_saturating_generators_follow_reverse_kl_minus_two_jsd_and_reverse_kl():
    """At the optimal critic the non-saturating GAN generator descends KL(Q || P) - 2 JSD(P || Q) (Arjovsky &
    Bottou), and the non-saturating KL generator descends KL(Q || P), as generator_loss's docstring says."""
    grid = torch.linspace(-20, 20, 40001, dtype=F64)
    log_p = TARGET.log_prob(grid)
    log_q0 = dv.normal_log_prob(grid, 0.8, math.exp(0.2))
    for kind, target_objective in (
        ("gan", lambda lq: fgan.gan_non_saturating_objective(log_p, lq, grid)),
        ("kl", lambda lq: fgan.divergence_on_grid(log_p, lq, grid, "reverse_kl")),
    ):
        d = fgan.F_DIVERGENCES[kind]
        activated = d.activation(d.optimal_output(log_p - log_q0))

        def ns(mu, log_s, activated=activated):
            return -torch.trapezoid(dv.normal_log_prob(grid, mu, log_s.exp()).exp() * activated, grid)

        def objective(mu, log_s, target_objective=target_objective):
            return target_objective(dv.normal_log_prob(grid, mu, log_s.exp()))

        assert torch.allclose(_gaussian_grads(ns), _gaussian_grads(objective), atol=1e-7), kind


# ---------------------------------------------------------------------------------------------------------
# Direct fits


def test_direct_fits_reproduce_the_forward_and_reverse_kl_fits():
    forward = fgan.fit_gaussian_by_quadrature(TARGET, "kl", mu0=1.0, sigma0=1.0)
    moments = dv.fit_forward_kl(TARGET)
    assert forward.mu == pytest.approx(moments.mu, abs=1e-5) and forward.sigma == pytest.approx(moments.sigma, abs=1e-5)
    assert forward.divergence == pytest.approx(moments.kl, abs=1e-6)
    for start in (-2.0, 2.0):
        reverse = fgan.fit_gaussian_by_quadrature(TARGET, "reverse_kl", mu0=start, sigma0=1.0)
        ref = dv.fit_reverse_kl(TARGET, mu0=start, sigma0=1.0)
        assert reverse.mu == pytest.approx(ref.mu, abs=1e-5) and reverse.sigma == pytest.approx(ref.sigma, abs=1e-5)
        assert math.copysign(1, reverse.mu) == math.copysign(1, start)  # the mode nearest the start
    with pytest.raises(gm.UserError):
        fgan.fit_gaussian_by_quadrature(TARGET, "kl", mu0=0.0, sigma0=1.0, variant="non_saturating")


# ---------------------------------------------------------------------------------------------------------
# Training: a critic, and the toy f-GAN


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["kl", "hellinger", "js"])
def test_a_trained_critic_estimates_the_divergence(kind):
    """Any critic's bound is below D_f in expectation, so the estimate on 2 x 200,000 fresh draws may exceed the
    quadrature only by Monte Carlo error (4 standard errors); below, the critic's own error costs second order
    (the bound is flat at T*), and 0.01 nats on top of 4 standard errors is what 1,500 Adam steps leave: about
    a tenth of the gap between these divergences' values at the start of training and at T*."""
    fit = fgan.fit_critic(MIX, WIDE, kind, steps=1500, seed=0)
    quad = fgan.divergence_by_quadrature(MIX, WIDE, kind)
    est, se = fit.estimate
    assert se < 0.005
    assert est <= quad + 4 * se
    assert est >= quad - 0.01 - 4 * se, (est, quad)
    assert fit.history[0] < quad - 0.1  # it did learn: the untrained critic's bound was far below


@pytest.mark.slow
def test_toy_fgan_covers_with_forward_kl_and_seeks_with_reverse_kl():
    """The f-GAN game settles where the direct minimisation of the same divergence does: moment matching for
    KL(P || Q) (between the modes, wide), the mode nearest the start for KL(Q || P)."""
    forward = fgan.train_fgan_1d(TARGET, "kl", steps=1000, seed=0)
    reverse = fgan.train_fgan_1d(TARGET, "reverse_kl", steps=1000, seed=0)
    moments = dv.fit_forward_kl(TARGET)
    mode = dv.fit_reverse_kl(TARGET, mu0=1.0, sigma0=1.0)
    assert abs(forward.tail_mean("mu") - moments.mu) < 0.2 and abs(forward.tail_mean("sigma") - moments.sigma) < 0.15
    assert abs(reverse.tail_mean("mu") - mode.mu) < 0.1 and abs(reverse.tail_mean("sigma") - mode.sigma) < 0.1
    # each ends near its own divergence's minimum, measured by quadrature
    assert forward.history["divergence"][-1] - moments.kl < 0.01
    assert reverse.history["divergence"][-1] - mode.kl < 0.02
    # and the critic's running estimate tracks the quadrature value of the same divergence
    assert abs(sum(forward.history["bound"][-200:]) / 200 - forward.history["divergence"][-1]) < 0.05


def test_toy_fgan_is_deterministic_and_records_its_history():
    a = fgan.train_fgan_1d(TARGET, "gan", steps=30, record_every=10, seed=4)
    b = fgan.train_fgan_1d(TARGET, "gan", steps=30, record_every=10, seed=4)
    assert a.history == b.history
    assert len(a.history["mu"]) == len(a.history["sigma"]) == len(a.history["bound"]) == 30
    assert a.history["step"] == [0, 10, 20, 30] and len(a.history["divergence"]) == 4
    assert a.history["mu"][0] != 1.0  # it moved
    with pytest.raises(gm.UserError):
        fgan.train_fgan_1d(TARGET, "gan", steps=10, variant="wgan")
