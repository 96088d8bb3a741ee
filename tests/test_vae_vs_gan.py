"""genmodels.vae_vs_gan: the sharpness measure, checked against scipy, and a tiny VAE-vs-GAN run.

The sharpness tests compute the Laplacian and the blur independently (scipy.ndimage); the run test
trains both models for one epoch on a few hundred digits and checks that every field is present and in
a sane range, and that the table shows each number.
"""

import math

import numpy as np
import pytest
import torch

import genmodels as gm
from genmodels.vae_vs_gan import compare_vae_gan, format_comparison_table, laplacian_energy, write_comparison_table

ndimage = pytest.importorskip("scipy.ndimage")


def digits(n=64):
    x, _ = gm.load_mnist("test", verbose=False, download=False)
    return x[:n]


def test_laplacian_energy_matches_scipy():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(5, 1, 28, 28, generator=g)
    ours = laplacian_energy(x, reduction="none")
    ref = [np.mean(ndimage.laplace(img[0].double().numpy(), mode="constant", cval=0.0) ** 2) for img in x]
    assert np.allclose(ours.double().numpy(), ref, rtol=1e-5, atol=1e-9)
    assert laplacian_energy(x) == pytest.approx(float(np.mean(ref)), rel=1e-5)


def test_uint8_and_float_agree_and_constant_interior_is_zero():
    x = digits(8)
    assert laplacian_energy(x) == pytest.approx(laplacian_energy(x.float().div(255).unsqueeze(1)), rel=1e-6)
    flat = torch.zeros(1, 1, 28, 28)
    flat[..., 10:18, 10:18] = 0.5  # a flat square: Laplacian only along its edges
    per_pixel = torch.nn.functional.conv2d(flat, torch.tensor([[[[0.0, 1, 0], [1, -4, 1], [0, 1, 0]]]]), padding=1)
    assert per_pixel[..., 12:16, 12:16].abs().max() == 0
    with pytest.raises(ValueError):
        laplacian_energy(torch.full((1, 1, 28, 28), 1.5))


@pytest.mark.parametrize("sigma", [0.5, 1.0, 2.0])
def test_blur_lowers_sharpness_and_noise_raises_it(sigma):
    x = digits(64).float().div(255)  # (64, 28, 28)
    blurred = torch.from_numpy(np.stack([ndimage.gaussian_filter(img.numpy(), sigma, mode="constant") for img in x]))
    assert laplacian_energy(blurred.clamp(0, 1)) < 0.9 * laplacian_energy(x)
    noisy = (x + 0.2 * torch.randn(x.shape, generator=torch.Generator().manual_seed(1))).clamp(0, 1)
    assert laplacian_energy(noisy) > laplacian_energy(x)


def test_more_blur_ranks_lower():
    x = digits(32).float().div(255)
    values = [
        laplacian_energy(
            torch.from_numpy(np.stack([ndimage.gaussian_filter(img.numpy(), s, mode="constant") for img in x])).clamp(
                0, 1
            )
        )
        for s in (0.5, 1.0, 1.5, 2.5)
    ]
    assert all(a > b for a, b in zip(values, values[1:])), values


@pytest.fixture(scope="module")
def tiny_result():
    train, _ = gm.load_mnist("train", verbose=False, download=False)
    test, _ = gm.load_mnist("test", verbose=False, download=False)
    return compare_vae_gan(
        train[:256], test[:300], num_epochs=1, batch_size=64, seed=0, device="cpu", n_samples=200, vae_arch="conv"
    )


