r"""How a grey pixel in [0, 1] is modelled: the grey value itself, or a binary draw.

A pixel of an image in ``[0, 1]`` can be modelled three ways (:data:`PIXEL_MODELS`):

* ``"continuous"``: the grey value :math:`x \in [0, 1]` itself (for a Gaussian or a "continuous
  Bernoulli" likelihood, or as the cross-entropy target of the usual VAE code);
* ``"dynamic"``: a fresh binary draw :math:`\tilde x \sim \mathrm{Bernoulli}(x)` every time the
  image is used, so :math:`\mathbb{E}[\tilde x] = x`;
* ``"static"``: one binary draw fixed once (with a seed), the convention for reporting
  log-likelihoods on "binarized MNIST".
"""

from __future__ import annotations

from typing import (
    Optional,
)

import torch

from ..core import UserError

__all__ = [
    "as_uint8_images",
    "PIXEL_MODELS",
    "to_float",
    "binarize",
    "static_binarize",
]

#: The pixel models understood by :func:`DeviceBatches` and the training code.
PIXEL_MODELS = ("continuous", "dynamic", "static")


def _check_pixels(pixels: str) -> str:
    if pixels not in PIXEL_MODELS:
        raise UserError(f"pixels must be one of {PIXEL_MODELS}, got {pixels!r}")
    return pixels


def as_uint8_images(data) -> torch.Tensor:
    """The uint8 images ``[N, 28, 28]`` of a tensor (``[N, 28, 28]`` or ``[N, 1, 28, 28]``) or of an
    ``(images, labels)`` pair such as the :class:`~genmodels.engine.sources.ImageSet` of ``gm.load_mnist``:
    the one way the training code takes its data in."""
    if isinstance(data, (tuple, list)):
        data = data[0]
    if not isinstance(data, torch.Tensor):
        raise UserError(f"expected a uint8 image tensor or an (images, labels) pair, got {type(data).__name__}")
    if data.dim() == 4 and data.shape[1] == 1:
        data = data[:, 0]
    if data.dtype != torch.uint8 or data.dim() != 3 or data.shape[-2:] != (28, 28):
        raise UserError(
            f"expected uint8 images shaped [N, 28, 28] (0..255), got {data.dtype} {list(data.shape)}; "
            "gm.load_mnist returns them, and float images in [0, 1] become uint8 with (x * 255).round()"
        )
    return data


def to_float(images_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 images to float32 ``[N, 1, H, W]`` in ``[0, 1]`` (divide by 255).

    Parameters
    ----------
    images_uint8 : torch.Tensor
        uint8 ``[N, H, W]`` or ``[N, 1, H, W]``.

    Returns
    -------
    torch.Tensor
        float32 ``[N, 1, H, W]`` on the same device.
    """
    if images_uint8.dtype != torch.uint8:
        raise UserError(f"to_float expects uint8 images (0..255), got {images_uint8.dtype}")
    if images_uint8.ndim == 3:
        images_uint8 = images_uint8.unsqueeze(1)
    elif images_uint8.ndim != 4 or images_uint8.shape[1] != 1:
        raise UserError(f"to_float expects [N, H, W] or [N, 1, H, W], got {list(images_uint8.shape)}")
    return images_uint8.float().div_(255)


def binarize(x01: torch.Tensor, *, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    r"""One Bernoulli draw per pixel: :math:`\tilde x \sim \mathrm{Bernoulli}(x)`, so :math:`\mathbb{E}[\tilde x] = x`.

    Parameters
    ----------
    x01 : torch.Tensor
        Floating-point probabilities in ``[0, 1]``, any shape.
    generator : torch.Generator, optional
        On the device of ``x01``; the default generator if None.

    Returns
    -------
    torch.Tensor
        Same shape and dtype as ``x01``, values 0.0 or 1.0.
    """
    if not x01.is_floating_point():
        raise UserError(f"binarize expects floating-point values in [0, 1], got {x01.dtype}; use to_float first")
    return torch.bernoulli(x01, generator=generator)


def static_binarize(images_uint8: torch.Tensor, *, seed: int = 0) -> torch.Tensor:
    """One fixed Bernoulli draw of uint8 images: the same 0/1 images for the same seed, on any device.

    The draw is made on the CPU with ``torch.Generator().manual_seed(seed)`` (in chunks, so memory
    stays small), which makes it independent of the device the images live on. Used for static
    binarization in training and for the fixed binarization of test sets in evaluation.

    Parameters
    ----------
    images_uint8 : torch.Tensor
        uint8 ``[N, 28, 28]`` (any shape works).
    seed : int, default 0
        Seed of the draw.

    Returns
    -------
    torch.Tensor
        uint8 0/1 tensor of the same shape, on the device of the input.
    """
    if images_uint8.dtype != torch.uint8:
        raise UserError(f"static_binarize expects uint8 images (0..255), got {images_uint8.dtype}")
    gen = torch.Generator().manual_seed(int(seed))
    flat = images_uint8.detach().cpu().reshape(images_uint8.shape[0] if images_uint8.ndim else 1, -1)
    out = torch.empty_like(flat)
    chunk = 8192
    for start in range(0, flat.shape[0], chunk):
        p = flat[start : start + chunk].float().div_(255)
        out[start : start + chunk] = torch.bernoulli(p, generator=gen).to(torch.uint8)
    return out.reshape(images_uint8.shape).to(images_uint8.device)
