"""Explicit training loops, one per family, that a reader can follow line by line.

Both loops keep the whole dataset on the training device (:class:`genmodels.data.DeviceBatches`),
move nothing to the CPU inside an epoch except an occasional progress-bar number, use bf16 autocast on
CUDA, can ``torch.compile`` the networks, write a checkpoint atomically at the end of every epoch (and
every ``checkpoint_every`` steps), and resume from one to exactly the run they would have been.
"""
from __future__ import annotations

import contextlib
import math
import os
import random
import time
import warnings
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F

from . import gan as G
from .checkpoints import CheckpointError, load_state_checked, read_checkpoint, save_checkpoint
from .data import DeviceBatches, PIXEL_MODELS, static_binarize, to_float
from .gan import GAN, generator_loss
from .vae import VAE

__all__ = [
    "pick_device",
    "seed_everything",
    "distributed_context",
    "saturated_steps",
    "TrainConfig",
    "GANTrainConfig",
    "History",
    "TrainingDiverged",
    "train_vae",
    "train_gan",
    "evaluate_vae",
    "eval_images",
]

EVAL_SEED = 2024  # fixed binarization and noise for test-set evaluation, identical across runs


def pick_device(device: Union[str, torch.device, None] = None) -> torch.device:
    """The training device: the one asked for, or the best available (``cuda``, then ``mps``, then ``cpu``).

    Asking for a device that is not available raises a ``ValueError`` that says what is.
    """
    if device is None or device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"{device!r} is not a device name; use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'") from err
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"device {device!r} was asked for but CUDA is not available on this machine "
                f"(torch {torch.__version__}); use --device cpu, or 'auto' to pick the best available"
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"device {device!r} does not exist: this machine has {torch.cuda.device_count()} CUDA device(s)")
    elif dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError(f"device {device!r} was asked for but MPS is not available; use --device cpu or 'auto'")
    elif dev.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"device type {dev.type!r} is not supported; use 'auto', 'cpu', 'cuda' or 'mps'")
    return dev


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices). Together with the loops' own generators this makes
    a CPU run repeat exactly."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _positive(name: str, value, *, allow_zero: bool = False) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and (value >= 0 if allow_zero else value > 0)
    if not ok:
        raise ValueError(f"{name} must be {'non-negative' if allow_zero else 'positive'}, got {value!r}")