def test_tiny_compare_run_has_every_field_in_range(tiny_result):
    r = tiny_result
    s = r["settings"]
    assert s["n_samples"] == 200 and s["device"] == "cpu" and s["num_epochs"] == 1
    for key in ("vae", "gan", "real"):
        m = r[key]
        assert math.isfinite(m["fcd"]) and m["fcd"] >= 0
        assert m["sharpness"] > 0
        assert sum(m["class_histogram"]) == 200 and len(m["class_histogram"]) == 10
        assert 1 <= m["classes_covered"] <= 10
        assert 0 <= m["kl_to_uniform"] <= math.log(10) + 1e-9
    # real digits against real digits: the FCD floor is far below one epoch's models
    assert r["real"]["fcd"] < r["vae"]["fcd"] and r["real"]["fcd"] < r["gan"]["fcd"]
    assert r["real"]["classes_covered"] == 10
    assert 0 < r["test_sharpness"] < 1
    v, g = r["vae"], r["gan"]
    assert 50 < v["test_nelbo"] < 600  # nats per binarized digit
    assert g["test_nelbo"] is None and g["likelihood"] == "not available: no likelihood"
    for m in (v, g):
        assert m["seconds_per_epoch"] > 0 and m["seconds_total"] >= m["seconds_per_epoch"] * 0.5
        assert m["last_epoch_loss_std"] >= 0 and m["parameters"] > 0
    assert 0 <= g["saturated_steps"] <= g["generator_steps"] == 4  # 256 / 64 generator steps
    assert 0 <= g["d_real"] <= 1 and 0 <= g["d_fake"] <= 1
    assert set(r["models"]) == {"vae", "gan"} and r["samples"]["vae"].shape == (200, 1, 28, 28)


def test_table_shows_the_numbers(tiny_result, tmp_path):
    r = tiny_result
    text = format_comparison_table(r)
    md = format_comparison_table(r, markdown=True)
    for t in (text, md):
        assert f"{r['vae']['fcd']:.2f}" in t and f"{r['gan']['fcd']:.2f}" in t
        assert "not available: no likelihood" in t and f"{r['vae']['test_nelbo']:.1f}" in t
        assert "device cpu" in t and "N = 200" in t
    assert md.count("\n| ") >= 10
    path = write_comparison_table(r, tmp_path / "table.md")
    assert path.read_text(encoding="utf-8") == md


def test_bad_arguments():
    x = torch.zeros(10, 28, 28, dtype=torch.uint8)
    with pytest.raises(ValueError):
        compare_vae_gan(x, x, num_epochs=0)
    with pytest.raises(ValueError):
        compare_vae_gan(x, x, num_epochs=1, n_samples=1)
    with pytest.raises(ValueError):
        compare_vae_gan(x.float(), x, num_epochs=1)


def test_tiny_compare_trains_the_gan_with_the_recipe(tiny_result):
    gan = tiny_result["models"]["gan"]
    assert gan.config.spectral_norm and gan.config.ema == gm.gan.DCGAN_RECIPE["model"]["ema"]
    assert gan.generator_ema is not None and int(gan.ema_updates) == 4  # one average update per generator step


@pytest.fixture(scope="module")
def trained():
    """Two small 'trained' models of one family and one of another (one epoch on a few hundred digits)."""
    train, _ = gm.load_mnist("train", verbose=False, download=False)
    models = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        vae = gm.VAE(latent_dim=4)
        gm.train_vae(vae, train[:256], num_epochs=1, batch_size=64, seed=seed, device="cpu", progress=False)
        models.append(vae)
    torch.manual_seed(0)
    gan = gm.GAN(latent_dim=8, channels=8)
    gm.train_gan(gan, train[:128], num_epochs=1, batch_size=64, device="cpu", progress=False)
    return {"VAE": models, "GAN": [gan]}


