"""genmodels: the VAEs and GANs of the book, derived, checked and trained.

The public names the chapters use are re-exported here::

    import genmodels as gm
    x, y = gm.load_mnist(split="train")          # uint8 [N, 28, 28], int64 [N]
    vae = gm.VAE(latent_dim=20, arch="mlp")
    history = gm.train_vae(vae, x, num_epochs=10)
    vae.sample(64)                                # [64, 1, 28, 28] in [0, 1]
"""
__version__ = "0.1.0"

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
from .data import (  # noqa: E402
    PIXEL_MODELS,
    DataError,
    DeviceBatches,
    ImageSet,
    binarize,
    load_fashion_mnist,
    load_mnist,
    read_idx,
    static_binarize,
    to_float,
)
from .vae import VAE, VAEConfig  # noqa: E402
from .gan import (  # noqa: E402
    GAN,
    GENERATOR_LOSSES,
    GANConfig,
    MinibatchDiscrimination,
    discriminator_loss,
    generator_loss,
)
from .toys import LinearGaussian, ToyDiscriminator, ToyGenerator, grid_of_gaussians, ring_of_gaussians  # noqa: E402
from .checkpoints import CheckpointError, load_checkpoint, read_checkpoint, save_checkpoint  # noqa: E402
from .train import (  # noqa: E402
    GANTrainConfig,
    History,
    TrainConfig,
    TrainingDiverged,
    evaluate_vae,
    pick_device,
    seed_everything,
    train_gan,
    train_vae,
)
from .plotting import image_grid, show_images  # noqa: E402
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
    train_classifier,
)
from .autoencoder import Autoencoder, train_autoencoder  # noqa: E402
from . import compare, estimators, latent, toy_gans, widgets, zoo  # noqa: E402
