"""genmodels.zoo: the shipped set is what its manifest says, loading verifies the hash, missing models are
trained into the cache, and every failure names the file and what to do.

The shipped weights are checked against independent computations: their own sha256, the checkpoint's
config against the spec, the VAEs' test bounds evaluated now (never the manifest's numbers on trust) against
the independent-pixel Bernoulli baseline and against each other, and a GAN's Fréchet classifier distance
against an untrained generator's.
"""

import hashlib
import json
import re
import shlex
import shutil
from pathlib import Path

import pytest
import torch

import genmodels as gm
from genmodels.app import cli, zoo


@pytest.fixture(scope="module")
def subset(mnist_subset):
    return mnist_subset


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """No shipped set, an empty cache."""
    monkeypatch.setattr(zoo, "SHIPPED_DIR", tmp_path / "shipped")
    monkeypatch.setenv("GENMODELS_CACHE", str(tmp_path / "cache"))
    return tmp_path


def tiny(data, n=256):
    return gm.ImageSet(data[0][:n], data[1][:n], "MNIST", data.split, "the first 256 images of the subset", True)


def files(folder):
    """The files in a zoo folder, its lock files aside (they stay, empty, so that locking never races)."""
    return sorted(p.name for p in folder.iterdir() if not p.name.endswith(".lock"))


