"""The VAE and GAN networks and objectives: shapes, bounds, and the generator losses against calculus."""

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F
from torch.distributions import Normal

import genmodels as gm
from genmodels.core import UserError
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


def hand_set_vae():
    """An MLP VAE (latent 2) whose weights are set by hand, so its q(z|x) and p(x|z) are known formulas.

    Encoder: h = (mean of the top 14 rows, mean of the bottom 14 rows) of x, both in [0, 1] (the ReLU keeps
    them); mu = (2 h0 - 1, 1 - 3 h1), logvar = (h1 - 1, -0.5 - 2 h0). Decoder: the hidden layer holds
    (relu(z), relu(-z)), whose difference is z, so the logits are V z + c for a fixed V [784, 2], c [784].
    """
    vae = gm.VAE(latent_dim=2, arch="mlp", hidden_dim=4)
    g = torch.Generator().manual_seed(0)
    V, c = torch.randn(784, 2, generator=g), 0.5 * torch.randn(784, generator=g)
    top = torch.zeros(28, 28)
    top[:14] = 1 / 392
    with torch.no_grad():
        for layer in (vae.encoder.net[1], vae.encoder.net[3]):  # hidden units 2 and 3 of the encoder stay 0
            layer.weight.zero_()
            layer.bias.zero_()
        vae.encoder.net[1].weight[0] = top.flatten()
        vae.encoder.net[1].weight[1] = top.flip(0).flatten()
        vae.encoder.net[3].weight[:, :2] = torch.tensor([[2.0, 0.0], [0.0, -3.0], [0.0, 1.0], [-2.0, 0.0]])
        vae.encoder.net[3].bias.copy_(torch.tensor([-1.0, 1.0, -1.0, -0.5]))  # (mu0, mu1, logvar0, logvar1)
        hidden, out = vae.decoder.net[0], vae.decoder.net[2]
        hidden.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]]))
        hidden.bias.zero_()
        out.weight.copy_(torch.cat([V, -V], dim=1))
        out.bias.copy_(c)

    def q(x):
        """mu and sigma of q(z|x), from the formulas above (not from the networks)."""
        h0, h1 = x[:, 0, :14].mean((1, 2)), x[:, 0, 14:].mean((1, 2))
        mu = torch.stack([2 * h0 - 1, 1 - 3 * h1], dim=1)
        logvar = torch.stack([h1 - 1, -0.5 - 2 * h0], dim=1)
        return mu, (0.5 * logvar).exp()

    def p_x_given_z(z):
        return torch.distributions.Bernoulli(logits=z @ V.T + c)  # over the 784 pixels, flattened

    return vae, q, p_x_given_z


def inked_images(n, seed=0):
    """Binary images whose top and bottom halves each have their own random share of ink, so the hand-set
    encoder gives every image a different q(z|x)."""
    g = torch.Generator().manual_seed(seed)
    share = torch.rand(n, 1, 2, 1, generator=g).repeat_interleave(14, dim=2)  # (n, 1, 28, 1)
    return (torch.rand(n, 1, 28, 28, generator=g) < share).float()


def reference_elbo(x, z, q, p_x_given_z):
    """log p(x|z) - KL(q(z|x) || N(0, I)) per image, with torch.distributions."""
    mu, sigma = q(x)
    log_px = p_x_given_z(z).log_prob(x.flatten(1)).sum(1)
    kl = torch.distributions.kl_divergence(Normal(mu, sigma), Normal(0.0, 1.0)).sum(1)
    return log_px - kl, log_px, kl


def test_vae_elbo_matches_torch_distributions_for_a_hand_set_vae():
    vae, q, p_x_given_z = hand_set_vae()
    x = inked_images(6)
    mu, sigma = q(x)
    assert mu.std(0).min() > 0.1 and sigma.std(0).min() > 0.05  # the images give different q's
    eps = torch.randn(6, 2, generator=torch.Generator().manual_seed(1))
    value, log_px, kl = vae.elbo(x, eps=eps, return_parts=True)
    expected = reference_elbo(x, mu + sigma * eps, q, p_x_given_z)
    for ours, theirs in zip((value, log_px, kl), expected):
        torch.testing.assert_close(ours, theirs)


def test_vae_loss_is_minus_the_batch_mean_of_the_elbo_at_a_draw_from_q():
    """forward(x) must be -mean_b [log p(x_b|z_b) - KL_b] with z_b ~ q(z|x_b): the z it decoded is caught
    by a hook, the ELBO at that z recomputed with torch.distributions, and the noise it implies,
    (z - mu) / sigma, must look standard normal (mean 0 and variance 1 within 5 standard errors)."""
    vae, q, p_x_given_z = hand_set_vae()
    x = inked_images(2000, seed=3)
    decoded = []
    hook = vae.decoder.register_forward_hook(lambda module, inputs, output: decoded.append(inputs[0].detach()))
    try:
        loss = vae(x)
    finally:
        hook.remove()
    (z,) = decoded
    torch.testing.assert_close(loss, -reference_elbo(x, z, q, p_x_given_z)[0].mean())
    mu, sigma = q(x)
    eps = ((z - mu) / sigma).flatten()
    n = eps.numel()
    assert abs(eps.mean().item()) < 5 / math.sqrt(n)
    assert abs(eps.var().item() - 1) < 5 * math.sqrt(2 / n)


