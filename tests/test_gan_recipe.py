"""The DCGAN recipe's parts, each against its definition: one-sided label smoothing, spectral
normalisation, the two time-scale update rule and the generator's weight average."""

from __future__ import annotations

import copy
import math
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import genmodels as gm
from genmodels.core import UserError


def test_smoothed_discriminator_loss_is_the_cross_entropy_with_target_t_and_is_lowest_at_d_equal_t():
    torch.manual_seed(0)
    real, fake = torch.randn(50), torch.randn(40)
    t = 0.9
    expected = F.binary_cross_entropy_with_logits(real, torch.full_like(real, t)) + F.binary_cross_entropy_with_logits(
        fake, torch.zeros_like(fake)
    )
    torch.testing.assert_close(gm.discriminator_loss(real, fake, real_label=t), expected)
    torch.testing.assert_close(gm.discriminator_loss(real, fake, real_label=1.0), gm.discriminator_loss(real, fake))
    # the real term, as a function of one shared logit, is smallest where sigmoid(logit) = t: logit(0.9) = log 9
    logits = torch.linspace(0.0, 6.0, 6001)
    terms = torch.stack([gm.discriminator_loss(a.reshape(1), torch.tensor([-50.0]), real_label=t) for a in logits])
    assert logits[terms.argmin()].item() == pytest.approx(math.log(9), abs=2e-3)
    for bad in (0.0, 1.5, -0.1):
        with pytest.raises(UserError, match="real_label"):
            gm.discriminator_loss(real, fake, real_label=bad)


def _matrix_norm(weight: torch.Tensor) -> float:
    return torch.linalg.matrix_norm(weight.detach().flatten(1), ord=2).item()


def test_spectral_norm_divides_each_discriminator_weight_by_its_largest_singular_value():
    torch.manual_seed(0)
    gan = gm.GAN(latent_dim=8, channels=8, spectral_norm=True)
    d = gan.discriminator
    assert not any(isinstance(m, nn.BatchNorm2d) for m in d.modules()), "spectral norm replaces D's batch norm"
    assert any(isinstance(m, nn.BatchNorm2d) for m in gan.generator.modules()), "the generator keeps its own"
    layers = [m for m in d.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert len(layers) == 3
    x = torch.rand(4, 1, 28, 28)
    for _ in range(200):  # each training-mode call runs one power iteration
        d(x)
    for layer in layers:
        raw = layer.parametrizations.weight.original
        assert _matrix_norm(raw) > 0.05  # the raw weights are not normalised...
        assert _matrix_norm(layer.weight) == pytest.approx(1.0, abs=1e-3)  # ...the weights the layer uses are
    plain = gm.GAN(latent_dim=8, channels=8)
    assert any(isinstance(m, nn.BatchNorm2d) for m in plain.discriminator.modules())


def test_the_generators_weight_average_is_the_exponential_moving_average_of_its_weights():
    torch.manual_seed(0)
    beta = 0.9
    gan = gm.GAN(latent_dim=4, arch="mlp", hidden_dim=8, ema=beta)
    assert gan.generator_ema is not None and gan.sampler is gan.generator_ema
    assert all(not p.requires_grad for p in gan.generator_ema.parameters())
    average = [p.detach().clone() for p in gan.generator.parameters()]  # starts at the initial weights
    opt = torch.optim.SGD(gan.generator.parameters(), lr=0.1)
    for n in range(100):
        loss = gan.generator(torch.randn(3, 4)).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        gan.update_ema()
        decay = min(beta, (1 + n) / (10 + n))  # warm-up 0.1, 0.18, ... reaches beta = 0.9 at n = 80
        average = [decay * a + (1 - decay) * p.detach() for a, p in zip(average, gan.generator.parameters())]
    for a, p in zip(average, gan.generator_ema.parameters()):
        torch.testing.assert_close(p, a)
    z = torch.randn(2, 4)
    torch.testing.assert_close(gan.sample(z=z), gan.generator_ema(z))
    assert not torch.allclose(gan.sample(z=z), gan.generator(z))
    without = gm.GAN(latent_dim=4, arch="mlp", hidden_dim=8)
    without.update_ema()  # a no-op
    assert without.generator_ema is None and without.sampler is without.generator
    for bad in (1.0, -0.5):
        with pytest.raises(UserError, match="ema"):
            gm.GAN(ema=bad)


def test_train_gan_gives_the_discriminator_its_own_learning_rate(mnist_subset):
    """TTUR: with lr_d a millionth of lr, Adam moves the discriminator's weights by about lr_d per step,
    the generator's by about lr; the same run with lr_d = lr moves both. (One Adam step with betas
    (0.5, 0.999) moves a weight by at most lr·(1 - 0.5)/sqrt(1 - 0.999) ≈ 16·lr; float32 rounding adds ~1e-8.)"""
    images = mnist_subset[0].images[:256]

    def moved(lr_d):
        torch.manual_seed(0)
        gan = gm.GAN(latent_dim=4, arch="mlp", hidden_dim=16)
        before = copy.deepcopy(gan)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            gm.train_gan(gan, images, num_epochs=1, batch_size=64, lr=1e-3, lr_d=lr_d, progress=False, device="cpu")

        def change(a, b):
            return max((p - q).abs().max().item() for p, q in zip(a.parameters(), b.parameters()))

        return change(gan.discriminator, before.discriminator), change(gan.generator, before.generator)

    d_slow, g_slow = moved(1e-9)
    d_same, g_same = moved(1e-3)
    assert d_slow < 1e-7 and g_slow > 1e-3  # 4 Adam steps of at most 16·lr_d each, and rounding
    assert d_same > 1e-3 and g_same > 1e-3
    with pytest.raises(ValueError, match="lr_d"):
        gm.GANTrainConfig(lr_d=0.0)
    with pytest.raises(UserError, match="label_smoothing"):
        gm.GANTrainConfig(label_smoothing=1.0)


def test_a_gan_with_the_recipes_parts_checkpoints_and_reloads(tmp_path, mnist_subset):
    """The averaged generator and the spectral-norm state travel in the checkpoint, and the reloaded
    model draws the same samples."""
    images = mnist_subset[0].images[:128]
    gan = gm.GAN(latent_dim=6, channels=8, spectral_norm=True, ema=0.99)
    path = tmp_path / "gan.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        gm.train_gan(
            gan, images, num_epochs=1, batch_size=64, label_smoothing=0.1, checkpoint=path, progress=False, device="cpu"
        )
    again = gm.load_checkpoint(path)
    assert again.config == gan.config
    z = torch.randn(3, 6)
    torch.testing.assert_close(again.sample(z=z), gan.sample(z=z))


