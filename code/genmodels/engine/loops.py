"""Explicit training loops, one per family, that a reader can follow line by line.

Both loops keep the whole dataset on the training device (:class:`genmodels.data.DeviceBatches`),
move nothing to the CPU inside an epoch except an occasional progress-bar number, use bf16 autocast on
CUDA, can ``torch.compile`` the networks, write a checkpoint atomically at the end of every epoch (and
every ``checkpoint_every`` steps), and resume from one to exactly the run they would have been.
"""

from __future__ import annotations

import functools
import math
import time
import warnings
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import (
    Any,
    Callable,
    Dict,
    List,
    Optional,
    Tuple,
    Union,
)

import numpy as np
import torch

from .. import gan as G
from ..autoencoder import Autoencoder
from ..conditional import CGAN, CVAE, check_labels
from ..core import (
    UserError,
    check_choice,
    check_int,
    check_positive,
    eval_mode,
    pick_device,
)
from ..gan import GAN
from ..vae import VAE
from ..vqvae import VQVAE, AutoregressiveCodePrior
from .batches import DeviceBatches
from .checkpoints import (
    CheckpointError,
    load_state_checked,
    read_checkpoint,
    save_checkpoint,
)
from .distributed import distributed_context, setup_distributed
from .pixels import PIXEL_MODELS, as_uint8_images, static_binarize, to_float
from .steps import cgan_step, cvae_step, gan_step, vae_step, vqvae_step

__all__ = [
    "TrainConfig",
    "GANTrainConfig",
    "History",
    "TrainingDiverged",
    "train_vae",
    "train_gan",
    "train_autoencoder",
    "train_cvae",
    "train_cgan",
    "evaluate_vae",
    "estimate_nll",
    "eval_images",
    "saturated_steps",
    "EVAL_SEED",
    "LR_SCHEDULES",
    "scheduled_lr",
    "SATURATION_LEVEL",
    "SATURATION_STEPS",
    "train_vqvae",
    "evaluate_vqvae",
    "vqvae_codes",
    "train_code_prior",
]

LR_SCHEDULES = ("constant", "cosine")
EVAL_SEED = 2024  # fixed binarization and noise for test-set evaluation, identical across runs


@dataclass(frozen=True)
class TrainConfig:
    r"""Settings of a training run; stored in the checkpoint.

    Parameters
    ----------
    num_epochs : passes over the training data.
    batch_size : images per step.
    lr : Adam's learning rate (the peak of the schedule).
    lr_schedule : ``"constant"``, or ``"cosine"``: the learning rate of step :math:`t` of :math:`T` is
        :math:`\mathrm{lr}\cdot\tfrac12(1+\cos(\pi t/T))`, from ``lr`` down to 0 at the last step. It is a
        function of the step alone, so a resumed run follows the same schedule.
    betas : Adam's betas.
    pixels : ``"continuous"``, ``"dynamic"`` (a fresh Bernoulli draw per batch) or ``"static"``.
    seed : seeds the shuffles, the binarization and the model's noise.
    device : ``"auto"``, ``"cpu"``, ``"cuda"``, ``"mps"``...
    amp : bf16 autocast on CUDA (ignored elsewhere).
    compile : ``torch.compile`` the networks.
    checkpoint_every : also write the checkpoint every this many steps (0: at the end of epochs only).
    num_samples : size of the grid sampled from fixed noise after every epoch.
    beta : VAEs only: the weight :math:`\beta` of the KL term in the training objective,
        :math:`-\log p(x\mid z) + \beta\,\mathrm{KL}` (Higgins et al. 2017). 1 is the ELBO; the recorded
        ``loss`` is always the negative ELBO, whatever the weight.
    kl_warmup_epochs : VAEs only: the KL weight rises linearly from 0 to ``beta`` over this many epochs
        (counted in steps, fractions allowed), then stays there: the "KL annealing" of Bowman et al. (2016)
        and the "warm-up" of Sønderby et al. (2016). 0: no warm-up.
    """

    num_epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-3
    lr_schedule: str = "constant"
    betas: Tuple[float, float] = (0.9, 0.999)
    pixels: str = "dynamic"
    seed: int = 0
    device: str = "auto"
    amp: bool = True
    compile: bool = False
    checkpoint_every: int = 0
    num_samples: int = 64
    beta: float = 1.0
    kl_warmup_epochs: float = 0.0

    def __post_init__(self):
        for name in ("num_epochs", "batch_size", "num_samples"):
            check_int(name, getattr(self, name))
        check_positive("lr", self.lr)
        if not (isinstance(self.beta, (int, float)) and self.beta >= 0 and math.isfinite(self.beta)):
            raise UserError(
                f"beta, the KL term's weight, must be a finite number >= 0 (1: the ELBO), got {self.beta!r}"
            )
        if not (isinstance(self.kl_warmup_epochs, (int, float)) and 0 <= self.kl_warmup_epochs < math.inf):
            raise UserError(
                f"kl_warmup_epochs must be a number of epochs >= 0 (0: no warm-up), got {self.kl_warmup_epochs!r}"
            )
        check_int("checkpoint_every", self.checkpoint_every, minimum=0)
        check_choice("pixels", self.pixels, PIXEL_MODELS)
        check_choice("lr_schedule", self.lr_schedule, LR_SCHEDULES)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class GANTrainConfig(TrainConfig):
    """:class:`TrainConfig` with the GAN's defaults (Adam 2e-4, betas (0.5, 0.999), continuous pixels),
    the generator loss (``"saturating"`` or ``"non_saturating"``), ``d_steps``, the number ``k`` of
    discriminator steps per generator step of Algorithm 1 in Goodfellow et al. (2014), ``lr_d``, the
    discriminator's own learning rate (the two time-scale update rule of Heusel et al. 2017; ``None``:
    ``lr``, the same for both), and ``label_smoothing`` :math:`s`, one-sided: the real images' target is
    :math:`1 - s` (:func:`~genmodels.gan.discriminator_loss`)."""

    lr: float = 2e-4
    betas: Tuple[float, float] = (0.5, 0.999)
    pixels: str = "continuous"
    loss: str = "non_saturating"
    d_steps: int = 1
    lr_d: Optional[float] = None
    label_smoothing: float = 0.0

    def __post_init__(self):
        super().__post_init__()
        if self.beta != 1.0 or self.kl_warmup_epochs != 0.0:
            raise UserError("beta and kl_warmup_epochs weight a VAE's KL term; a GAN has none: leave them at 1 and 0")
        check_choice("loss", self.loss, G.GENERATOR_LOSSES)
        check_int("d_steps", self.d_steps)
        if self.lr_d is not None:
            check_positive("lr_d", self.lr_d)
        if not 0.0 <= self.label_smoothing < 1.0:
            raise UserError(f"label_smoothing must be in [0, 1) (0.1 is usual), got {self.label_smoothing!r}")

    @property
    def discriminator_lr(self) -> float:
        return self.lr if self.lr_d is None else self.lr_d


