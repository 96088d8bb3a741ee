r"""A VAE and a DCGAN trained on the same digits with the same budget, measured on the same scale.

:func:`compare_vae_gan` trains the package's VAE (convolutional by default, so that both families use
convolutions of the same size) and the DCGAN, each for ``num_epochs`` passes over the same training
images with the same batch size and seed, then measures both on quantities either family can report:

* **FCD** (:func:`genmodels.metrics.frechet_classifier_distance`): the Fréchet distance between the
  features of ``n_samples`` generated digits and ``n_samples`` test digits, on the penultimate layer of
  the package's MNIST classifier. It is *not* the Inception FID of papers; it is comparable only with
  itself at the same ``N``. A floor is measured too: the FCD of ``N`` real *training* digits to the same
  ``N`` test digits.
* **Sharpness** (:func:`laplacian_energy`): the mean squared discrete Laplacian of the images, reported
  next to the same number for the test digits. Blurring lowers it, noise raises it; the target is the
  value of real digits, not the largest value.
* **Diversity**: the classifier's class histogram of the samples, the number of classes holding at least
  2 % of them (:func:`genmodels.metrics.classes_covered`) and :math:`\mathrm{KL}(\text{histogram}\,\|\,\text{uniform})`.
* **Training time**: seconds per epoch, as the training loops record them, on the stated device.
* **Stability**: the spread of the per-step losses over the last epoch and, for the GAN, the generator
  steps at which the discriminator rejected the fakes outright (mean :math:`D(G(z)) < 0.01`).
* **Likelihood**: the VAE's test negative ELBO in nats (an upper bound on :math:`-\log p(x)` of the
  fixed binarization of the test images); a GAN defines no likelihood.

:func:`format_comparison_table` renders the result as text or Markdown; :func:`write_comparison_table`
writes it to a file.

:func:`measure_trained` measures models trained elsewhere (the zoo's trained VAEs and DCGANs, several
seeds of each) on the same quantities, with the mean and spread over seeds, and :func:`format_trained_table`
renders it; :func:`seconds_per_epoch` times a model's training step on an otherwise idle device.
"""

from __future__ import annotations

import copy
import math
import time
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F

from .core import UserError, as_images, check_int, eval_mode, pick_device, seed_everything
from .engine.checkpoints import LeftOut
from .engine.loops import (
    GANTrainConfig,
    TrainConfig,
    evaluate_vae,
    saturated_steps,
    train_gan,
    train_vae,
)
from .engine.pixels import as_uint8_images
from .gan import DCGAN_RECIPE, GAN
from .metrics.classifier import load_classifier
from .metrics.coverage import class_histogram, classes_covered, kl_to_uniform
from .metrics.frechet import frechet_classifier_distance
from .vae import VAE

__all__ = [
    "laplacian_energy",
    "compare_vae_gan",
    "format_comparison_table",
    "write_comparison_table",
    "measure_trained",
    "format_trained_table",
    "seconds_per_epoch",
]

#: The 4-neighbour discrete Laplacian (a high-pass filter).
LAPLACIAN_KERNEL = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])


@torch.no_grad()
def laplacian_energy(images: torch.Tensor, *, reduction: str = "mean") -> Union[float, torch.Tensor]:
    r"""Sharpness as the mean squared discrete Laplacian of each image, averaged over the set.

    For an image :math:`x \in [0, 1]^{H \times W}` with zeros outside its border,

    .. math::

        (\Delta x)_{ij} = x_{i-1,j} + x_{i+1,j} + x_{i,j-1} + x_{i,j+1} - 4 x_{ij}, \qquad
        S(x) = \frac{1}{HW} \sum_{ij} (\Delta x)_{ij}^2 .

    Why this measures blur: by Parseval, :math:`S` is a weighted sum of the image's power spectrum with
    weights :math:`|\hat\Delta(\omega)|^2 = (4 - 2\cos\omega_1 - 2\cos\omega_2)^2`, which vanish at
    :math:`\omega = 0` and grow with the frequency. A blur multiplies every Fourier coefficient by a factor
    of modulus at most 1 (for a Gaussian blur, :math:`e^{-\sigma^2|\omega|^2/2}`), so it can only lower
    :math:`S`; a soft, grey stroke edge scores low and a crisp one high. Two caveats: pixel noise raises
    :math:`S` as well (so the right target is the value of real digits, not the largest value), and
    :math:`S` grows with the amount of ink. Compare sets of the same kind of image.

    Parameters
    ----------
    images : uint8 (0..255) or float in [0, 1]; ``[N, 1, 28, 28]``, ``[N, 28, 28]`` or ``[N, 784]``.
    reduction : ``"mean"`` (a float: the mean of :math:`S` over the images) or ``"none"`` (``[N]``).
    """
    x = as_images(images).float().cpu()  # (N, 1, 28, 28) in [0, 1]
    if x.numel() and (x.min() < 0 or x.max() > 1):
        raise UserError("float images must lie in [0, 1]; uint8 images are divided by 255")
    lap = F.conv2d(x, LAPLACIAN_KERNEL.view(1, 1, 3, 3), padding=1)  # (N, 1, 28, 28), zero padding
    per_image = lap.pow(2).mean(dim=(1, 2, 3))  # (N,)
    if reduction == "none":
        return per_image
    if reduction != "mean":
        raise UserError(f"reduction must be 'mean' or 'none', got {reduction!r}")
    return float(per_image.mean())


