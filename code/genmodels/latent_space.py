r"""Looking at a trained VAE through its latent space.

* :func:`encode_dataset`: the posterior means :math:`\mu(x)` (and log-variances) of a whole image set,
  computed in batches on the fixed binarization that :func:`genmodels.train.evaluate_vae` uses;
* :func:`latent_activity` and :func:`active_units`: how much each latent dimension is used, the
  "active units" statistic of Burda et al. (2016), and :func:`kl_per_dimension`, the KL term split
  over the latent dimensions;
* :func:`gaussian_grid` and :func:`latent_grid`: the decoded manifold of a VAE with ``latent_dim=2``
  on a grid of Gaussian quantiles, so equal steps on the grid carry equal prior probability;
* :func:`draw_from_likelihood`: binary images drawn from :math:`p(x \mid z)`, where
  :meth:`VAE.sample <genmodels.vae.VAE.sample>` returns the Bernoulli means :math:`\sigma(a(z))`;
* :func:`interpolate`: points on the straight line or on the spherical path between two codes;
* :func:`neighbour_average`: the pixel-wise mean of the images whose codes lie nearest to a point
  :math:`z`, which is what a factorized Bernoulli decoder is pulled towards at that point.

Nothing here trains or changes the model; every function runs under ``torch.no_grad()``.
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch

from . import distributions as D
from .core import UserError, check_int, eval_mode
from .engine.loops import eval_images
from .vae import VAE

__all__ = [
    "encode_dataset",
    "latent_activity",
    "active_units",
    "kl_per_dimension",
    "gaussian_grid",
    "latent_grid",
    "draw_from_likelihood",
    "neighbour_average",
    "PATHS",
    "interpolate",
]

PATHS = ("linear", "spherical")


@torch.no_grad()
def encode_dataset(
    vae: VAE,
    images: torch.Tensor,
    *,
    pixels: str = "dynamic",
    batch_size: int = 1000,
    return_logvar: bool = False,
):
    r"""Posterior means :math:`\mu(x)` of every image, ``[N, latent_dim]`` float32 on the CPU.

    Parameters
    ----------
    vae : the trained model (left on its device, in the mode it was in).
    images : uint8 ``[N, 28, 28]`` (or an ``(images, labels)`` pair), or a float tensor already in the
        form the encoder should see.
    pixels : the pixel model the VAE was trained with. For ``"dynamic"`` and ``"static"`` uint8 images
        are binarized once with the evaluation seed, exactly as :func:`genmodels.train.evaluate_vae`
        does, so codes and test bounds refer to the same binary images; ``"continuous"`` keeps grey values.
    batch_size : images per encoder call.
    return_logvar : also return the log-variances :math:`\log\sigma^2(x)`.

    Returns
    -------
    ``mu`` or ``(mu, logvar)``, each ``[N, latent_dim]``, in the order of ``images``.
    """
    check_int("batch_size", batch_size)
    x_all = eval_images(images, pixels)
    mus, logvars = [], []
    with eval_mode(vae):
        for start in range(0, len(x_all), batch_size):
            mu, logvar = vae.encode(x_all[start : start + batch_size].to(vae.device))
            mus.append(mu.float().cpu())
            logvars.append(logvar.float().cpu())
    mu, logvar = torch.cat(mus), torch.cat(logvars)
    return (mu, logvar) if return_logvar else mu


@torch.no_grad()
def latent_activity(vae: VAE, images: torch.Tensor, *, pixels: str = "dynamic", batch_size: int = 1000) -> torch.Tensor:
    r"""Variance over the data of each coordinate of the posterior mean, ``[latent_dim]``.

    .. math::

        A_j = \operatorname{Var}_{x}\big(\mathbb E_{q(z\mid x)}[z_j]\big) = \operatorname{Var}_x\big(\mu_j(x)\big)

    A dimension whose mean does not move with :math:`x` carries no information about the image: its
    posterior is the same for every input, and the KL term pushes that posterior to the prior. The
    variance is the population variance (divided by :math:`N`).
    """
    mu = encode_dataset(vae, images, pixels=pixels, batch_size=batch_size).double()
    return mu.var(dim=0, unbiased=False).float()


def active_units(
    vae: VAE, images: torch.Tensor, *, threshold: float = 0.01, pixels: str = "dynamic", batch_size: int = 1000
) -> int:
    r"""Number of latent dimensions with :math:`A_j >` ``threshold`` (see :func:`latent_activity`).

    The default threshold :math:`10^{-2}` is the one of Burda et al. (2016), section 5.2; the count is
    insensitive to it because :math:`A_j` of unused and used dimensions differ by orders of magnitude.
    """
    if not threshold > 0:
        raise UserError(f"threshold must be positive, got {threshold!r}")
    activity = latent_activity(vae, images, pixels=pixels, batch_size=batch_size)
    return int((activity > threshold).sum())


@torch.no_grad()
def kl_per_dimension(
    vae: VAE, images: torch.Tensor, *, pixels: str = "dynamic", batch_size: int = 1000
) -> torch.Tensor:
    r"""The KL term of the ELBO split over the latent dimensions and averaged over the images, ``[latent_dim]``.

    .. math::

        \mathrm{KL}_j = \frac1N \sum_{n=1}^{N} \tfrac12 \big( \mu_j(x_n)^2 + \sigma_j^2(x_n) - 1 - \log\sigma_j^2(x_n) \big)

    With a diagonal Gaussian encoder and a standard normal prior the KL is a sum over dimensions, so the
    entries add up to the mean KL term over the images: the nats of information each dimension carries.
    A dimension with :math:`\mathrm{KL}_j \approx 0` has a posterior equal to the prior for every image.
    """
    mu, logvar = encode_dataset(vae, images, pixels=pixels, batch_size=batch_size, return_logvar=True)
    # gaussian_kl sums over the last dimension: give each latent dimension one of its own
    return D.gaussian_kl(mu.double().unsqueeze(-1), logvar.double().unsqueeze(-1)).mean(dim=0).float()


def gaussian_grid(n: int = 20, *, span: float = 0.9) -> torch.Tensor:
    r"""Points of a 2-D grid at standard-normal quantiles, ``[n, n, 2]``, laid out like an image.

    Each axis takes the quantiles :math:`\Phi^{-1}(p)` at ``n`` probabilities ``p`` evenly spaced from
    :math:`(1-\text{span})/2` to :math:`(1+\text{span})/2`, so neighbouring points are separated by equal
    prior probability rather than equal distance, and the grid covers the central ``span`` of the prior's
    mass along each axis. Entry ``[i, j]`` is the point :math:`(z_1, z_2)` drawn in row ``i`` (top to
    bottom: :math:`z_2` *decreasing*) and column ``j`` (left to right: :math:`z_1` increasing), so that a
    tiled picture has the same orientation as a scatter plot of the codes with :math:`z_2` upwards.
    """
    check_int("n", n, minimum=2)
    if not 0 < span < 1:
        raise UserError(f"span must lie strictly between 0 and 1, got {span!r}")
    p = torch.linspace((1 - span) / 2, (1 + span) / 2, n, dtype=torch.float64)
    q = torch.special.ndtri(p)  # (n,) increasing
    z1 = q.view(1, n).expand(n, n)  # columns: left to right
    z2 = q.flip(0).view(n, 1).expand(n, n)  # rows: top to bottom, z2 decreasing
    return torch.stack([z1, z2], dim=-1).float()  # (n, n, 2)


@torch.no_grad()
def latent_grid(vae: VAE, n: int = 20, *, span: float = 0.9) -> Tuple[torch.Tensor, torch.Tensor]:
    r"""The decoded manifold of a VAE with ``latent_dim=2``.

    Returns ``(images, z)``: the decoder's Bernoulli means :math:`\sigma(a(z))` at the points of
    :func:`gaussian_grid`, ``[n·n, 1, 28, 28]`` on the CPU in row-major order (ready for
    ``gm.show_images(images, nrow=n)``), and the points themselves, ``[n·n, 2]``.
    """
    if vae.latent_dim != 2:
        raise UserError(f"latent_grid draws a 2-D latent space; this VAE has latent_dim={vae.latent_dim}")
    z = gaussian_grid(n, span=span).reshape(n * n, 2)
    images = vae.sample(z=z.to(vae.device)).float().cpu()
    return images, z


@torch.no_grad()
def draw_from_likelihood(vae: VAE, z: torch.Tensor, *, generator: Optional[torch.Generator] = None):
    r"""Images drawn from the model's likelihood at the codes ``z``: :math:`x_i \sim \mathrm{Bernoulli}(\sigma(a_i(z)))`.

    Returns ``(means, draws)``, both ``[..., 1, 28, 28]`` float on the decoder's device: the Bernoulli means
    that :meth:`VAE.sample <genmodels.vae.VAE.sample>` shows, and one binary draw of every pixel,
    independently given ``z``, which is what the generative model :math:`p(x\mid z)` itself produces.
    ``generator`` must live on the VAE's device.
    """
    if z.shape[-1] != vae.latent_dim:
        raise UserError(f"z has {z.shape[-1]} dimensions but this VAE has latent_dim={vae.latent_dim}")
    means = torch.sigmoid(vae.decode(z.to(vae.device)).float())
    draws = torch.bernoulli(means, generator=generator)
    return means, draws


def neighbour_average(
    codes: torch.Tensor, images: torch.Tensor, z: torch.Tensor, *, k: int = 50
) -> Tuple[torch.Tensor, torch.Tensor]:
    r"""The pixel-wise mean of the ``k`` images whose codes are nearest (Euclidean) to the point ``z``.

    If the decoder maps a region of latent space to a single factorized Bernoulli distribution, the
    likelihood of the images encoded there is maximised pixel by pixel by their average
    (:math:`\arg\max_p \sum_n [x_n \log p + (1 - x_n)\log(1 - p)] = \bar x`), so this average is what the
    decoder's output at ``z`` is pulled towards.

    Parameters
    ----------
    codes : ``[N, D]`` posterior means, e.g. from :func:`encode_dataset`.
    images : ``[N, 28, 28]`` (uint8 or float) or ``[N, 1, 28, 28]``, in the order of ``codes``.
    z : ``[D]``, the point.
    k : number of neighbours.

    Returns
    -------
    ``(average, index)``: the mean image ``[1, 28, 28]`` float in [0, 1] and the ``k`` indices, nearest first.
    """
    if isinstance(k, bool) or not isinstance(k, int) or not 0 < k <= len(codes):
        raise UserError(f"k must be an integer between 1 and {len(codes)}, got {k!r}")
    if len(images) != len(codes):
        raise UserError(f"{len(codes)} codes but {len(images)} images")
    z = z.to(codes.device, codes.dtype).reshape(1, -1)
    if z.shape[1] != codes.shape[1]:
        raise UserError(f"z has {z.shape[1]} dimensions but the codes have {codes.shape[1]}")
    distance = (codes - z).pow(2).sum(dim=1)
    index = distance.argsort(stable=True)[:k]
    chosen = images[index.to(images.device)]
    chosen = chosen.float().div(255) if images.dtype == torch.uint8 else chosen.float()
    if chosen.dim() == 3:
        chosen = chosen.unsqueeze(1)
    return chosen.mean(dim=0), index


def interpolate(z0: torch.Tensor, z1: torch.Tensor, t, *, path: str = "linear") -> torch.Tensor:
    r"""Points between two codes ``z0`` and ``z1`` (each ``[d]``) at the fractions ``t``; ``[len(t), d]``.

    ``"linear"`` is :math:`z_t = (1-t)\,z_0 + t\,z_1`. ``"spherical"`` is the great-circle path of
    Shoemake (1985) (for Gaussian noise, White 2016):

    .. math:: z_t = \frac{\sin((1-t)\Omega)}{\sin\Omega}\,z_0 + \frac{\sin(t\Omega)}{\sin\Omega}\,z_1,
        \qquad \cos\Omega = \frac{z_0^\top z_1}{\lVert z_0\rVert\,\lVert z_1\rVert}.

    Both start at ``z0`` and end at ``z1``. Under :math:`\mathcal N(0, I_d)` the norm of a draw concentrates
    near :math:`\sqrt d` and two draws are nearly orthogonal, so the middle of the straight line has norm
    about :math:`\sqrt{d/2}`, a region the prior almost never produces; for two codes of equal norm the
    spherical path keeps that norm all the way. When the codes are (anti)parallel within float precision
    the spherical path is undefined and the straight line is returned.

    ``t`` is a float or a 1-D sequence/tensor of fractions (usually in [0, 1]).
    """
    if path not in PATHS:
        raise UserError(f"path must be one of {PATHS}, got {path!r}")
    if z0.shape != z1.shape or z0.dim() != 1:
        raise UserError(f"z0 and z1 must be 1-D codes of one size, got {list(z0.shape)} and {list(z1.shape)}")
    t = torch.as_tensor(t, dtype=z0.dtype, device=z0.device).reshape(-1, 1)  # (T, 1)
    if path == "linear":
        return (1 - t) * z0 + t * z1  # (T, d)
    cos = torch.dot(z0, z1) / (z0.norm() * z1.norm()).clamp_min(torch.finfo(z0.dtype).tiny)
    omega = torch.arccos(cos.clamp(-1.0, 1.0))
    sin = torch.sin(omega)
    if sin.abs() < 1e-6:
        return (1 - t) * z0 + t * z1
    return (torch.sin((1 - t) * omega) / sin) * z0 + (torch.sin(t * omega) / sin) * z1  # (T, d)