@dataclass
class History:
    """What a run recorded.

    ``steps``: one value per optimizer step (per generator step for a GAN), e.g. ``steps["loss"]``.
    ``epochs``: one value per epoch, e.g. ``epochs["test_nelbo"]``, ``epochs["seconds"]``.
    ``samples``: one uint8 grid ``[num_samples, 1, 28, 28]`` per epoch, decoded from the same fixed noise.
    ``events``: things a reader of the run must know, e.g. a GAN whose discriminator won outright.
    """

    steps: Dict[str, List[float]] = field(default_factory=dict)
    epochs: Dict[str, List[float]] = field(default_factory=dict)
    samples: List[torch.Tensor] = field(default_factory=list)
    events: List[str] = field(default_factory=list)

    def log_steps(self, values: Dict[str, List[float]]) -> None:
        for k, v in values.items():
            self.steps.setdefault(k, []).extend(v)

    def log_epoch(self, **values: float) -> None:
        for k, v in values.items():
            self.epochs.setdefault(k, []).append(float(v))

    def to_dict(self) -> dict:
        return {"steps": self.steps, "epochs": self.epochs, "samples": list(self.samples), "events": list(self.events)}

    @classmethod
    def from_dict(cls, d: dict) -> "History":
        return cls(
            steps={k: list(v) for k, v in d.get("steps", {}).items()},
            epochs={k: list(v) for k, v in d.get("epochs", {}).items()},
            samples=list(d.get("samples", [])),
            events=list(d.get("events", [])),
        )

    def __repr__(self) -> str:
        n = len(next(iter(self.epochs.values()), []))
        last = {k: round(v[-1], 3) for k, v in self.epochs.items() if v}
        return f"History({n} epochs, last={last})"


class TrainingDiverged(UserError, RuntimeError):
    """The loss became NaN or infinite; the message names the step and the last good checkpoint."""


def scheduled_lr(config: TrainConfig, step: int, total_steps: int) -> float:
    """The learning rate of step ``step`` (0-based) of ``total_steps`` under ``config.lr_schedule``."""
    if config.lr_schedule == "constant":
        return config.lr
    return config.lr * 0.5 * (1.0 + math.cos(math.pi * min(step, total_steps) / max(total_steps, 1)))


def kl_weight(config: TrainConfig, step: int, steps_per_epoch: int) -> float:
    """The KL term's weight at step ``step`` (0-based): ``config.beta``, reached linearly over the first
    ``config.kl_warmup_epochs`` epochs. A function of the step alone, so a resumed run continues the ramp."""
    warmup_steps = config.kl_warmup_epochs * steps_per_epoch
    if warmup_steps <= 0:
        return config.beta
    return config.beta * min(1.0, (step + 1) / warmup_steps)


def _set_lr(optimizers, lr: float) -> None:
    for opt in optimizers:
        for group in opt.param_groups:
            group["lr"] = lr


def make_adam(params, *, lr: float, betas=(0.9, 0.999), device: torch.device) -> torch.optim.Optimizer:
    """Adam, with its fused kernel on CPU and CUDA: one pass over all parameters instead of a dozen small
    ops per tensor (on this project's 2-core CPU, 0.3 ms instead of 1.3 ms a step for the MLP VAE, about a
    tenth of its step). Same update rule; falls back to the default implementation where fused is missing."""
    params = list(params)
    if device.type in ("cpu", "cuda"):
        try:
            return torch.optim.Adam(params, lr=lr, betas=betas, fused=True)
        except (RuntimeError, TypeError, ValueError):  # pragma: no cover - an older torch or an odd device
            pass
    return torch.optim.Adam(params, lr=lr, betas=betas)


def eval_images(images: torch.Tensor, pixels: str, *, device=None) -> torch.Tensor:
    """The fixed float version of a test set used for every evaluation: continuous pixels as they are,
    binarized pixels by one Bernoulli draw seeded with ``EVAL_SEED`` (the same draw in every run).
    A float tensor is taken to be such a version already and returned as it is."""
    if isinstance(images, torch.Tensor) and images.is_floating_point():
        return images.to(device) if device is not None else images
    images = as_uint8_images(images)
    if pixels == "continuous":
        x = to_float(images)
    else:
        x = to_float(static_binarize(images, seed=EVAL_SEED) * 255)
    return x.to(device) if device is not None else x


@torch.no_grad()
def evaluate_vae(
    model: VAE,
    images: torch.Tensor,
    *,
    pixels: str = "dynamic",
    batch_size: int = 500,
    k: Tuple[int, ...] = (),
    labels: Optional[torch.Tensor] = None,
) -> Dict[str, float]:
    """Test-set negative ELBO (with its reconstruction and KL parts) and, for each ``k``, the negative
    importance-weighted bound, averaged over the images, in nats.

    Binarized pixel models are evaluated on one fixed binarization of the test set (:func:`eval_images`).
    The model's noise is drawn from a generator seeded with ``EVAL_SEED`` so the numbers repeat; the
    caller's random state is left untouched. A conditional VAE (:class:`~genmodels.conditional.CVAE`) is
    scored on -log p(x | y) with the ``labels`` of the images (or those of an ``(images, labels)`` pair).
    """
    x_all = eval_images(images, pixels)
    y_all = _conditions(model, images, labels, len(x_all))
    device = model.device
    with eval_mode(model):
        totals = {"nelbo": 0.0, "recon": 0.0, "kl": 0.0, **{f"iwae_{kk}": 0.0 for kk in k}}
        devices = [device.index or 0] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(EVAL_SEED)
            for start in range(0, len(x_all), batch_size):
                x = x_all[start : start + batch_size].to(device)
                cond = [y[start : start + batch_size].to(device) for y in y_all]  # [] or [labels]
                elbo, log_px, kl = model.elbo(x, *cond, return_parts=True)
                totals["nelbo"] -= elbo.sum().item()
                totals["recon"] -= log_px.sum().item()
                totals["kl"] += kl.sum().item()
                for kk in k:
                    totals[f"iwae_{kk}"] -= model.iwae_bound(x, *cond, k=kk).sum().item()
    return {name: value / len(x_all) for name, value in totals.items()}


def _conditions(model, data, labels, n: int) -> List[torch.Tensor]:
    """``[]`` for an unconditional model; ``[labels]`` (checked, int64 ``[n]``) for a conditional one, from
    ``labels`` or from an ``(images, labels)`` pair ``data``."""
    if not isinstance(model, CVAE):
        if labels is not None:
            raise UserError(f"labels condition a CVAE; a {type(model).__name__} takes the images alone")
        return []
    if labels is None and isinstance(data, (tuple, list)):
        labels = data[1]
    if labels is None:
        raise UserError("a conditional VAE is scored on log p(x | y): give the images' labels (labels=...)")
    return [check_labels(labels, model.num_classes, n=n)]


