"""Which digits a generator draws, how evenly, and which modes of a 2-D mixture it reaches."""

from __future__ import annotations

import math
from typing import (
    Any,
    Dict,
    List,
    Optional,
)

import torch
from torch import nn

from ..core import DeviceLike, UserError, check_int, eval_mode
from .checks import NUM_CLASSES, _as_images, _batches, _model_device
from .classifier import _resolve_classifier

__all__ = [
    "class_histogram",
    "classes_covered",
    "kl_to_uniform",
    "mode_coverage",
    "score_mixture_runs",
    "score_counts",
]


@torch.no_grad()
def class_histogram(
    images: torch.Tensor, *, classifier: Optional[nn.Module] = None, batch_size: int = 500, device: DeviceLike = None
) -> torch.Tensor:
    """How many of ``images`` the classifier puts in each class: int64 ``[10]`` on the CPU, summing to N.

    ``images``: uint8 0..255 or float in [0, 1]; ``classifier`` defaults to the shipped one.
    """
    classifier = _resolve_classifier(classifier, device)
    x, dev = _as_images(images), _model_device(classifier)
    with eval_mode(classifier):
        predicted = torch.cat([classifier(xb.to(dev)).argmax(1).cpu() for xb in _batches(x, batch_size)])
    return torch.bincount(predicted, minlength=NUM_CLASSES)


def _as_histogram(hist) -> torch.Tensor:
    hist = torch.as_tensor(hist).detach().cpu().double().flatten()
    if hist.numel() == 0 or (hist < 0).any() or hist.sum() <= 0:
        raise UserError("a histogram needs non-negative counts with a positive total")
    return hist


def classes_covered(hist, *, min_fraction: float = 0.02) -> int:
    """How many classes hold at least ``min_fraction`` of the samples.

    The default, 2 %, is a fifth of a class's share when all ten are equally likely (the same rule as
    :func:`mode_coverage`), and above the largest rate at which the shipped classifier reads the digits
    of one class as one particular other class (1.6 %: fours read as nines, on the real MNIST test set).
    So a generator that draws only fours is not credited with nines through the classifier's mistakes,
    while a class drawn at a fifth of its due rate still counts.
    """
    if not 0.0 <= min_fraction <= 1.0:
        raise UserError(f"min_fraction must be in [0, 1], got {min_fraction!r}")
    hist = _as_histogram(hist)
    return int((hist / hist.sum() >= min_fraction).sum())


def kl_to_uniform(hist) -> float:
    r""":math:`\mathrm{KL}(p \,\|\, u) = \sum_k p_k \log(K p_k)` in nats, for the class shares :math:`p` of a
    histogram and the uniform :math:`u_k = 1/K`: 0 when all ``K`` classes are equally frequent,
    :math:`\log K` (2.30 for digits) when all samples fall in one class."""
    hist = _as_histogram(hist)
    p = hist / hist.sum()
    nonzero = p > 0
    return float((p[nonzero] * (p[nonzero] * p.numel()).log()).sum())


# ----------------------------------------------------------------------------------------------
# Modes of the 2-D mixtures
# ----------------------------------------------------------------------------------------------


