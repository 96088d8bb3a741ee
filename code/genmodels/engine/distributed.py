"""Data-parallel training under ``torchrun``: this rank's place, and joining the process group."""

from __future__ import annotations

import os
from typing import (
    Tuple,
)

import torch

from ..core import pick_device

__all__ = [
    "distributed_context",
    "setup_distributed",
]


def distributed_context() -> Tuple[int, int, int]:
    """``(rank, world_size, local_rank)`` as set by ``torchrun``; ``(0, 1, 0)`` in a plain process."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0))


def setup_distributed(device_name: str) -> torch.device:
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