@torch.no_grad()
def estimate_nll(
    model: VAE,
    images: torch.Tensor,
    *,
    k: int = 5000,
    pixels: str = "dynamic",
    batch_size: int = 100,
) -> Dict[str, float]:
    r"""The test negative log-likelihood estimated by the importance-weighted bound,
    :math:`-\frac1n\sum_i \mathcal L_k(x_i)` nats per image, with its standard error over the images.

    :math:`\mathcal L_k \le \log p(x)` for every ``k`` and tends to it as ``k`` grows (Burda et al. 2016 use
    ``k = 5000``), so the estimate is an upper bound on the true NLL up to its noise. The standard error is
    the spread of the per-image values over :math:`\sqrt n`; it contains both the variety of the digits and the
    Monte Carlo noise of each bound. Same fixed binarization and seeded noise as :func:`evaluate_vae`.
    Returns ``{"nll", "se", "k", "images", "seconds"}``.
    """
    check_int("k", k)
    x_all = eval_images(images, pixels)
    device = model.device
    start = time.perf_counter()
    values = []
    with eval_mode(model):
        devices = [device.index or 0] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(EVAL_SEED)
            for first in range(0, len(x_all), batch_size):
                x = x_all[first : first + batch_size].to(device)
                values.append(-model.iwae_bound(x, k=k).double().cpu())
    per_image = torch.cat(values)  # (n,)
    n = len(per_image)
    se = per_image.std().item() / math.sqrt(n) if n > 1 else math.nan
    return {"nll": per_image.mean().item(), "se": se, "k": k, "images": n, "seconds": time.perf_counter() - start}


def _rng_state(device: torch.device) -> dict:
    state = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    elif device.type == "mps":
        state["mps"] = torch.mps.get_rng_state()
    return state


def _set_rng_state(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)
    elif device.type == "mps" and "mps" in state:
        torch.mps.set_rng_state(state["mps"])


def _call_back(callback: Callable[[int, "History"], None], epoch: int, run: "_Run") -> None:
    """``callback(epoch, history)`` outside the training's random stream: the global generators are put back as
    they were before it. What a callback draws would otherwise shift the noise of every later step, and not
    always by the same amount: a model it builds on first use (the FCD's classifier, whose layers draw their
    initial weights before the stored ones are loaded) draws in the first epoch of a fresh run but in the first
    epoch after a resume, so the resumed run would part from the run it continues."""
    state = _rng_state(run.device)
    try:
        callback(epoch, run.history)
    finally:
        _set_rng_state(state, run.device)


def _to_uint8(x: torch.Tensor) -> torch.Tensor:
    return (x.float().clamp(0, 1) * 255).round().to(torch.uint8).cpu()


class _Run:
    """The bookkeeping both loops share: device, batches, checkpoint, resume, progress, divergence.

    Under ``torchrun`` every rank keeps the whole dataset on its device and draws the same global batch,
    binarization and noise (the generators are seeded alike); :meth:`shard` gives each rank its slice of
    the global batch, DistributedDataParallel averages the gradients, and only rank 0 shows progress and
    writes checkpoints. The result equals a single-process run with the same global batch.
    """

    def __init__(self, model, images, config: TrainConfig, checkpoint, resume: bool, progress: bool, labels=None):
        self.config = config
        self.rank, self.world, _ = distributed_context()
        if self.world > 1:
            if config.batch_size % self.world:
                raise UserError(
                    f"batch_size {config.batch_size} is the global batch and must be divisible by the "
                    f"{self.world} processes"
                )
            self.device = setup_distributed(config.device)
        else:
            self.device = pick_device(config.device)
        self.model = model.to(self.device)
        self.batches = DeviceBatches(
            as_uint8_images(images),
            labels,  # None: batches are images; else (images, labels) pairs
            batch_size=config.batch_size,
            pixels=config.pixels,
            device=self.device,
            seed=config.seed,
        )
        self.checkpoint = Path(checkpoint) if checkpoint is not None else None
        self.history = History()
        self.step = 0
        self.last_good: Optional[str] = None
        self.progress = progress and self.rank == 0
        noise = torch.Generator().manual_seed(config.seed + 7919)
        self.fixed_noise = torch.randn(config.num_samples, model.latent_dim, generator=noise).to(self.device)
        self.resume = resume and self.checkpoint is not None and self.checkpoint.exists()

    def shard(self, t: torch.Tensor) -> torch.Tensor:
        """This rank's slice of a global batch (the whole batch in a single process)."""
        return t if self.world == 1 else t.tensor_split(self.world)[self.rank]

    def parallel(self, module: torch.nn.Module) -> torch.nn.Module:
        """``module`` wrapped in DistributedDataParallel under torchrun, else itself."""
        if self.world == 1:
            return module
        from torch.nn.parallel import DistributedDataParallel

        return DistributedDataParallel(module, device_ids=[self.device.index] if self.device.type == "cuda" else None)

    def restore(self, optimizers: Dict[str, torch.optim.Optimizer], kind: str) -> None:
        """Load model, optimizers, history, random state and data position from the checkpoint."""
        ckpt = read_checkpoint(self.checkpoint, map_location=self.device)
        if ckpt["kind"] != kind:
            raise CheckpointError(f"{self.checkpoint} holds a {ckpt['kind']}; cannot resume training a {kind} from it")
        if ckpt["model_config"] != self.model.config.to_dict():
            raise CheckpointError(
                f"{self.checkpoint} was trained with model config {ckpt['model_config']}, "
                f"but this model has {self.model.config.to_dict()}: use another checkpoint path, or start afresh "
                "(resume=False; --no-resume on the command line)"
            )
        load_state_checked(self.model, ckpt["model_state"], source=f"checkpoint {self.checkpoint}")
        for name, opt in optimizers.items():
            opt.load_state_dict(ckpt["optimizers"][name])
        self.history = History.from_dict(ckpt["history"])
        self.batches.load_state_dict(ckpt["data"])
        _set_rng_state(ckpt["rng"], self.device)
        self.step = int(ckpt["step"])
        self.last_good = str(self.checkpoint)

    def save(self, optimizers: Dict[str, torch.optim.Optimizer]) -> None:
        if self.checkpoint is None:
            return
        if self.rank != 0:  # every rank holds the same state; one writes it
            self.last_good = f"{self.checkpoint} (step {self.step})"
            return
        save_checkpoint(
            self.checkpoint,
            self.model,
            optimizers={name: opt.state_dict() for name, opt in optimizers.items()},
            train_config=self.config.to_dict(),
            step=self.step,
            epoch=self.batches.epoch,
            history=self.history.to_dict(),
            rng=_rng_state(self.device),
            data=self.batches.state_dict(),
            data_source=getattr(self, "data_source", None),
        )
        self.last_good = f"{self.checkpoint} (step {self.step})"

    def flush(self, pending: Dict[str, List[torch.Tensor]]) -> None:
        """Move the step values gathered on the device to the history in one transfer, and stop on NaN/inf."""
        if not pending or not next(iter(pending.values())):
            return
        names = list(pending)
        table = torch.stack([torch.stack(pending[n]) for n in names]).float()  # (values, steps)
        if self.world > 1:  # each rank saw its slice of the batch: the global batch's value is the mean
            import torch.distributed as dist

            dist.all_reduce(table)
            table /= self.world
        table = table.cpu()
        finite = torch.isfinite(table).all(0)
        if not bool(finite.all()):
            first = len(self.history.steps.get(names[0], [])) + int((~finite).nonzero()[0])
            where = self.last_good or "none was written yet"
            raise TrainingDiverged(
                f"the loss became NaN or infinite at step {first + 1}; training stopped. "
                f"Last good checkpoint: {where}. Lower the learning rate or check the data, then resume."
            )
        self.history.log_steps({n: table[i].tolist() for i, n in enumerate(names)})
        for n in names:
            pending[n].clear()

    def bar(self, epoch: int, num_epochs: int):
        from tqdm.auto import tqdm

        return tqdm(
            total=len(self.batches),
            initial=self.batches.position,
            desc=f"epoch {epoch + 1}/{num_epochs}",
            disable=not self.progress,
            leave=epoch + 1 == num_epochs,
            unit="batch",
        )


