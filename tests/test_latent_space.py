"""genmodels.latent_space: codes of a dataset, active units, the quantile grid, draws from p(x|z), neighbour averages.

Each test computes the expected value another way: the encoder called on the whole set at once, the
standard library's inverse normal CDF, a variance computed by hand, a brute-force nearest-neighbour search.
"""

import math
import statistics

import pytest
import torch
from torch import nn

import genmodels as gm
from genmodels import latent_space
from genmodels.engine.loops import EVAL_SEED


def uint8_images(n=37, seed=0):
    return torch.randint(0, 256, (n, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def small_vae(latent_dim=3, seed=0):
    torch.manual_seed(seed)
    return gm.VAE(latent_dim=latent_dim, arch="mlp", hidden_dim=16)


# --- encode_dataset ---------------------------------------------------------------------------------


@pytest.mark.parametrize("batch_size", [1, 5, 37, 1000])
def test_encode_dataset_matches_one_call_on_the_evaluation_binarization(batch_size):
    vae = small_vae()
    x = uint8_images()
    binary = gm.static_binarize(x, seed=EVAL_SEED).float().unsqueeze(1)  # the evaluation's fixed draw
    with torch.no_grad():
        mu_ref, logvar_ref = vae.encode(binary)
    mu, logvar = latent_space.encode_dataset(vae, x, batch_size=batch_size, return_logvar=True)
    assert mu.shape == (37, 3) and mu.dtype == torch.float32 and mu.device.type == "cpu"
    torch.testing.assert_close(mu, mu_ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(logvar, logvar_ref, rtol=1e-5, atol=1e-5)
    assert not mu.requires_grad


def test_encode_dataset_continuous_uses_grey_values_and_accepts_pairs():
    vae = small_vae()
    x = uint8_images(10)
    labels = torch.arange(10)
    with torch.no_grad():
        mu_ref, _ = vae.encode(x.float().div(255).unsqueeze(1))
    mu = latent_space.encode_dataset(vae, gm.ImageSet(x, labels), pixels="continuous", batch_size=3)
    torch.testing.assert_close(mu, mu_ref, rtol=1e-5, atol=1e-5)


def test_encode_dataset_leaves_the_training_mode_alone():
    vae = small_vae()
    vae.train()
    latent_space.encode_dataset(vae, uint8_images(4))
    assert vae.training
    vae.eval()
    latent_space.encode_dataset(vae, uint8_images(4))
    assert not vae.training
    with pytest.raises(ValueError):
        latent_space.encode_dataset(vae, uint8_images(4), batch_size=0)


# --- active units -------------------------------------------------------------------------------------


class _FixedEncoder(nn.Module):
    """mu_j(x) = scale_j * (mean grey level of x), logvar = 0: A_j is scale_j^2 times the variance of the mean."""

    def __init__(self, scales):
        super().__init__()
        self.register_buffer("scales", torch.tensor(scales))

    def forward(self, x):
        m = x.flatten(1).mean(1, keepdim=True)  # (B, 1)
        mu = m * self.scales  # (B, D)
        return mu, torch.zeros_like(mu)


def test_latent_activity_is_the_variance_of_the_posterior_mean():
    scales = [0.0, 0.01, 1.0, 100.0]
    vae = gm.VAE(latent_dim=4, hidden_dim=8)
    vae.encoder = _FixedEncoder(scales)
    x = uint8_images(50, seed=3)
    grey = x.double().div(255).flatten(1).mean(1)
    expected = torch.tensor([s**2 * statistics.pvariance(grey.tolist()) for s in scales], dtype=torch.float64)
    activity = latent_space.latent_activity(vae, x, pixels="continuous", batch_size=7)
    torch.testing.assert_close(activity.double(), expected, rtol=1e-4, atol=1e-12)
    # the variance of the mean grey level of uniform random pixels is about 1/12/784 ~ 1e-4:
    # A = (0, 1e-8, 1e-4, 1) roughly, so only the last unit passes 0.01, and all but the first pass 1e-9
    assert latent_space.active_units(vae, x, pixels="continuous") == int((expected > 0.01).sum()) == 1
    assert latent_space.active_units(vae, x, pixels="continuous", threshold=1e-9) == 3
    with pytest.raises(ValueError):
        latent_space.active_units(vae, x, threshold=0)


def test_kl_per_dimension_against_torch_distributions():
    vae = small_vae(latent_dim=4)
    x = uint8_images(30, seed=5)
    mu, logvar = latent_space.encode_dataset(vae, x, return_logvar=True)
    q = torch.distributions.Normal(mu.double(), (0.5 * logvar.double()).exp())
    p = torch.distributions.Normal(torch.zeros(()).double(), torch.ones(()).double())
    expected = torch.distributions.kl_divergence(q, p).mean(0)  # (4,)
    per_dim = latent_space.kl_per_dimension(vae, x, batch_size=8)
    assert per_dim.shape == (4,) and (per_dim >= 0).all()
    torch.testing.assert_close(per_dim.double(), expected, rtol=1e-5, atol=1e-6)
    # the entries add up to the KL term that the ELBO uses, averaged over the same binary images
    binary = gm.static_binarize(x, seed=EVAL_SEED).float().unsqueeze(1)
    with torch.no_grad():
        _, _, kl = vae.elbo(binary, return_parts=True)
    torch.testing.assert_close(per_dim.sum(), kl.mean(), rtol=1e-4, atol=1e-4)


# --- the quantile grid and the decoded manifold -------------------------------------------------------


def test_gaussian_grid_uses_normal_quantiles_and_image_orientation():
    n, span = 5, 0.8
    grid = latent_space.gaussian_grid(n, span=span)
    assert grid.shape == (n, n, 2)
    probs = [0.1 + 0.8 * i / (n - 1) for i in range(n)]
    q = torch.tensor([statistics.NormalDist().inv_cdf(p) for p in probs])
    for i in range(n):
        for j in range(n):
            # row i from the top has z2 = q[n-1-i]; column j has z1 = q[j]
            torch.testing.assert_close(grid[i, j], torch.stack([q[j], q[n - 1 - i]]).float(), rtol=0, atol=1e-6)
    assert grid[0, 0, 1] > 0 > grid[-1, 0, 1]  # top row is high z2
    assert grid[0, 0, 0] < 0 < grid[0, -1, 0]  # left column is low z1
    torch.testing.assert_close(grid[n // 2, n // 2], torch.zeros(2))  # odd n: the prior's median in the middle
    for bad in (dict(n=1), dict(n=3, span=1.0), dict(n=3, span=0.0)):
        with pytest.raises(ValueError):
            latent_space.gaussian_grid(**bad)


def test_latent_grid_decodes_each_grid_point():
    vae = small_vae(latent_dim=2)
    images, z = latent_space.latent_grid(vae, n=4, span=0.5)
    assert images.shape == (16, 1, 28, 28) and z.shape == (16, 2)
    torch.testing.assert_close(z, latent_space.gaussian_grid(4, span=0.5).reshape(16, 2))
    with torch.no_grad():
        expected = torch.sigmoid(vae.decoder(z))
    torch.testing.assert_close(images, expected, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="latent_dim=3"):
        latent_space.latent_grid(small_vae(latent_dim=3))


# --- draws from the likelihood ------------------------------------------------------------------------


def test_draws_are_binary_and_average_to_the_means():
    vae = small_vae(latent_dim=2)
    z = torch.zeros(1, 2)
    means, draws = latent_space.draw_from_likelihood(vae, z.expand(4000, 2), generator=torch.Generator().manual_seed(0))
    assert means.shape == draws.shape == (4000, 1, 28, 28)
    assert set(draws.unique().tolist()) <= {0.0, 1.0}
    with torch.no_grad():
        p = torch.sigmoid(vae.decoder(z))[0]
    torch.testing.assert_close(means[0], p)
    # each pixel's frequency of ones is within 5 standard errors of its probability
    se = (p * (1 - p) / 4000).sqrt()
    assert ((draws.mean(0) - p).abs() <= 5 * se + 1e-6).all()
    with pytest.raises(ValueError):
        latent_space.draw_from_likelihood(vae, torch.zeros(1, 3))


# --- neighbour averages -------------------------------------------------------------------------------


def test_neighbour_average_matches_a_brute_force_search():
    g = torch.Generator().manual_seed(1)
    codes = torch.randn(60, 2, generator=g)
    x = uint8_images(60, seed=2)
    z = torch.tensor([0.3, -0.2])
    avg, index = latent_space.neighbour_average(codes, x, z, k=7)
    by_distance = sorted(range(60), key=lambda i: float(((codes[i] - z) ** 2).sum()))[:7]
    assert index.tolist() == by_distance
    expected = sum(x[i].double() / 255 for i in by_distance) / 7
    torch.testing.assert_close(avg[0].double(), expected, rtol=0, atol=1e-6)
    assert avg.shape == (1, 28, 28)
    with pytest.raises(ValueError):
        latent_space.neighbour_average(codes, x, z, k=0)
    with pytest.raises(ValueError):
        latent_space.neighbour_average(codes, x[:5], z, k=3)


# --- the aggregate posterior and the information decomposition ---------------------------------------


def test_aggregate_log_density_is_the_log_mean_of_the_component_densities():
    g = torch.Generator().manual_seed(0)
    mu, logvar = torch.randn(7, 3, generator=g), torch.randn(7, 3, generator=g)
    z = 2 * torch.randn(11, 3, generator=g)
    # independent: each component's density through torch.distributions, averaged in probability space
    comps = torch.distributions.Normal(mu.double(), (0.5 * logvar.double()).exp())
    dens = comps.log_prob(z.double().unsqueeze(1)).sum(-1).exp().mean(1)  # (11,)
    got = latent_space.aggregate_log_density(z, mu, logvar, chunk_size=4)
    assert got.dtype == torch.float64 and got.shape == (11,)
    torch.testing.assert_close(got, dens.log(), rtol=1e-10, atol=1e-10)


def test_aggregate_log_density_names_mismatched_shapes():
    with pytest.raises(gm.UserError, match="same d"):
        latent_space.aggregate_log_density(torch.zeros(2, 3), torch.zeros(4, 2), torch.zeros(4, 2))


def test_posteriors_that_ignore_the_image_carry_no_information():
    """Every q(z|x_n) the same Gaussian: q(z) is that Gaussian, I = 0 exactly, and the whole KL is the
    aggregate posterior's distance from the prior."""
    mu = torch.tensor([[0.7, -0.2]]).repeat(50, 1)
    logvar = torch.tensor([[-1.0, 0.5]]).repeat(50, 1)
    out = latent_space.information_decomposition(
        mu, logvar, num_samples=20_000, generator=torch.Generator().manual_seed(1)
    )
    assert abs(out["mutual_information"]) < 1e-9
    closed = 0.5 * (mu[0].pow(2) + logvar[0].exp() - 1 - logvar[0]).sum().item()
    assert out["kl"] == pytest.approx(closed, rel=1e-6)
    assert abs(out["marginal_kl"] - closed) < 4 * out["marginal_kl_se"]


def test_well_separated_sharp_posteriors_carry_log_n_nats():
    """Codes far apart with tiny variances identify their image: I = log N, the most N images allow."""
    n = 64
    mu = 10.0 * torch.randn(n, 4, generator=torch.Generator().manual_seed(2))
    logvar = torch.full((n, 4), -12.0)
    out = latent_space.information_decomposition(mu, logvar)
    assert out["mutual_information"] == pytest.approx(math.log(n), abs=1e-6)
    assert out["log_n"] == pytest.approx(math.log(n)) and out["num_samples"] == n


def test_the_marginal_kl_matches_quadrature_in_one_dimension():
    """KL(q(z) || N(0, 1)) of a three-component mixture by quadrature on a fine grid, against the Monte
    Carlo estimate; and the closed-form mean KL against the estimate of the sum of the two terms."""
    mu = torch.tensor([[-1.5], [0.2], [2.0]])
    logvar = torch.tensor([[-1.0], [-2.0], [0.3]])
    grid = torch.linspace(-12, 12, 200_001, dtype=torch.float64)
    log_q = latent_space.aggregate_log_density(grid.unsqueeze(1), mu, logvar)
    log_p = -0.5 * (math.log(2 * math.pi) + grid.pow(2))
    q = log_q.exp()
    quadrature = torch.trapezoid(q * (log_q - log_p), grid).item()
    assert torch.trapezoid(q, grid).item() == pytest.approx(1.0, abs=1e-9)
    out = latent_space.information_decomposition(
        mu, logvar, num_samples=200_000, generator=torch.Generator().manual_seed(3)
    )
    assert abs(out["marginal_kl"] - quadrature) < 4 * out["marginal_kl_se"]
    assert abs(out["kl_monte_carlo"] - out["kl"]) < 4 * out["kl_se"]
    total = out["mutual_information"] + out["marginal_kl"]
    assert total == pytest.approx(out["kl_monte_carlo"], abs=1e-9)
    assert 0 < out["mutual_information"] < math.log(3)


# --- the amortization gap ------------------------------------------------------------------------------


def binary_images(n=4, seed=0):
    return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(seed)).bernoulli()


def test_elbo_at_the_encoders_posterior_is_the_models_elbo_averaged_over_the_same_noise():
    vae = small_vae(latent_dim=3).eval()
    x = binary_images(5)
    with torch.no_grad():
        mu, logvar = vae.encode(x)
    eps = torch.randn(40, 5, 3, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        expected = torch.stack([vae.elbo(x, eps=e) for e in eps]).mean(0)
    got = latent_space.elbo_at(
        vae, x, mu, logvar, num_samples=40, chunk_size=40, generator=torch.Generator().manual_seed(7)
    )
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-4)


def test_refine_posterior_with_no_steps_returns_the_encoders_output_and_leaves_the_model_alone():
    vae = small_vae(latent_dim=3)
    vae.train()
    x = binary_images(3)
    state = {k: v.clone() for k, v in vae.state_dict().items()}
    with torch.no_grad():
        mu0, logvar0 = vae.eval().encode(x)
    vae.train()
    mu, logvar = latent_space.refine_posterior(vae, x, steps=0)
    torch.testing.assert_close(mu, mu0)
    torch.testing.assert_close(logvar, logvar0)
    latent_space.refine_posterior(vae, x, steps=5, num_samples=2)
    assert vae.training  # the mode is restored
    assert all(p.grad is None for p in vae.parameters())  # no gradient reached the weights
    for k, v in vae.state_dict().items():
        assert torch.equal(v, state[k]), k


def test_refine_posterior_reaches_the_best_gaussian_found_by_a_grid_search():
    """One latent dimension: the ELBO of N(m, s^2) by Gauss-Hermite quadrature on a grid of (m, log s),
    the grid's best against the refined posterior's ELBO computed by the same quadrature."""
    vae = small_vae(latent_dim=1, seed=4).eval()
    x = binary_images(1, seed=5)
    nodes, weights = np_hermgauss(60)

    def elbo_quadrature(m, log_s):  # m, log_s: (G,) -> (G,)
        z = m[:, None] + math.sqrt(2) * log_s.exp()[:, None] * nodes[None, :]  # (G, 60)
        with torch.no_grad():
            logits = vae.decode(z.reshape(-1, 1).float())
            log_px = gm.distributions.bernoulli_log_likelihood(logits, x.expand(len(logits), -1, -1, -1)).double()
        expected = (log_px.view(z.shape) * weights[None, :]).sum(1) / math.sqrt(math.pi)
        kl = 0.5 * (m.pow(2) + (2 * log_s).exp() - 1 - 2 * log_s)
        return expected - kl

    m_grid = torch.linspace(-4, 4, 161, dtype=torch.float64)
    s_grid = torch.linspace(-5, 0.5, 111, dtype=torch.float64)
    mm, ss = torch.meshgrid(m_grid, s_grid, indexing="ij")
    best_grid = elbo_quadrature(mm.flatten(), ss.flatten()).max().item()
    with torch.no_grad():
        mu0, logvar0 = vae.encode(x)
    start = elbo_quadrature(mu0.double().flatten(), 0.5 * logvar0.double().flatten()).item()
    mu, logvar = latent_space.refine_posterior(
        vae, x, steps=800, lr=2e-2, num_samples=64, generator=torch.Generator().manual_seed(0)
    )
    refined = elbo_quadrature(mu.double().flatten(), 0.5 * logvar.double().flatten()).item()
    assert refined >= start - 1e-6
    assert refined == pytest.approx(best_grid, abs=0.05)


def np_hermgauss(n):
    import numpy as np

    nodes, weights = np.polynomial.hermite.hermgauss(n)
    return torch.from_numpy(nodes), torch.from_numpy(weights)


def test_iwae_at_is_the_log_mean_importance_weight_at_the_same_noise():
    vae = small_vae(latent_dim=2, seed=3).eval()
    x = binary_images(3, seed=1)
    mu, logvar = torch.randn(3, 2), torch.randn(3, 2) - 1
    eps = torch.randn(30, 3, 2, generator=torch.Generator().manual_seed(9))
    q = torch.distributions.Normal(mu, (0.5 * logvar).exp())
    z = mu + q.scale * eps  # (30, 3, 2)
    with torch.no_grad():
        logits = vae.decode(z.reshape(-1, 2)).view(30, 3, 1, 28, 28)
    log_px = torch.distributions.Bernoulli(logits=logits).log_prob(x.expand(30, -1, -1, -1, -1)).flatten(2).sum(2)
    log_pz = torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(-1)
    expected = torch.logsumexp(log_px + log_pz - q.log_prob(z).sum(-1), dim=0) - math.log(30)
    got = latent_space.iwae_at(vae, x, mu, logvar, k=30, chunk_size=30, generator=torch.Generator().manual_seed(9))
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-4)
    # and it bounds the ELBO of the same proposal from above (Jensen), here with many draws of each
    elbo = latent_space.elbo_at(vae, x, mu, logvar, num_samples=2000)
    iwae = latent_space.iwae_at(vae, x, mu, logvar, k=2000)
    assert (iwae > elbo).all()


def test_aggregate_posterior_samples_have_the_mixtures_mean_and_variance():
    g = torch.Generator().manual_seed(5)
    mu, logvar = 3 * torch.randn(40, 2, generator=g), torch.randn(40, 2, generator=g)
    z = latent_space.sample_aggregate_posterior(mu, logvar, 200_000, generator=g)
    assert z.shape == (200_000, 2)
    # law of total variance: Var z = Var_n(mu_n) + E_n(sigma_n^2)
    torch.testing.assert_close(z.mean(0), mu.mean(0), atol=0.05, rtol=0)
    expected_var = mu.var(0, unbiased=False) + logvar.exp().mean(0)
    torch.testing.assert_close(z.var(0), expected_var, rtol=0.02, atol=0)
