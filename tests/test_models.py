"""The VAE and GAN networks and objectives: shapes, bounds, and the generator losses against calculus."""
import math

import pytest
import torch
import torch.nn.functional as F

import genmodels as gm
from genmodels.gan import MinibatchDiscrimination


def images(n=8, seed=0):
    return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(seed)).round()


# --- VAE ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("arch", ["mlp", "conv"])
@pytest.mark.parametrize("latent_dim", [1, 2, 7, 50])
def test_vae_shapes_for_any_latent_size(arch, latent_dim):
    torch.manual_seed(0)
    vae = gm.VAE(latent_dim=latent_dim, arch=arch)
    x = images()
    mu, logvar = vae.encode(x)
    assert mu.shape == logvar.shape == (8, latent_dim)
    assert vae.decode(mu).shape == (8, 1, 28, 28)
    assert vae.decode(torch.randn(3, 8, latent_dim)).shape == (3, 8, 1, 28, 28)
    value, log_px, kl = vae.elbo(x, return_parts=True)
    assert value.shape == log_px.shape == kl.shape == (8,)
    torch.testing.assert_close(value, log_px - kl)
    assert (kl >= 0).all() and (log_px <= 0).all()
    s = vae.sample(5)
    assert s.shape == (5, 1, 28, 28) and s.min() >= 0 and s.max() <= 1
    r = vae.reconstruct(x)
    assert r.shape == (8, 1, 28, 28) and r.min() >= 0 and r.max() <= 1
    assert vae.iwae_bound(x, k=3).shape == (8,)


def test_vae_accepts_flat_and_uint8_images():
    vae = gm.VAE(latent_dim=4)
    x = images(4)
    torch.manual_seed(1)
    a = vae.elbo(x)
    torch.manual_seed(1)
    b = vae.elbo(x.reshape(4, 784))
    torch.manual_seed(1)
    c = vae.elbo((x * 255).to(torch.uint8).reshape(4, 28, 28))
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(a, c)
    with pytest.raises(ValueError, match="expected images shaped"):
        vae.elbo(torch.rand(4, 30, 30))


def test_vae_kl_part_is_the_closed_form_of_its_encoder():
    vae = gm.VAE(latent_dim=5, arch="conv")
    x = images(6)
    _, _, kl = vae.elbo(x, return_parts=True)
    mu, logvar = vae.encode(x)
    torch.testing.assert_close(kl, gm.gaussian_kl(mu, logvar))


def test_vae_loss_is_the_negative_mean_elbo():
    vae = gm.VAE(latent_dim=3)
    x = images(5)
    torch.manual_seed(2)
    loss = vae(x)
    torch.manual_seed(2)
    torch.testing.assert_close(loss, -vae.elbo(x).mean())


def test_iwae_bound_with_one_sample_is_the_elbo_and_grows_with_k():
    torch.manual_seed(3)
    vae = gm.VAE(latent_dim=8)
    x = images(64, seed=4)
    elbos = torch.stack([vae.elbo(x) for _ in range(50)])  # (50, 64)
    iwae1 = torch.stack([vae.iwae_bound(x, k=1) for _ in range(50)])
    se = (elbos.std() + iwae1.std()) / math.sqrt(elbos.numel())
    assert abs(elbos.mean() - iwae1.mean()) < 4 * se
    iwae100 = vae.iwae_bound(x, k=100)
    assert iwae100.mean() > iwae1.mean()
    # chunking the samples changes nothing but memory
    torch.manual_seed(5)
    a = vae.iwae_bound(x[:4], k=30, chunk_size=7)
    torch.manual_seed(5)
    b = vae.iwae_bound(x[:4], k=30, chunk_size=30)
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, "8"])
def test_vae_rejects_a_bad_latent_size(bad):
    with pytest.raises(ValueError, match="latent_dim must be a positive integer"):
        gm.VAE(latent_dim=bad)


