"""Tests of genmodels.toy_gans: D*, the JSD and the value by quadrature, the trained 1-D discriminator
against D*, WGAN-GP's penalty against a hand computation, and a few training steps of every option."""
import math

import pytest
import torch
from torch import nn

from genmodels import gan_1d
from genmodels import gan_mixtures
from genmodels.metrics.coverage import mode_coverage


def test_optimal_discriminator_pointwise():
    p = torch.tensor([0.0, 1.0, 2.0, 0.0], dtype=torch.float64)
    q = torch.tensor([0.0, 1.0, 0.5, 3.0], dtype=torch.float64)
    d = gan_1d.optimal_discriminator(p, q)
    assert math.isnan(d[0])
    assert d[1:].tolist() == [0.5, 0.8, 0.0]


def test_optimal_discriminator_maximises_the_value():
    x = torch.linspace(-8, 10, 4001, dtype=torch.float64)
    p, q = gan_1d.gaussian_density(x, 0.0, 1.0), gan_1d.gaussian_density(x, 1.5, 0.7)
    d_star = gan_1d.optimal_discriminator(p, q)
    v_star = gan_1d.value_quadrature(p, q, d_star, x)
    for bump in (0.05, -0.05):
        other = (d_star + bump * torch.sin(x)).clamp(1e-6, 1 - 1e-6)
        assert gan_1d.value_quadrature(p, q, other, x) < v_star
    assert gan_1d.value_quadrature(p, q, torch.full_like(x, 0.5), x) == pytest.approx(-math.log(4), abs=1e-9)


def test_jsd_closed_forms():
    x = torch.linspace(-1, 3, 400_001, dtype=torch.float64)
    p = gan_1d.gaussian_density(x, 1.0, 0.3)
    assert gan_1d.jsd_quadrature(p, p, x) == pytest.approx(0.0, abs=1e-12)
    # uniform densities on [0, 1] and [a, 1 + a]: JSD = a log 2 for 0 <= a <= 1
    for a in (0.25, 0.5, 1.0, 1.5):
        u = ((x >= 0) & (x <= 1)).double()
        v = ((x >= a) & (x <= 1 + a)).double()
        assert gan_1d.jsd_quadrature(u, v, x) == pytest.approx(min(a, 1.0) * math.log(2), abs=2e-4)


def test_value_at_d_star_is_minus_log4_plus_2jsd_and_matches_monte_carlo():
    x = torch.linspace(-8, 10, 8001, dtype=torch.float64)
    p, q = gan_1d.gaussian_density(x, 0.0, 1.0), gan_1d.gaussian_density(x, 1.5, 0.7)
    jsd = gan_1d.jsd_quadrature(p, q, x)
    v = gan_1d.value_quadrature(p, q, gan_1d.optimal_discriminator(p, q), x)
    assert v == pytest.approx(-math.log(4) + 2 * jsd, abs=1e-10)
    # an independent Monte-Carlo estimate of the JSD with torch.distributions
    g = torch.Generator().manual_seed(0)
    P, Q = torch.distributions.Normal(0.0, 1.0), torch.distributions.Normal(1.5, 0.7)
    xs, ys = torch.randn(400_000, generator=g, dtype=torch.float64), 1.5 + 0.7 * torch.randn(400_000, generator=g, dtype=torch.float64)

    def log_m(t):
        return torch.logaddexp(P.log_prob(t), Q.log_prob(t)) - math.log(2)

    terms = torch.cat([0.5 * (P.log_prob(xs) - log_m(xs)), 0.5 * (Q.log_prob(ys) - log_m(ys))])
    mc = 2 * terms.mean().item()
    assert abs(mc - jsd) < 4 * 2 * terms.std().item() / math.sqrt(len(terms))


def test_trained_discriminator_approaches_d_star():
    x = torch.linspace(-4, 5, 901, dtype=torch.float64)
    p, q = gan_1d.gaussian_density(x, 0.0, 1.0), gan_1d.gaussian_density(x, 1.5, 0.7)
    g = torch.Generator().manual_seed(0)
    disc = gan_1d.fit_discriminator(
        lambda n: torch.randn(n, 1, generator=g, dtype=torch.float64),
        lambda n: 1.5 + 0.7 * torch.randn(n, 1, generator=g, dtype=torch.float64),
        steps=1500,
    )
    with torch.no_grad():
        d = torch.sigmoid(disc(x.unsqueeze(-1)))
    d_star = gan_1d.optimal_discriminator(p, q)
    where = (p + q) > 0.05
    assert (d - d_star)[where].abs().max() < 0.06
    v_star = gan_1d.value_quadrature(p, q, d_star, x)
    assert v_star - 0.01 < gan_1d.value_quadrature(p, q, d, x) <= v_star + 1e-12


