"""The plain autoencoder: deterministic codes, the loss against an independent computation, and training."""

import pytest
import torch
import torch.nn.functional as F

from genmodels.autoencoder import Autoencoder
from genmodels.engine.loops import train_autoencoder


def images(n=8, seed=0):
    return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(seed)).round()


def test_shapes_and_deterministic_codes():
    torch.manual_seed(0)
    ae = Autoencoder(latent_dim=3, hidden_dim=32)
    x = images()
    z = ae.encode(x)
    assert z.shape == (8, 3)
    torch.testing.assert_close(ae.encode(x), z, rtol=0, atol=0)  # no sampling: same image, same code
    assert ae.decode(z).shape == (8, 1, 28, 28)
    r = ae.reconstruct(x)
    assert r.shape == (8, 1, 28, 28) and r.min() >= 0 and r.max() <= 1
    assert ae.encode(x.reshape(8, 784)).shape == (8, 3)


def test_loss_is_the_binary_cross_entropy_per_image():
    torch.manual_seed(1)
    ae = Autoencoder(latent_dim=2, hidden_dim=16)
    x = images()
    logits = ae.decode(ae.encode(x))
    by_hand = -(x * torch.sigmoid(logits).log() + (1 - x) * (1 - torch.sigmoid(logits)).log()).sum((1, 2, 3)).mean()
    torch.testing.assert_close(ae(x), by_hand, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(ae(x), F.binary_cross_entropy_with_logits(logits, x, reduction="sum") / 8)


@pytest.mark.slow
def test_training_lowers_the_reconstruction_loss():
    """Two kinds of images (left half on, right half on): a 1-D code is enough to reconstruct both."""
    torch.manual_seed(2)
    left = torch.zeros(28, 28, dtype=torch.uint8)
    left[:, :14] = 255
    data = torch.stack([left, left.flip(-1)] * 64)  # (128, 28, 28)
    ae = Autoencoder(latent_dim=1, hidden_dim=16)
    with torch.no_grad():
        before = float(ae(data.float().div(255)))
    losses = train_autoencoder(ae, data, num_epochs=30, batch_size=32, lr=1e-2, pixels="continuous", seed=0)
    assert len(losses) == 30
    with torch.no_grad():
        after = float(ae(data.float().div(255)))
    assert after < 0.05 * before and after < 20.0  # nats per image, out of 784 pixels


@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_sizes_are_checked(bad):
    with pytest.raises(ValueError):
        Autoencoder(latent_dim=bad)
