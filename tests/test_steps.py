"""The plain training steps (genmodels.engine.steps) against independent computations, and the loops that
must call them unchanged."""

from __future__ import annotations

import inspect
import json
import warnings
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import genmodels as gm
from genmodels.engine import loops, steps

REPO_ROOT = Path(__file__).resolve().parents[1]


def _params(module: nn.Module) -> list:
    return [p.detach().clone() for p in module.parameters()]


def _elbo_parts_by_hand(vae, x, eps):
    """Independent of the package: log p(x|z) and KL(q(z|x) || p(z)) per image through torch.distributions,
    at the given noise."""
    mu, logvar = vae.encoder(x)
    q = torch.distributions.Normal(mu, (0.5 * logvar).exp())
    z = mu + q.scale * eps
    log_px = torch.distributions.Bernoulli(logits=vae.decoder(z)).log_prob(x).flatten(1).sum(1)
    kl = torch.distributions.kl_divergence(q, torch.distributions.Normal(0.0, 1.0)).sum(1)
    return log_px, kl


def test_vae_step_is_one_sgd_step_on_the_negative_mean_elbo():
    torch.manual_seed(0)
    vae = gm.VAE(latent_dim=3, hidden_dim=16)
    x = torch.rand(5, 1, 28, 28).bernoulli()
    eps = torch.randn(5, 3)
    before = _params(vae)
    log_px, kl = _elbo_parts_by_hand(vae, x, eps)  # independent: the negative ELBO at the same noise
    expected_loss = -(log_px - kl).mean()
    grads = torch.autograd.grad(expected_loss, list(vae.parameters()))

    lr = 0.1
    stats = steps.vae_step(
        lambda x, eps: vae.elbo(x, eps=eps, return_parts=True), x, eps, torch.optim.SGD(vae.parameters(), lr=lr)
    )
    torch.testing.assert_close(stats["loss"], expected_loss.detach(), rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(stats["recon"], -log_px.mean().detach(), rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(stats["kl"], kl.mean().detach(), rtol=1e-5, atol=1e-5)
    for p0, g, p1 in zip(before, grads, vae.parameters()):
        torch.testing.assert_close(p1.detach(), p0 - lr * g, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kl_weight", [0.0, 0.25, 4.0])
def test_vae_step_with_a_kl_weight_descends_recon_plus_weighted_kl_and_reports_the_elbo(kl_weight):
    torch.manual_seed(1)
    vae = gm.VAE(latent_dim=3, hidden_dim=16)
    x = torch.rand(6, 1, 28, 28).bernoulli()
    eps = torch.randn(6, 3)
    before = _params(vae)
    log_px, kl = _elbo_parts_by_hand(vae, x, eps)
    objective = (-log_px + kl_weight * kl).mean()  # the beta-VAE objective, written out
    grads = torch.autograd.grad(objective, list(vae.parameters()))

    lr = 0.05
    stats = steps.vae_step(
        lambda x, eps: vae.elbo(x, eps=eps, return_parts=True),
        x,
        eps,
        torch.optim.SGD(vae.parameters(), lr=lr),
        kl_weight=kl_weight,
    )
    torch.testing.assert_close(stats["loss"], -(log_px - kl).mean().detach(), rtol=1e-5, atol=1e-4)  # the ELBO
    for p0, g, p1 in zip(before, grads, vae.parameters()):
        torch.testing.assert_close(p1.detach(), p0 - lr * g, rtol=1e-5, atol=1e-6)


def test_kl_weight_ramps_linearly_over_the_warm_up_then_stays_at_beta():
    config = gm.TrainConfig(beta=2.0, kl_warmup_epochs=1.5)
    weights = [loops.kl_weight(config, step, steps_per_epoch=10) for step in range(20)]
    assert weights[:15] == pytest.approx([2.0 * (s + 1) / 15 for s in range(15)])
    assert weights[14:] == pytest.approx([2.0] * 6)
    assert loops.kl_weight(gm.TrainConfig(beta=0.5), 0, 10) == 0.5  # no warm-up: the weight from the first step


@pytest.mark.parametrize(
    "bad", [{"beta": -1.0}, {"beta": float("nan")}, {"beta": "1"}, {"kl_warmup_epochs": -2}, {"kl_warmup_epochs": None}]
)
def test_bad_kl_weights_are_rejected_with_the_setting_named(bad):
    with pytest.raises(gm.UserError, match=next(iter(bad))):
        gm.TrainConfig(**bad)


def test_a_gan_refuses_a_kl_weight():
    with pytest.raises(gm.UserError, match="a GAN has none"):
        gm.GANTrainConfig(beta=4.0)


def test_train_vae_passes_the_scheduled_kl_weight_to_the_step(monkeypatch, mnist_subset):
    seen = []
    original = loops.vae_step

    def wrapper(*args, **kwargs):
        seen.append(kwargs["kl_weight"])
        return original(*args, **kwargs)

    monkeypatch.setattr(loops, "vae_step", wrapper)
    images = mnist_subset[0].images[:256]
    gm.train_vae(
        gm.VAE(latent_dim=2, hidden_dim=32),
        images,
        num_epochs=2,
        batch_size=64,
        beta=3.0,
        kl_warmup_epochs=1,
        progress=False,
        device="cpu",
    )
    assert seen == pytest.approx([3.0 * s / 4 for s in (1, 2, 3, 4)] + [3.0] * 4)


class _Scale(nn.Module):
    """D(x) = a·mean(x) + b: a discriminator whose logits and gradients are easy to write down."""

    def __init__(self, a: float, b: float):
        super().__init__()
        self.a, self.b = nn.Parameter(torch.tensor(a)), nn.Parameter(torch.tensor(b))

    def forward(self, x):
        return self.a * x.flatten(1).mean(1) + self.b


@pytest.mark.parametrize("real_label", [1.0, 0.9])
@pytest.mark.parametrize("loss", gm.GENERATOR_LOSSES)
def test_gan_step_is_algorithm_1_with_binary_cross_entropy(loss, real_label):
    """k discriminator steps on detached fakes, then one generator step, each an exact SGD step on the
    binary cross-entropy written independently (F.binary_cross_entropy_with_logits, labels 1 and 0, or
    the smoothed real label 0.9 of one-sided label smoothing)."""
    torch.manual_seed(1)
    generator = nn.Linear(2, 4)  # "images" of 4 pixels
    discriminator = _Scale(0.7, -0.2)
    real = [torch.rand(6, 4), torch.rand(6, 4)]
    noises = [torch.randn(6, 2) for _ in range(3)]  # k = 2 discriminator steps, then the generator's
    lr = 0.05

    gen_copy, disc_copy = nn.Linear(2, 4), _Scale(0.7, -0.2)  # the same players, updated by hand
    gen_copy.load_state_dict(generator.state_dict())
    for x, z in zip(real, noises[:2]):
        fake = gen_copy(z).detach()
        r, f = disc_copy(x), disc_copy(fake)
        bce = F.binary_cross_entropy_with_logits(
            r, torch.full_like(r, real_label)
        ) + F.binary_cross_entropy_with_logits(f, torch.zeros_like(f))
        grads = torch.autograd.grad(bce, list(disc_copy.parameters()))
        with torch.no_grad():
            for p, g in zip(disc_copy.parameters(), grads):
                p -= lr * g
    d_real = torch.sigmoid(r).mean()
    f = disc_copy(gen_copy(noises[2]))
    if loss == "non_saturating":  # -log D(G(z)) = BCE with label 1
        g_loss = F.binary_cross_entropy_with_logits(f, torch.ones_like(f))
    else:  # log(1 - D(G(z))) = -BCE with label 0
        g_loss = -F.binary_cross_entropy_with_logits(f, torch.zeros_like(f))
    g_grads = torch.autograd.grad(g_loss, list(gen_copy.parameters()))
    expected_g = [p.detach() - lr * g for p, g in zip(gen_copy.parameters(), g_grads)]

    draws = iter(noises)
    stats = steps.gan_step(
        generator,
        discriminator,
        real,
        lambda: next(draws),
        torch.optim.SGD(discriminator.parameters(), lr=lr),
        torch.optim.SGD(generator.parameters(), lr=lr),
        loss=loss,
        real_label=real_label,
    )
    for p, q in zip(discriminator.parameters(), disc_copy.parameters()):
        torch.testing.assert_close(p.detach(), q.detach())  # the generator step did not move D
    for p, q in zip(generator.parameters(), expected_g):
        torch.testing.assert_close(p.detach(), q)
    torch.testing.assert_close(stats["d_loss"], bce.detach())
    torch.testing.assert_close(stats["g_loss"], g_loss.detach())
    torch.testing.assert_close(stats["d_real"], d_real.detach())
    torch.testing.assert_close(stats["d_fake"], torch.sigmoid(f).mean().detach())
    torch.testing.assert_close(stats["g_grad_norm"], torch.cat([g.flatten() for g in g_grads]).norm())


def _recording(monkeypatch, module, name):
    calls = []
    original = getattr(module, name)

    def wrapper(*args, **kwargs):
        out = original(*args, **kwargs)
        calls.append(out)
        return out

    monkeypatch.setattr(module, name, wrapper)
    return calls


def test_train_vae_calls_the_plain_step_once_per_batch(monkeypatch, mnist_subset):
    calls = _recording(monkeypatch, loops, "vae_step")
    images = mnist_subset[0].images[:256]
    history = gm.train_vae(
        gm.VAE(latent_dim=2, hidden_dim=32), images, num_epochs=2, batch_size=64, progress=False, device="cpu"
    )
    assert len(calls) == 2 * 4
    assert history.steps["loss"] == pytest.approx([float(c["loss"]) for c in calls])
    assert history.steps["kl"] == pytest.approx([float(c["kl"]) for c in calls])


def test_train_gan_calls_the_plain_step_and_the_chapters_losses(monkeypatch, mnist_subset):
    """The loop's discriminator and generator losses are the package's functions, called through
    gan_step: if the loop computed its own, the recorded calls and the history would disagree."""
    step_calls = _recording(monkeypatch, loops, "gan_step")
    d_calls = _recording(monkeypatch, steps, "discriminator_loss")
    g_calls = _recording(monkeypatch, steps, "generator_loss")
    images = mnist_subset[0].images[:320]  # 5 batches of 64: groups of 2, 2 and a last group of 1
    with warnings.catch_warnings():  # a discriminator that wins this tiny run outright is not the point here
        warnings.simplefilter("ignore", RuntimeWarning)
        history = gm.train_gan(
            gm.GAN(latent_dim=4, arch="mlp", hidden_dim=16),
            images,
            num_epochs=1,
            batch_size=64,
            d_steps=2,
            progress=False,
            device="cpu",
        )
    assert len(step_calls) == 3 and len(g_calls) == 3 and len(d_calls) == 5
    assert history.steps["g_loss"] == pytest.approx([float(g.detach()) for g in g_calls])
    last_d_of_each_step = [d_calls[1], d_calls[3], d_calls[4]]
    assert history.steps["d_loss"] == pytest.approx([float(d.detach()) for d in last_d_of_each_step])


@pytest.mark.parametrize(
    "notebook, step",
    [
        ("book/vae/vae-mnist.ipynb", "gm.vae_step"),
        ("book/gan/dcgan-mnist.ipynb", "gm.gan_step"),
        ("book/gan/saturation.ipynb", "gm.gan_step"),
    ],
)
def test_the_chapters_print_the_step_that_trains(notebook, step):
    cells = json.loads((REPO_ROOT / notebook).read_text(encoding="utf-8"))["cells"]
    printing = [c for c in cells if c["cell_type"] == "code" and f"getsource({step})" in "".join(c["source"])]
    assert printing, f"{notebook} does not print {step}"
    shown = "".join("".join(o.get("text", "")) for c in printing for o in c.get("outputs", []))
    assert inspect.getsource(eval(step, {"gm": gm})) in shown, f"{notebook}: the printed {step} is stale"