def test_gradient_penalty_by_hand():
    # a linear critic D(x) = w.x has gradient w everywhere: the penalty is (|w| - 1)^2
    critic = nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        critic.weight.copy_(torch.tensor([[3.0, 4.0]]))
    real, fake = torch.randn(5, 2), torch.randn(5, 2)
    assert gan_mixtures.gradient_penalty(critic, real, fake).item() == pytest.approx(16.0)
    # a quadratic critic D(x) = |x|^2 / 2 has gradient x: the penalty is the mean of (|x_hat| - 1)^2
    quad = lambda t: 0.5 * t.pow(2).sum(-1)  # noqa: E731
    real = torch.tensor([[2.0, 0.0], [0.0, 0.0]])
    fake = torch.tensor([[0.0, 0.0], [0.0, 3.0]])
    eps = torch.tensor([[0.5], [0.0]])
    # x_hat = (1, 0) and (0, 3): norms 1 and 3, penalty ((0)^2 + (2)^2) / 2 = 2
    assert gan_mixtures.gradient_penalty(quad, real, fake, eps=eps).item() == pytest.approx(2.0)


@pytest.mark.parametrize("method", gan_mixtures.MIXTURE_METHODS)
@pytest.mark.parametrize("mixture", ["ring", "grid"])
def test_mixture_gan_runs(mixture, method):
    run = gan_mixtures.train_mixture_gan(mixture, method, steps=3, batch_size=16, num_eval=100, hidden_dim=16, snapshot_steps=[0, 3])
    assert run.samples.shape == (100, 2) and torch.isfinite(run.samples).all()
    assert len(run.steps["d_loss"]) == 3 and all(math.isfinite(v) for v in run.steps["g_loss"])
    assert [s["step"] for s in run.snapshots] == [0, 3]
    result = mode_coverage(run.samples, run.centres, run.std)
    assert result["num_modes"] == (8 if mixture == "ring" else 25)


def test_mixture_gan_is_seeded_and_rejects_unknown_options():
    a = gan_mixtures.train_mixture_gan("ring", "non_saturating", steps=2, batch_size=8, num_eval=10, hidden_dim=8, seed=3)
    b = gan_mixtures.train_mixture_gan("ring", "non_saturating", steps=2, batch_size=8, num_eval=10, hidden_dim=8, seed=3)
    assert torch.equal(a.samples, b.samples)
    with pytest.raises(ValueError):
        gan_mixtures.train_mixture_gan("ring", "unrolled", steps=1)
    with pytest.raises(ValueError):
        gan_mixtures.mixture_sampler("spiral")


def test_minibatch_discriminator_sees_the_batch():
    disc = gan_mixtures.MixtureDiscriminator(16, minibatch_kernels=4)
    x = torch.randn(6, 2)
    alone = disc(x[:3])
    together = disc(x)[:3]
    assert not torch.allclose(alone, together)  # the logits depend on the other samples
    plain = gan_mixtures.MixtureDiscriminator(16)
    assert torch.allclose(plain(x[:3]), plain(x)[:3])  # without the layer each logit sees one sample


@pytest.mark.parametrize("loss", ["saturating", "non_saturating"])
def test_toy_gan_runs_and_snapshots(loss):
    run = gan_1d.train_toy_gan(steps=20, loss=loss, snapshot_steps=[0, 10, 20], d_steps=2)
    assert [s["step"] for s in run.snapshots] == [0, 10, 20]
    snap = run.snapshots[-1]
    assert snap["hist"].shape == (len(run.bin_edges) - 1,) and snap["d"].shape == run.grid.shape
    widths = run.bin_edges[1:] - run.bin_edges[:-1]
    assert (snap["hist"] * widths).sum().item() == pytest.approx(1.0, abs=1e-4)
    assert ((snap["d"] >= 0) & (snap["d"] <= 1)).all()
    assert len(run.steps["g_loss"]) == 20