def test_vae_rejects_an_unknown_architecture_and_a_wrong_sized_z():
    with pytest.raises(ValueError, match="arch must be one of"):
        gm.VAE(arch="transformer")
    with pytest.raises(ValueError, match="latent_dim=4"):
        gm.VAE(latent_dim=4).sample(z=torch.zeros(2, 5))


def test_vae_config_is_frozen_and_rebuilds_the_same_network():
    vae = gm.VAE(latent_dim=6, arch="conv", hidden_dim=64, channels=8)
    with pytest.raises(Exception):
        vae.config.latent_dim = 3
    twin = gm.VAE(config=gm.VAEConfig(**vae.config.to_dict()))
    assert {k: v.shape for k, v in twin.state_dict().items()} == {k: v.shape for k, v in vae.state_dict().items()}


# --- GAN losses against their derivatives ------------------------------------------------------------

def test_generator_losses_equal_their_definitions():
    a = torch.linspace(-6, 6, 41)
    d = torch.sigmoid(a)
    torch.testing.assert_close(gm.generator_loss(a, kind="saturating"), torch.log(1 - d).mean())
    torch.testing.assert_close(gm.generator_loss(a, kind="non_saturating"), -torch.log(d).mean())
    real, fake = torch.linspace(-3, 4, 41), torch.linspace(2, -5, 41)
    expected = -(torch.log(torch.sigmoid(real)).mean() + torch.log(1 - torch.sigmoid(fake)).mean())
    torch.testing.assert_close(gm.discriminator_loss(real, fake), expected)
    bce = F.binary_cross_entropy_with_logits(real, torch.ones(41)) + F.binary_cross_entropy_with_logits(fake, torch.zeros(41))
    torch.testing.assert_close(gm.discriminator_loss(real, fake), bce)


@pytest.mark.parametrize("kind", ["saturating", "non_saturating"])
def test_generator_loss_gradient_wrt_the_logit_is_analytic(kind):
    """d/da log(1 − σ(a)) = −σ(a);  d/da [−log σ(a)] = −(1 − σ(a)); divided by N for the mean."""
    a = torch.cat([torch.linspace(-60, 60, 25), torch.tensor([-300.0, 300.0])]).double().requires_grad_()
    loss = gm.generator_loss(a, kind=kind)
    (grad,) = torch.autograd.grad(loss, a)
    # 1 − σ(a) written as σ(−a): the same number, without cancellation for large a
    expected = -torch.sigmoid(a.detach()) if kind == "saturating" else -torch.sigmoid(-a.detach())
    torch.testing.assert_close(grad, expected / a.numel(), rtol=1e-10, atol=1e-300)
    assert torch.isfinite(loss) and torch.isfinite(grad).all()


def test_saturating_loss_vanishes_exactly_where_the_generator_is_bad():
    """When D(G(z)) → 0 (logit → −∞) the saturating gradient dies, the non-saturating one tends to −1."""
    a = torch.tensor([-30.0], dtype=torch.float64, requires_grad=True)
    (g_sat,) = torch.autograd.grad(gm.generator_loss(a, kind="saturating"), a)
    (g_ns,) = torch.autograd.grad(gm.generator_loss(a, kind="non_saturating"), a)
    assert abs(g_sat.item()) < 1e-12
    assert abs(g_ns.item() + 1) < 1e-12
    for kind in gm.GENERATOR_LOSSES:  # float32 at extreme logits: finite values and gradients
        x = torch.tensor([-1e4, 1e4], requires_grad=True)
        loss = gm.generator_loss(x, kind=kind)
        (g,) = torch.autograd.grad(loss, x)
        assert torch.isfinite(loss) and torch.isfinite(g).all()
    with pytest.raises(ValueError, match="unknown generator loss"):
        gm.generator_loss(a, kind="wasserstein")


