"""The VQ-VAE: the quantizer against brute force and calculus, the codebook updates against their equations,
the priors against counting and enumeration, and training, checkpoints and resume."""

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

import genmodels as gm
from genmodels.core import UserError
from genmodels.engine import batches
from genmodels.engine.loops import eval_images
from genmodels.vqvae import EMA_EPSILON, VectorQuantizer, perplexity


def images(n=8, seed=0):
    return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(seed)).round()


def same_state(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def quantizer(num_codes=6, code_dim=3, seed=0, **kw):
    torch.manual_seed(seed)
    return VectorQuantizer(num_codes, code_dim, **kw)


def grid(b=4, d=3, h=2, w=3, seed=1):
    return torch.randn(b, d, h, w, generator=torch.Generator().manual_seed(seed))


def brute_force_nearest(z_e, codebook):
    """For every position, the code with the smallest squared distance, by looping over the codes (float64)."""
    z = z_e.permute(0, 2, 3, 1).double()  # (B, H, W, D)
    distances = torch.stack([((z - e.double()) ** 2).sum(-1) for e in codebook], dim=-1)  # (B, H, W, K)
    return distances.argmin(-1), distances


# --- the quantizer ----------------------------------------------------------------------------------


@pytest.mark.parametrize("update", ["loss", "ema"])
def test_quantization_picks_the_nearest_code_by_brute_force(update):
    vq = quantizer(num_codes=50, code_dim=4, update=update).eval()
    z_e = grid(b=16, d=4, h=7, w=7)
    q = vq(z_e)
    expected, distances = brute_force_nearest(z_e, vq.codebook.detach())
    assert q.indices.shape == (16, 7, 7) and q.indices.dtype == torch.int64
    assert torch.equal(q.indices, expected)
    assert len(q.indices.unique()) > 20  # a real choice among many codes, not one winner
    torch.testing.assert_close(q.z_q, vq.codebook.detach()[expected].permute(0, 3, 1, 2))  # the values are the codes
    # the losses are the squared distances to the chosen codes, summed per image, averaged over the batch
    chosen = distances.min(-1).values.sum((1, 2)).mean().float()
    torch.testing.assert_close(q.codebook_loss, chosen)
    torch.testing.assert_close(q.commitment_loss, 0.25 * chosen)


def test_straight_through_gradient_is_the_decoder_gradient_at_the_codes():
    """d loss / d z_e, through the quantizer, equals d loss / d z_q evaluated at z_q (computed separately)."""
    vq = quantizer(num_codes=8, code_dim=3).eval()
    torch.manual_seed(2)
    decoder = torch.nn.Sequential(torch.nn.Conv2d(3, 5, 3, padding=1), torch.nn.Tanh(), torch.nn.Conv2d(5, 1, 1))
    z_e = grid(d=3).requires_grad_()
    q = vq(z_e)
    (decoder(q.z_q) ** 2).sum().backward()  # any loss of the decoder's output; the VQ losses left out

    indices, _ = brute_force_nearest(z_e.detach(), vq.codebook)
    z_q = vq.codebook[indices].permute(0, 3, 1, 2).clone().requires_grad_()  # the codes, as a leaf
    (decoder(z_q) ** 2).sum().backward()
    assert z_q.grad.abs().sum() > 0
    torch.testing.assert_close(z_e.grad, z_q.grad)
    # and the gradient is not the one at z_e (the two points differ, so the estimator is a real choice)
    z_at_e = z_e.detach().clone().requires_grad_()
    (decoder(z_at_e) ** 2).sum().backward()
    assert not torch.allclose(z_at_e.grad, z_q.grad, atol=1e-4)


def test_commitment_trains_only_the_encoder_and_the_codebook_loss_only_the_codebook():
    torch.manual_seed(0)
    model = gm.VQVAE(num_codes=8, code_dim=3, channels=4, codebook_update="loss", beta=0.5)
    x = images(4)

    def grads(part):
        model.zero_grad(set_to_none=True)
        getattr(model.quantizer(model.encoder(x)), part).backward()
        enc = [p.grad for p in model.encoder.parameters()]
        return enc, model.codebook.grad

    enc, book = grads("commitment_loss")
    assert book is None or not book.any()
    assert all(g is not None for g in enc) and sum(g.abs().sum() for g in enc) > 0
    enc, book = grads("codebook_loss")
    assert all(g is None for g in enc)
    assert book is not None and book.abs().sum() > 0
    # and the commitment gradient with respect to z_e is 2 beta (z_e - e) / B
    model.eval()
    z_e = model.encoder(x).detach().requires_grad_()
    q = model.quantizer(z_e)
    q.commitment_loss.backward()
    e = model.codebook.detach()[q.indices].permute(0, 3, 1, 2)
    torch.testing.assert_close(z_e.grad, 2 * 0.5 * (z_e.detach() - e) / 4)


def test_one_sgd_step_on_the_codebook_loss_moves_each_used_code_to_the_mean_of_its_encodings():
    """d/de_k of (1/B) sum ||sg[z] - e_k||^2 is (2 n_k / B)(e_k - mean_k), so a step of B / (2 n_k) lands on mean_k."""
    vq = quantizer(num_codes=5, code_dim=2, update="loss", restart=False)
    z_e = grid(b=6, d=2, h=3, w=3)
    q = vq(z_e)
    q.codebook_loss.backward()
    flat = z_e.permute(0, 2, 3, 1).reshape(-1, 2)
    idx = q.indices.flatten()
    used = idx.unique()
    assert len(used) >= 3
    with torch.no_grad():
        for k in range(5):
            members = flat[idx == k]
            if len(members) == 0:
                assert not vq.codebook.grad[k].any()  # no encoding, no gradient
                continue
            stepped = vq.codebook[k] - 6 / (2 * len(members)) * vq.codebook.grad[k]
            torch.testing.assert_close(stepped, members.mean(0))


def test_ema_update_with_decay_zero_sets_the_used_codes_to_their_means():
    vq = quantizer(num_codes=5, code_dim=2, update="ema", decay=0.0, restart=False)
    before = vq.codebook.clone()
    z_e = grid(b=6, d=2, h=3, w=3)
    q = vq(z_e)  # training mode: the update happens after the assignment
    flat = z_e.permute(0, 2, 3, 1).reshape(-1, 2)
    idx = q.indices.flatten()
    torch.testing.assert_close(q.z_q, before[q.indices].permute(0, 3, 1, 2))  # decoded with the old codebook
    for k in idx.unique():
        torch.testing.assert_close(vq.codebook[k], flat[idx == k].mean(0), rtol=1e-4, atol=1e-5)


def test_ema_update_follows_its_equation_with_laplace_smoothing():
    K, decay = 5, 0.9
    vq = quantizer(num_codes=K, code_dim=2, update="ema", decay=decay, restart=False)
    e0 = vq.codebook.clone()
    z_e = grid(b=3, d=2, h=2, w=2)
    idx = vq(z_e).indices.flatten()
    flat = z_e.permute(0, 2, 3, 1).reshape(-1, 2)
    n = torch.stack([(idx == k).sum() for k in range(K)]).float()
    s = torch.stack([flat[idx == k].sum(0) for k in range(K)])
    N = decay * 1.0 + (1 - decay) * n  # the sizes start at 1, the sums at the codes
    S = decay * e0 + (1 - decay) * s
    smoothed = (N + EMA_EPSILON) / (N.sum() + K * EMA_EPSILON) * N.sum()
    torch.testing.assert_close(vq.cluster_size, N)
    torch.testing.assert_close(vq.codebook, S / smoothed[:, None])
    unused = n == 0
    assert unused.any()
    torch.testing.assert_close(vq.codebook[unused], e0[unused], rtol=1e-4, atol=1e-6)  # idle codes stay put


def test_the_ema_codebook_is_not_a_parameter_and_eval_mode_changes_nothing():
    model = gm.VQVAE(num_codes=8, code_dim=3, channels=4, codebook_update="ema")
    assert all(p is not model.codebook for p in model.parameters())
    learned = gm.VQVAE(num_codes=8, code_dim=3, channels=4, codebook_update="loss")
    assert any(p is learned.codebook for p in learned.parameters())
    model.eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model(images(4))
    model.train()
    model.encode(images(4))  # encode never updates, in either mode
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    model(images(4))
    assert not torch.equal(before["quantizer.codebook"], model.codebook)


def test_perplexity_is_k_for_uniform_usage_and_one_for_a_single_code():
    assert math.isclose(float(perplexity(torch.arange(12).repeat(5), 12)), 12, rel_tol=1e-6)
    assert math.isclose(float(perplexity(torch.full((7, 7), 3), 12)), 1.0, rel_tol=1e-6)
    usage = torch.tensor([0, 0, 0, 1])  # shares 3/4, 1/4
    entropy = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    assert math.isclose(float(perplexity(usage, 4)), math.exp(entropy), rel_tol=1e-6)


@pytest.mark.parametrize("update", ["loss", "ema"])
def test_dead_code_restart_revives_unused_codes(update):
    """Codes far from every encoding are never chosen; after restart_after steps they sit on encodings."""

    def far_codebook(vq):
        with torch.no_grad():
            vq.codebook[1:] = 100.0 + torch.arange(7.0)[:, None]  # only code 0 is near the data
            if update == "ema":
                vq.cluster_sum.copy_(vq.codebook)

    vq = quantizer(num_codes=8, code_dim=3, update=update, restart=True, restart_after=2)
    far_codebook(vq)
    z_e = grid(b=4, d=3, h=3, w=3)
    flat = z_e.permute(0, 2, 3, 1).reshape(-1, 3)
    assert float(vq(z_e).perplexity) == pytest.approx(1.0)
    assert (vq.steps_unused[1:] == 1).all()
    vq(z_e)  # second step without use: restarted
    assert (vq.steps_unused == 0).all()
    for code in vq.codebook[1:].detach():
        assert (flat - code).abs().sum(1).min() < 1e-6  # each revived code is one of the batch's encodings
    assert float(vq(z_e).perplexity) > 2.0

    still = quantizer(num_codes=8, code_dim=3, update=update, restart=False, restart_after=2)
    far_codebook(still)
    for _ in range(3):
        assert float(still(z_e).perplexity) == pytest.approx(1.0)
    assert (still.steps_unused[1:] == 3).all() and (still.codebook[1:] > 99).all()


# --- the model --------------------------------------------------------------------------------------


def test_shapes_losses_and_the_reconstruction_term_against_the_bce():
    torch.manual_seed(0)
    model = gm.VQVAE(num_codes=16, code_dim=4, channels=8).eval()
    x = images(5)
    indices = model.encode(x)
    assert indices.shape == (5, 7, 7) and indices.dtype == torch.int64
    assert torch.equal(model.encode(x.reshape(5, 784)), indices)
    assert torch.equal(model.encode((x * 255).to(torch.uint8)), indices)
    logits = model.decode_indices(indices)
    assert logits.shape == (5, 1, 28, 28)
    total, recon, codebook, commitment, ppl = model(x)
    torch.testing.assert_close(recon, F.binary_cross_entropy_with_logits(logits, x, reduction="sum") / 5)
    torch.testing.assert_close(total, recon + codebook + commitment)
    torch.testing.assert_close(commitment, 0.25 * codebook)
    assert 1 <= float(ppl) <= 16
    r = model.reconstruct(x)
    assert r.shape == (5, 1, 28, 28) and 0 <= r.min() and r.max() <= 1
    torch.testing.assert_close(r, torch.sigmoid(logits))


def test_bad_configs_raise_clear_errors():
    for bad in (
        dict(num_codes=1),
        dict(num_codes=2.5),
        dict(code_dim=0),
        dict(channels=-1),
        dict(beta=-0.1),
        dict(codebook_update="kmeans"),
        dict(ema_decay=1.0),
        dict(ema_decay=-0.1),
        dict(restart_after=0),
        dict(restart_dead_codes="yes"),
    ):
        with pytest.raises(UserError):
            gm.VQVAEConfig(**bad)
    with pytest.raises(UserError, match="codebook_update must be one of"):
        gm.VQVAE(codebook_update="kmeans")
    with pytest.raises(UserError, match="VQVAEConfig.beta"):
        gm.train_vqvae(gm.VQVAE(), torch.zeros(8, 28, 28, dtype=torch.uint8), beta=0.5, progress=False)
    with pytest.raises(UserError, match="fit it to this model's codes"):
        gm.VQVAE(num_codes=16).sample(2, prior=gm.IndependentCodePrior(num_codes=8))
    prior = gm.AutoregressiveCodePrior(num_codes=4)
    with pytest.raises(UserError, match="must lie in"):
        prior.log_prob(torch.full((2, 7, 7), 4))
    with pytest.raises(UserError, match="shaped"):
        prior.log_prob(torch.zeros(2, 6, 6, dtype=torch.long))
    with pytest.raises(UserError, match="integers"):
        prior.log_prob(torch.zeros(2, 7, 7))
    with pytest.raises(UserError, match="fit_independent_prior"):
        gm.train_code_prior(gm.IndependentCodePrior(num_codes=4), torch.zeros(3, 7, 7, dtype=torch.long))
    with pytest.raises(AttributeError):
        gm.VQVAEConfig().beta = 1.0  # frozen


# --- the priors -------------------------------------------------------------------------------------


def test_the_independent_prior_is_the_smoothed_counts():
    codes = torch.tensor([[[0, 1]], [[0, 2]], [[0, 1]]])  # 3 grids of 1 x 2, K = 3
    prior = gm.fit_independent_prior(codes, num_codes=3)
    expected = torch.tensor([[4, 1, 1], [1, 3, 2]]) / 6.0  # (count + 1) / (3 + 3)
    torch.testing.assert_close(prior.log_probs.exp(), expected)
    by_hand = math.log(4 / 6) + math.log(2 / 6)
    assert math.isclose(float(prior.log_prob(torch.tensor([[[0, 2]]]))), by_hand, rel_tol=1e-6)
    half = gm.fit_independent_prior(codes, num_codes=3, smoothing=0.5)
    torch.testing.assert_close(half.log_probs.exp(), torch.tensor([[3.5, 0.5, 0.5], [0.5, 2.5, 1.5]]) / 4.5)
    # the samples follow it, position by position
    draws = prior.sample(30000, generator=torch.Generator().manual_seed(0))
    assert draws.shape == (30000, 1, 2)
    freq = torch.stack([F.one_hot(draws[:, 0, j], 3).float().mean(0) for j in range(2)])
    torch.testing.assert_close(freq, expected, atol=0.015, rtol=0)


def test_an_unfitted_independent_prior_is_uniform():
    prior = gm.IndependentCodePrior(num_codes=10)
    codes = torch.randint(10, (3, 7, 7))
    torch.testing.assert_close(prior.log_prob(codes), torch.full((3,), -49 * math.log(10)))


def all_grids(K, h, w):
    return torch.tensor(list(itertools.product(range(K), repeat=h * w))).reshape(-1, h, w)


def test_the_autoregressive_prior_sums_to_one_over_all_grids():
    torch.manual_seed(0)
    config = gm.AutoregressivePriorConfig(num_codes=3, height=2, width=2, embed_dim=5, hidden_dim=7, num_layers=2)
    prior = gm.AutoregressiveCodePrior(config=config)
    log_p = prior.log_prob(all_grids(3, 2, 2)).detach()  # all 81 grids
    assert math.isclose(float(torch.logsumexp(log_p, 0)), 0.0, abs_tol=1e-5)
    assert float(log_p.max() - log_p.min()) > 0.1  # not the uniform distribution


def test_the_autoregressive_prior_samples_follow_its_log_prob():
    torch.manual_seed(1)
    config = gm.AutoregressivePriorConfig(num_codes=2, height=1, width=3, embed_dim=4, hidden_dim=8)
    prior = gm.AutoregressiveCodePrior(config=config)
    with torch.no_grad():
        prior.head.weight.mul_(4)  # a distribution far from uniform
    grids = all_grids(2, 1, 3)
    p = prior.log_prob(grids).exp().detach()
    n = 40000
    draws = prior.sample(n, generator=torch.Generator().manual_seed(0))
    assert draws.shape == (n, 1, 3)
    code = (draws.reshape(n, 3) * torch.tensor([4, 2, 1])).sum(1)  # the grid's row in all_grids
    freq = torch.bincount(code, minlength=8).float() / n
    se = (p * (1 - p) / n).sqrt()
    assert ((freq - p).abs() < 5 * se + 1e-3).all(), (freq, p)
    assert p.max() > 1.5 / 8  # far from uniform


# --- the engine -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def subset(mnist_subset):
    train, test = mnist_subset
    return train.images, test.images


@pytest.mark.slow
def test_a_trained_vqvae_beats_the_independent_pixel_baseline_and_its_priors_learn(subset):
    """Independent Bernoulli pixels with the training frequencies cost about 209 nats per test digit; a
    VQ-VAE trained for 315 steps reconstructs far below that. Its codes are then modelled: the uniform prior
    costs 49 log K, counting per position less, the autoregressive prior less still."""
    train, test = subset
    x_test = eval_images(test, "dynamic")
    p = (train.float() / 255).mean(0).clamp(1e-4, 1 - 1e-4).reshape(1, 1, 28, 28)
    baseline = -(x_test * p.log() + (1 - x_test) * (1 - p).log()).sum((1, 2, 3)).mean().item()

    gm.seed_everything(0)
    model = gm.VQVAE(num_codes=32, code_dim=8, channels=16, restart_after=20)
    before = gm.evaluate_vqvae(model, test)
    h = gm.train_vqvae(model, train, test_data=test, num_epochs=5, batch_size=64, progress=False)
    after = gm.evaluate_vqvae(model, test)
    assert len(h.steps["loss"]) == 5 * 63
    assert before["recon"] > baseline + 100
    assert after["recon"] < baseline - 80, (after, baseline)
    assert math.isclose(after["recon"], h.epochs["test_recon"][-1], rel_tol=1e-6)
    assert after["used_codes"] + after["dead_codes"] == 32 and after["perplexity"] > 10
    assert len(h.samples) == 5 and h.samples[0].shape == (64, 1, 28, 28) and h.samples[0].dtype == torch.uint8

    train_codes, test_codes = gm.vqvae_codes(model, train), gm.vqvae_codes(model, test)
    assert train_codes.shape == (4000, 7, 7)
    independent = gm.fit_independent_prior(train_codes, num_codes=32)
    gm.seed_everything(0)
    autoregressive = gm.AutoregressiveCodePrior(
        config=gm.AutoregressivePriorConfig(num_codes=32, embed_dim=32, hidden_dim=64)
    )
    hp = gm.train_code_prior(autoregressive, train_codes, test_codes=test_codes, num_epochs=5, progress=False)
    uniform = 49 * math.log(32)
    with torch.no_grad():
        nats = {
            name: -float(prior.log_prob(test_codes).mean())
            for name, prior in (("independent", independent), ("autoregressive", autoregressive))
        }
    assert math.isclose(nats["autoregressive"], hp.epochs["test_nats"][-1], rel_tol=1e-5)
    assert nats["autoregressive"] < nats["independent"] - 10 and nats["independent"] < uniform - 20, nats
    # the bound -log p(x) <= recon + (-log p(k(x))) and the samples of both priors
    ev = gm.evaluate_vqvae(model, test, prior=autoregressive)
    assert math.isclose(ev["prior_nats"], nats["autoregressive"], rel_tol=1e-5)
    assert math.isclose(ev["nll_bound"], ev["recon"] + ev["prior_nats"], rel_tol=1e-9)
    for prior in (independent, autoregressive):
        s = model.sample(6, prior=prior)
        assert s.shape == (6, 1, 28, 28) and 0 <= s.min() and s.max() <= 1


def test_evaluate_counts_dead_codes_and_the_usage_perplexity():
    torch.manual_seed(0)
    model = gm.VQVAE(num_codes=64, code_dim=4, channels=4)
    data = (images(40, seed=3) * 255).to(torch.uint8)[:, 0]
    ev = gm.evaluate_vqvae(model, data)
    codes = gm.vqvae_codes(model, data)
    counts = torch.bincount(codes.flatten(), minlength=64)
    assert ev["used_codes"] == int((counts > 0).sum()) and ev["dead_codes"] == 64 - ev["used_codes"]
    assert math.isclose(ev["perplexity"], float(perplexity(codes, 64)), rel_tol=1e-5)


def tiny(n=96, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, 28, 28, generator=g) * 255).to(torch.uint8)


