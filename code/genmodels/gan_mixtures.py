r"""The 2-D mixtures of the mode-collapse chapter (a ring and a grid of Gaussians) and the GANs trained on them.

* :func:`ring_of_gaussians`, :func:`grid_of_gaussians` and :func:`mixture_sampler`: the two targets;
  :func:`mixture_sampler` defaults to the settings of PacGAN (Lin et al. 2018, :data:`MIXTURE_SETTINGS`):
  8 Gaussians of standard deviation 0.01 on the unit circle; 25 of standard deviation 0.05 on a 5×5 grid
  with spacing 2.
* :class:`MixtureGenerator`, :class:`MixtureDiscriminator` and :func:`train_mixture_gan`: one seed of a
  2-D GAN, written with ``nn.Module`` s as a reader would write it: the saturating or non-saturating
  generator loss, minibatch discrimination, or WGAN-GP.
* :func:`train_mixture_gans`: the same training for several seeds at once, every weight stacked along a
  leading seed axis and every layer a batched matrix product, plus the unrolled GAN (Metz et al. 2017) and
  PacGAN (Lin et al. 2018). Seed ``s`` of a stacked run is seed ``s`` of :func:`train_mixture_gan` (same
  initial weights, same data, same noise), only faster.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import (
    Dict,
    List,
    Optional,
    Sequence,
    Tuple,
)

import torch
import torch.nn.functional as F
from torch import nn

from .core import UserError, check_int
from .gan import MinibatchDiscrimination, discriminator_loss, generator_loss

__all__ = [
    "ring_of_gaussians",
    "grid_of_gaussians",
    "MixtureGenerator",
    "MixtureDiscriminator",
    "gradient_penalty",
    "MIXTURE_METHODS",
    "mixture_sampler",
    "MixtureRun",
    "train_mixture_gan",
    "MIXTURE_SETTINGS",
    "STACKED_METHODS",
    "MixtureRuns",
    "train_mixture_gans",
    "PUBLISHED_MODE_TABLE",
    "train_mixture_table",
    "MODE_TABLE_METHODS",
    "MODE_TABLE_RECIPE",
    "mode_table_jobs",
]


def ring_of_gaussians(
    n: int, *, modes: int = 8, radius: float = 2.0, std: float = 0.02, generator: Optional[torch.Generator] = None
) -> Tuple[torch.Tensor, torch.Tensor]:
    """``n`` points from ``modes`` Gaussians evenly spaced on a circle; returns ``(points [n, 2], centres [modes, 2])``."""
    angles = 2 * math.pi * torch.arange(modes) / modes
    centres = radius * torch.stack([angles.cos(), angles.sin()], dim=1)
    which = torch.randint(modes, (n,), generator=generator)
    return centres[which] + std * torch.randn(n, 2, generator=generator), centres


def grid_of_gaussians(
    n: int, *, side: int = 5, spacing: float = 2.0, std: float = 0.02, generator: Optional[torch.Generator] = None
) -> Tuple[torch.Tensor, torch.Tensor]:
    """``n`` points from a ``side``×``side`` grid of Gaussians centred on the origin; returns ``(points, centres)``."""
    ticks = spacing * (torch.arange(side) - (side - 1) / 2)
    centres = torch.cartesian_prod(ticks, ticks)
    which = torch.randint(len(centres), (n,), generator=generator)
    return centres[which] + std * torch.randn(n, 2, generator=generator), centres




class MixtureGenerator(nn.Module):
    """``latent_dim`` → h → h → h → 2 (ReLU): a point in the plane."""

    def __init__(self, latent_dim: int = 8, hidden_dim: int = 128):
        super().__init__()
        self.latent_dim = latent_dim
        h = hidden_dim
        self.net = nn.Sequential(
            nn.Linear(latent_dim, h), nn.ReLU(),  # (N, h)
            nn.Linear(h, h), nn.ReLU(),  # (N, h)
            nn.Linear(h, h), nn.ReLU(),  # (N, h)
            nn.Linear(h, 2),  # (N, 2)
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class MixtureDiscriminator(nn.Module):
    """2 → h → h → (minibatch discrimination) → 1 logit (LeakyReLU 0.2). With ``minibatch_kernels > 0`` the
    last features are extended by :class:`~genmodels.gan.MinibatchDiscrimination`'s L1-distance features.
    With ``pack = m`` the input is ``m`` points side by side, ``2m`` numbers (PacGAN's packed discriminator)."""

    def __init__(
        self, hidden_dim: int = 128, *, minibatch_kernels: int = 0, minibatch_kernel_dim: int = 5, pack: int = 1
    ):
        super().__init__()
        h = hidden_dim
        self.features = nn.Sequential(
            nn.Linear(2 * pack, h), nn.LeakyReLU(0.2),  # (N, h)
            nn.Linear(h, h), nn.LeakyReLU(0.2),  # (N, h)
        )
        head = []
        if minibatch_kernels:
            head.append(MinibatchDiscrimination(h, minibatch_kernels, minibatch_kernel_dim))  # (N, h + B)
        head.append(nn.Linear(h + minibatch_kernels, 1))  # (N, 1)
        self.head = nn.Sequential(*head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x)).squeeze(-1)  # (N,) logits (critic values for WGAN-GP)