class _Autocast(torch.nn.Module):
    """Run ``module`` under bf16 autocast on CUDA and hand back float32 outputs, so that a plain step
    (:mod:`genmodels.engine.steps`) computes its losses in float32 without knowing about autocast."""

    def __init__(self, module: torch.nn.Module, device: torch.device, enabled: bool):
        super().__init__()
        self.module, self.device_type, self.enabled = module, device.type, enabled and device.type == "cuda"

    def forward(self, *args):
        with torch.autocast(device_type=self.device_type, dtype=torch.bfloat16, enabled=self.enabled):
            out = self.module(*args)
        return tuple(t.float() for t in out) if isinstance(out, tuple) else out.float()


def _wrap(run: "_Run", module: torch.nn.Module, *, compile: bool) -> torch.nn.Module:
    """``module`` as the step sees it: DDP under torchrun, compiled if asked, under autocast on CUDA."""
    net = run.parallel(module)
    if compile:
        net = torch.compile(net)
    return _Autocast(net, run.device, run.config.amp) if run.config.amp and run.device.type == "cuda" else net


class _ELBOParts(torch.nn.Module):
    """``VAE.elbo`` with its parts as ``forward``, the call DistributedDataParallel hooks into."""

    def __init__(self, vae: VAE):
        super().__init__()
        self.vae = vae

    def forward(self, x: torch.Tensor, eps: torch.Tensor):
        return self.vae.elbo(x, eps=eps, return_parts=True)


def train_vae(
    model: VAE,
    data,
    *,
    config: Optional[TrainConfig] = None,
    test_data=None,
    checkpoint: Union[str, Path, None] = None,
    resume: bool = True,
    progress: bool = True,
    callback: Optional[Callable[[int, History], None]] = None,
    **overrides: Any,
) -> History:
    """Train a VAE by maximising the ELBO with Adam.

    Parameters
    ----------
    model : the :class:`~genmodels.vae.VAE` to train (moved to the device).
    data : uint8 training images ``[N, 28, 28]`` or an ``(images, labels)`` pair from ``gm.load_mnist``.
    config : a :class:`TrainConfig`; keyword ``overrides`` (``num_epochs=5``...) replace its fields.
    test_data : optional test images; after every epoch the test negative ELBO is logged.
    checkpoint : path to write after every epoch; if it exists and ``resume``, training continues from it.
    progress : show a tqdm progress bar (terminal or notebook).
    callback : called as ``callback(epoch, history)`` after every epoch, before its checkpoint is written (a run
        killed in between resumes at the start of that epoch and calls it again for the same ``epoch``), with the
        random generators restored after it, so that what it draws does not change the training.

    Returns
    -------
    History with ``steps["loss"|"recon"|"kl"]`` (negative ELBO and its two parts, nats per image) and
    ``epochs["loss"|"recon"|"kl"|"test_nelbo"|"test_recon"|"test_kl"|"seconds"]``.
    """
    config = replace(config or TrainConfig(), **overrides)
    run = _Run(model, data, config, checkpoint, resume, progress)
    run.data_source = getattr(data, "source", None)
    opt = make_adam(model.parameters(), lr=config.lr, betas=config.betas, device=run.device)
    optimizers = {"model": opt}
    if run.resume:
        run.restore(optimizers, "vae")
    elbo_parts = _wrap(run, _ELBOParts(model), compile=config.compile)
    x_test = eval_images(test_data, config.pixels, device=run.device) if test_data is not None else None
    pending: Dict[str, List[torch.Tensor]] = {"loss": [], "recon": [], "kl": []}
    steps_per_epoch = len(run.batches)

    model.train()
    while run.batches.epoch < config.num_epochs:
        epoch = run.batches.epoch
        start, bar = time.perf_counter(), run.bar(epoch, config.num_epochs)
        for x in run.batches:
            if config.lr_schedule != "constant":
                _set_lr([opt], scheduled_lr(config, run.step, config.num_epochs * steps_per_epoch))
            eps = torch.randn(x.shape[0], model.latent_dim, device=run.device)  # noise for the global batch
            weight = kl_weight(config, run.step, steps_per_epoch)
            stats = vae_step(elbo_parts, run.shard(x), run.shard(eps), opt, kl_weight=weight)
            run.step += 1
            for name, value in stats.items():
                pending[name].append(value)
            bar.update()
            if run.step % 50 == 0:
                bar.set_postfix(loss=f"{stats['loss'].item():.1f}")
            if config.checkpoint_every and run.step % config.checkpoint_every == 0:
                run.flush(pending)
                run.save(optimizers)
        run.flush(pending)
        seconds = time.perf_counter() - start
        done = run.history.steps["loss"][-steps_per_epoch:]
        summary = {
            "loss": float(np.mean(done)),
            "recon": float(np.mean(run.history.steps["recon"][-steps_per_epoch:])),
            "kl": float(np.mean(run.history.steps["kl"][-steps_per_epoch:])),
        }
        if x_test is not None:
            ev = evaluate_vae(model, x_test)
            summary.update(test_nelbo=ev["nelbo"], test_recon=ev["recon"], test_kl=ev["kl"])
        run.history.log_epoch(**summary, seconds=seconds)
        run.history.samples.append(_to_uint8(model.sample(z=run.fixed_noise)))
        bar.set_postfix({k: f"{v:.1f}" for k, v in summary.items() if k in ("loss", "test_nelbo")})
        bar.close()
        if callback is not None:  # before the checkpoint: a run killed in between redoes (and re-reports) the epoch
            _call_back(callback, epoch, run)
        run.save(optimizers)
    return run.history