@pytest.mark.parametrize("kind", ["vqvae", "independent_code_prior", "autoregressive_code_prior"])
def test_checkpoint_round_trip_rebuilds_the_same_model(tmp_path, kind):
    torch.manual_seed(0)
    if kind == "vqvae":
        model = gm.VQVAE(num_codes=16, code_dim=4, channels=4, codebook_update="ema", ema_decay=0.5)
        model(images(4))  # move the EMA buffers away from their initial values
    elif kind == "independent_code_prior":
        model = gm.fit_independent_prior(torch.randint(16, (20, 7, 7)), num_codes=16)
    else:
        model = gm.AutoregressiveCodePrior(config=gm.AutoregressivePriorConfig(num_codes=16, hidden_dim=8))
    gm.save_checkpoint(tmp_path / "m.pt", model, step=2)
    loaded = gm.load_checkpoint(tmp_path / "m.pt")
    assert gm.read_checkpoint(tmp_path / "m.pt")["kind"] == kind
    assert type(loaded) is type(model) and loaded.config == model.config and same_state(model, loaded)
    assert not loaded.training and loaded.checkpoint_info["step"] == 2
    codes = torch.randint(16, (3, 7, 7))
    if kind == "vqvae":
        torch.testing.assert_close(loaded.decode_indices(codes), model.decode_indices(codes))
    else:
        torch.testing.assert_close(loaded.log_prob(codes), model.log_prob(codes))


