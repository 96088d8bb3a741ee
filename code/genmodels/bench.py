"""Benchmarks behind the performance claims of the book.

:func:`compare_loaders` times one epoch over a set of images with :class:`~genmodels.data.DeviceBatches`
against the usual PyTorch pipeline (a map-style dataset that makes a PIL image per example, runs
``torchvision.transforms.ToTensor`` and lets ``DataLoader`` collate the batch). Both loops touch
the data through the same trivial consumer, so the figures compare the cost of *delivering*
batches, which is all a small MNIST model waits for.
"""
from __future__ import annotations

import statistics
import time
from typing import Sequence, Union

import numpy as np
import torch

from .data import DeviceBatches

__all__ = ["compare_loaders", "format_loader_table"]


class _PILImages(torch.utils.data.Dataset):
    """The torchvision MNIST way: uint8 array -> PIL image -> ``ToTensor`` per example."""

    def __init__(self, images: np.ndarray, labels: np.ndarray) -> None:
        from torchvision import transforms  # lazy: optional dependency

        self.images = images
        self.labels = labels
        self.transform = transforms.ToTensor()

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        from PIL import Image

        return self.transform(Image.fromarray(self.images[i])), int(self.labels[i])


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time_epochs(run_epoch, epochs: int, device: torch.device) -> list[float]:
    """One untimed warm-up epoch, then ``epochs`` timed ones (seconds each)."""
    run_epoch()
    _sync(device)
    times = []
    for _ in range(epochs):
        start = time.perf_counter()
        run_epoch()
        _sync(device)
        times.append(time.perf_counter() - start)
    return times


def compare_loaders(
    images: torch.Tensor,
    *,
    batch_size: int = 128,
    epochs: int = 3,
    device: Union[str, torch.device] = "cpu",
    workers: Sequence[int] = (0, 2),
) -> dict:
    """Time an epoch of :class:`DeviceBatches` against a PIL + ``ToTensor`` + ``DataLoader`` pipeline.

    Each method runs one warm-up epoch, then ``epochs`` timed epochs (``time.perf_counter``, with
    ``torch.cuda.synchronize`` on CUDA). The consumer is ``x.sum()`` accumulated on the device, so
    every batch is materialized; the DataLoader batches are moved to ``device`` as a training loop
    would (``non_blocking`` from pinned memory on CUDA).

    Parameters
    ----------
    images : torch.Tensor
        uint8 ``[N, 28, 28]``.
    batch_size : int, default 128
        Batch size for both.
    epochs : int, default 3
        Timed epochs per method (the median is reported).
    device : str or torch.device, default "cpu"
        Where the batches are wanted.
    workers : sequence of int, default (0, 2)
        ``num_workers`` settings of the DataLoader to time.

    Returns
    -------
    dict
        ``{"num_images", "batch_size", "epochs", "device", "methods": {name: {"median_epoch_s",
        "images_per_s", "epoch_s", "ratio"}}, "ratio"}``, where each method's ``ratio`` is its
        median epoch time over that of DeviceBatches and the top-level ``ratio`` is the one of the
        first DataLoader setting (how many times faster DeviceBatches is).
    """
    device = torch.device(device)
    images = torch.as_tensor(images)
    n = int(images.shape[0])
    labels = torch.zeros(n, dtype=torch.int64)
    methods: dict[str, dict] = {}

    batches = DeviceBatches(images, labels, batch_size=batch_size, pixels="continuous", device=device)

    def device_epoch():
        total = torch.zeros((), device=device)
        for x, _ in batches:
            total += x.sum()
        return total

    methods["DeviceBatches"] = {"epoch_s": _time_epochs(device_epoch, epochs, device)}

    dataset = _PILImages(images.numpy(), labels.numpy())
    for num_workers in workers:
        loader = torch.utils.data.DataLoader(
            dataset,
            batch_size=batch_size,
            shuffle=True,
            num_workers=num_workers,
            pin_memory=device.type == "cuda",
        )

        def loader_epoch(loader=loader):
            total = torch.zeros((), device=device)
            for x, _ in loader:
                total += x.to(device, non_blocking=True).sum()
            return total

        name = f"DataLoader(PIL + ToTensor, num_workers={num_workers})"
        methods[name] = {"epoch_s": _time_epochs(loader_epoch, epochs, device)}

    base = statistics.median(methods["DeviceBatches"]["epoch_s"])
    for entry in methods.values():
        median = statistics.median(entry["epoch_s"])
        entry["median_epoch_s"] = median
        entry["images_per_s"] = n / median
        entry["ratio"] = median / base
    first_loader = [name for name in methods if name != "DeviceBatches"]
    return {
        "num_images": n,
        "batch_size": batch_size,
        "epochs": epochs,
        "device": str(device),
        "methods": methods,
        "ratio": methods[first_loader[0]]["ratio"] if first_loader else 1.0,
    }


def format_loader_table(result: dict) -> str:
    """A plain-text table of :func:`compare_loaders` results.

    Parameters
    ----------
    result : dict
        As returned by :func:`compare_loaders`.

    Returns
    -------
    str
        One header line, then one line per method: median epoch seconds, images per second, and
        the time relative to DeviceBatches.
    """
    head = (
        f"{result['num_images']:,} images, batch size {result['batch_size']}, device {result['device']}, "
        f"median of {result['epochs']} epochs after one warm-up"
    )
    width = max(len(name) for name in result["methods"])
    lines = [head, f"{'method':<{width}}  {'epoch (s)':>10}  {'images/s':>12}  {'time / DeviceBatches':>20}"]
    for name, entry in result["methods"].items():
        lines.append(
            f"{name:<{width}}  {entry['median_epoch_s']:>10.4f}  {entry['images_per_s']:>12,.0f}  "
            f"{entry['ratio']:>19.1f}x"
        )
    return "\n".join(lines)