@pytest.mark.parametrize("spectral_norm", [False, True])
def test_a_hidden_layer_before_the_logit_sits_where_infogan_puts_it(spectral_norm):
    """``discriminator_hidden`` puts Linear and LeakyReLU(0.2) (with batch norm unless spectral norm) between the
    convolutional features and the logit. Checked by recomputing the head by hand."""
    torch.manual_seed(0)
    c, width = 4, 10
    gan = gm.GAN(latent_dim=6, channels=c, discriminator_hidden=width, spectral_norm=spectral_norm)
    d = gan.discriminator.eval()
    x = torch.rand(5, 1, 28, 28)
    hidden, logit = [m for m in d.head if isinstance(m, nn.Linear)]
    assert (hidden.in_features, hidden.out_features, logit.in_features) == (2 * c * 49, width, width)
    norms = [m for m in d.head if isinstance(m, nn.BatchNorm1d)]
    assert len(norms) == (0 if spectral_norm else 1)
    a = hidden(d.features(x))
    if norms:
        a = F.batch_norm(a, norms[0].running_mean, norms[0].running_var, norms[0].weight, norms[0].bias, False)
    torch.testing.assert_close(logit(F.leaky_relu(a, 0.2)).squeeze(-1), d(x))
    if spectral_norm:
        assert hasattr(hidden, "parametrizations")
        assert _matrix_norm(hidden.weight) == pytest.approx(1.0, rel=0.2)  # normalised (one power iteration so far)


def test_without_a_hidden_layer_the_networks_are_the_dcgan_of_the_checkpoints_already_written():
    """Width 0 adds nothing: the parameter names and shapes are those of the networks the zoo's files hold."""
    plain = gm.GAN(latent_dim=8, channels=4, spectral_norm=True)
    zero = gm.GAN(latent_dim=8, channels=4, spectral_norm=True, discriminator_hidden=0)
    shapes = lambda m: {k: tuple(v.shape) for k, v in m.state_dict().items()}  # noqa: E731
    assert shapes(zero) == shapes(plain)
    assert shapes(plain)["discriminator.head.0.bias"] == (1,)  # one linear layer to the logit


def test_the_hidden_width_is_checked():
    for bad in (-1, 2.5, True):
        with pytest.raises(UserError, match="discriminator_hidden"):
            gm.GAN(discriminator_hidden=bad)
    with pytest.raises(UserError, match="hidden_dim"):
        gm.GAN(arch="mlp", discriminator_hidden=8)


def test_a_gan_with_a_hidden_layer_trains_checkpoints_and_reloads(tmp_path, mnist_subset):
    images = mnist_subset[0].images[:128]
    gan = gm.GAN(latent_dim=6, channels=4, discriminator_hidden=8, spectral_norm=True, ema=0.9)
    path = tmp_path / "gan.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        history = gm.train_gan(gan, images, num_epochs=1, batch_size=64, checkpoint=path, progress=False, device="cpu")
    assert all(math.isfinite(v) for v in history.steps["g_loss"])
    again = gm.load_checkpoint(path)
    assert again.config == gan.config and again.config.discriminator_hidden == 8
    z = torch.randn(3, 6)
    torch.testing.assert_close(again.sample(z=z), gan.sample(z=z))
    x = torch.rand(4, 1, 28, 28)
    torch.testing.assert_close(again.discriminator.eval()(x), gan.discriminator.eval()(x))
