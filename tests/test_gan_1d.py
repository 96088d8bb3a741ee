"""Tests of genmodels.gan_1d: D*, the JSD and the value by quadrature, the trained 1-D discriminator
against D*, and a few steps of the 1-D GAN with snapshots."""

import math

import pytest
import torch

from genmodels import gan_1d


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
    xs, ys = (
        torch.randn(400_000, generator=g, dtype=torch.float64),
        1.5 + 0.7 * torch.randn(400_000, generator=g, dtype=torch.float64),
    )

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


# ---- diagnose_toy_gan: the verdicts on hand-built players ----


class _Affine(torch.nn.Module):
    def __init__(self, scale, shift):
        super().__init__()
        self.scale, self.shift = scale, shift

    def forward(self, x):
        return self.scale * x + self.shift


def _toy_run(generator, discriminator, widths=(0.5,)):
    grid = torch.linspace(-4.0, 12.0, 801)
    run = gan_1d.ToyGANRun(
        grid=grid,
        p_data=gan_1d.gaussian_density(grid, 4.0, 0.5),
        bin_edges=torch.linspace(-4, 12, 121),
        generator=generator,
        discriminator=discriminator,
    )
    run.steps["g_std"] = list(widths)
    return run


def test_diagnose_toy_gan_verdicts():
    uniform_to = lambda mean, std: _Affine(std * math.sqrt(3) / 8.0, mean)  # noqa: E731  z ~ U(-8, 8)
    sloped = _Affine(1.0, -4.0)  # logit x - 4: dD/dx = D(1 - D), alive everywhere near 4
    dead = lambda x: 1000.0 * torch.tanh(100.0 * (x - 50.0))  # noqa: E731  saturated: D = 0 below 50, exactly flat
    v = gan_1d.diagnose_toy_gan(_toy_run(uniform_to(4.0, 0.5), sloped, widths=(0.5, 0.2, 0.45)))
    assert v["verdict"] == "fits"
    assert v["mean"] == pytest.approx(4.0, abs=0.02) and v["std"] == pytest.approx(0.5, abs=0.01)
    assert (v["narrowest"], v["narrowest_step"]) == (pytest.approx(0.2), 2)
    # the slope of sigmoid(x - 4) at the generated points, by hand: E[D(1 - D)] over U(3.13, 4.87)
    u = torch.linspace(4 - 0.5 * math.sqrt(3), 4 + 0.5 * math.sqrt(3), 100001)
    assert v["input_gradient"] == pytest.approx(
        (torch.sigmoid(u - 4) * (1 - torch.sigmoid(u - 4))).mean().item(), rel=0.01
    )
    assert gan_1d.diagnose_toy_gan(_toy_run(uniform_to(6.0, 0.05), dead))["verdict"] == "dead discriminator"
    assert gan_1d.diagnose_toy_gan(_toy_run(uniform_to(6.0, 0.05), dead))["input_gradient"] == 0.0
    assert gan_1d.diagnose_toy_gan(_toy_run(uniform_to(4.0, 0.05), sloped))["verdict"] == "collapsed"
    assert gan_1d.diagnose_toy_gan(_toy_run(uniform_to(6.0, 0.5), sloped))["verdict"] == "off target"
    # a generator exactly on target fits even where D is flat: a flat D is only a failure off target
    assert gan_1d.diagnose_toy_gan(_toy_run(uniform_to(4.0, 0.5), dead))["verdict"] == "fits"


def test_diagnose_toy_gan_on_a_trained_run_and_missing_players():
    run = gan_1d.train_toy_gan(steps=200, seed=0)
    v = gan_1d.diagnose_toy_gan(run)
    assert v["verdict"] in ("fits", "dead discriminator", "collapsed", "off target")
    assert v["narrowest"] == pytest.approx(min(run.steps["g_std"]))
    run.generator = None
    with pytest.raises(gan_1d.UserError, match="generator and discriminator"):
        gan_1d.diagnose_toy_gan(run)