@dataclass(frozen=True)
class TrainConfig:
    """Settings of a training run; stored in the checkpoint.

    Parameters
    ----------
    num_epochs : passes over the training data.
    batch_size : images per step.
    lr : Adam's learning rate.
    betas : Adam's betas.
    pixels : ``"continuous"``, ``"dynamic"`` (a fresh Bernoulli draw per batch) or ``"static"``.
    seed : seeds the shuffles, the binarization and the model's noise.
    device : ``"auto"``, ``"cpu"``, ``"cuda"``, ``"mps"``...
    amp : bf16 autocast on CUDA (ignored elsewhere).
    compile : ``torch.compile`` the networks.
    checkpoint_every : also write the checkpoint every this many steps (0: at the end of epochs only).
    num_samples : size of the grid sampled from fixed noise after every epoch.
    """

    num_epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-3
    betas: Tuple[float, float] = (0.9, 0.999)
    pixels: str = "dynamic"
    seed: int = 0
    device: str = "auto"
    amp: bool = True
    compile: bool = False
    checkpoint_every: int = 0
    num_samples: int = 64

    def __post_init__(self):
        for name in ("num_epochs", "batch_size", "num_samples"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        _positive("lr", self.lr)
        _positive("checkpoint_every", self.checkpoint_every, allow_zero=True)
        if self.pixels not in PIXEL_MODELS:
            raise ValueError(f"pixels must be one of {PIXEL_MODELS}, got {self.pixels!r}")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class GANTrainConfig(TrainConfig):
    """:class:`TrainConfig` with the GAN's defaults (Adam 2e-4, betas (0.5, 0.999), continuous pixels),
    the generator loss (``"saturating"`` or ``"non_saturating"``) and ``d_steps``, the number ``k`` of
    discriminator steps per generator step of Algorithm 1 in Goodfellow et al. (2014)."""

    lr: float = 2e-4
    betas: Tuple[float, float] = (0.5, 0.999)
    pixels: str = "continuous"
    loss: str = "non_saturating"
    d_steps: int = 1

    def __post_init__(self):
        super().__post_init__()
        if self.loss not in G.GENERATOR_LOSSES:
            raise ValueError(f"loss must be one of {G.GENERATOR_LOSSES}, got {self.loss!r}")
        if isinstance(self.d_steps, bool) or not isinstance(self.d_steps, int) or self.d_steps <= 0:
            raise ValueError(f"d_steps must be a positive integer, got {self.d_steps!r}")


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


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the message names the step and the last good checkpoint."""


def _images(data) -> torch.Tensor:
    """uint8 images ``[N, 28, 28]`` from a tensor or a ``(images, labels)`` pair such as an ImageSet."""
    if isinstance(data, (tuple, list)):
        data = data[0]
    if not isinstance(data, torch.Tensor):
        raise TypeError(f"expected a uint8 image tensor or an (images, labels) pair, got {type(data).__name__}")
    if data.dim() == 4:
        data = data[:, 0]
    if data.dtype != torch.uint8 or data.shape[-2:] != (28, 28):
        raise ValueError(f"expected uint8 images shaped [N, 28, 28], got {data.dtype} {list(data.shape)}")
    return data


def eval_images(images: torch.Tensor, pixels: str, *, device=None) -> torch.Tensor:
    """The fixed float version of a test set used for every evaluation: continuous pixels as they are,
    binarized pixels by one Bernoulli draw seeded with ``EVAL_SEED`` (the same draw in every run).
    A float tensor is taken to be such a version already and returned as it is."""
    if isinstance(images, torch.Tensor) and images.is_floating_point():
        return images.to(device) if device is not None else images
    images = _images(images)
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
) -> Dict[str, float]:
    """Test-set negative ELBO (with its reconstruction and KL parts) and, for each ``k``, the negative
    importance-weighted bound, averaged over the images, in nats.

    Binarized pixel models are evaluated on one fixed binarization of the test set (:func:`eval_images`).
    The model's noise is drawn from a generator seeded with ``EVAL_SEED`` so the numbers repeat; the
    caller's random state is left untouched.
    """
    x_all = eval_images(images, pixels)
    device = model.device
    was_training = model.training
    model.eval()
    totals = {"nelbo": 0.0, "recon": 0.0, "kl": 0.0, **{f"iwae_{kk}": 0.0 for kk in k}}
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(EVAL_SEED)
        for start in range(0, len(x_all), batch_size):
            x = x_all[start : start + batch_size].to(device)
            elbo, log_px, kl = model.elbo(x, return_parts=True)
            totals["nelbo"] -= elbo.sum().item()
            totals["recon"] -= log_px.sum().item()
            totals["kl"] += kl.sum().item()
            for kk in k:
                totals[f"iwae_{kk}"] -= model.iwae_bound(x, k=kk).sum().item()
    model.train(was_training)
    return {name: value / len(x_all) for name, value in totals.items()}


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


def _to_uint8(x: torch.Tensor) -> torch.Tensor:
    return (x.float().clamp(0, 1) * 255).round().to(torch.uint8).cpu()


def distributed_context() -> Tuple[int, int, int]:
    """``(rank, world_size, local_rank)`` as set by ``torchrun``; ``(0, 1, 0)`` in a plain process."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0))


def _setup_distributed(device_name: str) -> torch.device:
    """Under ``torchrun`` (``WORLD_SIZE`` > 1): join the process group (NCCL on GPUs, gloo on CPUs) and
    return this rank's device (``cuda:LOCAL_RANK`` on GPUs)."""
    import torch.distributed as dist

    rank, world, local = distributed_context()
    device = pick_device(device_name)
    if device.type == "cuda":
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    if dist.get_world_size() != world:
        raise RuntimeError(f"the process group has {dist.get_world_size()} ranks but WORLD_SIZE is {world}")
    return device


class _Run:
    """The bookkeeping both loops share: device, batches, checkpoint, resume, progress, divergence.

    Under ``torchrun`` every rank keeps the whole dataset on its device and draws the same global batch,
    binarization and noise (the generators are seeded alike); :meth:`shard` gives each rank its slice of
    the global batch, DistributedDataParallel averages the gradients, and only rank 0 shows progress and
    writes checkpoints. The result equals a single-process run with the same global batch.
    """

    def __init__(self, model, images, config: TrainConfig, checkpoint, resume: bool, progress: bool):
        self.config = config
        self.rank, self.world, _ = distributed_context()
        if self.world > 1:
            if config.batch_size % self.world:
                raise ValueError(
                    f"batch_size {config.batch_size} is the global batch and must be divisible by the "
                    f"{self.world} processes"
                )
            self.device = _setup_distributed(config.device)
        else:
            self.device = pick_device(config.device)
        self.model = model.to(self.device)
        self.batches = DeviceBatches(
            _images(images), batch_size=config.batch_size, pixels=config.pixels, device=self.device, seed=config.seed
        )
        self.checkpoint = Path(checkpoint) if checkpoint is not None else None
        self.history = History()
        self.step = 0
        self.last_good: Optional[str] = None
        self.progress = progress and self.rank == 0
        self.autocast = torch.autocast(
            device_type=self.device.type, dtype=torch.bfloat16, enabled=config.amp and self.device.type == "cuda"
        )
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

    @staticmethod
    def no_sync(module: torch.nn.Module):
        """Accumulate gradients locally for one backward (DDP), so the next backward reduces the sum once."""
        return module.no_sync() if hasattr(module, "no_sync") else contextlib.nullcontext()

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
            total=len(self.batches), initial=self.batches.position, desc=f"epoch {epoch + 1}/{num_epochs}",
            disable=not self.progress, leave=epoch + 1 == num_epochs, unit="batch",
        )


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
    callback : called as ``callback(epoch, history)`` after every epoch.

    Returns
    -------
    History with ``steps["loss"|"recon"|"kl"]`` (negative ELBO and its two parts, nats per image) and
    ``epochs["loss"|"recon"|"kl"|"test_nelbo"|"test_recon"|"test_kl"|"seconds"]``.
    """
    config = replace(config or TrainConfig(), **overrides)
    run = _Run(model, data, config, checkpoint, resume, progress)
    run.data_source = getattr(data, "source", None)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr, betas=config.betas)
    optimizers = {"model": opt}
    if run.resume:
        run.restore(optimizers, "vae")
    net = run.parallel(_ELBOParts(model))
    step_fn = torch.compile(net) if config.compile else net
    x_test = eval_images(test_data, config.pixels, device=run.device) if test_data is not None else None
    pending: Dict[str, List[torch.Tensor]] = {"loss": [], "recon": [], "kl": []}
    steps_per_epoch = len(run.batches)

    model.train()
    while run.batches.epoch < config.num_epochs:
        epoch = run.batches.epoch
        start, bar = time.perf_counter(), run.bar(epoch, config.num_epochs)
        for x in run.batches:
            eps = torch.randn(x.shape[0], model.latent_dim, device=run.device)  # noise for the global batch
            with run.autocast:
                elbo, log_px, kl = step_fn(run.shard(x), run.shard(eps))
                loss = -elbo.mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            run.step += 1
            pending["loss"].append(loss.detach())
            pending["recon"].append(-log_px.detach().mean())
            pending["kl"].append(kl.detach().mean())
            bar.update()
            if run.step % 50 == 0:
                bar.set_postfix(loss=f"{loss.item():.1f}")
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
        run.history.samples.append(_to_uint8(model.sample(0, z=run.fixed_noise)))
        bar.set_postfix({k: f"{v:.1f}" for k, v in summary.items() if k in ("loss", "test_nelbo")})
        bar.close()
        run.save(optimizers)
        if callback is not None:
            callback(epoch, run.history)
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


def _grad_norm(parameters) -> torch.Tensor:
    norms = [torch.linalg.vector_norm(p.grad.detach().float()) for p in parameters if p.grad is not None]
    return torch.linalg.vector_norm(torch.stack(norms))


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

    For each real batch the discriminator takes one step on ``discriminator_loss(D(x), D(G(z).detach()))``;
    after every ``d_steps`` discriminator steps the generator takes one step on
    ``generator_loss(D(G(z)), kind=config.loss)`` with fresh noise. An epoch is one pass over the real data.

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
    run = _Run(model, data, config, checkpoint, resume, progress)
    run.data_source = getattr(data, "source", None)
    opt_d = torch.optim.Adam(model.discriminator.parameters(), lr=config.lr, betas=config.betas)
    opt_g = torch.optim.Adam(model.generator.parameters(), lr=config.lr, betas=config.betas)
    optimizers = {"discriminator": opt_d, "generator": opt_g}
    if run.resume:
        run.restore(optimizers, "gan")
    # DDP-wrapped networks for the updates; the discriminator's plain copy scores the generator's fakes
    # (its gradient there is never applied, so it need not be averaged across ranks)
    netG, netD = run.parallel(model.generator), run.parallel(model.discriminator)
    if config.compile:
        netG, netD = torch.compile(netG), torch.compile(netD)
    plainD = netD if run.world == 1 else (torch.compile(model.discriminator) if config.compile else model.discriminator)
    names = ("d_loss", "g_loss", "d_real", "d_fake", "g_grad_norm")
    pending: Dict[str, List[torch.Tensor]] = {n: [] for n in names}

    model.train()
    while run.batches.epoch < config.num_epochs:
        epoch = run.batches.epoch
        start, bar = time.perf_counter(), run.bar(epoch, config.num_epochs)
        first_step = epoch * (len(run.batches) // config.d_steps)  # generator steps in earlier epochs
        batch_index = run.batches.position  # > 0 when resuming inside an epoch
        for x in run.batches:
            batch_index += 1
            n = x.shape[0]
            x = run.shard(x)
            # (1) discriminator: ascend log D(x) + log(1 - D(G(z))) on a real batch and a batch of fakes.
            # The two terms of discriminator_loss are back-propagated one after the other (under DDP the
            # first with no_sync, so the summed gradient is averaged across ranks once).
            z = run.shard(torch.randn(n, model.latent_dim, device=run.device))
            with torch.no_grad(), run.autocast:
                fake = model.generator(z)
            opt_d.zero_grad(set_to_none=True)
            with run.no_sync(netD):
                with run.autocast:
                    real_logits = netD(x)
                loss_real = F.softplus(-real_logits.float()).mean()  # -log D(x)
                loss_real.backward()
            with run.autocast:
                fake_logits = netD(fake)
            loss_fake = F.softplus(fake_logits.float()).mean()  # -log(1 - D(G(z)))
            loss_fake.backward()
            opt_d.step()
            d_loss = loss_real.detach() + loss_fake.detach()  # = discriminator_loss(real_logits, fake_logits)
            if batch_index % config.d_steps:
                bar.update()
                continue
            # (2) generator, once every d_steps discriminator steps, on fresh noise
            z = run.shard(torch.randn(n, model.latent_dim, device=run.device))
            with run.autocast:
                g_logits = plainD(netG(z)).float()
                g_loss = generator_loss(g_logits, kind=config.loss)
            opt_g.zero_grad(set_to_none=True)
            g_loss.backward()
            grad_norm = _grad_norm(model.generator.parameters())
            opt_g.step()
            run.step += 1
            for name, value in zip(
                names,
                (d_loss, g_loss.detach(), torch.sigmoid(real_logits.detach().float()).mean(),
                 torch.sigmoid(g_logits.detach()).mean(), grad_norm),
            ):
                pending[name].append(value)
            bar.update()
            if run.step % 50 == 0:
                bar.set_postfix(d=f"{d_loss.item():.2f}", g=f"{g_loss.item():.2f}")
            if config.checkpoint_every and run.step % config.checkpoint_every == 0:
                run.flush(pending)
                run.save(optimizers)
        run.flush(pending)
        seconds = time.perf_counter() - start
        summary = {n: float(np.mean(run.history.steps[n][first_step:])) for n in names if run.history.steps.get(n)}
        count, longest = saturated_steps(run.history.steps.get("d_fake", [])[first_step:])
        steps_this_epoch = len(run.history.steps.get("d_fake", [])) - first_step
        if steps_this_epoch and longest >= min(SATURATION_STEPS, steps_this_epoch):
            message = (
                f"epoch {epoch + 1}: the discriminator won outright: D(G(z)) < {SATURATION_LEVEL} for {longest} "
                f"consecutive generator steps ({count} of {steps_this_epoch} in the epoch)"
                + (" — with the saturating loss the generator's gradient vanishes there" if config.loss == "saturating" else "")
            )
            if message not in run.history.events:
                run.history.events.append(message)
                if run.rank == 0:
                    warnings.warn(message, RuntimeWarning, stacklevel=2)
        run.history.log_epoch(**summary, saturated_steps=count, seconds=seconds)
        run.history.samples.append(_to_uint8(model.sample(0, z=run.fixed_noise)))
        bar.set_postfix(d=f"{summary.get('d_loss', math.nan):.2f}", g=f"{summary.get('g_loss', math.nan):.2f}")
        bar.close()
        run.save(optimizers)
        if callback is not None:
            callback(epoch, run.history)
    return run.history
