"""Images in, checked: the input validation every metric shares."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from ..core import UserError, check_int
from ..engine.pixels import to_float

__all__ = [
    "NUM_CLASSES",
]

NUM_CLASSES = 10


def _as_images(images: torch.Tensor, *, name: str = "images") -> torch.Tensor:
    """Float ``[N, 1, 28, 28]`` in [0, 1] from uint8 (0..255) or float ([0, 1]) digits; never a guess.

    uint8 is divided by 255 (:func:`genmodels.data.to_float`). Floats must already lie in [0, 1]: a float
    tensor with values up to 255, or in [-1, 1] (a tanh generator), is refused with a ``ValueError`` that
    says how to convert it, instead of being rescaled by a guess that would be silently wrong for some inputs.
    Accepted shapes: ``[N, 28, 28]``, ``[N, 1, 28, 28]`` and ``[N, 784]``.
    """
    if not isinstance(images, torch.Tensor):
        images = torch.as_tensor(np.asarray(images))
    shape = list(images.shape)
    if images.ndim == 2 and images.shape[1] == 784:
        images = images.reshape(-1, 28, 28)
    if images.ndim == 3:
        images = images.unsqueeze(1)
    if images.ndim != 4 or tuple(images.shape[1:]) != (1, 28, 28):
        raise UserError(f"{name} must be MNIST-sized, [N, 28, 28], [N, 1, 28, 28] or [N, 784]; got {shape}")
    if images.shape[0] == 0:
        raise UserError(f"{name} is empty (N = 0)")
    if images.dtype == torch.uint8:
        return to_float(images)
    if not images.is_floating_point():
        raise UserError(
            f"{name} has dtype {images.dtype}: pass uint8 images (0..255) or floating-point images in [0, 1]"
        )
    lo, hi = float(images.min()), float(images.max())
    if math.isnan(lo) or math.isnan(hi):
        raise UserError(f"{name} contains NaN")
    if lo < 0.0 or hi > 1.0:
        hint = (
            "they look like 0..255 values: pass them as uint8, or divide by 255"
            if hi > 1.0 and lo >= 0.0
            else "a tanh output in [-1, 1] becomes [0, 1] with (x + 1) / 2"
        )
        raise UserError(f"float {name} must lie in [0, 1], got values in [{lo:.3g}, {hi:.3g}]; {hint}")
    return images.float()


def _batches(x: torch.Tensor, batch_size: int):
    check_int("batch_size", batch_size)
    for start in range(0, x.shape[0], batch_size):
        yield x[start : start + batch_size]


def _model_device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device
