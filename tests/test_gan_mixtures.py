"""Tests of genmodels.gan_mixtures: WGAN-GP's penalty against a hand computation, the minibatch
discriminator, a few training steps of every option, and mode coverage on the ring."""

import math

import pytest
import torch
from torch import nn

from genmodels import gan_mixtures
from genmodels.metrics.coverage import mode_coverage, score_mixture_runs


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
    run = gan_mixtures.train_mixture_gan(
        mixture, method, steps=3, batch_size=16, num_eval=100, hidden_dim=16, snapshot_steps=[0, 3]
    )
    assert run.samples.shape == (100, 2) and torch.isfinite(run.samples).all()
    assert len(run.steps["d_loss"]) == 3 and all(math.isfinite(v) for v in run.steps["g_loss"])
    assert [s["step"] for s in run.snapshots] == [0, 3]
    result = mode_coverage(run.samples, run.centres, run.std)
    assert result["num_modes"] == (8 if mixture == "ring" else 25)


def test_mixture_gan_is_seeded_and_rejects_unknown_options():
    a = gan_mixtures.train_mixture_gan(
        "ring", "non_saturating", steps=2, batch_size=8, num_eval=10, hidden_dim=8, seed=3
    )
    b = gan_mixtures.train_mixture_gan(
        "ring", "non_saturating", steps=2, batch_size=8, num_eval=10, hidden_dim=8, seed=3
    )
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


# --- mode coverage ------------------------------------------------------------------------------------


def test_mode_coverage_counts_constructed_samples_exactly():
    """100 points placed by hand around the ring's 8 centres (std 0.05, so "high quality" means within
    0.15): 30, 20 and 10 exactly on centres 0, 3 and 5; 2 at 2.9 std from centre 1 (high quality, but
    fewer than min_count = ceil(100 / (5 * 8)) = 3); 5 at 3.1 std from centre 6 (not high quality); 13 far
    out and 20 at the origin, 2 from every centre. So 3 modes covered, 62 % high quality."""
    _, centres = gan_mixtures.ring_of_gaussians(1)
    centres, std = centres.double(), 0.05
    outward = centres / centres.norm(dim=1, keepdim=True)
    samples = torch.cat(
        [
            centres[0].expand(30, 2),
            centres[3].expand(20, 2),
            centres[5].expand(10, 2),
            (centres[1] + 2.9 * std * outward[1]).expand(2, 2),
            (centres[6] - 3.1 * std * outward[6]).expand(5, 2),
            torch.tensor([10.0, 10.0]).expand(13, 2),
            torch.zeros(20, 2),
        ]
    )[torch.randperm(100, generator=torch.Generator().manual_seed(0))]  # the order must not matter
    result = mode_coverage(samples, centres, std)
    assert result["num_modes"] == 8 and result["min_count"] == 3
    assert result["counts"].tolist() == [30, 2, 0, 20, 0, 10, 0, 0]
    assert result["modes_covered"] == 3
    assert result["high_quality_share"] == pytest.approx(0.62)
    assert mode_coverage(samples, centres, std, min_count=2)["modes_covered"] == 4
    assert mode_coverage(samples, centres, std, threshold_std=3.2)["counts"].tolist() == [30, 2, 0, 20, 0, 10, 5, 0]


def ring_scores(samples, centres, std):
    """Distance from the ring's radius, and modes reached within 10 std (0.5, a third of the 1.53 between
    neighbouring centres): a looser judge than the 3 std of mode_coverage's default, for short runs."""
    return {
        "radius_error": (samples.norm(dim=1) - 2.0).abs().mean().item(),
        "modes_reached": mode_coverage(samples, centres, std, threshold_std=10)["modes_covered"],
    }