def test_vae_kl_part_is_the_kl_of_its_encoder_by_closed_form_and_by_monte_carlo():
    """The KL part against torch.distributions' closed form, and against E_q[log q(z|x) - log p(z)]
    from 100,000 draws of z per image, within 5 standard errors of that average."""
    vae, q, _ = hand_set_vae()
    x = inked_images(4, seed=5)
    _, _, kl = vae.elbo(x, return_parts=True)
    mu, sigma = q(x)
    posterior, prior = Normal(mu.double(), sigma.double()), Normal(0.0, 1.0)
    torch.testing.assert_close(kl, torch.distributions.kl_divergence(Normal(mu, sigma), prior).sum(1))
    torch.manual_seed(6)
    z = posterior.sample((100_000,))  # (M, B, 2)
    terms = (posterior.log_prob(z) - prior.log_prob(z)).sum(-1)  # (M, B)
    estimate, se = terms.mean(0), terms.std(0) / math.sqrt(terms.shape[0])
    assert (se < 0.01).all()
    assert ((kl.double() - estimate).abs() < 5 * se).all(), (kl, estimate, se)


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
    with pytest.raises(dataclasses.FrozenInstanceError):
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
    bce = F.binary_cross_entropy_with_logits(real, torch.ones(41)) + F.binary_cross_entropy_with_logits(
        fake, torch.zeros(41)
    )
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


def test_log_of_sigmoid_overflows_in_float32_where_generator_loss_does_not():
    """The numbers of the saturation chapter's exercise ex-saturation-mixed, in float32.

    torch.sigmoid(a) = 1 / (1 + e^-a) is 0 once e^-a overflows (-a > log FLT_MAX ≈ 88.72), although the exact value is
    still a representable subnormal; -log(sigmoid(a)) is then inf, while generator_loss's softplus(-a) stays ≈ -a with
    gradient -1.
    """
    assert abs(math.log(torch.finfo(torch.float32).max) - 88.72) < 0.01
    assert 2e-39 < torch.sigmoid(torch.tensor(-88.7)).item() < 4e-39  # below the smallest normal, 1.2e-38
    assert torch.finfo(torch.float32).tiny > 1e-38
    naive = torch.sigmoid(torch.tensor(-88.8))
    assert naive.item() == 0.0 and math.isinf(-torch.log(naive).item())
    # e^a / (1 + e^a) would stay above 0 down to the smallest subnormal, about e^-103.3
    assert torch.exp(torch.tensor(-103.0)).item() > 0.0
    assert torch.exp(torch.tensor(-104.0)).item() == 0.0
    a = torch.tensor([-89.0], requires_grad=True)
    loss = gm.generator_loss(a, kind="non_saturating")
    loss.backward()
    assert abs(loss.item() - 89.0) < 1e-4 and a.grad.item() == -1.0


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
    expected = torch.stack(
        [
            torch.stack(
                [sum(torch.exp(-(m[i, b] - m[j, b]).abs().sum()) for j in range(6) if j != i) for b in range(3)]
            )
            for i in range(6)
        ]
    )
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


# --- deeper MLPs ------------------------------------------------------------------------------------


def test_mlp_depth_sets_the_hidden_layers_and_their_parameter_count():
    """depth=2: 784-H-H-2D and D-H-H-784; the parameters counted by hand from the layer sizes."""
    H, D = 16, 3
    for depth in (1, 2, 3):
        vae = gm.VAE(latent_dim=D, hidden_dim=H, depth=depth)
        linears = [m for m in vae.encoder.modules() if isinstance(m, torch.nn.Linear)]
        assert len(linears) == depth + 1
        hidden = (depth - 1) * (H * H + H)
        encoder = (784 * H + H) + hidden + (H * 2 * D + 2 * D)
        decoder = (D * H + H) + hidden + (H * 784 + 784)
        assert sum(p.numel() for p in vae.parameters()) == encoder + decoder
        assert vae.elbo(torch.rand(5, 1, 28, 28)).shape == (5,)
        assert vae.sample(4).shape == (4, 1, 28, 28)


def test_depth_is_refused_for_conv_and_old_configs_without_it_rebuild():
    with pytest.raises(UserError, match="depth"):
        gm.VAE(latent_dim=4, arch="conv", depth=2)
    with pytest.raises(UserError, match="depth"):
        gm.VAE(latent_dim=4, depth=0)
    # a checkpoint written before `depth` existed has no such key: it rebuilds the one-hidden-layer MLP
    from genmodels.engine.checkpoints import build_model

    old = build_model("vae", {"latent_dim": 4, "arch": "mlp", "hidden_dim": 8, "channels": 32})
    assert old.config.depth == 1 and sum(isinstance(m, torch.nn.Linear) for m in old.modules()) == 4