def mode_coverage(
    samples: torch.Tensor,
    centres: torch.Tensor,
    std: float,
    *,
    threshold_std: float = 3.0,
    min_count: Optional[int] = None,
) -> Dict[str, Any]:
    r"""Modes reached and the share of "high-quality" samples, for a mixture of Gaussians in the plane.

    Each sample is assigned to its nearest centre. It is **high quality** if it lies within
    ``threshold_std``·``std`` of that centre; a mode is **covered** if it received at least ``min_count``
    high-quality samples. This is the protocol used for the ring of 8 and the grid of 25 Gaussians since
    VEEGAN (Srivastava et al. 2017) and PacGAN (Lin et al. 2018), with 3 standard deviations.

    The defaults: with ``threshold_std=3`` a sample of the true mixture is high quality with probability
    :math:`1 - e^{-9/2} \approx 0.989` (the distance of a 2-D isotropic Gaussian from its centre has the
    Rayleigh law, :math:`P(r \le k\sigma) = 1 - e^{-k^2/2}`), so the best possible share is about 98.9 %,
    not 100 %. ``min_count=None`` means a fifth of the number a mode gets when the ``N`` samples are spread
    evenly over the ``K`` modes, :math:`\lceil N / (5K) \rceil` (20 of 2,500 samples on the 25-mode grid):
    a mode hit only by a few stray samples is not counted as learned, yet one drawn at a fifth of its
    due rate is.

    Parameters
    ----------
    samples : torch.Tensor ``[N, 2]``
    centres : torch.Tensor ``[K, 2]``
        The mixture's means (the second output of :func:`~genmodels.toys.ring_of_gaussians` /
        :func:`~genmodels.toys.grid_of_gaussians`).
    std : float
        The standard deviation of each component (the ``std`` the data were drawn with).
    threshold_std : float
        How many standard deviations from its centre a sample may lie and still count as high quality.
    min_count : int, optional
        High-quality samples a mode needs to count as covered (default: see above).

    Returns
    -------
    dict
        ``modes_covered`` (int), ``high_quality_share`` (float in [0, 1]), ``counts`` (int64 ``[K]``: the
        high-quality samples of each mode), ``num_modes`` (``K``) and ``min_count`` (the one used).
    """
    samples = torch.as_tensor(samples).detach()
    centres = torch.as_tensor(centres).detach().to(samples.device, torch.float64)
    samples = samples.double()
    if samples.ndim != 2 or centres.ndim != 2 or samples.shape[1] != centres.shape[1]:
        raise UserError(
            f"samples must be [N, D] and centres [K, D]; got {list(samples.shape)} and {list(centres.shape)}"
        )
    if samples.shape[0] == 0 or centres.shape[0] == 0:
        raise UserError("mode_coverage needs at least one sample and one centre")
    if not std > 0 or not threshold_std > 0:
        raise UserError(f"std and threshold_std must be positive, got {std!r} and {threshold_std!r}")
    n, k = samples.shape[0], centres.shape[0]
    if min_count is None:
        min_count = max(1, math.ceil(n / (5 * k)))
    else:
        check_int("min_count", min_count)
    distance, nearest = torch.cdist(samples, centres).min(dim=1)  # (N,), (N,)
    good = distance <= threshold_std * std  # (N,)
    counts = torch.bincount(nearest[good], minlength=k).cpu()  # (K,)
    return {
        "modes_covered": int((counts >= min_count).sum()),
        "high_quality_share": float(good.double().mean()),
        "counts": counts,
        "num_modes": k,
        "min_count": int(min_count),
    }


def score_mixture_runs(runs, *, samples: Optional[torch.Tensor] = None, min_count: int = 1) -> List[Dict]:
    r"""Score each seed of ``runs``, a :class:`~genmodels.gan_mixtures.MixtureRuns` (anything with ``samples``
    ``[S, N, 2]``, ``centres`` and ``std``), or of ``samples`` ``[S, N, 2]`` (e.g. a snapshot's) drawn from
    the same mixture, as PacGAN does: ``modes``
    covered (a mode counts with at least ``min_count`` high-quality samples; PacGAN's code uses 1),
    ``high_quality`` (percent of samples within 3σ of their nearest centre), ``reverse_kl`` (nats,
    :math:`\mathrm{KL}(p\,\|\,u)` between the histogram of high-quality samples over the modes and the
    uniform one; ``nan`` when no sample is of high quality), ``counts`` and a ``verdict``:

    * ``"not converged"``: fewer than half the samples are of high quality, so the samples are not yet on
      the modes at all, whichever modes they are nearest;
    * ``"collapsed"``: most samples are of high quality but some modes received none;
    * ``"all modes"``: every mode received high-quality samples.
    """
    samples = runs.samples if samples is None else samples
    counts = [
        mode_coverage(samples[s], runs.centres, runs.std, min_count=min_count)["counts"]
        for s in range(samples.shape[0])
    ]
    return score_counts(torch.stack(counts), samples.shape[1], min_count=min_count)


def score_counts(counts: torch.Tensor, num_samples: int, *, min_count: int = 1) -> List[Dict]:
    """:func:`score_mixture_runs` from the histograms alone: ``counts`` ``[S, K]`` holds, per seed, the
    high-quality samples of each mode out of ``num_samples`` (what :func:`mode_coverage` returns as
    ``counts``). Everything :func:`score_mixture_runs` reports is a function of them, so a table stored as
    histograms scores exactly as the samples it was counted from."""
    counts = torch.as_tensor(counts)
    if counts.ndim != 2 or counts.dtype.is_floating_point:
        raise UserError(f"counts must be integer counts [seeds, modes], got {counts.dtype} {list(counts.shape)}")
    check_int("num_samples", num_samples, minimum=1)
    if int(counts.sum(1).max()) > num_samples or int(counts.min()) < 0:
        raise UserError(f"each seed's counts must be between 0 and num_samples = {num_samples} in all")
    scores = []
    for c in counts:
        hq = 100.0 * int(c.sum()) / num_samples
        modes = int((c >= min_count).sum())
        reverse_kl = kl_to_uniform(c) if int(c.sum()) > 0 else float("nan")
        if hq < 50.0:
            verdict = "not converged"
        elif modes < len(c):
            verdict = "collapsed"
        else:
            verdict = "all modes"
        scores.append(
            {
                "modes": modes,
                "num_modes": len(c),
                "high_quality": hq,
                "reverse_kl": reverse_kl,
                "counts": c,
                "verdict": verdict,
            }
        )
    return scores
