"""Tests of genmodels.gan_mixtures: WGAN-GP's penalty against a hand computation, the minibatch
discriminator, a few training steps of every option, and mode coverage on the ring."""
import math

import pytest
import torch
from torch import nn

from genmodels import gan_mixtures
from genmodels.metrics.coverage import mode_coverage


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
