"""Pictures: image grids for samples and reconstructions. matplotlib is imported only when drawing."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

import torch

from ..core import UserError

__all__ = ["image_grid", "save_grid", "show_images"]


def image_grid(
    images: torch.Tensor, *, nrow: Optional[int] = None, padding: int = 2, pad_value: float = 1.0
) -> torch.Tensor:
    """Tile ``[N, 1, H, W]`` images (float in [0, 1] or uint8) into one ``[rows·(H+p)+p, nrow·(W+p)+p]`` float array.

    ``nrow`` defaults to the ceiling of the square root of N.
    """
    if images.dtype == torch.uint8:
        images = images.float() / 255
    images = images.detach().float().cpu()
    if images.dim() == 3:
        images = images.unsqueeze(1)
    if images.dim() != 4 or images.shape[1] != 1:
        raise UserError(f"expected images shaped [N, 1, H, W], got {list(images.shape)}")
    n, _, h, w = images.shape
    nrow = nrow or max(1, int(torch.ceil(torch.sqrt(torch.tensor(float(n)))).item()))
    rows = (n + nrow - 1) // nrow
    grid = torch.full((rows * (h + padding) + padding, nrow * (w + padding) + padding), pad_value)
    for i in range(n):
        r, c = divmod(i, nrow)
        top, left = padding + r * (h + padding), padding + c * (w + padding)
        grid[top : top + h, left : left + w] = images[i, 0]
    return grid


def save_grid(images: torch.Tensor, path: Union[str, Path], *, nrow: Optional[int] = None) -> Path:
    """Write a grid of images to a PNG file, white digits on black as in MNIST."""
    import matplotlib.image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    matplotlib.image.imsave(path, image_grid(images, nrow=nrow, pad_value=0.5).numpy(), cmap="gray", vmin=0, vmax=1)
    return path


def show_images(
    images: torch.Tensor, *, nrow: Optional[int] = None, title: Optional[str] = None, ax=None, size: float = 4.0
):
    """Draw a grid of images with matplotlib; returns the axes."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(size, size))
    ax.imshow(
        image_grid(images, nrow=nrow, pad_value=0.5).numpy(), cmap="gray", vmin=0, vmax=1, interpolation="nearest"
    )
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    return ax