def gradient_penalty(
    critic: nn.Module, real: torch.Tensor, fake: torch.Tensor, *, eps: Optional[torch.Tensor] = None,
    generator: Optional[torch.Generator] = None,
) -> torch.Tensor:
    r"""The gradient penalty of WGAN-GP (Gulrajani et al. 2017, eq. 3), without its weight :math:`\lambda`:

    .. math:: \mathbb E_{\hat x}\big[(\lVert \nabla_{\hat x} D(\hat x) \rVert_2 - 1)^2\big], \qquad
        \hat x = \epsilon x + (1 - \epsilon)\tilde x, \quad \epsilon \sim U[0, 1],

    on random interpolates between real points :math:`x` and generated points :math:`\tilde x` (one
    :math:`\epsilon` per pair; pass ``eps`` ``[N, 1]`` to fix them). Differentiable with respect to the
    critic's parameters (``create_graph=True``).
    """
    if eps is None:
        eps = torch.rand(real.shape[0], *([1] * (real.dim() - 1)), generator=generator, dtype=real.dtype, device=real.device)
    x_hat = (eps * real + (1 - eps) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)
    return (grad.flatten(1).norm(dim=1) - 1).pow(2).mean()


MIXTURE_METHODS = ("saturating", "non_saturating", "minibatch", "wgan_gp")


MIXTURE_SETTINGS = {"ring": {"size": 1.0, "std": 0.01}, "grid": {"size": 2.0, "std": 0.05}}
"""PacGAN's targets (Lin et al. 2018, §5.1 and its code): ``size`` is the ring's radius or the grid's spacing."""


def mixture_sampler(mixture: str, *, std: Optional[float] = None, size: Optional[float] = None):
    """``(sample(n, generator) -> [n, 2], centres [K, 2])`` for ``"ring"`` (8 Gaussians on a circle of radius
    ``size``) or ``"grid"`` (5×5 Gaussians, spacing ``size``), each component with standard deviation
    ``std``. Left out, ``std`` and ``size`` take :data:`MIXTURE_SETTINGS`: radius 1 and σ = 0.01 for the
    ring, spacing 2 and σ = 0.05 for the grid."""
    if mixture not in MIXTURE_SETTINGS:
        raise UserError(f"mixture must be 'ring' or 'grid', got {mixture!r}")
    std = MIXTURE_SETTINGS[mixture]["std"] if std is None else std
    size = MIXTURE_SETTINGS[mixture]["size"] if size is None else size
    if not (std > 0 and size > 0):
        raise UserError(f"std and size must be positive, got {std!r} and {size!r}")

    if mixture == "ring":
        centres = ring_of_gaussians(1, radius=size, std=std)[1]
    else:
        centres = grid_of_gaussians(1, spacing=size, std=std)[1]

    def sample(n, generator=None):  # the draws of ring_of_gaussians / grid_of_gaussians, centres computed once
        which = torch.randint(len(centres), (n,), generator=generator)
        return centres[which] + std * torch.randn(n, 2, generator=generator)

    return sample, centres


@dataclass
class MixtureRun:
    """What :func:`train_mixture_gan` recorded: the two networks, ``samples`` (``[num_eval, 2]`` generated
    at the end from fixed noise), ``centres``, ``std``, and per generator step ``steps["d_loss"|"g_loss"]``."""

    generator: nn.Module
    discriminator: nn.Module
    samples: torch.Tensor
    centres: torch.Tensor
    std: float
    steps: Dict[str, List[float]] = field(default_factory=dict)
    snapshots: List[Dict] = field(default_factory=list)