SATURATION_LEVEL = 0.01  # mean D(G(z)) below this: the discriminator rejects the fakes outright
SATURATION_STEPS = 50  # ...for this many consecutive generator steps (or a whole shorter epoch)


def saturated_steps(d_fake: List[float], *, level: float = SATURATION_LEVEL) -> Tuple[int, int]:
    """``(count, longest_run)`` of generator steps whose mean :math:`D(G(z))` is below ``level``."""
    count = longest = run = 0
    for value in d_fake:
        run = run + 1 if value < level else 0
        count += value < level
        longest = max(longest, run)
    return count, longest


def _report_saturation(run: "_Run", config: GANTrainConfig, epoch: int, first_step: int) -> int:
    """The generator steps of this epoch (from ``first_step`` on) whose mean :math:`D(G(z))` was below
    ``SATURATION_LEVEL``; a discriminator that won outright is recorded in ``run.history.events`` and warned of."""
    count, longest = saturated_steps(run.history.steps.get("d_fake", [])[first_step:])
    steps_this_epoch = len(run.history.steps.get("d_fake", [])) - first_step
    if steps_this_epoch and longest >= min(SATURATION_STEPS, steps_this_epoch):
        message = (
            f"epoch {epoch + 1}: the discriminator won outright: D(G(z)) < {SATURATION_LEVEL} for {longest} "
            f"consecutive generator steps ({count} of {steps_this_epoch} in the epoch)"
            + (
                " — with the saturating loss the generator's gradient vanishes there"
                if config.loss == "saturating"
                else ""
            )
        )
        if message not in run.history.events:
            run.history.events.append(message)
            if run.rank == 0:
                warnings.warn(message, RuntimeWarning, stacklevel=3)  # at the caller of the training loop
    return count


def train_gan(
    model: GAN,
    data,
    *,
    config: Optional[GANTrainConfig] = None,
    checkpoint: Union[str, Path, None] = None,
    resume: bool = True,
    progress: bool = True,
    callback: Optional[Callable[[int, History], None]] = None,
    **overrides: Any,
) -> History:
    """Train a GAN in the order of Algorithm 1 of Goodfellow et al. (2014).

    Every iteration is :func:`~genmodels.engine.steps.gan_step`, unchanged: ``d_steps`` discriminator steps on
    ``discriminator_loss(D(x), D(G(z).detach()))``, one per real batch, then one generator step on
    ``generator_loss(D(G(z)), kind=config.loss)`` with fresh noise. An epoch is one pass over the real data
    (its last group may hold fewer than ``d_steps`` batches). This loop adds only what wraps the step:
    DistributedDataParallel, bf16 autocast, ``torch.compile``, the learning-rate schedule, the generator's
    weight average (:meth:`GAN.update_ema`, if the config has ``ema``), checkpoints, progress and history.

    Returns
    -------
    History with, per generator step, ``steps["d_loss"|"g_loss"|"d_real"|"d_fake"|"g_grad_norm"]``
    (``d_real`` and ``d_fake`` are the mean of :math:`D(x)` and :math:`D(G(z))`, ``g_grad_norm`` the norm of
    the generator's gradient), and per epoch their means, ``saturated_steps`` (generator steps with mean
    :math:`D(G(z))` below ``SATURATION_LEVEL``) and ``seconds``. A discriminator that wins outright (for
    ``SATURATION_STEPS`` consecutive generator steps, or a whole shorter epoch) is recorded in
    ``history.events`` and raised as a ``RuntimeWarning``.
    """
    config = replace(config or GANTrainConfig(), **overrides)
    if not isinstance(config, GANTrainConfig):
        raise TypeError("train_gan needs a GANTrainConfig (it has the generator loss and d_steps)")
    return _gan_loop(
        model,
        data,
        config,
        checkpoint,
        resume,
        progress,
        callback,
        kind="gan",
        step=gan_step,
        sampling=_plain_sampling,
        data_source=getattr(data, "source", None),
    )


def _plain_sampling(run: "_Run", model: GAN):
    """A plain GAN's noise for a global batch of n (every rank draws it all and keeps its slice, which equals a
    single-process run), and its grid of samples from the fixed noise."""
    noise = lambda n: run.shard(torch.randn(n, model.latent_dim, device=run.device))  # noqa: E731
    return noise, lambda: model.sample(z=run.fixed_noise)


def _gan_loop(
    model, images, config, checkpoint, resume, progress, callback, *, kind, step, sampling, data_source, labels=None
):
    """The loop :func:`train_gan` and :func:`train_cgan` share, around their step (``gan_step`` or ``cgan_step``):
    groups of ``d_steps`` real batches, the learning-rate schedule, the weight average, checkpoints and exact resume,
    the history with its saturation events, the epoch callback. ``sampling(run, model)`` returns the noise of a
    global batch of n (as the step takes it) and the grid of samples from the fixed noise."""
    run = _Run(model, images, config, checkpoint, resume, progress, labels=labels)
    run.data_source = data_source
    opt_d = make_adam(
        model.discriminator.parameters(), lr=config.discriminator_lr, betas=config.betas, device=run.device
    )
    opt_g = make_adam(model.generator.parameters(), lr=config.lr, betas=config.betas, device=run.device)
    optimizers = {"discriminator": opt_d, "generator": opt_g}
    if run.resume:
        run.restore(optimizers, kind)
    netG = _wrap(run, model.generator, compile=config.compile)
    netD = _wrap(run, model.discriminator, compile=config.compile)
    names = ("d_loss", "g_loss", "d_real", "d_fake", "g_grad_norm")
    pending: Dict[str, List[torch.Tensor]] = {n: [] for n in names}
    steps_per_epoch = math.ceil(len(run.batches) / config.d_steps)  # the last group may hold fewer batches
    global_noise, sample_fixed = sampling(run, model)
    shard = (lambda b: run.shard(b)) if labels is None else (lambda b: (run.shard(b[0]), run.shard(b[1])))

    model.train()
    while run.batches.epoch < config.num_epochs:
        epoch = run.batches.epoch
        start, bar = time.perf_counter(), run.bar(epoch, config.num_epochs)
        first_step = epoch * steps_per_epoch  # generator steps in earlier epochs
        group: list = []
        for batch in run.batches:  # x, or (x, y) with labels
            group.append(shard(batch))
            if len(group) < config.d_steps and run.batches.epoch == epoch:  # (the epoch advances after its last batch)
                continue
            noise = functools.partial(global_noise, (batch if labels is None else batch[0]).shape[0])
            if config.lr_schedule != "constant":
                factor = scheduled_lr(config, run.step, config.num_epochs * steps_per_epoch) / config.lr
                _set_lr([opt_g], factor * config.lr)
                _set_lr([opt_d], factor * config.discriminator_lr)
            stats = step(
                netG, netD, group, noise, opt_d, opt_g, loss=config.loss, real_label=1.0 - config.label_smoothing
            )
            model.update_ema()
            bar.update(len(group))
            group = []
            run.step += 1
            for name in names:
                pending[name].append(stats[name])
            if run.step % 50 == 0:
                bar.set_postfix(d=f"{stats['d_loss'].item():.2f}", g=f"{stats['g_loss'].item():.2f}")
            if config.checkpoint_every and run.step % config.checkpoint_every == 0:
                run.flush(pending)
                run.save(optimizers)
        run.flush(pending)
        seconds = time.perf_counter() - start
        summary = {n: float(np.mean(run.history.steps[n][first_step:])) for n in names if run.history.steps.get(n)}
        count = _report_saturation(run, config, epoch, first_step)
        run.history.log_epoch(**summary, saturated_steps=count, seconds=seconds)
        run.history.samples.append(_to_uint8(sample_fixed()))
        bar.set_postfix(d=f"{summary.get('d_loss', math.nan):.2f}", g=f"{summary.get('g_loss', math.nan):.2f}")
        bar.close()
        if callback is not None:  # before the checkpoint: a run killed in between redoes (and re-reports) the epoch
            _call_back(callback, epoch, run)
        run.save(optimizers)
    return run.history