def test_measure_trained_equals_the_metrics_computed_by_hand(trained):
    from genmodels.vae_vs_gan import format_trained_table, measure_trained

    train, _ = gm.load_mnist("train", verbose=False, download=False)
    test, _ = gm.load_mnist("test", verbose=False, download=False)
    r = measure_trained(trained, test[:150], train[:400], n_samples=120, seed=3, device="cpu")
    assert r["settings"]["n_samples"] == 120
    # the same reference digits and noise, by hand
    reference = test[:150][torch.randperm(150, generator=torch.Generator().manual_seed(3))[:120]]
    for name, models in trained.items():
        f = r["families"][name]
        fcds = []
        for model, run in zip(models, f["runs"]):
            z = torch.randn(120, model.latent_dim, generator=torch.Generator().manual_seed(3 + 11))
            images = model.sample(z=z).float()
            fcds.append(gm.frechet_classifier_distance(reference, images))
            assert run["fcd"] == pytest.approx(fcds[-1], rel=1e-6)
            assert run["sharpness"] == pytest.approx(laplacian_energy(images), rel=1e-6)
            assert run["parameters"] == sum(p.numel() for p in model.parameters())
        assert f["fcd"][0] == pytest.approx(np.mean(fcds), rel=1e-6)
        assert f["fcd"][1] == pytest.approx(np.std(fcds, ddof=1) if len(fcds) > 1 else 0.0, rel=1e-6, abs=1e-9)
        assert f["samples"].shape == (120, 1, 28, 28)
        assert torch.equal(
            f["samples"],
            models[0]
            .sample(z=torch.randn(120, models[0].latent_dim, generator=torch.Generator().manual_seed(14)))
            .float(),
        )
    assert torch.equal(r["images"]["test"], reference)
    assert r["real"]["fcd"] < min(run["fcd"] for f in r["families"].values() for run in f["runs"])
    text = format_trained_table(r)
    v = r["families"]["VAE"]
    assert f"{v['fcd'][0]:.1f} ± {v['fcd'][1]:.1f}" in text
    assert f"{r['families']['GAN']['fcd'][0]:.1f}" in text and "±" not in text.splitlines()[3]  # one GAN run: no spread
    assert f"{r['real']['fcd']:.2f}" in text and "N = 120" in text


def test_measure_trained_refuses_an_empty_family(trained):
    from genmodels.vae_vs_gan import measure_trained

    x = digits(20)
    with pytest.raises(ValueError, match="at least one trained model"):
        measure_trained({"VAE": []}, x, x)


def test_seconds_per_epoch_scales_the_timed_steps_and_leaves_the_model_alone(trained, monkeypatch):
    from genmodels import vae_vs_gan

    vae = trained["VAE"][0]
    before = {k: v.clone() for k, v in vae.state_dict().items()}
    x = torch.zeros(1000, 28, 28, dtype=torch.uint8)
    real_loop = vae_vs_gan.train_vae
    seen = {}

    def loop(model, data, **kw):  # the real loop, its two passes' seconds replaced by known values
        assert model is not vae and len(data) == 3 * 50 and kw["num_epochs"] == 2 and kw["lr"] == 5e-4
        history = real_loop(model, data, **kw)
        history.epochs["seconds"] = [9.0, 1.5]
        seen["ok"] = True
        return history

    monkeypatch.setattr(vae_vs_gan, "train_vae", loop)
    s = vae_vs_gan.seconds_per_epoch(
        vae, x, settings={"lr": 5e-4, "num_epochs": 99}, steps=3, batch_size=50, device="cpu"
    )
    assert seen["ok"] and s == pytest.approx(1.5 / 3 * 20)  # the faster pass, per step, times 1000 / 50 steps
    assert all(torch.equal(before[k], v) for k, v in vae.state_dict().items())
    with pytest.raises(ValueError, match="VAE or a GAN"):
        vae_vs_gan.seconds_per_epoch(torch.nn.Linear(2, 2), x)


def test_seconds_per_epoch_times_a_gan_saved_without_its_discriminator(trained, tmp_path):
    """A zoo GAN's file leaves out the discriminator; its step is timed with a fresh one, and the loaded model
    keeps its stand-in (which still refuses to run)."""
    from genmodels import vae_vs_gan
    from genmodels.engine.checkpoints import CheckpointError, LeftOut

    gm.save_checkpoint(tmp_path / "g.pt", trained["GAN"][0], leave_out=("discriminator",))
    gan = gm.load_checkpoint(tmp_path / "g.pt")
    assert isinstance(gan.discriminator, LeftOut)
    x = torch.zeros(300, 28, 28, dtype=torch.uint8)
    s = vae_vs_gan.seconds_per_epoch(gan, x, steps=2, batch_size=50, device="cpu")
    assert math.isfinite(s) and s > 0
    assert isinstance(gan.discriminator, LeftOut)
    with pytest.raises(CheckpointError, match="left out"):
        gan.discriminator(torch.zeros(1, 1, 28, 28))