def train_mixture_gan(
    mixture: str = "ring",
    method: str = "non_saturating",
    *,
    steps: int = 2000,
    batch_size: int = 128,
    std: Optional[float] = None,
    size: Optional[float] = None,
    latent_dim: int = 8,
    hidden_dim: int = 128,
    lr: Optional[float] = None,
    minibatch_kernels: int = 8,
    minibatch_kernel_dim: int = 5,
    gp_weight: float = 0.1,
    critic_steps: int = 5,
    num_eval: int = 2500,
    snapshot_steps: Optional[List[int]] = None,
    seed: int = 0,
) -> MixtureRun:
    r"""Train a small GAN on a 2-D mixture of Gaussians (:func:`mixture_sampler`) for ``steps`` generator steps.

    ``method``:

    * ``"saturating"``: one discriminator step, then one generator step on :math:`\log(1 - D(G(z)))`;
    * ``"non_saturating"``: the same with :math:`-\log D(G(z))`;
    * ``"minibatch"``: non-saturating, with ``minibatch_kernels`` minibatch-discrimination kernels
      (Salimans et al. 2016) before the discriminator's last layer;
    * ``"wgan_gp"``: WGAN-GP (Gulrajani et al. 2017): ``critic_steps`` critic steps on
      :math:`\mathbb E[D(\tilde x)] - \mathbb E[D(x)] + \lambda\,\mathbb E[(\lVert\nabla D(\hat x)\rVert - 1)^2]`
      (:func:`gradient_penalty`, :math:`\lambda` = ``gp_weight``), then one generator step on
      :math:`-\mathbb E[D(G(z))]`; Adam with betas (0.5, 0.9) as in that paper. The default
      :math:`\lambda = 0.1` is the one the authors' released toy-data script uses (their images use 10): on
      these mixtures :math:`\lambda = 10` left every run of the mode-collapse chapter a cloud around the modes
      (ring: 2.3 of 8 modes, 0.5 % high quality after 20,000 generator steps), :math:`\lambda = 0.1` put them
      on all 8 modes.

    Adam with ``lr`` (default 1e-3 for the GANs, 1e-4 for WGAN-GP), betas (0.5, 0.999) for the GANs.
    ``std`` and ``size`` choose the target (:func:`mixture_sampler`; default PacGAN's settings).
    Everything runs in float32 on the CPU and is seeded by ``seed`` (data, noise and initialisation).
    :func:`train_mixture_gans` trains several seeds at once, faster, with the same result per seed.
    """
    if method not in MIXTURE_METHODS:
        raise UserError(f"method must be one of {MIXTURE_METHODS}, got {method!r}")
    sample, centres = mixture_sampler(mixture, std=std, size=size)
    std = MIXTURE_SETTINGS[mixture]["std"] if std is None else std
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    generator = MixtureGenerator(latent_dim, hidden_dim)
    discriminator = MixtureDiscriminator(
        hidden_dim, minibatch_kernels=minibatch_kernels if method == "minibatch" else 0, minibatch_kernel_dim=minibatch_kernel_dim
    )
    wgan = method == "wgan_gp"
    if lr is None:
        lr = 1e-4 if wgan else 1e-3
    betas = (0.5, 0.9) if wgan else (0.5, 0.999)
    opt_g = torch.optim.Adam(generator.parameters(), lr=lr, betas=betas)
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=lr, betas=betas)
    eval_z = torch.randn(num_eval, latent_dim, generator=torch.Generator().manual_seed(10_000 + seed))
    run = MixtureRun(generator, discriminator, torch.empty(0, 2), centres, std, {"d_loss": [], "g_loss": []})
    snapshot_steps = set(snapshot_steps or [])
    kind = "saturating" if method == "saturating" else "non_saturating"

    for step in range(steps):
        if step in snapshot_steps:
            with torch.no_grad():
                run.snapshots.append({"step": step, "samples": generator(eval_z)})
        for _ in range(critic_steps if wgan else 1):
            real = sample(batch_size, generator=g)
            with torch.no_grad():
                fake = generator(torch.randn(batch_size, latent_dim, generator=g))
            real_out, fake_out = discriminator(real), discriminator(fake)
            if wgan:
                d_loss = fake_out.mean() - real_out.mean() + gp_weight * gradient_penalty(discriminator, real, fake, generator=g)
            else:
                d_loss = discriminator_loss(real_out, fake_out)
            opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            opt_d.step()
        fake_out = discriminator(generator(torch.randn(batch_size, latent_dim, generator=g)))
        g_loss = -fake_out.mean() if wgan else generator_loss(fake_out, kind=kind)
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_g.step()
        run.steps["d_loss"].append(d_loss.item())
        run.steps["g_loss"].append(g_loss.item())
    with torch.no_grad():
        run.samples = generator(eval_z)
        if steps in snapshot_steps:
            run.snapshots.append({"step": steps, "samples": run.samples})
    return run


