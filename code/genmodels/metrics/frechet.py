"""The Fréchet distance between Gaussians fitted to features, and the Fréchet classifier distance.

* :func:`frechet_classifier_distance`, the **Fréchet classifier distance (FCD)**: the Fréchet
  inception distance (FID, Heusel et al. 2017) computed on the classifier's penultimate-layer features
  instead of Inception's pool features. It is *not* comparable with FID numbers in papers; it is
"""

from __future__ import annotations

from typing import (
    Optional,
)

import numpy as np
import torch
from torch import nn

from ..core import DeviceLike, UserError, eval_mode
from .checks import _as_images, _batches, _model_device
from .classifier import _resolve_classifier

__all__ = [
    "frechet_distance",
    "classifier_features",
    "frechet_classifier_distance",
]


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    r"""The Fréchet (2-Wasserstein) distance, squared, between :math:`\mathcal N(\mu_1, \Sigma_1)` and :math:`\mathcal N(\mu_2, \Sigma_2)`:

    .. math::

        d^2 = \lVert \mu_1 - \mu_2 \rVert^2
              + \operatorname{tr}\Big(\Sigma_1 + \Sigma_2 - 2\big(\Sigma_1^{1/2}\,\Sigma_2\,\Sigma_1^{1/2}\big)^{1/2}\Big)

    (the usual :math:`\operatorname{tr}(\Sigma_1\Sigma_2)^{1/2}` is the same number: :math:`\Sigma_1\Sigma_2` and
    the symmetric :math:`\Sigma_1^{1/2}\Sigma_2\Sigma_1^{1/2}` have the same eigenvalues). Computed in
    float64 with two symmetric eigen-decompositions (``torch.linalg.eigh``), no ``scipy.linalg.sqrtm``:
    :math:`\Sigma_1^{1/2} = V \operatorname{diag}(\sqrt{\lambda}) V^\top`, then the square roots of the
    eigenvalues of the symmetric product, clamped at 0 (rounding can make the smallest slightly negative).
    This is independent of torchmetrics' route (eigenvalues of the non-symmetric :math:`\Sigma_1\Sigma_2`),
    which is why the tests use it to check :func:`frechet_classifier_distance`.

    Parameters
    ----------
    mu1, mu2 : array-like ``[d]``
    sigma1, sigma2 : array-like ``[d, d]``, symmetric positive semi-definite

    Returns
    -------
    float
        :math:`d^2 \ge 0` (rounding below 0 is clamped to 0).
    """
    mu1, mu2, sigma1, sigma2 = (
        torch.as_tensor(np.asarray(t) if not isinstance(t, torch.Tensor) else t).detach().cpu().double()
        for t in (mu1, mu2, sigma1, sigma2)
    )
    mu1, mu2 = mu1.reshape(-1), mu2.reshape(-1)
    d = mu1.shape[0]
    if mu2.shape != (d,) or sigma1.shape != (d, d) or sigma2.shape != (d, d):
        raise UserError(
            f"shapes do not match: mu1 {list(mu1.shape)}, sigma1 {list(sigma1.shape)}, "
            f"mu2 {list(mu2.shape)}, sigma2 {list(sigma2.shape)}; expected [d] and [d, d]"
        )
    sigma1, sigma2 = (sigma1 + sigma1.T) / 2, (sigma2 + sigma2.T) / 2
    lam, vec = torch.linalg.eigh(sigma1)
    root1 = (vec * lam.clamp(min=0).sqrt()) @ vec.T  # Σ1^{1/2}
    middle = root1 @ sigma2 @ root1
    trace_sqrt = torch.linalg.eigvalsh((middle + middle.T) / 2).clamp(min=0).sqrt().sum()
    value = (mu1 - mu2).pow(2).sum() + sigma1.trace() + sigma2.trace() - 2 * trace_sqrt
    return max(float(value), 0.0)


class _Features(nn.Module):
    """The classifier's penultimate layer as a torchmetrics feature extractor, in float64."""

    def __init__(self, classifier: nn.Module):
        super().__init__()
        self.classifier = classifier
        self.num_features = int(classifier.num_features)  # read by torchmetrics instead of probing a 3×299×299 image

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier.features(x).double()  # (B, F); float64 makes torchmetrics return float64


