r"""The VQ-VAE (van den Oord, Vinyals & Kavukcuoglu 2017): a grid of discrete codes, and priors over them.

An encoder maps a 28×28 digit to a 7×7 grid of vectors :math:`z_e(x) \in \mathbb R^{D}`; each is replaced
by its nearest entry of a learned codebook :math:`e_1, \dots, e_K \in \mathbb R^D`,

.. math::

    k_j(x) = \arg\min_k \lVert z_{e,j}(x) - e_k \rVert^2, \qquad z_{q,j}(x) = e_{k_j(x)},

and the decoder maps the grid :math:`z_q` to the logits of Bernoulli pixels, like the book's VAEs. The
training loss per image (summed over the 784 pixels, the 49 positions and the :math:`D` dimensions; averaged
over the batch) is

.. math::

    \underbrace{-\log p(x \mid z_q(x))}_{\text{reconstruction}}
    + \underbrace{\lVert \mathrm{sg}[z_e(x)] - e \rVert^2}_{\text{codebook}}
    + \underbrace{\beta\, \lVert z_e(x) - \mathrm{sg}[e] \rVert^2}_{\text{commitment}},

with :math:`\mathrm{sg}` the stop-gradient. The argmin has no gradient, so the decoder's gradient with
respect to :math:`z_q` is copied to :math:`z_e` (the straight-through estimator,
:math:`z_e + \mathrm{sg}[z_q - z_e]`): the reconstruction trains the encoder and decoder, the codebook term
moves each code toward the encodings assigned to it, and the commitment term keeps the encoder near its
codes. With ``codebook_update="ema"`` the codebook term is replaced by exponential moving averages of the
assignments (the paper's appendix A.1): a step of online k-means.

The model is trained without a prior (the paper's uniform prior contributes a constant :math:`\log K` per
position to the KL). A prior over the 49 indices is fitted afterwards, and generating is sampling
indices from it and decoding them: :class:`IndependentCodePrior` (one categorical per position, fitted by
counting) and :class:`AutoregressiveCodePrior` (a GRU over the positions in raster order, trained by maximum
likelihood). Because the encoder is deterministic, :math:`p(x) = \sum_k p(k)\,p(x\mid k) \ge p(k(x))\,p(x\mid
k(x))`, so reconstruction nats plus the prior's nats of the image's own codes bound :math:`-\log p(x)` from above.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import NamedTuple, Optional

import torch
from torch import nn

from . import distributions as D
from .core import ConfiguredModel, UserError, as_images, check_choice, check_int, check_positive

__all__ = [
    "VQVAEConfig",
    "VQVAE",
    "VQVAELosses",
    "VectorQuantizer",
    "Quantized",
    "VQEncoder",
    "VQDecoder",
    "perplexity",
    "IndependentPriorConfig",
    "IndependentCodePrior",
    "fit_independent_prior",
    "AutoregressivePriorConfig",
    "AutoregressiveCodePrior",
    "CODEBOOK_UPDATES",
    "GRID",
]

CODEBOOK_UPDATES = ("loss", "ema")
GRID = (7, 7)  # the codes of one 28×28 image: two stride-2 convolutions
EMA_EPSILON = 1e-5  # the Laplace smoothing of the EMA cluster sizes


@dataclass(frozen=True)
class VQVAEConfig:
    r"""Everything needed to rebuild a VQ-VAE; stored in its checkpoints.

    Parameters
    ----------
    num_codes : int
        :math:`K`, the size of the codebook.
    code_dim : int
        :math:`D`, the size of each code vector.
    channels : int
        Channels of the first convolution of the encoder (and the last of the decoder); the others have twice
        as many.
    beta : float
        :math:`\beta`, the weight of the commitment loss (0.25 in the paper).
    codebook_update : {"loss", "ema"}
        Learn the codebook by gradient descent on the codebook loss, or by exponential moving averages of the
        encodings assigned to each code.
    ema_decay : float
        :math:`\gamma` in :math:`[0, 1)` of the moving averages (0.99 in the paper); EMA only.
    restart_dead_codes : bool
        Re-seed a code that no encoding of the training batches used for ``restart_after`` steps at a random
        encoding of the current batch.
    restart_after : int
        The number of consecutive training steps without use after which a code counts as dead.
    """

    num_codes: int = 128
    code_dim: int = 16
    channels: int = 32
    beta: float = 0.25
    codebook_update: str = "ema"
    ema_decay: float = 0.99
    restart_dead_codes: bool = True
    restart_after: int = 100

    def __post_init__(self):
        check_int("num_codes", self.num_codes, minimum=2)
        check_int("code_dim", self.code_dim)
        check_int("channels", self.channels)
        check_int("restart_after", self.restart_after)
        check_positive("beta", self.beta, allow_zero=True)
        check_choice("codebook_update", self.codebook_update, CODEBOOK_UPDATES)
        if isinstance(self.ema_decay, bool) or not isinstance(self.ema_decay, (int, float)):
            raise UserError(f"ema_decay must be a number in [0, 1) (0.99 is usual), got {self.ema_decay!r}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise UserError(f"ema_decay must be in [0, 1) (0.99 is usual), got {self.ema_decay!r}")
        if not isinstance(self.restart_dead_codes, bool):
            raise UserError(f"restart_dead_codes must be True or False, got {self.restart_dead_codes!r}")

    def to_dict(self) -> dict:
        return asdict(self)


def perplexity(indices: torch.Tensor, num_codes: int) -> torch.Tensor:
    r"""The perplexity :math:`\exp H(\bar p)` of the average code usage :math:`\bar p_k`, the share of the
    ``indices`` (any shape) equal to :math:`k`: :math:`K` when all codes are used equally, 1 when one is."""
    usage = torch.bincount(indices.flatten(), minlength=num_codes).float() / indices.numel()  # (K,)
    entropy = -torch.special.xlogy(usage, usage).sum()  # 0 log 0 = 0
    return entropy.exp()


class Quantized(NamedTuple):
    """What :class:`VectorQuantizer` returns; losses are per-batch means of per-image sums."""

    z_q: torch.Tensor  # (B, D, H, W), straight-through: the codes' values, the encoder's gradient
    indices: torch.Tensor  # (B, H, W) int64
    codebook_loss: torch.Tensor  # ()
    commitment_loss: torch.Tensor  # (), already weighted by beta
    perplexity: torch.Tensor  # ()


class VectorQuantizer(nn.Module):
    r"""The nearest-neighbour bottleneck: each :math:`D`-vector of a grid is replaced by its nearest code.

    ``forward(z_e)`` takes ``[B, D, H, W]`` and returns a :class:`Quantized`. The nearest code minimises
    :math:`\lVert z - e_k\rVert^2 = \lVert z\rVert^2 - 2 z^\top e_k + \lVert e_k\rVert^2`, computed in float32
    (also under autocast: a bf16 distance would pick the wrong code among close ones). The losses are

    .. math::

        \text{codebook} = \tfrac1B\sum_{b,j} \lVert \mathrm{sg}[z_{e,bj}] - e_{k_{bj}}\rVert^2, \qquad
        \text{commitment} = \tfrac{\beta}B\sum_{b,j} \lVert z_{e,bj} - \mathrm{sg}[e_{k_{bj}}]\rVert^2.

    In training mode a forward pass also updates the codebook where the config asks for it:

    * ``update="ema"``: with the batch's counts :math:`n_k` and sums :math:`s_k` of the encodings assigned to
      code :math:`k`, :math:`N_k \leftarrow \gamma N_k + (1-\gamma) n_k`, :math:`S_k \leftarrow \gamma S_k +
      (1-\gamma) s_k`, then :math:`e_k = S_k / \tilde N_k` with the Laplace-smoothed sizes
      :math:`\tilde N_k = (N_k + \epsilon)\,\frac{\sum_l N_l}{\sum_l N_l + K\epsilon}` (so an unused code is never
      divided by zero). :math:`N_k` starts at 1 and :math:`S_k` at the initial code, so each code starts as the
      mean of one encoding, itself; with :math:`\gamma = 0` every used code becomes the mean of its encodings.
      The codebook is then a buffer, not a parameter: no gradient reaches it.
    * ``restart=True``: a code unused for ``restart_after`` consecutive training steps is moved to a random
      encoding of the current batch (and, with EMA, its :math:`N_k, S_k` restart at 1 and that encoding).

    Parameters
    ----------
    num_codes, code_dim : :math:`K` and :math:`D`.
    beta : the commitment weight :math:`\beta`.
    update : ``"loss"`` or ``"ema"``.
    decay : :math:`\gamma` (EMA only).
    restart : re-seed dead codes.
    restart_after : steps without use after which a code is dead.
    """

    def __init__(
        self,
        num_codes: int,
        code_dim: int,
        *,
        beta: float = 0.25,
        update: str = "ema",
        decay: float = 0.99,
        restart: bool = True,
        restart_after: int = 100,
    ):
        super().__init__()
        self.num_codes, self.code_dim = num_codes, code_dim
        self.beta, self.update, self.decay = beta, update, decay
        self.restart, self.restart_after = restart, restart_after
        codebook = torch.randn(num_codes, code_dim)  # (K, D)
        if update == "loss":
            self.codebook = nn.Parameter(codebook)
        else:
            self.register_buffer("codebook", codebook)
            self.register_buffer("cluster_size", torch.ones(num_codes))  # N_k, (K,)
            self.register_buffer("cluster_sum", codebook.clone())  # S_k, (K, D)
        self.register_buffer("steps_unused", torch.zeros(num_codes, dtype=torch.long))  # (K,)

    def nearest(self, flat: torch.Tensor) -> torch.Tensor:
        """Index of the nearest code of each row of ``flat`` ``[N, D]``: ``[N]`` int64."""
        with torch.no_grad(), torch.autocast(flat.device.type, enabled=False):
            z, e = flat.float(), self.codebook.float()
            distances = z.pow(2).sum(1, keepdim=True) - 2 * z @ e.T + e.pow(2).sum(1)  # (N, K)
            return distances.argmin(1)

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        """The codes of an index grid ``[B, H, W]`` as ``[B, D, H, W]``."""
        return self.codebook[indices].permute(0, 3, 1, 2)

    def forward(self, z_e: torch.Tensor) -> Quantized:
        B, _, H, W = z_e.shape
        with torch.autocast(z_e.device.type, enabled=False):
            z_e = z_e.float()
            flat = z_e.permute(0, 2, 3, 1).reshape(-1, self.code_dim)  # (B·H·W, D)
            indices = self.nearest(flat)  # (B·H·W,)
            z_q = self.codebook[indices]  # (B·H·W, D)
            codebook_loss = (flat.detach() - z_q).pow(2).sum() / B
            commitment_loss = self.beta * (flat - z_q.detach()).pow(2).sum() / B
            z_q = flat + (z_q - flat).detach()  # straight-through: the value of z_q, the gradient of z_e
            if self.training:
                self._update(flat.detach(), indices)
        return Quantized(
            z_q=z_q.reshape(B, H, W, self.code_dim).permute(0, 3, 1, 2),  # (B, D, H, W)
            indices=indices.reshape(B, H, W),
            codebook_loss=codebook_loss,
            commitment_loss=commitment_loss,
            perplexity=perplexity(indices, self.num_codes),
        )

    @torch.no_grad()
    def _update(self, flat: torch.Tensor, indices: torch.Tensor) -> None:
        """The training-mode side effects of a forward pass: the EMA step and the dead-code restart."""
        counts = torch.bincount(indices, minlength=self.num_codes).float()  # n_k, (K,)
        if self.update == "ema":
            sums = torch.zeros_like(self.cluster_sum).index_add_(0, indices, flat)  # s_k, (K, D)
            self.cluster_size.mul_(self.decay).add_(counts, alpha=1 - self.decay)
            self.cluster_sum.mul_(self.decay).add_(sums, alpha=1 - self.decay)
            total = self.cluster_size.sum()
            smoothed = (self.cluster_size + EMA_EPSILON) / (total + self.num_codes * EMA_EPSILON) * total
            self.codebook.copy_(self.cluster_sum / smoothed.unsqueeze(1))
        used = counts > 0
        self.steps_unused.add_(1).masked_fill_(used, 0)
        if self.restart:
            dead = (self.steps_unused >= self.restart_after).nonzero().squeeze(1)  # (d,)
            if len(dead):
                self.restart_codes(dead, flat)

    @torch.no_grad()
    def restart_codes(self, dead: torch.Tensor, flat: torch.Tensor) -> None:
        """Move the codes ``dead`` (indices ``[d]``) to randomly chosen rows of the encodings ``flat`` ``[N, D]``."""
        picks = flat[torch.randint(len(flat), (len(dead),), device=flat.device)]  # (d, D)
        self.codebook[dead] = picks.to(self.codebook.dtype)
        if self.update == "ema":
            self.cluster_size[dead] = 1.0
            self.cluster_sum[dead] = picks
        self.steps_unused[dead] = 0


class VQEncoder(nn.Module):
    """28×28 image → 7×7 grid of ``code_dim``-vectors: two stride-2 convolutions, a 3×3 and a 1×1."""

    def __init__(self, code_dim: int, channels: int):
        super().__init__()
        c = channels
        self.net = nn.Sequential(
            nn.Conv2d(1, c, 4, stride=2, padding=1),  # (B, c, 14, 14)
            nn.ReLU(),
            nn.Conv2d(c, 2 * c, 4, stride=2, padding=1),  # (B, 2c, 7, 7)
            nn.ReLU(),
            nn.Conv2d(2 * c, 2 * c, 3, padding=1),  # (B, 2c, 7, 7)
            nn.ReLU(),
            nn.Conv2d(2 * c, code_dim, 1),  # (B, D, 7, 7): z_e
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class VQDecoder(nn.Module):
    """The mirror image of :class:`VQEncoder`: 7×7 grid of codes → 28×28 Bernoulli logits."""

    def __init__(self, code_dim: int, channels: int):
        super().__init__()
        c = channels
        self.net = nn.Sequential(
            nn.Conv2d(code_dim, 2 * c, 3, padding=1),  # (B, 2c, 7, 7)
            nn.ReLU(),
            nn.Conv2d(2 * c, 2 * c, 3, padding=1),  # (B, 2c, 7, 7)
            nn.ReLU(),
            nn.ConvTranspose2d(2 * c, c, 4, stride=2, padding=1),  # (B, c, 14, 14)
            nn.ReLU(),
            nn.ConvTranspose2d(c, 1, 4, stride=2, padding=1),  # (B, 1, 28, 28) logits
        )

    def forward(self, z_q: torch.Tensor) -> torch.Tensor:
        return self.net(z_q)


class VQVAELosses(NamedTuple):
    """The VQ-VAE's loss and its parts, each averaged over the batch (nats, squared distances)."""

    total: torch.Tensor  # recon + codebook + commitment: the training loss
    recon: torch.Tensor  # -log p(x | z_q), nats per image
    codebook: torch.Tensor
    commitment: torch.Tensor  # already weighted by beta
    perplexity: torch.Tensor  # of the batch's code usage