def _run(tmp_path, name, seed=0, **kw):
    gm.seed_everything(seed)
    model = gm.VQVAE(num_codes=16, code_dim=4, channels=4, restart_after=2)  # restarts happen across the cut
    h = gm.train_vqvae(model, tiny(), num_epochs=2, batch_size=32, checkpoint=tmp_path / name, progress=False, **kw)
    return model, h


def test_resume_mid_epoch_equals_the_uninterrupted_run(tmp_path, monkeypatch):
    full, h_full = _run(tmp_path, "full.pt", checkpoint_every=2)
    original = batches.DeviceBatches.__iter__
    count = {"n": 0}

    def flaky(self):
        for batch in original(self):
            if count["n"] == 4:  # 3 batches an epoch: stop in the second, after step 4
                raise KeyboardInterrupt
            count["n"] += 1
            yield batch

    with monkeypatch.context() as m:
        m.setattr(batches.DeviceBatches, "__iter__", flaky)
        with pytest.raises(KeyboardInterrupt):
            _run(tmp_path, "cut.pt", checkpoint_every=2)
    assert gm.read_checkpoint(tmp_path / "cut.pt")["step"] == 4
    resumed, h_res = _run(tmp_path, "cut.pt", seed=99, checkpoint_every=2)  # another init: all from the file
    assert same_state(full, resumed)  # weights, EMA codebook and dead-code counters
    assert h_full.steps == h_res.steps and h_full.epochs["recon"] == h_res.epochs["recon"]
    assert all(torch.equal(a, b) for a, b in zip(h_full.samples, h_res.samples))
    assert set(h_full.steps) == {"loss", "recon", "codebook", "commitment", "perplexity"}


def test_vqvae_step_descends_the_total_loss():
    """One SGD step of the step function is the update on the gradient of `total`, computed here separately."""
    torch.manual_seed(0)
    model = gm.VQVAE(num_codes=8, code_dim=3, channels=4, codebook_update="loss", restart_dead_codes=False)
    twin = gm.VQVAE(config=model.config)
    twin.load_state_dict(model.state_dict())
    x = images(6)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    stats = gm.vqvae_step(model, x, opt)
    twin(x).total.backward()
    with torch.no_grad():
        for p, q in zip(model.parameters(), twin.parameters()):
            torch.testing.assert_close(p, q - 1e-3 * q.grad)
    assert set(stats) == {"loss", "recon", "codebook", "commitment", "perplexity"}
    assert not stats["loss"].requires_grad