def _images_and_origin(data) -> tuple:
    """uint8 ``[N, 28, 28]`` images and a one-line label of where they came from (ImageSet.origin if any)."""
    origin = getattr(data, "origin", None)
    data = as_uint8_images(data)
    return data, origin or f"{data.shape[0]:,} images (origin not recorded)"


def _num_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _last_epoch(values, steps_per_epoch: int) -> np.ndarray:
    return np.asarray(values[-steps_per_epoch:], dtype=np.float64)


@torch.no_grad()
def _sample(model, n: int, seed: int, device: torch.device, batch: int = 500) -> torch.Tensor:
    """``n`` samples from the prior noise, drawn in batches from a seeded CPU generator; float CPU [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, model.latent_dim, generator=g)
    return torch.cat([model.sample(z=z[i : i + batch].to(device)).float().cpu() for i in range(0, n, batch)])


def _set_metrics(images: torch.Tensor, reference: torch.Tensor, classifier) -> Dict[str, Any]:
    hist = class_histogram(images, classifier=classifier)
    return {
        "fcd": frechet_classifier_distance(reference, images, classifier=classifier),
        "sharpness": laplacian_energy(images),
        "class_histogram": hist.tolist(),
        "classes_covered": classes_covered(hist),
        "kl_to_uniform": kl_to_uniform(hist),
    }


def compare_vae_gan(
    train_images,
    test_images,
    *,
    num_epochs: int,
    batch_size: int = 128,
    seed: int = 0,
    device: Union[str, torch.device, None] = "auto",
    vae_arch: str = "conv",
    vae_latent_dim: int = 20,
    gan_latent_dim: int = 100,
    n_samples: int = 2000,
    progress: bool = False,
    keep_models: bool = True,
) -> Dict[str, Any]:
    r"""Train the package's VAE and DCGAN on the same images for the same number of epochs, and measure both.

    Parameters
    ----------
    train_images, test_images : uint8 ``[N, 28, 28]`` tensors or ``gm.load_mnist`` ImageSets (whose
        ``origin`` then labels the result).
    num_epochs : passes over the training images, the same for both models.
    batch_size : images per step, the same for both.
    seed : seeds both models' initialisation and data order, and the noise of the evaluated samples.
    device : ``"auto"``, ``"cpu"``, ``"cuda"``...
    vae_arch : ``"conv"`` (default; two stride-2 convolutions each way, like the DCGAN) or ``"mlp"``.
    vae_latent_dim, gan_latent_dim : sizes of the two latent spaces (package defaults: 20 and 100).
    n_samples : ``N``, the number of generated digits per model and of test digits for the FCD and the
        sharpness; capped at the number of test images (and of training images, for the real floor).
    progress : show the training loops' progress bars.
    keep_models : put the trained models and their histories in the result (``"models"``, ``"histories"``).

    Training settings: the VAE with the package defaults, Adam at 1e-3 on dynamically binarized pixels
    and a Bernoulli decoder; the GAN with the book's recipe (:data:`~genmodels.gan.DCGAN_RECIPE`:
    spectral norm in the discriminator and a hidden layer of 512 before its logit, Adam 4e-4, betas (0.5, 0.999),
    samples from the generator's weight average) on grey levels, with the non-saturating generator loss and one
    discriminator step per generator step.
    A VAE's sample is the decoder's Bernoulli mean at :math:`z \sim \mathcal N(0, I)`, as ``VAE.sample``
    returns it.

    Returns
    -------
    dict with ``"settings"`` (epochs, batch size, seed, device, N, data origins, torch version),
    ``"vae"``, ``"gan"`` and ``"real"`` (each: ``fcd``, ``sharpness``, ``class_histogram``,
    ``classes_covered``, ``kl_to_uniform``; for the models also ``parameters``, ``seconds_per_epoch``,
    ``seconds_total``, ``last_epoch_loss_mean`` / ``_std``; the VAE ``test_nelbo``, the GAN
    ``test_nelbo = None`` with ``likelihood = "not available: no likelihood"``, its ``saturated_steps``,
    ``d_real`` and ``d_fake``), ``"test_sharpness"``, and with ``keep_models`` the models and histories.
    """
    check_int("num_epochs", num_epochs), check_int("n_samples", n_samples, minimum=2)
    x_train, train_origin = _images_and_origin(train_images)
    x_test, test_origin = _images_and_origin(test_images)
    dev = pick_device(device)
    n = min(n_samples, len(x_test), len(x_train))
    pick = torch.randperm(len(x_test), generator=torch.Generator().manual_seed(seed))[:n]
    reference = x_test[pick]  # the N test digits every FCD is computed against
    real = x_train[torch.randperm(len(x_train), generator=torch.Generator().manual_seed(seed + 1))[:n]]
    classifier = load_classifier(device="cpu")

    # --- VAE ---------------------------------------------------------------------------------------
    seed_everything(seed)
    vae = VAE(latent_dim=vae_latent_dim, arch=vae_arch)
    vae_config = TrainConfig(num_epochs=num_epochs, batch_size=batch_size, seed=seed, device=str(dev))
    start = time.perf_counter()
    vae_history = train_vae(vae, x_train, config=vae_config, progress=progress)
    vae_total = time.perf_counter() - start
    vae.eval()
    vae_samples = _sample(vae, n, seed + 11, dev)
    steps = len(vae_history.steps["loss"]) // num_epochs
    last = _last_epoch(vae_history.steps["loss"], steps)
    vae_result = {
        "model": f"VAE ({vae_arch}, latent {vae_latent_dim}), Bernoulli decoder; samples are its means",
        "parameters": _num_params(vae),
        **_set_metrics(vae_samples, reference, classifier),
        "test_nelbo": evaluate_vae(vae, x_test, pixels=vae_config.pixels)["nelbo"],
        "likelihood": "test -ELBO (nats, fixed binarization)",
        "seconds_per_epoch": float(np.mean(vae_history.epochs["seconds"])),
        "seconds_total": vae_total,
        "loss_name": "-ELBO (nats)",
        "last_epoch_loss_mean": float(last.mean()),
        "last_epoch_loss_std": float(last.std()),
        "saturated_steps": None,
    }

    # --- GAN ---------------------------------------------------------------------------------------
    seed_everything(seed)
    gan = GAN(latent_dim=gan_latent_dim, arch="dcgan", **DCGAN_RECIPE["model"])
    gan_config = GANTrainConfig(
        num_epochs=num_epochs, batch_size=batch_size, seed=seed, device=str(dev), **DCGAN_RECIPE["train"]
    )
    start = time.perf_counter()
    gan_history = train_gan(gan, x_train, config=gan_config, progress=progress)
    gan_total = time.perf_counter() - start
    gan_samples = _sample(gan, n, seed + 11, dev)
    steps = len(gan_history.steps["g_loss"]) // num_epochs
    last_g = _last_epoch(gan_history.steps["g_loss"], steps)
    last_d = _last_epoch(gan_history.steps["d_loss"], steps)
    gan_result = {
        "model": f"DCGAN (latent {gan_latent_dim}), non-saturating generator loss, the book's recipe",
        "parameters": _num_params(gan),
        "parameters_generator": _num_params(gan.generator),
        **_set_metrics(gan_samples, reference, classifier),
        "test_nelbo": None,
        "likelihood": "not available: no likelihood",
        "seconds_per_epoch": float(np.mean(gan_history.epochs["seconds"])),
        "seconds_total": gan_total,
        "loss_name": "generator loss",
        "last_epoch_loss_mean": float(last_g.mean()),
        "last_epoch_loss_std": float(last_g.std()),
        "last_epoch_d_loss_mean": float(last_d.mean()),
        "last_epoch_d_loss_std": float(last_d.std()),
        "saturated_steps": int(saturated_steps(gan_history.steps["d_fake"])[0]),
        "generator_steps": len(gan_history.steps["d_fake"]),
        "d_real": gan_history.epochs["d_real"][-1],
        "d_fake": gan_history.epochs["d_fake"][-1],
        "events": list(gan_history.events),
    }

    real_result = {
        "model": "real training digits (reference)",
        **_set_metrics(real.float().div(255).unsqueeze(1), reference, classifier),
    }
    result: Dict[str, Any] = {
        "settings": {
            "num_epochs": num_epochs,
            "batch_size": batch_size,
            "seed": seed,
            "device": str(dev),
            "n_samples": n,
            "train_origin": train_origin,
            "test_origin": test_origin,
            "torch": torch.__version__,
        },
        "vae": vae_result,
        "gan": gan_result,
        "real": real_result,
        "test_sharpness": laplacian_energy(reference),
    }
    if keep_models:
        result["models"] = {"vae": vae, "gan": gan}
        result["histories"] = {"vae": vae_history, "gan": gan_history}
        result["samples"] = {"vae": vae_samples, "gan": gan_samples, "test": reference, "real": real}
    return result


def _fmt(value, spec: str) -> str:
    if value is None:
        return "—"
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    return format(value, spec)


def format_comparison_table(result: Dict[str, Any], markdown: bool = False) -> str:
    """The comparison as a table: one row per quantity, columns VAE, GAN and real training digits.

    ``markdown=True`` gives a GitHub/MyST pipe table; otherwise aligned plain text. A header line states
    the data, the device, the epochs and ``N``.
    """
    s, v, g, r = result["settings"], result["vae"], result["gan"], result["real"]
    n, ts = s["n_samples"], result["test_sharpness"]
    rows = [
        ("parameters", f"{v['parameters']:,}", f"{g['parameters']:,} (G {g['parameters_generator']:,})", "—"),
        (
            f"FCD to {n:,} test digits (lower is better)",
            _fmt(v["fcd"], ".2f"),
            _fmt(g["fcd"], ".2f"),
            _fmt(r["fcd"], ".2f"),
        ),
        (
            f"sharpness, mean sq. Laplacian (test digits: {ts:.4f})",
            _fmt(v["sharpness"], ".4f"),
            _fmt(g["sharpness"], ".4f"),
            _fmt(r["sharpness"], ".4f"),
        ),
        (
            "sharpness / test digits' value",
            _fmt(v["sharpness"] / ts, ".2f"),
            _fmt(g["sharpness"] / ts, ".2f"),
            _fmt(r["sharpness"] / ts, ".2f"),
        ),
        (
            "classes with >= 2 % of samples (of 10)",
            str(v["classes_covered"]),
            str(g["classes_covered"]),
            str(r["classes_covered"]),
        ),
        (
            "KL(class histogram || uniform), nats",
            _fmt(v["kl_to_uniform"], ".3f"),
            _fmt(g["kl_to_uniform"], ".3f"),
            _fmt(r["kl_to_uniform"], ".3f"),
        ),
        ("test -ELBO, nats (binarized test digits)", _fmt(v["test_nelbo"], ".1f"), g["likelihood"], "—"),
        (
            f"seconds per epoch ({s['device']})",
            _fmt(v["seconds_per_epoch"], ".2f"),
            _fmt(g["seconds_per_epoch"], ".2f"),
            "—",
        ),
        (
            "last epoch: loss mean ± std over steps",
            f"{v['last_epoch_loss_mean']:.1f} ± {v['last_epoch_loss_std']:.1f} (-ELBO)",
            f"G {g['last_epoch_loss_mean']:.2f} ± {g['last_epoch_loss_std']:.2f}, D {g['last_epoch_d_loss_mean']:.2f} ± {g['last_epoch_d_loss_std']:.2f}",
            "—",
        ),
        (
            "generator steps with mean D(G(z)) < 0.01",
            "— (no discriminator)",
            f"{g['saturated_steps']} of {g['generator_steps']}",
            "—",
        ),
    ]
    header = ("quantity", "VAE", "GAN", "real digits")
    title = (
        f"VAE vs DCGAN, {s['num_epochs']} epochs each, batch {s['batch_size']}, seed {s['seed']}, device {s['device']}, "
        f"torch {s['torch']}; N = {n:,}. Train: {s['train_origin']}. Test: {s['test_origin']}. "
        f"VAE: {v['model']}. GAN: {g['model']}. Real digits: {n:,} training digits."
    )
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(["---"] * 4) + " |"]
        lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
        return title + "\n\n" + "\n".join(lines) + "\n"
    return title + "\n" + _aligned(header, rows)


def _aligned(header, rows) -> str:
    """``header`` and ``rows`` (tuples of strings) as left-aligned text columns under a dashed rule."""
    widths = [max(len(row[i]) for row in [*rows, header]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(header, widths)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    return "\n".join(lines) + "\n"


def write_comparison_table(result: Dict[str, Any], path: Union[str, Path], *, markdown: Optional[bool] = None) -> Path:
    """Write :func:`format_comparison_table` to ``path`` (Markdown if it ends in ``.md``, unless told)."""
    path = Path(path)
    if markdown is None:
        markdown = path.suffix.lower() == ".md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(format_comparison_table(result, markdown=markdown), encoding="utf-8")
    return path


def _mean_sd(values) -> Tuple[float, float]:
    a = np.asarray(values, dtype=np.float64)
    return float(a.mean()), float(a.std(ddof=1)) if len(a) > 1 else 0.0


def measure_trained(
    families: Dict[str, Sequence[torch.nn.Module]],
    test_images,
    train_images,
    *,
    n_samples: int = 10_000,
    seed: int = 0,
    device: Union[str, torch.device, None] = "auto",
) -> Dict[str, Any]:
    r"""Measure trained generative models, several runs of each family, on the scale of :func:`compare_vae_gan`.

    Parameters
    ----------
    families : a name (``"VAE"``, ``"DCGAN"``...) mapped to trained models with a ``sample(z=...)`` and a
        ``latent_dim`` (the runs of one family, e.g. the same network from three seeds).
    test_images, train_images : uint8 ``[N, 28, 28]`` tensors or ``gm.load_mnist`` ImageSets.
    n_samples : ``N``: samples per model, test digits they are compared with, and training digits of the
        real-versus-real floor (capped at the number of test and training images).
    seed : picks the ``N`` test and training digits and the noise; every model gets the same noise
        (of its own size).

    Returns
    -------
    dict with ``"settings"``, ``"real"`` (the floor: :func:`compare_vae_gan`'s metrics of ``N`` training
    digits), ``"test_sharpness"``, and ``"families"``: per name, ``"runs"`` (one metrics dict per model:
    ``fcd``, ``sharpness``, ``class_histogram``, ``classes_covered``, ``kl_to_uniform``, and ``parameters``,
    those the model holds: a zoo GAN's count has its generator and weight average, not the discriminator that
    its file leaves out), the mean and sample standard deviation over runs of each number (``"fcd"``, ``"sharpness"``,
    ``"kl_to_uniform"``, ``"classes_covered"``: ``(mean, sd)``; sd 0 for a single run), and ``"samples"``,
    the first run's ``N`` samples (float, ``[N, 1, 28, 28]``); ``"images"``: the ``N`` test digits
    (``"test"``) and training digits (``"real"``) used, uint8.
    """
    if not families or any(len(models) == 0 for models in families.values()):
        raise UserError("families must map each name to at least one trained model, e.g. {'VAE': [vae], 'GAN': [gan]}")
    check_int("n_samples", n_samples, minimum=2)
    x_test, test_origin = _images_and_origin(test_images)
    x_train, train_origin = _images_and_origin(train_images)
    dev = pick_device(device)
    n = min(n_samples, len(x_test), len(x_train))
    reference = x_test[torch.randperm(len(x_test), generator=torch.Generator().manual_seed(seed))[:n]]
    real = x_train[torch.randperm(len(x_train), generator=torch.Generator().manual_seed(seed + 1))[:n]]
    classifier = load_classifier(device="cpu")
    out: Dict[str, Any] = {}
    for name, models in families.items():
        runs, first = [], None
        for model in models:
            model = model.to(dev)
            with eval_mode(model):
                images = _sample(model, n, seed + 11, dev)
            first = images if first is None else first
            runs.append({**_set_metrics(images, reference, classifier), "parameters": _num_params(model)})
        out[name] = {
            "runs": runs,
            **{k: _mean_sd([r[k] for r in runs]) for k in ("fcd", "sharpness", "kl_to_uniform", "classes_covered")},
            "samples": first,
        }
    return {
        "settings": {
            "n_samples": n,
            "seed": seed,
            "device": str(dev),
            "train_origin": train_origin,
            "test_origin": test_origin,
            "torch": torch.__version__,
        },
        "families": out,
        "real": _set_metrics(real.float().div(255).unsqueeze(1), reference, classifier),
        "test_sharpness": laplacian_energy(reference),
        "images": {"test": reference, "real": real},
    }


def format_trained_table(result: Dict[str, Any]) -> str:
    """:func:`measure_trained`'s result as aligned text: one row per family, mean ± sd over its runs, and the
    real-versus-real floor."""
    n, ts = result["settings"]["n_samples"], result["test_sharpness"]
    header = ("model", "runs", f"FCD (N = {n:,})", "classes (of 10)", "KL(classes || uniform)", "sharpness / test")
    rows = []
    for name, f in result["families"].items():
        k = len(f["runs"])
        pm = lambda ms, spec, k=k: format(ms[0], spec) + (f" ± {format(ms[1], spec)}" if k > 1 else "")
        covered = sorted({r["classes_covered"] for r in f["runs"]})
        rows.append(
            (
                name,
                str(k),
                pm(f["fcd"], ".1f"),
                "–".join(str(c) for c in (covered[0], covered[-1])) if len(covered) > 1 else str(covered[0]),
                pm(f["kl_to_uniform"], ".3f"),
                pm((f["sharpness"][0] / ts, f["sharpness"][1] / ts), ".2f"),
            )
        )
    r = result["real"]
    rows.append(
        (
            "real training digits",
            "—",
            f"{r['fcd']:.2f}",
            str(r["classes_covered"]),
            f"{r['kl_to_uniform']:.3f}",
            f"{r['sharpness'] / ts:.2f}",
        )
    )
    return _aligned(header, rows)


def seconds_per_epoch(
    model: torch.nn.Module,
    train_images,
    *,
    settings: Optional[Dict[str, Any]] = None,
    steps: int = 40,
    batch_size: int = 128,
    device: Union[str, torch.device, None] = "auto",
) -> float:
    """Seconds one epoch over ``train_images`` takes, timed on ``steps`` training steps of a copy of ``model``.

    The copy (a :class:`~genmodels.vae.VAE` or a :class:`~genmodels.gan.GAN`) is trained with its loop
    (``train_vae`` / ``train_gan``) and ``settings`` (the fields of its training config, e.g. a zoo entry's),
    for two passes over ``steps`` batches of the images; the faster pass, scaled to
    ``ceil(len(train_images) / batch_size)`` steps, is the answer (the first pass pays one-off costs). The
    model itself is not changed. A part that its checkpoint left out (a zoo GAN's discriminator, a
    :class:`~genmodels.engine.checkpoints.LeftOut`) is timed as a freshly built one of the same config: a step
    costs the same whatever the weights. Time it on an otherwise idle device: the number is only as good as that.
    """
    check_int("steps", steps), check_int("batch_size", batch_size)
    x, _ = _images_and_origin(train_images)
    used = x[: steps * batch_size]
    loop = train_vae if isinstance(model, VAE) else train_gan if isinstance(model, GAN) else None
    if loop is None:
        raise UserError(f"seconds_per_epoch times a VAE or a GAN, got {type(model).__name__}")
    copy_ = copy.deepcopy(model)
    left_out = [name for name, part in copy_.named_children() if isinstance(part, LeftOut)]
    if left_out:
        fresh = type(model).from_config(model.config)
        for name in left_out:
            setattr(copy_, name, getattr(fresh, name))
    keep = {k: v for k, v in (settings or {}).items() if k not in ("num_epochs", "batch_size", "device", "progress")}
    history = loop(
        copy_, used, num_epochs=2, batch_size=batch_size, device=str(pick_device(device)), progress=False, **keep
    )
    per_step = min(history.epochs["seconds"]) / math.ceil(len(used) / batch_size)
    return per_step * math.ceil(len(x) / batch_size)