def train_autoencoder(
    model: Autoencoder,
    images: torch.Tensor,
    *,
    num_epochs: int = 10,
    batch_size: int = 128,
    lr: float = 1e-3,
    pixels: str = "dynamic",
    seed: int = 0,
    device: Union[str, torch.device, None] = None,
) -> List[float]:
    """Minimise the reconstruction loss with Adam; returns the mean training loss of each epoch (nats per image).

    ``images`` are uint8 ``[N, 28, 28]`` (or an ``(images, labels)`` pair); the batches are made on the
    device by :class:`~genmodels.engine.batches.DeviceBatches` with the given pixel model and ``seed``.
    """
    images = as_uint8_images(images)
    device = torch.device(device) if device is not None else next(model.parameters()).device
    model.to(device).train()
    batches = DeviceBatches(images, batch_size=batch_size, pixels=pixels, device=device, seed=seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    losses: List[float] = []
    for _ in range(num_epochs):
        total: Optional[torch.Tensor] = None
        for x in batches:
            loss = model(x)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total = loss.detach() * len(x) if total is None else total + loss.detach() * len(x)
        losses.append(float(total) / batches.num_images)
    model.eval()
    return losses


# --- VQ-VAE ---------------------------------------------------------------------------------------


def train_vqvae(
    model: VQVAE,
    data,
    *,
    config: Optional[TrainConfig] = None,
    test_data=None,
    checkpoint: Union[str, Path, None] = None,
    resume: bool = True,
    progress: bool = True,
    callback: Optional[Callable[[int, History], None]] = None,
    **overrides: Any,
) -> History:
    """Train a VQ-VAE with Adam, every step :func:`~genmodels.engine.steps.vqvae_step` unchanged.

    Same bookkeeping as :func:`train_vae` (device-resident batches with the config's pixel model, bf16 autocast
    on CUDA, checkpoints every epoch and every ``checkpoint_every`` steps, exact resume, progress, history).
    The EMA codebook and the dead-code counters are buffers of the model, so they are in its checkpoint.
    ``config.beta`` and ``config.kl_warmup_epochs`` weight a KL term the VQ-VAE does not have: the commitment
    weight is :attr:`VQVAEConfig.beta`. Under ``torchrun`` each rank's forward pass moves the EMA codebook with
    its own slice of the batch and DistributedDataParallel copies rank 0's buffers to the others before the next
    step, so the codebook follows rank 0's slice (a single process sees the whole batch).

    Returns
    -------
    History with ``steps["loss"|"recon"|"codebook"|"commitment"|"perplexity"]`` (batch means; nats per image
    for ``recon``), the same per epoch, with ``test_recon``, ``test_perplexity`` and ``test_dead_codes`` when
    ``test_data`` is given (:func:`evaluate_vqvae`), and ``seconds``. ``samples`` holds, per epoch, the
    reconstructions of the same ``num_samples`` images (the first test images, else the first training images,
    binarized once), not draws from a prior: the VQ-VAE has none while it trains.
    """
    config = replace(config or TrainConfig(), **overrides)
    if config.beta != 1.0 or config.kl_warmup_epochs != 0.0:
        raise UserError(
            "beta and kl_warmup_epochs weight a VAE's KL term; a VQ-VAE has none: leave them at 1 and 0 "
            "(the commitment weight is VQVAEConfig.beta)"
        )
    run = _Run(model, data, config, checkpoint, resume, progress)
    run.data_source = getattr(data, "source", None)
    opt = make_adam(model.parameters(), lr=config.lr, betas=config.betas, device=run.device)  # no EMA codebook
    optimizers = {"model": opt}
    if run.resume:
        run.restore(optimizers, "vqvae")
    net = _wrap(run, model, compile=config.compile)
    x_test = eval_images(test_data, config.pixels, device=run.device) if test_data is not None else None
    shown = as_uint8_images(test_data if test_data is not None else data)[: config.num_samples]
    shown = eval_images(shown, config.pixels, device=run.device)
    names = ("loss", "recon", "codebook", "commitment", "perplexity")
    pending: Dict[str, List[torch.Tensor]] = {n: [] for n in names}
    steps_per_epoch = len(run.batches)

    model.train()
    while run.batches.epoch < config.num_epochs:
        epoch = run.batches.epoch
        start, bar = time.perf_counter(), run.bar(epoch, config.num_epochs)
        for x in run.batches:
            if config.lr_schedule != "constant":
                _set_lr([opt], scheduled_lr(config, run.step, config.num_epochs * steps_per_epoch))
            stats = vqvae_step(net, run.shard(x), opt)
            run.step += 1
            for name, value in stats.items():
                pending[name].append(value)
            bar.update()
            if run.step % 50 == 0:
                bar.set_postfix(recon=f"{stats['recon'].item():.1f}", perplexity=f"{stats['perplexity'].item():.0f}")
            if config.checkpoint_every and run.step % config.checkpoint_every == 0:
                run.flush(pending)
                run.save(optimizers)
        run.flush(pending)
        seconds = time.perf_counter() - start
        summary = {n: float(np.mean(run.history.steps[n][-steps_per_epoch:])) for n in names}
        if x_test is not None:
            ev = evaluate_vqvae(model, x_test)
            summary.update(test_recon=ev["recon"], test_perplexity=ev["perplexity"], test_dead_codes=ev["dead_codes"])
        run.history.log_epoch(**summary, seconds=seconds)
        run.history.samples.append(_to_uint8(model.reconstruct(shown)))
        bar.set_postfix({k: f"{v:.1f}" for k, v in summary.items() if k in ("recon", "test_recon")})
        bar.close()
        if callback is not None:  # before the checkpoint: a run killed in between redoes (and re-reports) the epoch
            _call_back(callback, epoch, run)
        run.save(optimizers)
    return run.history


@torch.no_grad()
def vqvae_codes(model: VQVAE, images, *, pixels: str = "dynamic", batch_size: int = 500) -> torch.Tensor:
    """The code grids ``[N, 7, 7]`` (int64, on the CPU) of ``images``, binarized by the fixed draw of
    :func:`eval_images`: the data a prior over the codes is fitted to."""
    x_all = eval_images(images, pixels)
    with eval_mode(model):
        return torch.cat(
            [model.encode(x_all[i : i + batch_size].to(model.device)).cpu() for i in range(0, len(x_all), batch_size)]
        )


@torch.no_grad()
def evaluate_vqvae(
    model: VQVAE,
    images,
    *,
    pixels: str = "dynamic",
    batch_size: int = 500,
    prior: Optional[torch.nn.Module] = None,
) -> Dict[str, float]:
    r"""The VQ-VAE on a test set (binarized by the fixed draw of :func:`eval_images`), in eval mode (no codebook
    update, no restart).

    Returns ``recon`` (:math:`-\log p(x\mid z_q)`, nats per image), ``codebook`` and ``commitment`` (per image),
    ``perplexity`` (of the code usage over the whole set, between 1 and :math:`K`), ``dead_codes`` (codes that
    no position of any image uses) and ``used_codes``. With a ``prior`` over the codes also ``prior_nats``,
    :math:`-\log p(k(x))` per image, and ``nll_bound`` = ``recon`` + ``prior_nats``, an upper bound on
    :math:`-\log p(x)` because :math:`p(x) = \sum_k p(k)\,p(x\mid k) \ge p(k(x))\,p(x\mid k(x))`.
    """
    x_all = eval_images(images, pixels)
    device = model.device
    totals = {"recon": 0.0, "codebook": 0.0, "commitment": 0.0}
    if prior is not None:
        totals["prior_nats"] = 0.0
    counts = torch.zeros(model.num_codes, dtype=torch.long)
    with eval_mode(model, *([prior] if prior is not None else [])):
        for start in range(0, len(x_all), batch_size):
            x = x_all[start : start + batch_size].to(device)
            losses = model(x)
            for name in ("recon", "codebook", "commitment"):
                totals[name] += getattr(losses, name).item() * len(x)
            indices = model.encode(x)  # (b, 7, 7)
            counts += torch.bincount(indices.flatten().cpu(), minlength=model.num_codes)
            if prior is not None:
                totals["prior_nats"] -= prior.log_prob(indices).sum().item()
    out = {name: value / len(x_all) for name, value in totals.items()}
    usage = counts.double() / counts.sum()
    out["perplexity"] = float(torch.exp(-torch.special.xlogy(usage, usage).sum()))
    out["used_codes"] = int((counts > 0).sum())
    out["dead_codes"] = model.num_codes - out["used_codes"]
    if prior is not None:
        out["nll_bound"] = out["recon"] + out["prior_nats"]
    return out


def train_code_prior(
    prior: AutoregressiveCodePrior,
    codes: torch.Tensor,
    *,
    test_codes: Optional[torch.Tensor] = None,
    num_epochs: int = 20,
    batch_size: int = 128,
    lr: float = 3e-3,
    seed: int = 0,
    device: Union[str, torch.device, None] = None,
    progress: bool = True,
) -> History:
    r"""Fit an autoregressive prior to code grids ``[N, H, W]`` (from :func:`vqvae_codes`) by maximum likelihood
    with Adam: each step descends the negative log-likelihood in nats per grid, averaged over the batch.

    The batches are a fresh permutation of ``codes`` each epoch, drawn from a generator seeded with ``seed``.
    (The independent prior needs no training: :func:`~genmodels.vqvae.fit_independent_prior` counts.)

    Returns
    -------
    History with ``steps["loss"]`` and ``epochs["loss"|"test_nats"|"seconds"]`` (``test_nats``: the mean
    :math:`-\log p(k)` of ``test_codes``, if given).
    """
    if not isinstance(prior, AutoregressiveCodePrior):
        raise UserError(
            f"train_code_prior trains an AutoregressiveCodePrior, got {type(prior).__name__}; "
            "an independent prior is fitted by counting with fit_independent_prior"
        )
    check_int("num_epochs", num_epochs), check_int("batch_size", batch_size), check_positive("lr", lr)
    device = pick_device(device) if device is not None else prior.device
    prior.to(device).train()
    codes = codes.to(device)
    opt = make_adam(prior.parameters(), lr=lr, device=device)
    order = torch.Generator().manual_seed(seed)
    history = History()

    def test_nats() -> float:
        with eval_mode(prior), torch.no_grad():
            return float(sum(-prior.log_prob(c).sum().item() for c in test_codes.split(1000)) / len(test_codes))

    from tqdm.auto import tqdm

    for epoch in range(num_epochs):
        start = time.perf_counter()
        losses = []
        for batch in tqdm(
            torch.randperm(len(codes), generator=order).split(batch_size),
            disable=not progress,
            desc=f"epoch {epoch + 1}/{num_epochs}",
            leave=epoch + 1 == num_epochs,
            unit="batch",
        ):
            loss = prior(codes[batch.to(device)])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.detach())
        history.log_steps({"loss": torch.stack(losses).tolist()})
        summary = {"loss": float(np.mean(history.steps["loss"][-len(losses) :]))}
        if test_codes is not None:
            summary["test_nats"] = test_nats()
        history.log_epoch(**summary, seconds=time.perf_counter() - start)
    prior.eval()
    return history


