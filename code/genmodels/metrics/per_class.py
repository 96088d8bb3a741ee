r"""Judges of a conditional generator: does it draw the class it is asked for, how well, and how evenly.

A conditional generator is passed as a callable ``generate(y=labels) -> images`` (int64 labels ``[n]`` in,
``[n, 1, 28, 28]`` in [0, 1] out): the ``sample`` method of :class:`~genmodels.conditional.CVAE` and
:class:`~genmodels.conditional.CGAN` is one, and so is any function that looks digits up, which is how the
tests check these judges on real digits. An unconditional generator is a callable ``generate(n) -> images``,
such as ``VAE.sample`` or ``GAN.sample``.

* :func:`conditional_accuracy`: for each class :math:`y`, the fraction of the images drawn for :math:`y`
  that the book's classifier reads as :math:`y`; 0.1 for a generator that ignores the label, at most the
  classifier's own accuracy on real digits of that class for a perfect one.
* :func:`per_class_fcd`: the Fréchet classifier distance between the images drawn for :math:`y` and the real
  digits of class :math:`y`, one number per class, so a class drawn well cannot hide a class drawn badly.
* :func:`compare_class_histograms`: which digits an unconditional generator draws, against those of a
  conditional one asked for uniformly random classes.

Draws use torch's global generator: seed it (``gm.seed_everything``) for numbers that repeat.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Optional

import torch
from torch import nn

from ..core import DeviceLike, UserError, check_int
from .checks import NUM_CLASSES
from .classifier import _resolve_classifier
from .coverage import class_histogram, kl_to_uniform
from .frechet import classifier_features, frechet_distance

__all__ = ["conditional_accuracy", "per_class_fcd", "compare_class_histograms"]


def _draw(generate: Callable, y: torch.Tensor) -> torch.Tensor:
    """``generate(y=y)``, checked to return one image per label."""
    images = generate(y=y)
    if not isinstance(images, torch.Tensor) or images.shape[0] != y.shape[0]:
        got = list(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise UserError(f"generate(y=...) must return one image per label: {y.shape[0]} labels, got {got}")
    return images


@torch.no_grad()
def conditional_accuracy(
    generate: Callable[..., torch.Tensor],
    *,
    n_per_class: int = 100,
    num_classes: int = NUM_CLASSES,
    classifier: Optional[nn.Module] = None,
    batch_size: int = 500,
    device: DeviceLike = None,
) -> Dict[str, Any]:
    r"""The class-conditional accuracy of a generator under the book's classifier :math:`c`, per class:

    .. math:: a_y = \frac1n \sum_{i=1}^{n} \mathbb 1\big[c(x_i) = y\big], \qquad x_i = \text{generate}(y), \ i = 1..n.

    Parameters
    ----------
    generate : callable
        ``generate(y=labels)`` returns one image per label (``CVAE.sample``, ``CGAN.sample``).
    n_per_class : int
        Images drawn for each class (the standard error of :math:`a_y` is at most :math:`0.5/\sqrt n`).
    num_classes : int
        Classes to ask for, ``0..num_classes-1``.
    classifier, batch_size, device :
        As in :func:`~genmodels.metrics.class_histogram` (default: the shipped classifier).

    Returns
    -------
    dict
        ``accuracy``: float64 ``[K]``, :math:`a_y` per class; ``mean``: their mean (the accuracy over all
        ``K·n`` images); ``confusion``: int64 ``[K, 10]``, row :math:`y` the classifier's histogram of the images
        drawn for :math:`y`.
    """
    check_int("n_per_class", n_per_class)
    check_int("num_classes", num_classes)
    if num_classes > NUM_CLASSES:
        raise UserError(f"the classifier knows {NUM_CLASSES} classes; num_classes={num_classes} is more")
    classifier = _resolve_classifier(classifier, device)
    rows = []
    for y in range(num_classes):
        images = _draw(generate, torch.full((n_per_class,), y, dtype=torch.long))
        rows.append(class_histogram(images, classifier=classifier, batch_size=batch_size))
    confusion = torch.stack(rows)  # (K, 10)
    accuracy = confusion.diagonal().double() / n_per_class  # (K,)
    return {"accuracy": accuracy, "mean": float(accuracy.mean()), "confusion": confusion}


@torch.no_grad()
def per_class_fcd(
    generate: Callable[..., torch.Tensor],
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    n_per_class: Optional[int] = None,
    num_classes: int = NUM_CLASSES,
    classifier: Optional[nn.Module] = None,
    batch_size: int = 500,
    device: DeviceLike = None,
) -> torch.Tensor:
    r"""The Fréchet classifier distance of each class: images drawn for :math:`y` against the real digits of
    class :math:`y`,

    .. math:: \mathrm{FCD}_y = \lVert \mu^g_y - \mu^r_y \rVert^2
        + \operatorname{tr}\big(\Sigma^g_y + \Sigma^r_y - 2 (\Sigma^g_y \Sigma^r_y)^{1/2}\big)

    with the means and covariances (divided by :math:`N - 1`) of the classifier's features
    (:func:`~genmodels.metrics.classifier_features`) and :func:`~genmodels.metrics.frechet_distance`. Like
    the FCD it is biased upwards for small sets, and a class of the test set holds only about a tenth of it
    (about 100 digits of the offline subset, fewer than the 128 features): compare numbers computed with the
    same real digits and the same ``n_per_class``.

    Parameters
    ----------
    generate : callable
        ``generate(y=labels)`` returns one image per label.
    images, labels :
        The real digits (uint8 or float in [0, 1]) and their classes, e.g. ``gm.load_mnist("test")``.
    n_per_class : int, optional
        Images drawn for each class; default: as many as the real digits of that class.
    num_classes, classifier, batch_size, device :
        As in :func:`conditional_accuracy`.

    Returns
    -------
    torch.Tensor
        float64 ``[K]``, :math:`\mathrm{FCD}_y` per class.
    """
    labels = torch.as_tensor(labels).long().flatten().cpu()
    if labels.shape[0] != images.shape[0]:
        raise UserError(f"{images.shape[0]:,} images but {labels.shape[0]:,} labels")
    classifier = _resolve_classifier(classifier, device)
    real_features = classifier_features(images, classifier=classifier, batch_size=batch_size)  # (N, F)
    values = []
    for y in range(num_classes):
        real = real_features[labels == y].double()
        n = real.shape[0] if n_per_class is None else check_int("n_per_class", n_per_class, minimum=2)
        if real.shape[0] < 2:
            raise UserError(f"the real digits hold {real.shape[0]} of class {y}; the FCD needs at least 2")
        fake_images = _draw(generate, torch.full((n,), y, dtype=torch.long))
        fake = classifier_features(fake_images, classifier=classifier, batch_size=batch_size).double()
        values.append(frechet_distance(fake.mean(0), torch.cov(fake.T), real.mean(0), torch.cov(real.T)))
    return torch.tensor(values, dtype=torch.float64)


@torch.no_grad()
def compare_class_histograms(
    *,
    unconditional: Optional[Callable[..., torch.Tensor]] = None,
    conditional: Optional[Callable[..., torch.Tensor]] = None,
    n: int = 1000,
    num_classes: int = NUM_CLASSES,
    classifier: Optional[nn.Module] = None,
    batch_size: int = 500,
    device: DeviceLike = None,
) -> Dict[str, Any]:
    r"""The classifier's class histogram of ``n`` images of an unconditional generator, ``unconditional(n)``,
    and of ``n`` images of a conditional one asked for uniformly random classes, ``conditional(y=y)`` with
    :math:`y_i \sim \mathcal U\{0, \dots, K-1\}`.

    Returns
    -------
    dict
        For each generator given, ``"unconditional"`` and/or ``"conditional"``: ``{"histogram": int64 [10],
        "kl_to_uniform": float}`` (:func:`~genmodels.metrics.kl_to_uniform`, 0 for equal shares, 2.30 for one
        class); with ``conditional`` also ``"requested"``, the int64 ``[K]`` histogram of the labels asked for
        (itself not exactly uniform: ``n`` draws).
    """
    check_int("n", n)
    if unconditional is None and conditional is None:
        raise UserError("give unconditional=..., conditional=... or both: the generators whose classes to count")
    classifier = _resolve_classifier(classifier, device)
    out: Dict[str, Any] = {}
    for name, generator in (("unconditional", unconditional), ("conditional", conditional)):
        if generator is None:
            continue
        if name == "conditional":
            y = torch.randint(num_classes, (n,))
            out["requested"] = torch.bincount(y, minlength=num_classes)
            images = _draw(generator, y)
        else:
            images = generator(n)
        hist = class_histogram(images, classifier=classifier, batch_size=batch_size)
        out[name] = {"histogram": hist, "kl_to_uniform": kl_to_uniform(hist)}
    return out
