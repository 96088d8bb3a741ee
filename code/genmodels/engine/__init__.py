"""The training engine: data sources, pixel models, device-resident batches, the plain training step of
each family, the loops that wrap it (DDP, bf16 autocast, checkpoints, history), and checkpoints.

The engine imports the models; the models never import the engine.
"""

from .batches import DeviceBatches
from .checkpoints import (
    CheckpointError,
    atomic_write,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
)
from .distributed import distributed_context
from .loops import (
    GANTrainConfig,
    History,
    TrainConfig,
    TrainingDiverged,
    estimate_nll,
    eval_images,
    evaluate_vae,
    evaluate_vqvae,
    saturated_steps,
    train_autoencoder,
    train_cgan,
    train_code_prior,
    train_cvae,
    train_gan,
    train_vae,
    train_vqvae,
    vqvae_codes,
)
from .pixels import PIXEL_MODELS, binarize, static_binarize, to_float
from .sources import DataError, ImageSet, load_fashion_mnist, load_mnist, read_idx
from .steps import cgan_step, cvae_step, gan_step, vae_step, vqvae_step

__all__ = [
    "DeviceBatches",
    "CheckpointError",
    "atomic_write",
    "load_checkpoint",
    "read_checkpoint",
    "save_checkpoint",
    "distributed_context",
    "GANTrainConfig",
    "History",
    "TrainConfig",
    "TrainingDiverged",
    "eval_images",
    "evaluate_vae",
    "estimate_nll",
    "saturated_steps",
    "train_autoencoder",
    "train_gan",
    "train_vae",
    "train_cvae",
    "train_cgan",
    "PIXEL_MODELS",
    "binarize",
    "static_binarize",
    "to_float",
    "DataError",
    "ImageSet",
    "load_fashion_mnist",
    "load_mnist",
    "read_idx",
    "gan_step",
    "vae_step",
    "vqvae_step",
    "train_vqvae",
    "evaluate_vqvae",
    "vqvae_codes",
    "train_code_prior",
    "cvae_step",
    "cgan_step",
]