# ----------------------------------------------------------------------------------------------
# Conditional models: the same loops, with the labels in the batches
# ----------------------------------------------------------------------------------------------


def _labelled(data, num_classes: int, name: str) -> Tuple[torch.Tensor, torch.Tensor]:
    """uint8 images ``[N, 28, 28]`` and checked int64 labels ``[N]`` from an ``(images, labels)`` pair."""
    if not (isinstance(data, (tuple, list)) and len(data) == 2):
        raise UserError(
            f"a conditional model trains on labelled digits: pass {name} as an (images, labels) pair, "
            "as gm.load_mnist returns it"
        )
    images = as_uint8_images(data)
    return images, check_labels(data[1], num_classes, n=images.shape[0])


class _ConditionalELBOParts(torch.nn.Module):
    """``CVAE.elbo`` with its parts as ``forward``, the call DistributedDataParallel hooks into."""

    def __init__(self, cvae: CVAE):
        super().__init__()
        self.cvae = cvae

    def forward(self, x: torch.Tensor, y: torch.Tensor, eps: torch.Tensor):
        return self.cvae.elbo(x, y, eps=eps, return_parts=True)


def train_cvae(
    model: CVAE,
    data,
    *,
    config: Optional[TrainConfig] = None,
    test_data=None,
    checkpoint: Union[str, Path, None] = None,
    resume: bool = True,
    progress: bool = True,
    callback: Optional[Callable[[int, History], None]] = None,
    **overrides: Any,
) -> History:
    r"""Train a conditional VAE by maximising the conditional ELBO with Adam: :func:`train_vae` with labels.

    ``data`` (and ``test_data``) are ``(images, labels)`` pairs, as ``gm.load_mnist`` returns them; the labels
    live on the device next to the images, and each batch is an ``(x, y)`` pair
    (:class:`~genmodels.engine.batches.DeviceBatches` with labels, resumable exactly as without). Every step is
    :func:`~genmodels.engine.steps.cvae_step`; the test negative ELBO is :math:`-\mathcal L(x; y)`, the bound on
    :math:`-\log p(x \mid y)`. The grid of samples decodes the fixed noise with the labels
    ``0, 1, ..., K-1, 0, 1, ...``. Settings, checkpoints, exact resume and history are :func:`train_vae`'s.
    """
    config = replace(config or TrainConfig(), **overrides)
    images, labels = _labelled(data, model.num_classes, "data")
    run = _Run(model, images, config, checkpoint, resume, progress, labels=labels)
    run.data_source = getattr(data, "source", None)
    opt = make_adam(model.parameters(), lr=config.lr, betas=config.betas, device=run.device)
    optimizers = {"model": opt}
    if run.resume:
        run.restore(optimizers, "cvae")
    elbo_parts = _wrap(run, _ConditionalELBOParts(model), compile=config.compile)
    if test_data is not None:
        x_test, y_test = _labelled(test_data, model.num_classes, "test_data")
        x_test = eval_images(x_test, config.pixels, device=run.device)
    fixed_labels = torch.arange(config.num_samples, device=run.device) % model.num_classes
    pending: Dict[str, List[torch.Tensor]] = {"loss": [], "recon": [], "kl": []}
    steps_per_epoch = len(run.batches)

    model.train()
    while run.batches.epoch < config.num_epochs:
        epoch = run.batches.epoch
        start, bar = time.perf_counter(), run.bar(epoch, config.num_epochs)
        for x, y in run.batches:
            if config.lr_schedule != "constant":
                _set_lr([opt], scheduled_lr(config, run.step, config.num_epochs * steps_per_epoch))
            eps = torch.randn(x.shape[0], model.latent_dim, device=run.device)  # noise for the global batch
            weight = kl_weight(config, run.step, steps_per_epoch)
            stats = cvae_step(elbo_parts, run.shard(x), run.shard(y), run.shard(eps), opt, kl_weight=weight)
            run.step += 1
            for name, value in stats.items():
                pending[name].append(value)
            bar.update()
            if run.step % 50 == 0:
                bar.set_postfix(loss=f"{stats['loss'].item():.1f}")
            if config.checkpoint_every and run.step % config.checkpoint_every == 0:
                run.flush(pending)
                run.save(optimizers)
        run.flush(pending)
        seconds = time.perf_counter() - start
        summary = {name: float(np.mean(run.history.steps[name][-steps_per_epoch:])) for name in pending}
        if test_data is not None:
            ev = evaluate_vae(model, x_test, labels=y_test)
            summary.update(test_nelbo=ev["nelbo"], test_recon=ev["recon"], test_kl=ev["kl"])
        run.history.log_epoch(**summary, seconds=seconds)
        run.history.samples.append(_to_uint8(model.sample(z=run.fixed_noise, y=fixed_labels)))
        bar.set_postfix({k: f"{v:.1f}" for k, v in summary.items() if k in ("loss", "test_nelbo")})
        bar.close()
        if callback is not None:  # before the checkpoint: a run killed in between redoes (and re-reports) the epoch
            _call_back(callback, epoch, run)
        run.save(optimizers)
    return run.history