@pytest.fixture
def one_thread():
    """Train the small 2-D networks on one thread: on a busy two-core machine torch's default pool made the
    run below take 290 s instead of 11 s, and one thread is as fast as two for 128-wide layers."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.slow
def test_training_on_the_ring_reaches_the_radius_and_minibatch_discrimination_reaches_more_modes(one_thread):
    """1,000 generator steps on the ring (8 modes, std 0.05, radius 2). The untrained generator puts its
    samples near the origin, about 1.9 from the ring, at no mode. After training, the non-saturating GAN's
    samples have moved toward the ring but gather at one mode or none; with minibatch discrimination they
    lie on the ring and reach most modes. Measured over seeds 0 to 9: mean distance from the radius 0.31 to
    1.08 (non-saturating) and 0.04 to 0.12 (minibatch); modes reached within 10 std 0 or 1, and 8 for every
    seed with minibatch discrimination."""
    runs = {
        method: gan_mixtures.train_mixture_gan(
            "ring", method, steps=1000, std=0.05, size=2.0, num_eval=2000, snapshot_steps=[0], seed=0
        )
        for method in ("non_saturating", "minibatch")
    }
    for run in runs.values():
        untrained = ring_scores(run.snapshots[0]["samples"], run.centres, run.std)
        assert untrained["radius_error"] > 1.5 and untrained["modes_reached"] == 0, untrained
    plain = ring_scores(runs["non_saturating"].samples, runs["non_saturating"].centres, 0.05)
    spread = ring_scores(runs["minibatch"].samples, runs["minibatch"].centres, 0.05)
    assert plain["radius_error"] < 1.5 and spread["radius_error"] < 0.25, (plain, spread)
    assert spread["modes_reached"] >= 7 and spread["modes_reached"] >= plain["modes_reached"] + 5, (plain, spread)


# --- several seeds at once --------------------------------------------------------------------------

SMALL = dict(batch_size=16, hidden_dim=16, latent_dim=4, num_eval=50, minibatch_kernels=3, minibatch_kernel_dim=2)


@pytest.mark.parametrize("method", gan_mixtures.MIXTURE_METHODS)
@pytest.mark.parametrize("mixture", ["ring", "grid"])
def test_stacked_training_equals_one_seed_training(mixture, method, one_thread):
    """Seeds 0 and 3 trained together (weights stacked, batched products) end where train_mixture_gan,
    written with nn.Modules and trained one seed at a time, ends: same losses at every step and the same
    samples, up to float rounding (which a GAN amplifies, hence few steps)."""
    steps = 6
    runs = gan_mixtures.train_mixture_gans(mixture, method, seeds=(0, 3), steps=steps, **SMALL)
    assert runs.samples.shape == (2, 50, 2) and runs.steps["d_loss"].shape == (steps, 2)
    for i, seed in enumerate((0, 3)):
        one = gan_mixtures.train_mixture_gan(mixture, method, steps=steps, seed=seed, **SMALL)
        torch.testing.assert_close(runs.steps["d_loss"][:, i], torch.tensor(one.steps["d_loss"]), rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(runs.steps["g_loss"][:, i], torch.tensor(one.steps["g_loss"]), rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(runs.samples[i], one.samples, rtol=1e-4, atol=1e-4)
        assert not torch.allclose(runs.samples[i], runs.samples[1 - i])  # and the seeds differ


@pytest.mark.parametrize("method", gan_mixtures.STACKED_METHODS)
def test_stacked_seeds_do_not_interact(method, one_thread):
    """A seed trained beside two others ends as it does alone (the unrolled GAN and PacGAN included)."""
    together = gan_mixtures.train_mixture_gans("ring", method, seeds=(0, 1, 2), steps=4, unroll_steps=2, **SMALL)
    alone = gan_mixtures.train_mixture_gans("ring", method, seeds=(1,), steps=4, unroll_steps=2, **SMALL)
    torch.testing.assert_close(together.samples[1], alone.samples[0], rtol=1e-4, atol=1e-4)
    assert torch.isfinite(together.steps["g_loss"]).all()


def test_unrolled_and_packed_gans_reduce_to_the_plain_one():
    """Zero unrolling steps is the non-saturating GAN; PacGAN with packs of one is too (exactly)."""
    plain = gan_mixtures.train_mixture_gans("grid", "non_saturating", seeds=(0, 1), steps=5, **SMALL)
    unrolled = gan_mixtures.train_mixture_gans("grid", "unrolled", seeds=(0, 1), steps=5, unroll_steps=0, **SMALL)
    packed = gan_mixtures.train_mixture_gans("grid", "pacgan", seeds=(0, 1), steps=5, pack=1, **SMALL)
    assert torch.equal(plain.samples, unrolled.samples) and torch.equal(plain.samples, packed.samples)
    different = gan_mixtures.train_mixture_gans("grid", "unrolled", seeds=(0, 1), steps=5, unroll_steps=1, **SMALL)
    assert not torch.allclose(plain.samples, different.samples)


def test_adam_lookahead_is_the_optimizer_step_and_differentiable():
    """The look-ahead step equals torch.optim.Adam's step from the same state, and its derivative with respect
    to the gradient is the one of the formula: from a fresh state the step is lr * g / (|g| + eps), and with
    the normaliser held constant its derivative in g is -lr / (|g| + eps)."""
    torch.manual_seed(0)
    p = torch.randn(5, requires_grad=True)
    opt = torch.optim.Adam([p], lr=0.01, betas=(0.5, 0.999))
    for _ in range(3):  # build some state
        p.grad = torch.randn(5)
        opt.step()
    g = torch.randn(5)
    st = opt.state[p]
    (ahead,), _ = gan_mixtures._adam_lookahead(
        [p.detach()], [g], opt, 0.01, [(st["exp_avg"], st["exp_avg_sq"], float(st["step"]))]
    )
    p.grad = g.clone()
    opt.step()
    torch.testing.assert_close(ahead, p.detach())

    g = torch.tensor([0.3, -2.0], requires_grad=True)
    fresh = torch.optim.Adam([torch.zeros(2, requires_grad=True)], lr=0.1, betas=(0.5, 0.999))
    (new,), _ = gan_mixtures._adam_lookahead([torch.zeros(2)], [g], fresh, 0.1, [(torch.zeros(2), torch.zeros(2), 0.0)])
    eps = fresh.defaults["eps"]
    torch.testing.assert_close(new, -0.1 * g.detach() / (g.detach().abs() + eps))
    (dg,) = torch.autograd.grad(new.sum(), g)
    torch.testing.assert_close(dg, -0.1 / (g.detach().abs() + eps))


def test_stacked_training_rejects_bad_options():
    with pytest.raises(ValueError, match="method"):
        gan_mixtures.train_mixture_gans("ring", "vae", steps=1)
    with pytest.raises(ValueError, match="seeds"):
        gan_mixtures.train_mixture_gans("ring", seeds=(1, 1), steps=1)
    with pytest.raises(ValueError, match="decay_from"):
        gan_mixtures.train_mixture_gans("ring", decay_from=1.5, steps=1)


# ---- the mode table: scoring, verdicts and the process pool ----


def _runs_with(samples: torch.Tensor, mixture: str = "ring") -> gan_mixtures.MixtureRuns:
    _, centres = gan_mixtures.mixture_sampler(mixture)
    std = gan_mixtures.MIXTURE_SETTINGS[mixture]["std"]
    S = samples.shape[0]
    return gan_mixtures.MixtureRuns(
        "non_saturating", mixture, tuple(range(S)), samples, centres, std, {}, [], [], [], 0.0
    )


def test_score_mixture_runs_verdicts_against_constructed_samples():
    sample, centres = gan_mixtures.mixture_sampler("ring")
    g = torch.Generator().manual_seed(0)
    true = sample(2500, generator=g)
    one_mode = centres[3] + 0.01 * torch.randn(2500, 2, generator=g)  # all samples on mode 3
    between = 0.02 * torch.randn(2500, 2, generator=g)  # the ring's centre: 1 = 100 sigma from every mode
    scores = score_mixture_runs(_runs_with(torch.stack([true, one_mode, between])))
    # true data: every mode, the Rayleigh ceiling 1 - exp(-9/2), and a reverse KL near 0
    assert scores[0]["modes"] == 8 and scores[0]["verdict"] == "all modes"
    assert scores[0]["high_quality"] == pytest.approx(100 * (1 - math.exp(-4.5)), abs=1.0)
    assert 0 <= scores[0]["reverse_kl"] < 0.02
    # one mode with high quality: collapse, and the reverse KL of a point mass is log K
    assert scores[1]["modes"] == 1 and scores[1]["verdict"] == "collapsed"
    assert scores[1]["reverse_kl"] == pytest.approx(math.log(8))
    # nothing near any mode: not converged, no histogram to compare
    assert scores[2]["modes"] == 0 and scores[2]["high_quality"] == 0.0 and scores[2]["verdict"] == "not converged"
    assert math.isnan(scores[2]["reverse_kl"])


def test_score_mixture_runs_reverse_kl_by_hand():
    # two of eight ring modes, 3:1: KL(p || u) = sum p log(8 p)
    _, centres = gan_mixtures.mixture_sampler("ring")
    samples = torch.cat([centres[0].expand(300, 2), centres[5].expand(100, 2)]).unsqueeze(0)
    (score,) = score_mixture_runs(_runs_with(samples))
    expected = 0.75 * math.log(8 * 0.75) + 0.25 * math.log(8 * 0.25)
    assert score["modes"] == 2 and score["reverse_kl"] == pytest.approx(expected)
    # a mode with a single high-quality sample counts with PacGAN's min_count=1, not with a stricter one
    samples = torch.cat([centres[0].expand(399, 2), centres[5].expand(1, 2)]).unsqueeze(0)
    assert score_mixture_runs(_runs_with(samples))[0]["modes"] == 2
    assert score_mixture_runs(_runs_with(samples), min_count=20)[0]["modes"] == 1


def test_train_mixture_table_in_processes_equals_one_process():
    jobs = [
        dict(mixture="ring", method="non_saturating", seeds=(0, 1), steps=6, hidden_dim=16, num_eval=50),
        dict(mixture="grid", method="pacgan", seeds=(2,), steps=4, hidden_dim=16, num_eval=50, pack=3),
    ]
    inline = gan_mixtures.train_mixture_table(jobs, processes=1)
    pooled = gan_mixtures.train_mixture_table(jobs, processes=2)
    for a, b, job in zip(inline, pooled, jobs):
        assert (a.mixture, a.method, a.seeds) == (job["mixture"], job["method"], tuple(job["seeds"]))
        assert torch.equal(a.samples, b.samples)  # the order of jobs is kept, and a job's result is its own
    # and each job is what train_mixture_gans gives alone
    alone = gan_mixtures.train_mixture_gans("grid", "pacgan", seeds=(2,), steps=4, hidden_dim=16, num_eval=50, pack=3)
    assert torch.equal(alone.samples, inline[1].samples)


def test_train_mixture_table_rejects_incomplete_jobs():
    with pytest.raises(gan_mixtures.UserError, match="mixture.*method"):
        gan_mixtures.train_mixture_table([dict(mixture="ring")])


def test_score_counts_by_hand_and_rejects_bad_counts():
    from genmodels.metrics import score_counts

    counts = torch.tensor([[300, 0, 0, 0, 0, 100, 0, 0], [50] * 8, [0] * 8])
    a, b, c = score_counts(counts, 800)
    assert (a["modes"], a["high_quality"], a["verdict"]) == (2, 50.0, "collapsed")
    assert a["reverse_kl"] == pytest.approx(0.75 * math.log(8 * 0.75) + 0.25 * math.log(8 * 0.25))
    assert (b["modes"], b["high_quality"], b["verdict"]) == (8, 50.0, "all modes") and b["reverse_kl"] == pytest.approx(
        0
    )
    assert c["verdict"] == "not converged" and math.isnan(c["reverse_kl"])
    with pytest.raises(gan_mixtures.UserError, match="between 0 and num_samples"):
        score_counts(counts, 100)
    with pytest.raises(gan_mixtures.UserError, match="integer counts"):
        score_counts(counts.float(), 800)


def test_mode_table_jobs_follow_the_recipe():
    jobs = gan_mixtures.mode_table_jobs(100, [0, 1])
    assert len(jobs) == 2 * len(gan_mixtures.MODE_TABLE_METHODS)
    by_key = {(j["mixture"], j["method"]): j for j in jobs}
    assert by_key["ring", "non_saturating"]["steps"] == 200 and by_key["ring", "minibatch"]["steps"] == 100
    assert by_key["grid", "wgan_gp"]["steps"] == 200 and by_key["ring", "wgan_gp"]["lr"] == 1e-3
    for job in jobs:
        assert "step_factor" not in job and len(job["snapshot_steps"]) == 21
        assert job["snapshot_steps"][0] == 0 and job["snapshot_steps"][-1] == job["steps"]