# ----------------------------------------------------------------------------------------------
# Several seeds at once: weights stacked along a leading seed axis
# ----------------------------------------------------------------------------------------------

STACKED_METHODS = MIXTURE_METHODS + ("unrolled", "pacgan")


def _stack_linears(layers: List[nn.Linear]) -> List[torch.Tensor]:
    """``[W [S, in, out], b [S, 1, out]]`` from the same ``nn.Linear`` of ``S`` networks (leaf tensors)."""
    w = torch.stack([layer.weight.detach().t() for layer in layers]).contiguous().requires_grad_(True)
    b = torch.stack([layer.bias.detach().unsqueeze(0) for layer in layers]).contiguous().requires_grad_(True)
    return [w, b]


def _stacked_generator(params: List[torch.Tensor], z: torch.Tensor) -> torch.Tensor:
    """:class:`MixtureGenerator` for ``S`` weight sets at once: ``z [S, N, latent]`` → ``[S, N, 2]``."""
    x = z
    for i in range(0, len(params), 2):
        x = torch.baddbmm(params[i + 1], x, params[i])  # (S, N, out)
        if i + 2 < len(params):
            x = torch.relu(x)
    return x


def _stacked_discriminator(params: List[torch.Tensor], x: torch.Tensor, minibatch: Optional[Tuple[int, int]]) -> torch.Tensor:
    """:class:`MixtureDiscriminator` for ``S`` weight sets at once: ``x [S, N, 2·pack]`` → logits ``[S, N]``.
    ``params``: two linear layers, then the minibatch tensor ``T [S, h, B·C]`` if ``minibatch = (B, C)``,
    then the output layer."""
    h = F.leaky_relu(torch.baddbmm(params[1], x, params[0]), 0.2)  # (S, N, h)
    h = F.leaky_relu(torch.baddbmm(params[3], h, params[2]), 0.2)  # (S, N, h)
    rest = params[4:]
    if minibatch is not None:
        kernels, dim = minibatch
        S, N = h.shape[0], h.shape[1]
        m = torch.bmm(h, rest[0]).view(S, N, kernels, dim).transpose(1, 2).reshape(S * kernels, N, dim)  # (S·B, N, C)
        l1 = torch.cdist(m, m, p=1.0)  # (S·B, N, N): L1 distances within each seed's batch, per kernel
        o = (torch.exp(-l1).sum(-1) - 1.0).view(S, kernels, N).transpose(1, 2)  # (S, N, B); j = i gave exp(0) = 1
        h = torch.cat([h, o], dim=-1)  # (S, N, h + B)
        rest = rest[1:]
    return torch.baddbmm(rest[1], h, rest[0]).squeeze(-1)  # (S, N)


def _adam_lookahead(params, grads, optimizer: torch.optim.Optimizer, lr: float, steps_ahead: int):
    r"""One Adam step of ``params`` (a list of tensors in the graph) that ``optimizer`` would take, written as
    a differentiable function of ``grads``: from the optimizer's moments after ``steps_ahead`` earlier
    look-ahead steps. The second moment (the step's normaliser) is held constant, so gradients flow through
    the first moment only, which keeps the square root's infinite slope at zero out of the graph."""
    beta1, beta2 = optimizer.defaults["betas"]
    eps = optimizer.defaults["eps"]
    new_params, new_moments = [], []
    for p, g, (m, v, t) in zip(params, grads, steps_ahead):
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g.detach() ** 2
        t = t + 1
        step = lr * (m / (1 - beta1**t)) / ((v / (1 - beta2**t)).sqrt() + eps)
        new_params.append(p - step)
        new_moments.append((m, v, t))
    return new_params, new_moments


