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
  :math:`z`, which is what a factorized Bernoulli decoder is pulled towards at that point;
* :func:`aggregate_log_density` and :func:`information_decomposition`: the aggregate posterior
  :math:`q(z) = \frac1N\sum_n q(z\mid x_n)` and the split of the mean KL term into the mutual information
  between images and codes and the distance of :math:`q(z)` from the prior ("ELBO surgery",
  Hoffman & Johnson 2016);
* :func:`sample_aggregate_posterior`: codes drawn from :math:`q(z)` instead of the prior;
* :func:`refine_posterior`, :func:`elbo_at` and :func:`iwae_at`: the best Gaussian posterior of each image found by gradient
  steps on the ELBO from the encoder's output, which measures the amortization gap (Cremer et al. 2018).

Nothing here trains or changes the model: :func:`refine_posterior` optimises a mean and a log-variance per
image and leaves the networks' weights and gradients alone; everything else runs under ``torch.no_grad()``.
"""

from __future__ import annotations

import math
from typing import Dict, Optional, Tuple

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
    "aggregate_log_density",
    "information_decomposition",
    "refine_posterior",
    "elbo_at",
    "iwae_at",
    "sample_aggregate_posterior",
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


# --- the aggregate posterior ---------------------------------------------------------------------


@torch.no_grad()
def aggregate_log_density(
    z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, *, chunk_size: int = 1024
) -> torch.Tensor:
    r"""Log-density of the aggregate posterior at the points ``z`` ``[M, d]``, ``[M]`` (float64).

    .. math::

        \log q(z) = \log \frac1N \sum_{n=1}^{N} \mathcal N\big(z;\, \mu_n, \operatorname{diag}\sigma_n^2\big)

    with ``mu`` and ``logvar`` ``[N, d]``, the encoder's outputs for the :math:`N` images (from
    :func:`encode_dataset` with ``return_logvar=True``): the density of codes that the data produce, the
    distribution a sample from the prior should resemble. Computed in float64 as one matrix product per
    chunk of ``z``, :math:`\sum_j z_j^2/\sigma_{nj}^2 - 2 z_j\mu_{nj}/\sigma_{nj}^2 + \mu_{nj}^2/\sigma_{nj}^2`,
    then a log-sum-exp over the images.
    """
    if z.dim() != 2 or mu.dim() != 2 or mu.shape != logvar.shape or z.shape[1] != mu.shape[1]:
        raise UserError(
            f"need z [M, d] and mu, logvar [N, d] with the same d, got {tuple(z.shape)}, {tuple(mu.shape)}, "
            f"{tuple(logvar.shape)}"
        )
    check_int("chunk_size", chunk_size)
    mu, logvar = mu.double(), logvar.double()
    precision = (-logvar).exp()  # (N, d), 1 / sigma^2
    # the part of each component's log-density that does not involve z: (N,)
    const = -0.5 * (mu.shape[1] * D.LOG_2PI + logvar.sum(1) + (mu.pow(2) * precision).sum(1))
    out = []
    for start in range(0, len(z), chunk_size):
        zc = z[start : start + chunk_size].to(mu.device).double()  # (m, d)
        quad = zc.pow(2) @ precision.T - 2.0 * zc @ (mu * precision).T  # (m, N)
        out.append(torch.logsumexp(const - 0.5 * quad, dim=1) - math.log(len(mu)))
    return torch.cat(out)


@torch.no_grad()
def information_decomposition(
    mu: torch.Tensor,
    logvar: torch.Tensor,
    *,
    num_samples: Optional[int] = None,
    generator: Optional[torch.Generator] = None,
) -> Dict[str, float]:
    r"""The mean KL term split into information and the aggregate posterior's distance from the prior.

    With :math:`q(z) = \frac1N\sum_n q(z\mid x_n)` over the :math:`N` images whose posteriors are ``mu``,
    ``logvar`` ``[N, d]`` (Hoffman & Johnson 2016),

    .. math::

        \frac1N\sum_{n}\mathrm{KL}\big(q(z\mid x_n)\,\|\,p(z)\big)
        = \underbrace{\mathbb E_{n,\, z\sim q(z\mid x_n)}\Big[\log\frac{q(z\mid x_n)}{q(z)}\Big]}_{I_q(x;\,z)}
        + \underbrace{\mathbb E_{z\sim q(z)}\Big[\log\frac{q(z)}{p(z)}\Big]}_{\mathrm{KL}(q(z)\,\|\,p(z))},

    where :math:`I_q(x; z) \le \log N` is the mutual information between the image's index and its code.
    The mean KL term is therefore an *upper bound* on the information the codes carry; the rest is the
    price of a code distribution that does not match the prior.

    The left side is computed in closed form; the two terms on the right by Monte Carlo from
    ``num_samples`` codes (``None``: one from each posterior, in order; otherwise drawn at random indices),
    each scored under its own posterior, under :math:`q(z)` (:func:`aggregate_log_density`) and under the
    prior. The two estimates share their samples and add up to a Monte Carlo estimate of the left side,
    which is also returned (``kl_monte_carlo``, with its standard error ``kl_se``): it should agree with the
    closed form within a few standard errors.

    Returns
    -------
    ``kl``, ``mutual_information``, ``marginal_kl``, ``kl_monte_carlo``, ``kl_se``, ``mutual_information_se``,
    ``marginal_kl_se``, ``log_n`` (:math:`\log N`, the ceiling of the information), ``num_samples``; nats.
    """
    if mu.dim() != 2 or mu.shape != logvar.shape:
        raise UserError(f"mu and logvar must both be [N, latent_dim], got {tuple(mu.shape)} and {tuple(logvar.shape)}")
    n = len(mu)
    mu, logvar = mu.double(), logvar.double()
    if num_samples is None:
        index = torch.arange(n)
    else:
        check_int("num_samples", num_samples)
        index = torch.randint(n, (num_samples,), generator=generator)
    eps = torch.randn(len(index), mu.shape[1], generator=generator, dtype=torch.float64)
    z = mu[index] + (0.5 * logvar[index]).exp() * eps.to(mu.device)  # (M, d)
    log_q_given_x = D.gaussian_log_prob(z, mu[index], logvar[index])  # (M,)
    log_q = aggregate_log_density(z, mu, logvar)  # (M,)
    log_p = D.standard_normal_log_prob(z)  # (M,)

    def mean_se(t: torch.Tensor) -> Tuple[float, float]:
        return t.mean().item(), (t.std() / math.sqrt(len(t))).item()

    info, info_se = mean_se(log_q_given_x - log_q)
    marginal, marginal_se = mean_se(log_q - log_p)
    kl_mc, kl_se = mean_se(log_q_given_x - log_p)
    return {
        "kl": D.gaussian_kl(mu, logvar).mean().item(),
        "mutual_information": info,
        "marginal_kl": marginal,
        "kl_monte_carlo": kl_mc,
        "kl_se": kl_se,
        "mutual_information_se": info_se,
        "marginal_kl_se": marginal_se,
        "log_n": math.log(n),
        "num_samples": len(index),
    }


@torch.no_grad()
def sample_aggregate_posterior(
    mu: torch.Tensor, logvar: torch.Tensor, n: int, *, generator: Optional[torch.Generator] = None
) -> torch.Tensor:
    r"""``n`` codes from the aggregate posterior :math:`q(z) = \frac1N\sum_m q(z\mid x_m)`, ``[n, d]``.

    Each draw picks an image :math:`m` uniformly and then :math:`z = \mu_m + \sigma_m \odot \varepsilon`.
    These are the codes the decoder was trained on; decoding them instead of prior draws shows what the
    model's samples would look like if the prior matched :math:`q(z)`.
    """
    if mu.dim() != 2 or mu.shape != logvar.shape:
        raise UserError(f"mu and logvar must both be [N, latent_dim], got {tuple(mu.shape)} and {tuple(logvar.shape)}")
    check_int("n", n)
    index = torch.randint(len(mu), (n,), generator=generator)
    eps = torch.randn(n, mu.shape[1], generator=generator, dtype=mu.dtype)
    return D.reparameterize(mu[index], logvar[index], eps=eps.to(mu.device))


# --- the amortization gap -------------------------------------------------------------------------


def _noise(s: int, mu: torch.Tensor, generator: Optional[torch.Generator]) -> torch.Tensor:
    """``s`` standard-normal draws shaped like ``mu``, ``[s, *mu.shape]`` on its device; drawn on the CPU when a
    (CPU) ``generator`` is given, so that a seed gives the same noise on every device."""
    eps = torch.randn(s, *mu.shape, generator=generator, device="cpu" if generator is not None else mu.device)
    return eps.to(mu.device)


def _chunk_sizes(total: int, chunk_size: int):
    """The sizes of the chunks that ``total`` draws are made in: ``chunk_size`` each, the last one smaller."""
    check_int("chunk_size", chunk_size)
    for start in range(0, total, chunk_size):
        yield min(chunk_size, total - start)


def _codes_and_log_px(vae: VAE, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, eps: torch.Tensor):
    r"""The codes ``z`` ``[S, B, d]`` of the Gaussian posteriors ``(mu, logvar)`` ``[B, d]`` at the noise ``eps``
    ``[S, B, d]``, and :math:`\log p(x\mid z)` of each image at each of its codes, ``[S, B]``."""
    z = D.reparameterize(mu, logvar, eps=eps)  # (S, B, d)
    logits = vae.decode(z.flatten(0, 1))  # (S*B, 1, 28, 28)
    x_rep = x.expand(eps.shape[0], *x.shape).flatten(0, 1)  # (S*B, 1, 28, 28)
    return z, D.bernoulli_log_likelihood(logits.float(), x_rep).view(eps.shape[0], -1)


def _elbo_terms(vae: VAE, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """ELBO per image ``[B]`` of the Gaussian posteriors ``(mu, logvar)`` ``[B, d]``, averaged over the
    noise ``eps`` ``[S, B, d]`` of ``S`` reparameterized codes each."""
    _, log_px = _codes_and_log_px(vae, x, mu, logvar, eps)  # (S, B)
    return log_px.mean(0) - D.gaussian_kl(mu, logvar)


@torch.no_grad()
def elbo_at(
    vae: VAE,
    x: torch.Tensor,
    mu: torch.Tensor,
    logvar: torch.Tensor,
    *,
    num_samples: int = 1000,
    chunk_size: int = 100,
    generator: Optional[torch.Generator] = None,
) -> torch.Tensor:
    r"""The ELBO of each image under the Gaussian posterior ``(mu, logvar)`` instead of the encoder's, ``[B]``.

    :math:`\mathcal L(x; \mu, \sigma) = \mathbb E_{\varepsilon}\big[\log p(x\mid \mu + \sigma\odot\varepsilon)\big]
    - \mathrm{KL}\big(\mathcal N(\mu, \sigma^2)\,\|\,p(z)\big)`, the expectation averaged over ``num_samples``
    draws (in chunks of ``chunk_size``), the KL in closed form. ``x``: binary images ``[B, 1, 28, 28]`` on the
    model's device, as :func:`~genmodels.engine.loops.eval_images` makes them.
    """
    check_int("num_samples", num_samples)
    total = torch.zeros(len(x), dtype=torch.float64, device=x.device)
    with eval_mode(vae):
        for s in _chunk_sizes(num_samples, chunk_size):
            total += _elbo_terms(vae, x, mu, logvar, _noise(s, mu, generator)).double() * s
    return (total / num_samples).float()


@torch.no_grad()
def iwae_at(
    vae: VAE,
    x: torch.Tensor,
    mu: torch.Tensor,
    logvar: torch.Tensor,
    *,
    k: int = 1000,
    chunk_size: int = 100,
    generator: Optional[torch.Generator] = None,
) -> torch.Tensor:
    r"""The importance-weighted bound of each image with the Gaussian ``(mu, logvar)`` as proposal, ``[B]``.

    .. math::

        \mathcal L_k(x) = \log \frac1k \sum_{i=1}^{k} \frac{p(x\mid z_i)\, p(z)}{q(z_i)},
        \qquad z_i \sim q = \mathcal N(\mu, \operatorname{diag}\sigma^2),

    a lower bound on :math:`\log p(x)` for any proposal (Burda et al. 2016); with the encoder's posterior it is
    :meth:`VAE.iwae_bound <genmodels.vae.VAE.iwae_bound>`. The ``k`` weights are drawn in chunks of
    ``chunk_size`` and combined with one log-sum-exp.
    """
    check_int("k", k)
    parts = []  # (log p(x|z), log p(z), log q(z)) per chunk of draws, each (s, B)
    with eval_mode(vae):
        for s in _chunk_sizes(k, chunk_size):
            z, log_px = _codes_and_log_px(vae, x, mu, logvar, _noise(s, mu, generator))
            parts.append((log_px, D.standard_normal_log_prob(z), D.gaussian_log_prob(z, mu, logvar)))
    return D.iwae_bound(*(torch.cat(terms).double() for terms in zip(*parts))).float()


def refine_posterior(
    vae: VAE,
    x: torch.Tensor,
    *,
    steps: int = 500,
    lr: float = 1e-2,
    num_samples: int = 16,
    generator: Optional[torch.Generator] = None,
) -> Tuple[torch.Tensor, torch.Tensor]:
    r"""The Gaussian posterior of each image that maximises its ELBO, found by gradient ascent from the encoder's.

    Starting from the encoder's :math:`(\mu(x), \log\sigma^2(x))`, Adam (learning rate ``lr``) takes
    ``steps`` steps on the ELBO of every image separately, each step's expectation estimated with
    ``num_samples`` reparameterized codes per image. The encoder shares one network across all images
    (*amortized* inference); these per-image parameters need not, so

    .. math::

        \log p(x) - \mathcal L_{\text{encoder}}(x)
        = \underbrace{\log p(x) - \mathcal L^*(x)}_{\text{approximation gap}}
        + \underbrace{\mathcal L^*(x) - \mathcal L_{\text{encoder}}(x)}_{\text{amortization gap}}

    (Cremer et al. 2018), with :math:`\mathcal L^*` the best ELBO a diagonal Gaussian reaches, which the
    refined posterior approaches from below. The gradients are taken with ``torch.autograd.grad`` with
    respect to the posterior's parameters only, so the model's weights and their ``.grad`` are untouched.

    Parameters
    ----------
    x : binary images ``[B, 1, 28, 28]`` on the model's device (:func:`~genmodels.engine.loops.eval_images`).

    Returns
    -------
    ``(mu, logvar)``, each ``[B, latent_dim]``, detached.
    """
    check_int("steps", steps, minimum=0)
    check_int("num_samples", num_samples)
    if not lr > 0:
        raise UserError(f"lr must be positive, got {lr!r}")
    with eval_mode(vae):
        with torch.no_grad():
            mu0, logvar0 = vae.encode(x)
        mu = mu0.detach().float().clone().requires_grad_(True)
        logvar = logvar0.detach().float().clone().requires_grad_(True)
        opt = torch.optim.Adam([mu, logvar], lr=lr)
        for _ in range(steps):
            loss = -_elbo_terms(vae, x, mu, logvar, _noise(num_samples, mu, generator)).sum()  # images are independent
            mu.grad, logvar.grad = torch.autograd.grad(loss, [mu, logvar])
            opt.step()
    return mu.detach(), logvar.detach()