def train_cgan(
    model: CGAN,
    data,
    *,
    config: Optional[GANTrainConfig] = None,
    checkpoint: Union[str, Path, None] = None,
    resume: bool = True,
    progress: bool = True,
    callback: Optional[Callable[[int, History], None]] = None,
    **overrides: Any,
) -> History:
    """Train a conditional GAN: :func:`train_gan` with labels.

    ``data`` is an ``(images, labels)`` pair, as ``gm.load_mnist`` returns it; each real batch is an ``(x, y)``
    pair (:class:`~genmodels.engine.batches.DeviceBatches` with labels, resumable exactly as without). Every
    iteration is :func:`~genmodels.engine.steps.cgan_step`, unchanged; the fakes' labels :math:`y'` are drawn from
    the training set's class frequencies, so real and fake images come with the same distribution of classes and
    the discriminator cannot tell them apart by label alone. Without ``config`` the settings are the book's DCGAN
    recipe (:data:`~genmodels.gan.DCGAN_RECIPE`, whose model part is :class:`~genmodels.conditional.CGANConfig`'s
    default). The grid of samples uses the fixed noise with the labels ``0, 1, ..., K-1, 0, 1, ...``. Checkpoints,
    exact resume, the weight average and the history (saturation events included) are :func:`train_gan`'s.
    """
    config = replace(config or GANTrainConfig(**G.DCGAN_RECIPE["train"]), **overrides)
    if not isinstance(config, GANTrainConfig):
        raise TypeError("train_cgan needs a GANTrainConfig (it has the generator loss and d_steps)")
    images, labels = _labelled(data, model.num_classes, "data")

    def sampling(run: "_Run", model: CGAN):
        """(z, y') for a global batch of n, y' from the training set's class frequencies (every rank draws it all
        and keeps its slice); the grid of samples: the fixed noise with the labels 0, 1, ..., K-1, 0, 1, ..."""
        class_freq = torch.bincount(labels, minlength=model.num_classes).float().to(run.device)  # p(y), unnormalised
        fixed_labels = torch.arange(config.num_samples, device=run.device) % model.num_classes

        def noise(n: int) -> Tuple[torch.Tensor, torch.Tensor]:
            z = torch.randn(n, model.latent_dim, device=run.device)
            y = torch.multinomial(class_freq, n, replacement=True)
            return run.shard(z), run.shard(y)

        return noise, lambda: model.sample(z=run.fixed_noise, y=fixed_labels)

    return _gan_loop(
        model,
        images,
        config,
        checkpoint,
        resume,
        progress,
        callback,
        kind="cgan",
        step=cgan_step,
        sampling=sampling,
        data_source=getattr(data, "source", None),
        labels=labels,
    )