class VQVAE(ConfiguredModel):
    r"""A VQ-VAE for binarized MNIST: a 7×7 grid of codes from a codebook of ``num_codes`` vectors.

    ``forward(x)`` returns :class:`VQVAELosses` ``(total, recon, codebook, commitment, perplexity)``, the first
    four averaged over the batch; ``total`` is the training loss. The reconstruction term is
    :math:`-\log p(x\mid z_q) = \sum_i \mathrm{BCE}_{\text{logits}}(a_i, x_i)` in nats per image, the same as the
    VAE's. With the EMA codebook the codebook term has no gradient (the moving averages do its job) but is
    kept in ``total`` as the quantization error it measures, so the totals of the two updates compare.
    In training mode a forward pass also updates the codebook (EMA, dead-code restart).

    Examples
    --------
    >>> model = VQVAE(num_codes=64, code_dim=8)
    >>> model.encode(torch.rand(2, 1, 28, 28)).shape
    torch.Size([2, 7, 7])
    """

    def __init__(
        self,
        num_codes: int = 128,
        code_dim: int = 16,
        *,
        channels: int = 32,
        beta: float = 0.25,
        codebook_update: str = "ema",
        ema_decay: float = 0.99,
        restart_dead_codes: bool = True,
        restart_after: int = 100,
        config: Optional[VQVAEConfig] = None,
    ):
        super().__init__()
        if config is None:
            config = VQVAEConfig(
                num_codes=num_codes,
                code_dim=code_dim,
                channels=channels,
                beta=beta,
                codebook_update=codebook_update,
                ema_decay=ema_decay,
                restart_dead_codes=restart_dead_codes,
                restart_after=restart_after,
            )
        self.config = config
        self.encoder = VQEncoder(config.code_dim, config.channels)
        self.quantizer = VectorQuantizer(
            config.num_codes,
            config.code_dim,
            beta=config.beta,
            update=config.codebook_update,
            decay=config.ema_decay,
            restart=config.restart_dead_codes,
            restart_after=config.restart_after,
        )
        self.decoder = VQDecoder(config.code_dim, config.channels)

    @property
    def latent_dim(self) -> int:
        """The size :math:`D` of each code vector (an image has 7×7 of them)."""
        return self.config.code_dim

    @property
    def num_codes(self) -> int:
        return self.config.num_codes

    @property
    def codebook(self) -> torch.Tensor:
        """The code vectors, ``[K, D]``."""
        return self.quantizer.codebook

    # --- the networks ----------------------------------------------------------------------
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The index grid of each image, ``[B, 7, 7]`` int64 (no side effects, also in training mode)."""
        z_e = self.encoder(as_images(x))  # (B, D, 7, 7)
        flat = z_e.permute(0, 2, 3, 1).reshape(-1, self.config.code_dim)
        return self.quantizer.nearest(flat).reshape(z_e.shape[0], *z_e.shape[2:])

    def decode_indices(self, indices: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, 1, 28, 28]`` of the images whose codes are ``indices`` ``[B, 7, 7]``."""
        return self.decoder(self.quantizer.lookup(indices))

    # --- the objective ---------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> VQVAELosses:
        x = as_images(x)
        q = self.quantizer(self.encoder(x))  # z_q (B, D, 7, 7), straight-through
        logits = self.decoder(q.z_q)  # (B, 1, 28, 28)
        recon = -D.bernoulli_log_likelihood(logits.float(), x).mean()
        total = recon + q.codebook_loss + q.commitment_loss
        return VQVAELosses(total, recon, q.codebook_loss, q.commitment_loss, q.perplexity)

    # --- using the model -------------------------------------------------------------------
    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        r""":math:`\sigma(\text{decoder}(z_q(x)))`, ``[B, 1, 28, 28]`` in [0, 1]."""
        return torch.sigmoid(self.decode_indices(self.encode(x)))

    @torch.no_grad()
    def sample(self, n: int, *, prior: nn.Module, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """``n`` images ``[n, 1, 28, 28]`` in [0, 1]: index grids drawn from ``prior`` (an
        :class:`IndependentCodePrior` or :class:`AutoregressiveCodePrior` over this model's codes), decoded to
        Bernoulli means."""
        check_int("n", n)
        if prior.config.num_codes != self.num_codes or (prior.config.height, prior.config.width) != GRID:
            raise UserError(
                f"the prior is over {prior.config.height}×{prior.config.width} grids of {prior.config.num_codes} "
                f"codes, but this VQ-VAE has {GRID[0]}×{GRID[1]} grids of {self.num_codes}: fit it to this model's codes"
            )
        indices = prior.sample(n, generator=generator).to(self.device)
        return torch.sigmoid(self.decode_indices(indices))


# --- priors over the codes ----------------------------------------------------------------------


def _grid_indices(indices: torch.Tensor, config) -> torch.Tensor:
    """``indices`` ``[B, H, W]`` (or ``[B, H·W]``) checked against ``config`` and flattened in raster order."""
    L = config.height * config.width
    if indices.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
        raise UserError(f"code indices must be integers, got {indices.dtype}")
    if indices.dim() < 2 or indices[0].numel() != L:
        raise UserError(
            f"expected code indices shaped [B, {config.height}, {config.width}] or [B, {L}], got {list(indices.shape)}"
        )
    flat = indices.reshape(len(indices), L).long()
    if len(flat) and (flat.min() < 0 or flat.max() >= config.num_codes):
        raise UserError(f"code indices must lie in [0, {config.num_codes}), got {int(flat.min())}..{int(flat.max())}")
    return flat


@dataclass(frozen=True)
class IndependentPriorConfig:
    """Shape of an :class:`IndependentCodePrior`: ``num_codes`` :math:`K` and the grid ``height`` × ``width``."""

    num_codes: int = 128
    height: int = GRID[0]
    width: int = GRID[1]

    def __post_init__(self):
        check_int("num_codes", self.num_codes, minimum=2)
        check_int("height", self.height)
        check_int("width", self.width)

    def to_dict(self) -> dict:
        return asdict(self)


class IndependentCodePrior(nn.Module):
    r"""One categorical distribution per grid position, independent of the others:
    :math:`p(k) = \prod_j \pi_{j, k_j}`. Fitted by counting with :func:`fit_independent_prior`; untrained, it is
    uniform. ``log_probs`` ``[H·W, K]`` holds :math:`\log \pi`."""

    def __init__(self, *, config: Optional[IndependentPriorConfig] = None, num_codes: int = 128):
        super().__init__()
        self.config = config if config is not None else IndependentPriorConfig(num_codes=num_codes)
        L, K = self.config.height * self.config.width, self.config.num_codes
        self.register_buffer("log_probs", torch.full((L, K), -math.log(K)))

    @classmethod
    def from_config(cls, config: IndependentPriorConfig) -> "IndependentCodePrior":
        return cls(config=config)

    def log_prob(self, indices: torch.Tensor) -> torch.Tensor:
        r""":math:`\log p(k) = \sum_j \log \pi_{j, k_j}` of each grid, ``[B]`` nats."""
        flat = _grid_indices(indices, self.config).to(self.log_probs.device)  # (B, L)
        positions = torch.arange(flat.shape[1], device=flat.device)
        return self.log_probs[positions, flat].sum(1)

    @torch.no_grad()
    def sample(self, n: int, *, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """``n`` index grids ``[n, H, W]``, every position drawn independently."""
        check_int("n", n)
        probs = self.log_probs.exp().cpu()  # (L, K)
        draws = torch.multinomial(probs, n, replacement=True, generator=generator)  # (L, n)
        return draws.T.reshape(n, self.config.height, self.config.width).to(self.log_probs.device)


def fit_independent_prior(indices: torch.Tensor, *, num_codes: int, smoothing: float = 1.0) -> IndependentCodePrior:
    r"""The independent prior whose probabilities are the smoothed frequencies of ``indices`` ``[N, H, W]``:

    .. math::

        \pi_{j,k} = \frac{c_{j,k} + \alpha}{N + K\alpha},

    with :math:`c_{j,k}` the number of grids with code :math:`k` at position :math:`j` and :math:`\alpha` =
    ``smoothing`` (add-one by default), which keeps a code unseen in training at a finite cost. This is the
    maximum-likelihood fit of the prior (:math:`\alpha = 0`) with :math:`\alpha` pseudo-counts per code.
    """
    check_positive("smoothing", smoothing)
    if indices.dim() != 3:
        raise UserError(f"expected code indices shaped [N, H, W], got {list(indices.shape)}")
    config = IndependentPriorConfig(num_codes=num_codes, height=indices.shape[1], width=indices.shape[2])
    flat = _grid_indices(indices, config)  # (N, L)
    L = flat.shape[1]
    cells = torch.arange(L, device=flat.device) * num_codes + flat  # (N, L): position j, code k -> j·K + k
    counts = torch.bincount(cells.flatten(), minlength=L * num_codes).reshape(L, num_codes).double()  # c_jk
    prior = IndependentCodePrior(config=config)
    prior.log_probs.copy_(((counts + smoothing) / (len(flat) + num_codes * smoothing)).log().float())
    return prior


@dataclass(frozen=True)
class AutoregressivePriorConfig:
    """Everything needed to rebuild an :class:`AutoregressiveCodePrior`.

    Parameters
    ----------
    num_codes : :math:`K`.
    height, width : the grid; the sequence has ``height·width`` positions in raster order.
    embed_dim : size of the code and position embeddings.
    hidden_dim : the GRU's state size.
    num_layers : stacked GRU layers.
    """

    num_codes: int = 128
    height: int = GRID[0]
    width: int = GRID[1]
    embed_dim: int = 64
    hidden_dim: int = 256
    num_layers: int = 1

    def __post_init__(self):
        check_int("num_codes", self.num_codes, minimum=2)
        for name in ("height", "width", "embed_dim", "hidden_dim", "num_layers"):
            check_int(name, getattr(self, name))

    def to_dict(self) -> dict:
        return asdict(self)


class AutoregressiveCodePrior(nn.Module):
    r"""An autoregressive prior over the grid in raster order: :math:`p(k) = \prod_{t=1}^{L} p(k_t\mid k_{<t})`.

    A GRU reads the previous code (a learned start symbol at :math:`t = 1`) plus an embedding of the position
    :math:`t`, and its state gives the logits of :math:`k_t`. ``log_prob`` scores a whole batch in one pass;
    ``sample`` draws the :math:`L = H\cdot W` codes one after another, carrying the GRU state.
    """

    def __init__(self, *, config: Optional[AutoregressivePriorConfig] = None, num_codes: int = 128):
        super().__init__()
        self.config = c = config if config is not None else AutoregressivePriorConfig(num_codes=num_codes)
        L = c.height * c.width
        self.code_embedding = nn.Embedding(c.num_codes + 1, c.embed_dim)  # index K is the start symbol
        self.position_embedding = nn.Embedding(L, c.embed_dim)
        self.rnn = nn.GRU(c.embed_dim, c.hidden_dim, num_layers=c.num_layers, batch_first=True)
        self.head = nn.Linear(c.hidden_dim, c.num_codes)

    @classmethod
    def from_config(cls, config: AutoregressivePriorConfig) -> "AutoregressiveCodePrior":
        return cls(config=config)

    @property
    def device(self) -> torch.device:
        return self.head.weight.device

    def _inputs(self, previous: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        return self.code_embedding(previous) + self.position_embedding(positions)  # (B, T, E)

    def logits(self, indices: torch.Tensor) -> torch.Tensor:
        r"""The logits of :math:`p(k_t \mid k_{<t})` at every position, ``[B, L, K]``, in one pass."""
        flat = _grid_indices(indices, self.config).to(self.device)  # (B, L)
        B, L = flat.shape
        start = torch.full((B, 1), self.config.num_codes, dtype=torch.long, device=flat.device)
        previous = torch.cat([start, flat[:, :-1]], dim=1)  # (B, L): k_{t-1}, the start symbol at t = 1
        positions = torch.arange(L, device=flat.device).expand(B, L)
        hidden, _ = self.rnn(self._inputs(previous, positions))  # (B, L, H)
        return self.head(hidden)  # (B, L, K)

    def log_prob(self, indices: torch.Tensor) -> torch.Tensor:
        r""":math:`\log p(k) = \sum_t \log p(k_t\mid k_{<t})`, ``[B]`` nats."""
        flat = _grid_indices(indices, self.config).to(self.device)
        log_p = torch.log_softmax(self.logits(flat).float(), dim=-1)  # (B, L, K)
        return log_p.gather(-1, flat.unsqueeze(-1)).squeeze(-1).sum(1)

    def forward(self, indices: torch.Tensor) -> torch.Tensor:
        """The training loss: the negative log-likelihood in nats per grid, averaged over the batch."""
        return -self.log_prob(indices).mean()

    @torch.no_grad()
    def sample(self, n: int, *, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """``n`` index grids ``[n, H, W]``, drawn position by position in raster order."""
        check_int("n", n)
        c, device = self.config, self.device
        previous = torch.full((n, 1), c.num_codes, dtype=torch.long, device=device)
        state, out = None, []
        for t in range(c.height * c.width):
            position = torch.full((n, 1), t, dtype=torch.long, device=device)
            hidden, state = self.rnn(self._inputs(previous, position), state)  # (n, 1, H)
            probs = torch.softmax(self.head(hidden[:, 0]).float(), dim=-1)  # (n, K)
            previous = torch.multinomial(probs.cpu(), 1, generator=generator).to(device)  # (n, 1)
            out.append(previous)
        return torch.cat(out, dim=1).reshape(n, c.height, c.width)