def flip_a_byte(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte in the middle of the weights
    path.write_bytes(bytes(data))


# --- the shipped set ---------------------------------------------------------------------------------


def test_shipped_manifest_lists_every_model_with_its_true_hash_and_size():
    models = zoo.read_manifest(zoo.SHIPPED_DIR)
    assert sorted(models) == sorted(zoo.names())
    total = 0
    for name, entry in models.items():
        path = zoo.SHIPPED_DIR / entry["file"]
        data = path.read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"], name
        assert len(data) == entry["bytes"]
        total += len(data)
        assert entry["model_config"] == zoo.spec(name).model_config
        assert entry["budget"] == "full" and entry["epochs"] == zoo.spec(name).epochs["full"]
        assert entry["seed"] == zoo.spec(name).seed
    # 20 MB for the widgets' models, room for the three DCGANs of the comparison, and the conditional models
    # and the VQ-VAE (about 6 MB together)
    assert total < 40_000_000, f"the shipped set should stay small, it is {total / 1e6:.1f} MB"


@pytest.mark.parametrize("name", zoo.names())
def test_shipped_checkpoints_hold_float16_weights_of_the_specified_model(name):
    entry = zoo.read_manifest(zoo.SHIPPED_DIR)[name]
    ckpt = gm.read_checkpoint(zoo.SHIPPED_DIR / entry["file"])
    assert ckpt["kind"] == zoo.spec(name).kind
    assert ckpt["model_config"] == zoo.spec(name).model_config
    floats = [v for v in ckpt["model_state"].values() if v.is_floating_point()]
    assert floats and all(v.dtype == torch.float16 for v in floats)
    assert "optimizers" not in ckpt  # small: weights only
    # a GAN ships what sampling needs: every weight of its generators, none of its discriminator; the cgan
    # keeps its projection discriminator, which the conditional chapter checks against its formula
    expected = set(zoo.spec(name).build().state_dict())
    if ckpt["kind"] == "gan":
        assert ckpt["left_out"] == ["discriminator"]
        expected = {k for k in expected if not k.startswith("discriminator.")}
    else:
        assert "left_out" not in ckpt
    assert set(ckpt["model_state"]) == expected


def independent_pixel_baseline(train, test):
    """-log p(x) per test digit, in nats, under independent Bernoulli pixels with the training set's pixel
    means: what a VAE whose decoder ignores z (and whose KL is then 0) scores, computed here by hand on the
    same fixed binarization of the test digits that evaluate_vae uses."""
    x_test = gm.eval_images(test.images, "dynamic").flatten(1)
    p = train.images.float().div(255).flatten(1).mean(0).clamp(1e-3, 1 - 1e-3)
    return -(x_test * p.log() + (1 - x_test) * (1 - p).log()).sum(1).mean().item()


def test_shipped_vaes_evaluated_now_add_up_beat_the_baseline_and_improve_with_latent_size_up_to_20(subset):
    """The shipped weights evaluated now, on the digits of the offline subset (MNIST training digits, which the
    shipped VAEs were trained on; the manifest's numbers are on the 10,000 official test digits, so they are
    not compared here). What must hold on any data: -ELBO = reconstruction + KL with both parts positive, the
    importance-weighted bound (k = 50) tighter than the ELBO, every VAE better than the independent-pixel
    baseline, and -ELBO falling from latent size 2 to 20 (by 10 nats or more a step on the test set; here
    each step must gain at least 2 nats)."""
    train, test = subset
    baseline = independent_pixel_baseline(train, test)
    manifest = zoo.read_manifest(zoo.SHIPPED_DIR)
    nelbo = {}
    for d in zoo.VAE_LATENT_SIZES:
        vae = zoo.load(f"vae-d{d}", train_if_missing=False)
        m = gm.evaluate_vae(vae, test.images)
        assert m["nelbo"] == pytest.approx(m["recon"] + m["kl"], rel=1e-6)
        assert m["recon"] > 0 and m["kl"] > 0
        assert m["nelbo"] < baseline, (d, m["nelbo"], baseline)
        shipped = manifest[f"vae-d{d}"]["metrics"]
        if shipped["test_data"] == test.origin:  # the same digits and binarization: the same numbers
            assert m["nelbo"] == pytest.approx(shipped["test_nelbo"], rel=1e-4)
        nelbo[d] = m["nelbo"]
        if d == 20:
            m = gm.evaluate_vae(vae, test.images[:200], k=(50,))
            assert m["iwae_50"] < m["nelbo"], m
    assert all(nelbo[a] - nelbo[b] > 2 for a, b in [(2, 5), (5, 10), (10, 20)]), nelbo


def test_shipped_vae_numbers_are_ordered_as_the_bounds_must_be():
    """The manifest's test numbers of every shipped VAE (official test set) obey what the mathematics says of
    them, whatever their values: -ELBO = reconstruction + KL; the bounds tighten with k on average, so
    -L1 >= -L10 >= -L100 (up to the noise of one sample for L1) and the k = 5,000 estimate is the lowest,
    with a positive standard error; and the learning curve, where recorded, has one value per epoch."""
    for name in zoo.names("vae"):
        entry = zoo.read_manifest(zoo.SHIPPED_DIR)[name]
        m = entry["metrics"]
        assert m["test_nelbo"] == pytest.approx(m["test_recon"] + m["test_kl"], rel=1e-6), name
        if zoo.spec(name).eval_k:  # the comparison's extra seeds skip the importance-weighted bounds
            assert abs(m["iwae_1"] - m["test_nelbo"]) < 1.0, name  # two one-sample estimates of the same bound
            assert m["iwae_1"] > m["iwae_10"] > m["iwae_100"], name
        every = zoo.spec(name).fcd_every
        if every:  # the samples' FCD during training, ending where the float16 file's was measured
            c = entry["curve"]["samples"]
            assert c["epoch"] == list(range(every, entry["epochs"] + 1, every)), name
            assert c["fcd"][-1] == pytest.approx(m["samples"]["fcd"], rel=0.05), name
        if "nll" in m:
            nll = m["nll"]
            assert nll["k"] == zoo.spec(name).nll[0] and nll["images"] == zoo.spec(name).nll[1], name
            assert 0 < nll["se"] < 2.0 and nll["nll"] < m["iwae_100"] + 3 * nll["se"], name
        if zoo.spec(name).curve:
            assert len(entry["curve"]["test_nelbo"]) == entry["epochs"] == len(entry["curve"]["seconds"]), name
            assert entry["curve"]["test_nelbo"][-1] == pytest.approx(m["test_nelbo"], abs=1.0), name


def test_a_shipped_vae_beats_the_independent_pixel_baseline_on_the_offline_digits(subset):
    """A trained VAE must do far better (tens of nats) than independent pixels."""
    train, test = subset
    vae = zoo.load("vae-d20", train_if_missing=False)
    baseline = independent_pixel_baseline(train, test)
    nelbo = gm.evaluate_vae(vae, test.images)["nelbo"]
    assert nelbo < baseline - 50, (nelbo, baseline)


def test_a_shipped_gan_is_much_closer_to_the_digits_than_an_untrained_one(subset):
    _, test = subset
    trained = zoo.load("gan-d16", train_if_missing=False)
    torch.manual_seed(0)
    untrained = zoo.spec("gan-d16").build().eval()
    z = torch.randn(500, 16, generator=torch.Generator().manual_seed(0))
    fcd_trained = gm.frechet_classifier_distance(trained.sample(z=z), test.images[:500])
    fcd_untrained = gm.frechet_classifier_distance(untrained.sample(z=z), test.images[:500])
    assert fcd_trained < fcd_untrained / 2, (fcd_trained, fcd_untrained)


def test_load_returns_an_eval_mode_model_with_its_manifest_entry():
    model = zoo.load("vae-d10", train_if_missing=False)
    assert isinstance(model, gm.VAE) and model.latent_dim == 10 and not model.training
    assert (
        model.zoo_info["name"] == "vae-d10"
        and model.zoo_info["sha256"] == zoo.read_manifest(zoo.SHIPPED_DIR)["vae-d10"]["sha256"]
    )
    assert next(model.parameters()).dtype == torch.float32


# --- verification and errors ------------------------------------------------------------------------


def test_a_shipped_file_that_fails_its_hash_is_refused_and_the_advice_works(tmp_path, monkeypatch, subset):
    shipped = tmp_path / "shipped"
    shutil.copytree(zoo.SHIPPED_DIR, shipped)
    monkeypatch.setattr(zoo, "SHIPPED_DIR", shipped)
    monkeypatch.setenv("GENMODELS_CACHE", str(tmp_path / "cache"))
    path = shipped / zoo.read_manifest(shipped)["vae-d5"]["file"]
    flip_a_byte(path)
    with pytest.raises(zoo.ZooError, match="does not match its manifest") as err:
        zoo.load("vae-d5")
    message = str(err.value)
    assert str(path) in message and "corrupt or was replaced" in message
    assert "`pip install --force-reinstall genmodels`" in message and f"`git checkout -- {path}`" in message
    assert f"delete the file and load 'vae-d5' again, which trains it into the cache {zoo.cache_dir()}" in message
    zoo.load("vae-d10")  # the others still load

    # The advice works: without the file, the model is trained into the cache and loads.
    path.unlink()
    train, test = subset
    model = zoo.load("vae-d5", data=tiny(train), test_data=tiny(test), progress=False)
    assert Path(model.zoo_info["path"]).parent == zoo.cache_dir() and model.latent_dim == 5


def test_a_cached_file_that_fails_its_hash_names_the_command_that_remakes_it(isolated, subset):
    train, test = subset
    zoo.load("vae-d2", data=tiny(train), test_data=tiny(test), progress=False)
    cache = zoo.cache_dir()
    path = cache / zoo.read_manifest(cache)["vae-d2"]["file"]
    flip_a_byte(path)
    with pytest.raises(zoo.ZooError, match="does not match its manifest") as err:
        zoo.load("vae-d2")
    message = str(err.value)
    assert str(path) in message and "Delete the file and load 'vae-d2' again" in message
    # The command it names is one the CLI takes, and it remakes this model in this folder.
    command = re.search(r"`(python -m genmodels zoo train [^`]*)`", message).group(1)
    args = cli.build_parser().parse_args(shlex.split(command)[3:])
    assert args.command == "zoo" and args.action == "train" and args.only == ["vae-d2"] and args.budget == "quick"
    assert args.out is None and path.parent == zoo.cache_dir()  # `zoo train` writes to the cache by default

    # The advice works: without the file, loading trains the model anew and the manifest matches it.
    path.unlink()
    model = zoo.load("vae-d2", data=tiny(train), test_data=tiny(test), progress=False)
    entry = zoo.read_manifest(cache)["vae-d2"]
    assert model.zoo_info["sha256"] == entry["sha256"] == zoo.sha256_of(cache / entry["file"])


def test_unknown_names_and_broken_manifests_are_explained(isolated):
    with pytest.raises(zoo.ZooError, match="vae-d2, vae-d5"):
        zoo.load("vae-d3")
    folder = isolated / "shipped"
    folder.mkdir()
    (folder / "manifest.json").write_text("{not json")
    with pytest.raises(zoo.ZooError, match="not readable JSON"):
        zoo.load("vae-d2", train_if_missing=False)
    (folder / "manifest.json").write_text(json.dumps({"models": {}}))
    with pytest.raises(zoo.ZooError, match="not a genmodels zoo manifest"):
        zoo.load("vae-d2", train_if_missing=False)


def test_missing_without_training_names_the_command(isolated):
    with pytest.raises(zoo.ZooError, match="python -m genmodels zoo train --only gan-d4"):
        zoo.load("gan-d4", train_if_missing=False)


# --- training what is missing -------------------------------------------------------------------------


def test_a_missing_model_is_trained_into_the_cache_once_and_then_loaded(isolated, subset, monkeypatch):
    train, test = subset
    model = zoo.load("vae-d2", data=tiny(train), test_data=tiny(test), progress=False)
    cache = zoo.cache_dir()
    entry = zoo.read_manifest(cache)["vae-d2"]
    path = cache / entry["file"]
    assert path.is_file() and entry["file"] == f"vae-d2.{entry['sha256'][:12]}.pt"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == entry["sha256"]
    assert entry["budget"] == "quick" and entry["epochs"] == zoo.spec("vae-d2").epochs["quick"]
    assert entry["train_data"] == tiny(train).origin
    m = entry["metrics"]
    assert m["test_nelbo"] == pytest.approx(gm.evaluate_vae(model, tiny(test).images)["nelbo"], rel=1e-5)
    assert [name for name in files(cache) if name.startswith(".")] == []  # no temporary files left behind

    def no_training(*args, **kwargs):
        raise AssertionError("a cached model must not be trained again")

    monkeypatch.setattr(zoo, "train", no_training)
    again = zoo.load("vae-d2")
    for a, b in zip(model.state_dict().values(), again.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_training_a_gan_writes_its_numbers_and_retraining_replaces_the_old_file(isolated, subset):
    train, test = subset
    out = isolated / "out"
    first = zoo.train(
        ["gan-d2"],
        out_dir=out,
        budget="quick",
        device="cpu",
        progress=False,
        data=tiny(train, 128),
        test_data=tiny(test, 128),
        content_addressed=True,
    )["gan-d2"]
    assert first["metrics"]["fcd_images"] == 128 and 0 <= first["metrics"]["classes_covered"] <= 10
    second = zoo.train(
        ["gan-d2"],
        out_dir=out,
        budget="quick",
        device="cpu",
        progress=False,
        data=tiny(train, 128),
        test_data=tiny(test, 128),
        seed=1,
        content_addressed=True,
    )["gan-d2"]
    assert second["sha256"] != first["sha256"]
    assert files(out) == sorted(["manifest.json", second["file"]])
    found = zoo.find("gan-d2", folders=[out])
    assert found["sha256"] == second["sha256"]


def test_a_spec_trains_with_its_own_seed_and_records_the_samples_curve(isolated, subset, monkeypatch):
    train, test = subset
    spec = zoo.spec("dcgan-s2")
    assert spec.seed == 2 and spec.fcd_every == 1 and spec.train == gm.gan.DCGAN_RECIPE["train"]  # constant rate
    assert spec.epochs["quick"] == 2
    seeds = []
    import genmodels.core as core

    monkeypatch.setattr(core, "seed_everything", lambda s: seeds.append(s) or torch.manual_seed(s))
    train_s2 = lambda folder, **kw: zoo.train(
        ["dcgan-s2"],
        out_dir=isolated / folder,
        budget="quick",
        device="cpu",
        progress=False,
        data=tiny(train, 128),
        test_data=tiny(test, 100),
        **kw,
    )["dcgan-s2"]
    entry = train_s2("out")
    assert seeds == [2] and entry["seed"] == 2 and entry["train_config"] == spec.train
    curve = entry["curve"]["samples"]
    assert curve["epoch"] == [1, 2] and len(curve["fcd"]) == 2 and all(f > 0 for f in curve["fcd"])
    assert all(0 <= c <= 10 for c in curve["classes_covered"])
    assert curve["seconds"] == pytest.approx(torch.tensor(entry["curve"]["seconds"]).cumsum(0).tolist(), abs=0.01)
    # the last point is the float32 model the float16 file was rounded from: close to the file's own FCD
    assert curve["fcd"][-1] == pytest.approx(entry["metrics"]["fcd"], rel=0.05)
    assert train_s2("other", seed=5)["seed"] == 5


def test_a_killed_zoo_run_resumes_where_it_stopped_and_ends_as_the_uninterrupted_one(
    isolated, subset, monkeypatch, capsys
):
    train, test = subset
    run = lambda folder, **kw: zoo.train(
        ["dcgan-s2"],
        out_dir=isolated / folder,
        budget="quick",
        device="cpu",
        progress=True,
        data=tiny(train, 128),
        test_data=tiny(test, 100),
        **kw,
    )["dcgan-s2"]
    whole = run("whole")

    real, calls = zoo._evaluate_samples, []

    def killed_in_epoch_2(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:  # measuring epoch 2, before its checkpoint: the run dies here
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(zoo, "_evaluate_samples", killed_in_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        run("killed")
    left = isolated / "killed"
    assert files(left) == [".dcgan-s2.partial.json", ".dcgan-s2.partial.pt"]
    assert gm.read_checkpoint(left / ".dcgan-s2.partial.pt")["epoch"] == 1
    measured = []
    monkeypatch.setattr(zoo, "_evaluate_samples", lambda *a, **k: measured.append(1) or real(*a, **k))
    capsys.readouterr()
    resumed = run("killed")
    assert "resuming after epoch 1" in capsys.readouterr().out
    assert len(measured) == 2  # epoch 2 and the stored file: epoch 1 was not trained again
    assert files(left) == ["dcgan-s2.pt", "manifest.json"]  # the partial run is gone once the model is stored
    assert resumed["sha256"] == whole["sha256"]  # the same weights, bit for bit
    assert resumed["curve"]["samples"]["epoch"] == [1, 2]
    assert resumed["curve"]["samples"]["fcd"] == pytest.approx(whole["curve"]["samples"]["fcd"])

    # a leftover of a run with other settings is set aside, not resumed
    monkeypatch.setattr(zoo, "_evaluate_samples", killed_in_epoch_2)
    calls.clear()
    with pytest.raises(KeyboardInterrupt):
        run("other", seed=5)
    monkeypatch.setattr(zoo, "_evaluate_samples", real)
    capsys.readouterr()
    assert run("other")["sha256"] == whole["sha256"]
    assert "other settings" in capsys.readouterr().out


def test_train_refuses_an_unknown_budget_or_name(isolated):
    with pytest.raises(ValueError, match="budget must be one of"):
        zoo.train(["vae-d2"], out_dir=isolated, budget="huge")
    with pytest.raises(zoo.ZooError, match="no model called"):
        zoo.train(["vae-d4"], out_dir=isolated)


def trained_into_cache(name, train, test, n=256):
    """``name`` trained with the quick budget on the first ``n`` digits into the (isolated) cache: its manifest
    entry and the model loaded back from the stored file."""
    entry = zoo.train(
        [name],
        out_dir=zoo.cache_dir(),
        content_addressed=True,
        budget="quick",
        device="cpu",
        progress=False,
        data=tiny(train, n),
        test_data=tiny(test, n),
    )[name]
    return entry, zoo.load(name, train_if_missing=False)


# --- the conditional models and the VQ-VAE ---------------------------------------------------------


def test_a_conditional_gan_records_the_class_accuracy_its_samples_get_from_the_classifier(isolated, subset):
    train, test = subset
    entry, model = trained_into_cache("cgan", train, test, 128)
    m = entry["metrics"]
    assert m["fcd_images"] == 128 and len(m["accuracy_per_class"]) == 10
    # Recompute by hand from the stored file: the same noise, classes 0..9 in turn, the classifier's argmax.
    assert model.zoo_info["sha256"] == entry["sha256"]
    g = torch.Generator().manual_seed(1234)
    z = torch.randn(128, model.latent_dim, generator=g)
    y = torch.arange(128) % 10
    with torch.no_grad():
        predicted = gm.load_classifier()(model.sample(z=z, y=y)).argmax(1)
    per_class = [(predicted[y == k] == k).double().mean().item() for k in range(10)]
    assert m["accuracy_per_class"] == pytest.approx(per_class, abs=1e-12)
    assert m["accuracy"] == pytest.approx((predicted == y).double().mean().item(), abs=1e-12)
    assert entry["kind"] == "cgan" and "events" in entry


def test_a_conditional_vae_is_scored_on_log_p_of_x_given_its_own_label(isolated, subset):
    train, test = subset
    entry, model = trained_into_cache("cvae-d2", train, test)
    m = entry["metrics"]
    again = gm.evaluate_vae(model, test.images[:256], labels=test.labels[:256])
    assert m["test_nelbo"] == pytest.approx(again["nelbo"], rel=1e-6)
    assert m["test_nelbo"] == pytest.approx(m["test_recon"] + m["test_kl"], rel=1e-6)
    assert m["iwae_100"] <= m["iwae_1"] + 1e-3  # the tighter bound (negated: smaller)
    assert "accuracy" in m["samples"] and len(m["samples"]["accuracy_per_class"]) == 10
    with pytest.raises(gm.UserError, match="labels"):
        zoo._evaluate_vae(model, test.images[:64], zoo.spec("cvae-d2"), "quick")


def test_a_vqvae_records_its_codebook_use_as_counted_from_its_codes(isolated, subset):
    train, test = subset
    entry, model = trained_into_cache("vqvae", train, test)
    m = entry["metrics"]
    codes = gm.vqvae_codes(model, test.images[:256])
    counts = torch.bincount(codes.flatten(), minlength=model.num_codes).double()
    p = counts[counts > 0] / counts.sum()
    assert m["perplexity"] == pytest.approx(torch.exp(-(p * p.log()).sum()).item(), rel=1e-9)
    assert m["used_codes"] == int((counts > 0).sum()) and m["used_codes"] + m["dead_codes"] == 128
    assert m["nll_bound"] == pytest.approx(m["recon"] + m["prior_nats"], rel=1e-9)
    assert m["samples_independent_prior"]["fcd_images"] == 256