@torch.no_grad()
def classifier_features(
    images: torch.Tensor, *, classifier: Optional[nn.Module] = None, batch_size: int = 500, device: DeviceLike = None
) -> torch.Tensor:
    """Penultimate-layer features ``[N, num_features]`` (float32, CPU) of digits, uint8 or float in [0, 1]."""
    classifier = _resolve_classifier(classifier, device)
    x, dev = _as_images(images), _model_device(classifier)
    with eval_mode(classifier):
        return torch.cat([classifier.features(xb.to(dev)).float().cpu() for xb in _batches(x, batch_size)])


@torch.no_grad()
def frechet_classifier_distance(
    images_a: torch.Tensor,
    images_b: torch.Tensor,
    *,
    classifier: Optional[nn.Module] = None,
    batch_size: int = 500,
    device: DeviceLike = None,
) -> float:
    r"""The Fréchet classifier distance (FCD): FID computed on the MNIST classifier's penultimate features.

    Each set of images is mapped to features :math:`f(x) \in \mathbb R^{F}` (:meth:`MNISTClassifier.features`,
    ``F = 128`` for the shipped classifier); with the means :math:`\mu_a, \mu_b` and covariances
    :math:`\Sigma_a, \Sigma_b` (divided by :math:`N - 1`) of the two sets,

    .. math::

        \mathrm{FCD} = \lVert \mu_a - \mu_b \rVert^2
                       + \operatorname{tr}\big(\Sigma_a + \Sigma_b - 2 (\Sigma_a \Sigma_b)^{1/2}\big),

    the FID formula of Heusel et al. (2017) with the digit classifier in place of Inception v3 (whose
    weights cannot be downloaded here and which expects 299×299 photographs). The statistics and the
    distance are computed by ``torchmetrics.image.fid.FrechetInceptionDistance`` with the classifier as a
    custom feature extractor, in float64. 0 for identical sets; larger is further apart. Like FID it is
    biased upwards for small sets: compare numbers computed with the same classifier and the same
    number of images (a few thousand; at least several times ``F``). It is a distance between features,
    not pixels: it grows steadily with added noise, with dimming and with the share of junk mixed in,
    but for a brightness offset it rises only up to an offset of about 0.2 and then falls, as the
    washed-out digits' features stop changing in the same direction.

    Parameters
    ----------
    images_a, images_b : torch.Tensor
        Two sets of digits: uint8 ``[N, 28, 28]`` (0..255) or float ``[N, 1, 28, 28]`` in [0, 1] (a VAE's or
        GAN's ``sample``). Floats outside [0, 1] are refused, not rescaled. At least 2 images each.
    classifier : MNISTClassifier, optional
        Default: the shipped one (:func:`load_classifier`).
    batch_size : int
        Images per forward pass.
    device : str or torch.device, optional
        Where to run the classifier; default: where ``classifier`` is (the CPU for the shipped one).

    Returns
    -------
    float
    """
    from torchmetrics.image.fid import FrechetInceptionDistance  # a dependency; imported here, not at import time

    x_a, x_b = _as_images(images_a, name="images_a"), _as_images(images_b, name="images_b")
    if x_a.shape[0] < 2 or x_b.shape[0] < 2:
        raise UserError(f"the FCD needs at least 2 images per set, got {x_a.shape[0]} and {x_b.shape[0]}")
    classifier = _resolve_classifier(classifier, device)
    dev = _model_device(classifier)
    with eval_mode(classifier):
        # normalize=True: for a custom extractor torchmetrics passes the float images through unchanged
        # (it would only cast to uint8 for its own Inception network)
        metric = FrechetInceptionDistance(feature=_Features(classifier), normalize=True, input_img_size=(1, 28, 28))
        metric = metric.to(dev)  # the states; the classifier is already there
        for real, x in ((True, x_a), (False, x_b)):
            for xb in _batches(x, batch_size):
                metric.update(xb.to(dev), real=real)
        return float(metric.compute())
