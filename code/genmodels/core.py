"""What every part of the package shares: the device and seed helpers, argument checks, the error a
user can act on, an ``eval_mode`` context, and the base class of the book's configured models.

Nothing here imports another module of :mod:`genmodels`.
"""

from __future__ import annotations

import contextlib
import os
import random
from pathlib import Path
from typing import Any, Iterator, Optional, Union

import numpy as np
import torch
from torch import nn

__all__ = [
    "UserError",
    "PathLike",
    "WEIGHTS_DIR",
    "DeviceLike",
    "IMAGE_SHAPE",
    "NUM_PIXELS",
    "VAE_LATENT_SIZES",
    "GAN_LATENT_SIZES",
    "pick_device",
    "seed_everything",
    "check_int",
    "check_positive",
    "check_choice",
    "eval_mode",
    "as_images",
    "latent_codes",
    "ConfiguredModel",
]

PathLike = Union[str, "os.PathLike[str]"]
DeviceLike = Union[str, torch.device, None]

#: The trained weights shipped inside the package (the classifier, the zoo).
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"

IMAGE_SHAPE = (1, 28, 28)  # one MNIST image, channels first
NUM_PIXELS = 784

#: The latent sizes of the zoo's VAEs: the widgets' sliders and the latent-size table of the VAE chapter.
VAE_LATENT_SIZES = (2, 5, 10, 20, 50)
#: The noise sizes of the zoo's DCGANs and of the GAN widgets' sliders.
GAN_LATENT_SIZES = (2, 4, 8, 16, 32, 64)


class UserError(ValueError):
    """An error in what the user asked for (an argument, a file, missing data), with a message that says
    what was wrong and what to do. The command line prints these as one line; any other exception is a
    bug and keeps its traceback."""


def pick_device(device: DeviceLike = None) -> torch.device:
    """The training device: the one asked for, or the best available (``cuda``, then ``mps``, then ``cpu``).

    Asking for a device that is not available raises a :class:`UserError` that says what is.
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
        raise UserError(f"{device!r} is not a device name; use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'") from err
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError(
                f"device {device!r} was asked for but CUDA is not available on this machine "
                f"(torch {torch.__version__}); use --device cpu, or 'auto' to pick the best available"
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise UserError(
                f"device {device!r} does not exist: this machine has {torch.cuda.device_count()} CUDA device(s)"
            )
    elif dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise UserError(f"device {device!r} was asked for but MPS is not available; use --device cpu or 'auto'")
    elif dev.type not in ("cpu", "cuda", "mps"):
        raise UserError(f"device type {dev.type!r} is not supported; use 'auto', 'cpu', 'cuda' or 'mps'")
    return dev


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices). Together with the loops' own generators this makes
    a CPU run repeat exactly."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def check_int(name: str, value: Any, *, minimum: int = 1) -> int:
    """``value`` if it is an int (not a bool) of at least ``minimum``, else a :class:`UserError` naming it."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        what = {0: "a non-negative integer", 1: "a positive integer"}.get(minimum, f"an integer of at least {minimum}")
        raise UserError(f"{name} must be {what}, got {value!r}")
    return value


def check_positive(name: str, value: Any, *, allow_zero: bool = False) -> float:
    """``value`` if it is a real number (not a bool) above zero (or at least zero), else a :class:`UserError`."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and (value >= 0 if allow_zero else value > 0)
    if not ok:
        raise UserError(f"{name} must be {'non-negative' if allow_zero else 'positive'}, got {value!r}")
    return value


def check_choice(name: str, value: Any, choices) -> Any:
    """``value`` if it is one of ``choices``, else a :class:`UserError` that lists them."""
    if value not in choices:
        raise UserError(f"{name} must be one of {tuple(choices)}, got {value!r}")
    return value


@contextlib.contextmanager
def eval_mode(*modules: nn.Module) -> Iterator[None]:
    """Put ``modules`` in eval mode for the block, and restore each one's own mode afterwards, also when
    the block raises."""
    modes = [m.training for m in modules]
    for m in modules:
        m.eval()
    try:
        yield
    finally:
        for m, mode in zip(modules, modes):
            m.train(mode)


def latent_codes(
    n: Optional[int],
    z: Optional[torch.Tensor],
    latent_dim: int,
    device: torch.device,
    generator: Optional[torch.Generator] = None,
) -> torch.Tensor:
    r"""The codes to decode, ``[m, latent_dim]`` on ``device``: the given ``z`` (checked against
    ``latent_dim``), or ``n`` draws from :math:`\mathcal N(0, I)`. Exactly one of ``n`` and ``z``."""
    if (n is None) == (z is None):
        raise UserError(
            f"give exactly one of n (how many codes to draw) and z (the codes), got n={n!r} and "
            f"z={'None' if z is None else list(z.shape)}"
        )
    if z is None:
        return torch.randn(check_int("n", n), latent_dim, device=device, generator=generator)
    if z.shape[-1] != latent_dim:
        raise UserError(
            f"z has {z.shape[-1]} dimensions but the model has latent_dim={latent_dim}: "
            f"pass codes of shape [m, {latent_dim}]"
        )
    return z.to(device)


def as_images(x: torch.Tensor) -> torch.Tensor:
    """Bring a batch of MNIST-sized images to float ``[B, 1, 28, 28]``.

    Accepts ``[B, 1, 28, 28]``, ``[B, 28, 28]`` or ``[B, 784]``; uint8 input is scaled to [0, 1].
    """
    if x.dtype == torch.uint8:
        x = x.float().div(255)
    elif not x.is_floating_point():
        x = x.float()
    if x.shape[-3:] == IMAGE_SHAPE:
        return x
    if x.shape[-2:] == IMAGE_SHAPE[1:]:
        return x.unsqueeze(-3)
    if x.shape[-1] == NUM_PIXELS:
        return x.reshape(*x.shape[:-1], *IMAGE_SHAPE)
    raise UserError(f"expected images shaped [B, 1, 28, 28], [B, 28, 28] or [B, 784], got {list(x.shape)}")


class ConfiguredModel(nn.Module):
    """What the book's models share: ``self.config`` (a frozen config dataclass with ``latent_dim``)
    builds them, ``from_config`` rebuilds them, and they report their latent size and device."""

    config: Any

    @classmethod
    def from_config(cls, config):
        return cls(config=config)

    @property
    def latent_dim(self) -> int:
        return self.config.latent_dim

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device