@dataclass
class MixtureRuns:
    """What :func:`train_mixture_gans` recorded for seeds ``seeds``: ``samples [S, num_eval, 2]`` at the end
    from each seed's fixed noise; ``snapshots``, a list of ``{"step", "samples" [S, num_eval, 2]}``;
    ``steps["d_loss"|"g_loss"]``, ``[steps, S]``; the final ``generator_params`` / ``discriminator_params``
    (stacked); ``centres``, ``std`` and the wall-clock ``seconds``."""

    method: str
    mixture: str
    seeds: Tuple[int, ...]
    samples: torch.Tensor
    centres: torch.Tensor
    std: float
    steps: Dict[str, torch.Tensor]
    snapshots: List[Dict]
    generator_params: List[torch.Tensor]
    discriminator_params: List[torch.Tensor]
    seconds: float


def train_mixture_gans(
    mixture: str = "ring",
    method: str = "non_saturating",
    *,
    seeds: Sequence[int] = (0, 1, 2),
    steps: int = 2000,
    batch_size: int = 128,
    std: Optional[float] = None,
    size: Optional[float] = None,
    latent_dim: int = 8,
    hidden_dim: int = 128,
    lr: Optional[float] = None,
    minibatch_kernels: int = 8,
    minibatch_kernel_dim: int = 5,
    gp_weight: float = 0.1,
    critic_steps: int = 5,
    unroll_steps: int = 5,
    pack: int = 2,
    decay_from: float = 1.0,
    num_eval: int = 2500,
    snapshot_steps: Optional[Sequence[int]] = None,
) -> MixtureRuns:
    r""":func:`train_mixture_gan` for several ``seeds`` at once, plus two more remedies.

    Every seed's networks are built exactly as :func:`train_mixture_gan` builds them, then their weights
    are stacked along a leading seed axis, ``[S, in, out]``; a layer is one batched matrix product
    (``torch.baddbmm``) for all seeds, and one Adam updates all of them. The loss that is differentiated is
    the *sum over seeds* of each seed's loss, so each seed's gradient is its own and Adam, which acts
    element by element, makes each seed's update its own: seed ``s`` reproduces ``train_mixture_gan(...,
    seed=s)`` up to float rounding (tested), while the small per-layer costs are paid once for all seeds.

    ``method`` is one of :data:`MIXTURE_METHODS` or

    * ``"unrolled"``: the unrolled GAN (Metz et al. 2017): the discriminator trains as in the
      non-saturating GAN, but the generator's loss :math:`-\log D_K(G(z))` is taken at the discriminator
      :math:`D_K` reached after ``unroll_steps`` further Adam steps of the discriminator on the current
      batch, and differentiated *through* those steps (:func:`_adam_lookahead`), so the generator sees how
      the discriminator will react to its move;
    * ``"pacgan"``: PacGAN (Lin et al. 2018): the non-saturating GAN whose discriminator judges ``pack``
      points at once (``2·pack`` inputs), real with real and fake with fake; a batch is ``batch_size``
      such packs.

    ``decay_from`` < 1 keeps both learning rates at ``lr`` for that fraction of the ``steps``, then anneals
    them to 0 along half a cosine, so that the last samples are not blurred by the jitter of a constant
    step; the default 1.0 keeps ``lr`` throughout.
    Everything runs in float32 on the CPU; each seed's data, noise and initial weights are seeded by it.
    """
    import time

    if method not in STACKED_METHODS:
        raise UserError(f"method must be one of {STACKED_METHODS}, got {method!r}")
    seeds = tuple(int(s) for s in seeds)
    if not seeds or len(set(seeds)) != len(seeds):
        raise UserError(f"seeds must be distinct and at least one, got {seeds!r}")
    check_int("steps", steps, minimum=0)
    check_int("unroll_steps", unroll_steps, minimum=0)
    check_int("pack", pack, minimum=1)
    if not 0.0 <= decay_from <= 1.0:
        raise UserError(f"decay_from must be a fraction of the steps in [0, 1], got {decay_from!r}")
    decay_start = decay_from * steps
    sample, centres = mixture_sampler(mixture, std=std, size=size)
    std = MIXTURE_SETTINGS[mixture]["std"] if std is None else std
    wgan = method == "wgan_gp"
    m = pack if method == "pacgan" else 1
    minibatch = (minibatch_kernels, minibatch_kernel_dim) if method == "minibatch" else None
    if lr is None:
        lr = 1e-4 if wgan else 1e-3
    betas = (0.5, 0.9) if wgan else (0.5, 0.999)
    kind = "saturating" if method == "saturating" else "non_saturating"

    gens, discs = [], []
    for seed in seeds:  # the same construction, in the same order, as train_mixture_gan
        torch.manual_seed(seed)
        gens.append(MixtureGenerator(latent_dim, hidden_dim))
        discs.append(
            MixtureDiscriminator(
                hidden_dim, minibatch_kernels=minibatch_kernels if minibatch else 0,
                minibatch_kernel_dim=minibatch_kernel_dim, pack=m,
            )
        )
    g_params = [p for i in (0, 2, 4, 6) for p in _stack_linears([g.net[i] for g in gens])]
    d_params = [p for i in (0, 2) for p in _stack_linears([d.features[i] for d in discs])]
    if minibatch:
        d_params.append(torch.stack([d.head[0].T.detach() for d in discs]).contiguous().requires_grad_(True))
    d_params += _stack_linears([d.head[-1] for d in discs])
    opt_g = torch.optim.Adam(g_params, lr=lr, betas=betas)
    opt_d = torch.optim.Adam(d_params, lr=lr, betas=betas)
    rngs = [torch.Generator().manual_seed(seed) for seed in seeds]
    eval_z = torch.stack(
        [torch.randn(num_eval, latent_dim, generator=torch.Generator().manual_seed(10_000 + s)) for s in seeds]
    )
    S, n = len(seeds), batch_size * m
    discriminate = lambda params, x: _stacked_discriminator(params, x.reshape(S, batch_size, 2 * m), minibatch)  # noqa: E731
    d_losses, g_losses, snapshots = [], [], []
    snapshot_steps = set(snapshot_steps or [])

    def snapshot(step):
        with torch.no_grad():
            snapshots.append({"step": step, "samples": _stacked_generator(g_params, eval_z)})

    start = time.perf_counter()
    for step in range(steps):
        if step in snapshot_steps:
            snapshot(step)
        if step < decay_start:
            step_lr = lr
        else:
            step_lr = 0.5 * lr * (1 + math.cos(math.pi * (step - decay_start) / (steps - decay_start)))
        for opt in (opt_g, opt_d):
            for group in opt.param_groups:
                group["lr"] = step_lr
        for _ in range(critic_steps if wgan else 1):
            draws = []
            for g in rngs:  # each seed's draws in train_mixture_gan's order: data, noise, (interpolation)
                real = sample(n, generator=g)
                z = torch.randn(n, latent_dim, generator=g)
                eps = torch.rand(n, 1, generator=g) if wgan else None
                draws.append((real, z, eps))
            real = torch.stack([d[0] for d in draws])  # (S, n, 2)
            with torch.no_grad():
                fake = _stacked_generator(g_params, torch.stack([d[1] for d in draws]))  # (S, n, 2)
            real_out, fake_out = discriminate(d_params, real), discriminate(d_params, fake)  # (S, N) each
            if wgan:
                eps = torch.stack([d[2] for d in draws])  # (S, n, 1)
                x_hat = (eps * real + (1 - eps) * fake).requires_grad_(True)
                (grad,) = torch.autograd.grad(discriminate(d_params, x_hat).sum(), x_hat, create_graph=True)
                penalty = (grad.norm(dim=-1) - 1).pow(2).mean(1)  # (S,)
                d_loss = fake_out.mean(1) - real_out.mean(1) + gp_weight * penalty  # (S,)
            else:
                d_loss = F.softplus(-real_out).mean(1) + F.softplus(fake_out).mean(1)  # (S,)
            opt_d.zero_grad(set_to_none=True)
            d_loss.sum().backward()
            opt_d.step()
        z = torch.stack([torch.randn(n, latent_dim, generator=g) for g in rngs])  # (S, n, latent)
        fake = _stacked_generator(g_params, z)
        params = d_params
        if method == "unrolled" and unroll_steps:
            moments = []
            for p in d_params:
                st = opt_d.state.get(p, {})
                moments.append(
                    (st["exp_avg"], st["exp_avg_sq"], float(st["step"])) if st else (torch.zeros_like(p), torch.zeros_like(p), 0.0)
                )
            for _ in range(unroll_steps):  # the discriminator's next steps, on this batch, kept in the graph
                inner = F.softplus(-discriminate(params, real)).mean(1) + F.softplus(discriminate(params, fake)).mean(1)
                grads = torch.autograd.grad(inner.sum(), params, create_graph=True)
                params, moments = _adam_lookahead(params, grads, opt_d, step_lr, moments)
        fake_out = discriminate(params, fake)  # (S, N)
        if wgan:
            g_loss = -fake_out.mean(1)
        elif kind == "saturating":
            g_loss = -F.softplus(fake_out).mean(1)
        else:
            g_loss = F.softplus(-fake_out).mean(1)
        opt_g.zero_grad(set_to_none=True)
        g_loss.sum().backward(inputs=g_params)
        opt_g.step()
        d_losses.append(d_loss.detach())
        g_losses.append(g_loss.detach())
    seconds = time.perf_counter() - start
    with torch.no_grad():
        samples = _stacked_generator(g_params, eval_z)
    if steps in snapshot_steps:
        snapshots.append({"step": steps, "samples": samples})
    empty = torch.empty(0, S)
    return MixtureRuns(
        method, mixture, seeds, samples, centres, std,
        {"d_loss": torch.stack(d_losses) if d_losses else empty, "g_loss": torch.stack(g_losses) if g_losses else empty},
        snapshots, [p.detach() for p in g_params], [p.detach() for p in d_params], seconds,
    )


