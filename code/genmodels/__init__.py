"""genmodels: the VAEs and GANs of the book, derived, checked and trained.

The modules at the top level follow the book's chapters (``distributions``, ``divergences``, ``vae``, ``gan``,
``linear_gaussian``, ``gan_1d``, ``gan_mixtures``, ``gan_dynamics``, ``gradient_estimators``, ``latent_space``,
``vae_vs_gan``, ``fgan``); the plumbing sits one level down (``engine``, ``metrics``, ``app``). The names the
chapters use are re-exported here::

    import genmodels as gm
    x, y = gm.load_mnist(split="train")          # uint8 [N, 28, 28], int64 [N]
    vae = gm.VAE(latent_dim=20, arch="mlp")
    history = gm.train_vae(vae, x, num_epochs=10)
    vae.sample(64)                                # [64, 1, 28, 28] in [0, 1]
"""

__version__ = "0.1.0"

from . import (  # noqa: E402  (the chapters' modules, as gm.<module>)
    distributions,
    divergences,
    fgan,
    gan_1d,
    gan_dynamics,
    gan_mixtures,
    gradient_estimators,
    latent_space,
    linear_gaussian,
    vae_vs_gan,
)
from .app import plotting, schematics, widgets, zoo  # noqa: E402
from .app.plotting import image_grid, show_images  # noqa: E402
from .autoencoder import Autoencoder  # noqa: E402
from .core import UserError, eval_mode, pick_device, seed_everything  # noqa: E402
from .distributions import (  # noqa: E402
    bernoulli_log_likelihood,
    elbo,
    gaussian_kl,
    gaussian_log_likelihood,
    gaussian_log_prob,
    iwae_bound,
    reparameterize,
    standard_normal_log_prob,
)
from .engine import (  # noqa: E402
    PIXEL_MODELS,
    CheckpointError,
    DataError,
    DeviceBatches,
    GANTrainConfig,
    History,
    ImageSet,
    TrainConfig,
    TrainingDiverged,
    binarize,
    estimate_nll,
    eval_images,
    evaluate_vae,
    gan_step,
    load_checkpoint,
    load_fashion_mnist,
    load_mnist,
    read_checkpoint,
    read_idx,
    save_checkpoint,
    static_binarize,
    to_float,
    train_autoencoder,
    train_gan,
    train_vae,
    vae_step,
)
from .gan import (  # noqa: E402
    GAN,
    GENERATOR_LOSSES,
    GANConfig,
    MinibatchDiscrimination,
    discriminator_loss,
    generator_loss,
)
from .gan_1d import ToyDiscriminator, ToyGenerator  # noqa: E402
from .gan_mixtures import grid_of_gaussians, ring_of_gaussians  # noqa: E402
from .linear_gaussian import LinearGaussian  # noqa: E402
from .metrics import (  # noqa: E402
    ClassifierConfig,
    MNISTClassifier,
    class_histogram,
    classes_covered,
    evaluate_classifier,
    frechet_classifier_distance,
    frechet_distance,
    kl_to_uniform,
    load_classifier,
    mode_coverage,
    score_mixture_runs,
    train_classifier,
)
from .vae import VAE, VAEConfig  # noqa: E402

__all__ = [
    "__version__",
    # the chapters' modules
    "distributions",
    "divergences",
    "fgan",
    "gan_1d",
    "gan_dynamics",
    "gan_mixtures",
    "gradient_estimators",
    "latent_space",
    "linear_gaussian",
    "vae_vs_gan",
    "plotting",
    "schematics",
    "widgets",
    "zoo",
    # maths
    "bernoulli_log_likelihood",
    "elbo",
    "gaussian_kl",
    "gaussian_log_likelihood",
    "gaussian_log_prob",
    "iwae_bound",
    "reparameterize",
    "standard_normal_log_prob",
    # models
    "VAE",
    "VAEConfig",
    "GAN",
    "GANConfig",
    "GENERATOR_LOSSES",
    "MinibatchDiscrimination",
    "Autoencoder",
    "LinearGaussian",
    "ToyGenerator",
    "ToyDiscriminator",
    "ring_of_gaussians",
    "grid_of_gaussians",
    "generator_loss",
    "discriminator_loss",
    # training
    "vae_step",
    "gan_step",
    "train_vae",
    "train_gan",
    "train_autoencoder",
    "TrainConfig",
    "GANTrainConfig",
    "History",
    "TrainingDiverged",
    "evaluate_vae",
    "estimate_nll",
    "eval_images",
    # data
    "load_mnist",
    "load_fashion_mnist",
    "read_idx",
    "ImageSet",
    "DataError",
    "DeviceBatches",
    "PIXEL_MODELS",
    "to_float",
    "binarize",
    "static_binarize",
    # checkpoints
    "save_checkpoint",
    "load_checkpoint",
    "read_checkpoint",
    "CheckpointError",
    # metrics
    "ClassifierConfig",
    "MNISTClassifier",
    "train_classifier",
    "evaluate_classifier",
    "load_classifier",
    "frechet_distance",
    "frechet_classifier_distance",
    "class_histogram",
    "classes_covered",
    "kl_to_uniform",
    "mode_coverage",
    "score_mixture_runs",
    # helpers
    "pick_device",
    "seed_everything",
    "eval_mode",
    "UserError",
    "image_grid",
    "show_images",
]