def test_discriminator_loss_minimum_is_log4_minus_2_jsd_for_two_point_distributions():
    """For p_data, p_g on two points, minimising over D(x) gives log 4 − 2 JSD (and D* = p/(p + q))."""
    p, q = torch.tensor([0.8, 0.2]), torch.tensor([0.3, 0.7])
    logit = torch.zeros(2, requires_grad=True)
    opt = torch.optim.LBFGS([logit], max_iter=200, line_search_fn="strong_wolfe")

    def objective():
        opt.zero_grad()
        loss = (p * F.softplus(-logit)).sum() + (q * F.softplus(logit)).sum()
        loss.backward()
        return loss

    opt.step(objective)
    m = (p + q) / 2
    jsd = 0.5 * (p * (p / m).log()).sum() + 0.5 * (q * (q / m).log()).sum()
    torch.testing.assert_close(objective().detach(), math.log(4) - 2 * jsd, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(torch.sigmoid(logit.detach()), p / (p + q), rtol=1e-4, atol=1e-4)


# --- GAN networks ---------------------------------------------------------------------------------

@pytest.mark.parametrize("arch", ["mlp", "dcgan"])
@pytest.mark.parametrize("kernels", [0, 10])
def test_gan_networks_shapes_and_ranges(arch, kernels):
    torch.manual_seed(0)
    model = gm.GAN(latent_dim=16, arch=arch, hidden_dim=32, channels=8, minibatch_kernels=kernels)
    z = model.sample_noise(6)
    fake = model.generator(z)
    assert fake.shape == (6, 1, 28, 28) and fake.min() >= 0 and fake.max() <= 1
    logits = model.discriminator(fake)
    assert logits.shape == (6,)
    assert model.sample(3).shape == (3, 1, 28, 28)
    assert model.generator.training  # sample() restores the mode it found
    assert any(isinstance(m, MinibatchDiscrimination) for m in model.modules()) == bool(kernels)


def test_minibatch_discrimination_measures_closeness_within_the_batch():
    layer = MinibatchDiscrimination(in_features=4, num_kernels=3, kernel_dim=2)
    same = torch.ones(5, 4)
    out = layer(same)
    assert out.shape == (5, 7)
    torch.testing.assert_close(out[:, :4], same)
    torch.testing.assert_close(out[:, 4:], torch.full((5, 3), 4.0))  # Σ_{j≠i} exp(0) = N − 1
    far = 1000 * torch.randn(5, 4, generator=torch.Generator().manual_seed(0))  # every pair far apart
    assert layer(far)[:, 4:].abs().max() < 1e-6
    # an independent computation of the same feature
    x = torch.randn(6, 4, generator=torch.Generator().manual_seed(1))
    m = (x @ layer.T).view(6, 3, 2)
    expected = torch.stack([
        torch.stack([sum(torch.exp(-(m[i, b] - m[j, b]).abs().sum()) for j in range(6) if j != i) for b in range(3)])
        for i in range(6)
    ])
    torch.testing.assert_close(layer(x)[:, 4:], expected)


def test_gan_config_validation():
    with pytest.raises(ValueError, match="latent_dim must be a positive integer"):
        gm.GAN(latent_dim=0)
    with pytest.raises(ValueError, match="arch must be one of"):
        gm.GAN(arch="stylegan")
    with pytest.raises(ValueError, match="minibatch_kernels"):
        gm.GAN(minibatch_kernels=-1)


def test_toy_networks_and_mixtures():
    g, d = gm.ToyGenerator(), gm.ToyDiscriminator()
    assert g(torch.rand(10, 1)).shape == (10, 1)
    assert d(torch.rand(10, 1)).shape == (10,)
    pts, centres = gm.ring_of_gaussians(4000, generator=torch.Generator().manual_seed(0))
    assert centres.shape == (8, 2)
    torch.testing.assert_close(centres.norm(dim=1), torch.full((8,), 2.0))
    nearest = torch.cdist(pts, centres).min(1).values
    assert (nearest < 0.02 * 6).all()
    pts, centres = gm.grid_of_gaussians(4000, generator=torch.Generator().manual_seed(0))
    assert centres.shape == (25, 2)
    assert len(torch.cdist(pts, centres).argmin(1).unique()) == 25