# ----------------------------------------------------------------------------------------------
# The mode table: several mixtures and methods, in parallel processes, scored as PacGAN scores them
# ----------------------------------------------------------------------------------------------

PUBLISHED_MODE_TABLE = {
    ("ring", "non_saturating"): {"modes": 6.3, "high_quality": 98.2, "reverse_kl": 0.45, "source": "PacGAN Table 1, GAN"},
    ("grid", "non_saturating"): {"modes": 17.3, "high_quality": 94.8, "reverse_kl": 0.70, "source": "PacGAN Table 1, GAN"},
    ("ring", "pacgan"): {"modes": 7.9, "high_quality": 95.6, "reverse_kl": 0.07, "source": "PacGAN Table 1, PacGAN2"},
    ("grid", "pacgan"): {"modes": 23.8, "high_quality": 91.3, "reverse_kl": 0.13, "source": "PacGAN Table 1, PacGAN2"},
    ("grid", "pacgan4"): {"modes": 24.8, "high_quality": 93.6, "reverse_kl": 0.04, "source": "PacGAN Table 1, PacGAN4"},
    ("ring", "unrolled"): {"modes": 7.6, "high_quality": None, "reverse_kl": None, "source": "VEEGAN Table 1, unrolled GAN"},
}
"""Published means for the methods of :func:`train_mixture_table` that have them (``"pacgan"`` is PacGAN2, two
samples per pack; ``"pacgan4"`` is PacGAN's best grid run, four): modes covered, the share of
high-quality samples in percent, and the reverse KL of the mode histogram to uniform (nats). PacGAN (Lin et
al. 2018, Table 1) averages 10 trials of its own, much larger networks (400k steps of batch 100) on the
targets of :data:`MIXTURE_SETTINGS`; its "GAN" is the non-saturating GAN. VEEGAN (Srivastava et al. 2017,
Table 1) reports modes only on a ring of its own settings. ``None``: not reported."""


def _run_mixture_job(job: Dict) -> MixtureRuns:
    job = dict(job)
    threads = job.pop("threads", None)
    if threads:
        torch.set_num_threads(threads)
    return train_mixture_gans(job.pop("mixture"), job.pop("method"), **job)


def train_mixture_table(jobs: Sequence[Dict], *, processes: Optional[int] = None) -> List[MixtureRuns]:
    """Run :func:`train_mixture_gans` once per job (each a dict of its arguments, ``mixture`` and ``method``
    included), spread over ``processes`` worker processes, and return the runs in the order of ``jobs``.

    The jobs are independent, so on a machine with several cores they run side by side, each worker with
    ``cores // processes`` threads (the tiny 2-D networks gain nothing from more). ``processes`` defaults
    to the number of cores, at most the number of jobs; ``processes=1`` runs them one after another in this
    process. Workers are started with ``spawn``, which is safe after torch has started its threads.
    A job's result does not depend on where it ran: each seed's weights, data and noise come from its seed.
    """
    import multiprocessing
    import os
    from concurrent.futures import ProcessPoolExecutor

    jobs = [dict(job) for job in jobs]
    for job in jobs:
        if "mixture" not in job or "method" not in job:
            raise UserError(f"every job needs a 'mixture' and a 'method', got {job!r}")
    cores = os.cpu_count() or 1
    processes = min(cores, len(jobs)) if processes is None else processes
    check_int("processes", processes, minimum=1)
    if processes == 1 or len(jobs) <= 1:
        return [_run_mixture_job(job) for job in jobs]
    threads = max(1, cores // processes)
    with ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn")) as pool:
        # the longest jobs first, so that no core idles at the end waiting for one late start
        order = sorted(range(len(jobs)), key=lambda i: -_job_cost(jobs[i]))
        futures = {i: pool.submit(_run_mixture_job, {**jobs[i], "threads": threads}) for i in order}
        return [futures[i].result() for i in range(len(jobs))]


def _job_cost(job: Dict) -> float:
    """A rough relative cost of a job, to schedule the long ones first: the time of a generator step relative to
    the non-saturating GAN's, measured on one CPU thread for three seeds (width 64: WGAN-GP 2.3, unrolled 3.1,
    minibatch 2.8; width 128: PacGAN 1.1-1.6). These networks are too small for time to grow with the square of
    the width; the square root fits the measurements better, so ``per_step`` holds each method's cost at width
    128 (the width-64 measurements divided by the square root of 1/2)."""
    method, hidden = job["method"], job.get("hidden_dim", 128)
    per_step = {"wgan_gp": 3.3, "unrolled": 4.4, "minibatch": 4.0, "pacgan": 1.3}.get(method, 1.0)
    return per_step * job.get("steps", 2000) * len(job.get("seeds", (0, 1, 2))) * (hidden / 128) ** 0.5


# ----------------------------------------------------------------------------------------------
# The chapter's table: its jobs (genmodels.gan_experiments stores the table they make)
# ----------------------------------------------------------------------------------------------

MODE_TABLE_METHODS = {
    "saturating": "saturating GAN",
    "non_saturating": "non-saturating GAN",
    "minibatch": "minibatch discrimination",
    "wgan_gp": "WGAN-GP",
    "unrolled": "unrolled GAN, 5 steps",
    "pacgan": "PacGAN",
}
"""The methods of the mode-collapse chapter's table, in its order, with their labels."""

MODE_TABLE_RECIPE = {
    "minibatch": {"hidden_dim": 64},
    "wgan_gp": {"hidden_dim": 64, "lr": 1e-3},
    "unrolled": {"hidden_dim": 64},
    "pacgan": {"pack": 2},
    # twice the steps where the base budget left the high-quality share still climbing on some seed
    ("saturating", "ring"): {"step_factor": 2},
    ("non_saturating", "ring"): {"step_factor": 2},
    ("saturating", "grid"): {"step_factor": 2},
    ("non_saturating", "grid"): {"step_factor": 2},
    ("pacgan", "grid"): {"step_factor": 2},
    ("wgan_gp", "grid"): {"step_factor": 2},
    ("minibatch", "grid"): {"step_factor": 2},
    ("unrolled", "grid"): {"step_factor": 2},
}
"""What differs from :func:`train_mixture_gans`'s defaults (Adam 1e-3, or 1e-4 for WGAN-GP; width 128), per
method or per (method, mixture); ``step_factor`` multiplies the table's base number of steps."""

def mode_table_jobs(steps: int, seeds: Sequence[int], *, mixtures: Sequence[str] = ("ring", "grid")) -> List[Dict]:
    """The jobs of the chapter's table for :func:`train_mixture_table`: every method of
    :data:`MODE_TABLE_METHODS` on every mixture, ``steps`` generator steps (times the recipe's
    ``step_factor``), the learning rates annealed over the last quarter, 21 coverage snapshots per run."""
    check_int("steps", steps, minimum=20)
    jobs = []
    for mixture in mixtures:
        for method in MODE_TABLE_METHODS:
            job = {"mixture": mixture, "method": method, "seeds": [int(s) for s in seeds], "steps": steps, "decay_from": 0.75}
            job.update(MODE_TABLE_RECIPE.get(method, {}))
            job.update(MODE_TABLE_RECIPE.get((method, mixture), {}))
            job["steps"] = steps * job.pop("step_factor", 1)
            job["snapshot_steps"] = list(range(0, job["steps"] + 1, job["steps"] // 20))
            jobs.append(job)
    return jobs
