r"""One training step of each family, written as a reader would write it.

These are the steps the loops of :mod:`genmodels.engine.loops` call, unchanged: the loops wrap them from
outside (the networks they pass in may be wrapped for DistributedDataParallel, ``torch.compile`` and bf16
autocast; checkpoints, progress and history are kept around the call), so the code a chapter prints is the
code that trains.
"""

from __future__ import annotations

from typing import Callable, Dict, Sequence, Tuple

import torch

from ..gan import discriminator_loss, generator_loss

__all__ = ["vae_step", "gan_step", "grad_norm", "cvae_step", "cgan_step", "vqvae_step"]


def vae_step(
    elbo_parts: Callable,
    x: torch.Tensor,
    eps: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    *,
    kl_weight: float = 1.0,
) -> Dict[str, torch.Tensor]:
    r"""One gradient step on the negative ELBO, :math:`-\frac1B\sum_i \mathcal L(x_i)` (nats per image).

    ``elbo_parts(x, eps)`` returns the ELBO and its two parts per image, ``(elbo, log_px, kl)``, each ``[B]``:
    :meth:`VAE.elbo` with ``return_parts=True``. ``eps`` is the standard-normal noise of the
    reparameterization :math:`z = \mu + \sigma \odot \varepsilon`, ``[B, latent_dim]``. A ``kl_weight``
    :math:`\beta \ne 1` descends :math:`\frac1B\sum_i \big(-\log p(x_i\mid z_i) + \beta\,\mathrm{KL}_i\big)`
    instead (a beta-VAE, or a KL warm-up). Returns the batch's negative ELBO (unweighted) and its parts, detached.
    """
    elbo, log_px, kl = elbo_parts(x, eps)  # (B,) each, nats
    loss = -elbo.mean()  # sum over pixels and latents, mean over the batch
    objective = loss if kl_weight == 1.0 else (kl_weight * kl - log_px).mean()
    optimizer.zero_grad(set_to_none=True)
    objective.backward()
    optimizer.step()
    return {"loss": loss.detach(), "recon": -log_px.detach().mean(), "kl": kl.detach().mean()}


def gan_step(
    generator: Callable,
    discriminator: Callable,
    real_batches: Sequence[torch.Tensor],
    noise: Callable[[], torch.Tensor],
    opt_d: torch.optim.Optimizer,
    opt_g: torch.optim.Optimizer,
    *,
    loss: str = "non_saturating",
    real_label: float = 1.0,
) -> Dict[str, torch.Tensor]:
    r"""One iteration of Algorithm 1 of Goodfellow et al. (2014): ``k = len(real_batches)`` discriminator
    steps, then one generator step.

    Each discriminator step descends :func:`~genmodels.gan.discriminator_loss` (that is, ascends
    :math:`V(D, G)`) on a real batch and a batch of fakes made from fresh noise and detached, so no
    gradient reaches the generator. The generator step descends :func:`~genmodels.gan.generator_loss`
    of kind ``loss`` on fresh fakes. ``noise()`` draws a batch :math:`z \sim p(z)`; ``real_label`` below 1 is
    one-sided label smoothing of the real images' target. Returns the last
    discriminator step's loss, both players' losses, the mean :math:`D(x)` and :math:`D(G(z))`, and the
    norm of the generator's gradient, detached.
    """
    for x in real_batches:  # k steps on the discriminator
        fake = generator(noise()).detach()  # no gradient into the generator
        real_logits = discriminator(x)
        d_loss = discriminator_loss(real_logits, discriminator(fake), real_label=real_label)
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
    fake_logits = discriminator(generator(noise()))  # one step on the generator
    g_loss = generator_loss(fake_logits, kind=loss)
    opt_g.zero_grad(set_to_none=True)
    g_loss.backward()
    g_norm = grad_norm(opt_g)
    opt_g.step()
    return {
        "d_loss": d_loss.detach(),
        "g_loss": g_loss.detach(),
        "d_real": torch.sigmoid(real_logits.detach()).mean(),
        "d_fake": torch.sigmoid(fake_logits.detach()).mean(),
        "g_grad_norm": g_norm,
    }


def grad_norm(optimizer: torch.optim.Optimizer) -> torch.Tensor:
    """The Euclidean norm of the gradient of every parameter ``optimizer`` updates, on their device."""
    norms = [
        torch.linalg.vector_norm(p.grad.detach().float())
        for group in optimizer.param_groups
        for p in group["params"]
        if p.grad is not None
    ]
    return torch.linalg.vector_norm(torch.stack(norms))


# --- VQ-VAE ---------------------------------------------------------------------------------------


def vqvae_step(vqvae: Callable, x: torch.Tensor, optimizer: torch.optim.Optimizer) -> Dict[str, torch.Tensor]:
    r"""One gradient step on the VQ-VAE loss, :math:`-\log p(x\mid z_q) + \lVert\mathrm{sg}[z_e] - e\rVert^2
    + \beta\lVert z_e - \mathrm{sg}[e]\rVert^2`, averaged over the batch.

    ``vqvae(x)`` returns ``(total, recon, codebook, commitment, perplexity)``: :meth:`VQVAE.forward`, which in
    training mode also moves an EMA codebook and restarts dead codes. The straight-through estimator inside
    it carries the reconstruction's gradient past the nearest-code lookup to the encoder. Returns the five
    values, detached.
    """
    total, recon, codebook, commitment, perplexity = vqvae(x)
    optimizer.zero_grad(set_to_none=True)
    total.backward()
    optimizer.step()
    return {
        "loss": total.detach(),
        "recon": recon.detach(),
        "codebook": codebook.detach(),
        "commitment": commitment.detach(),
        "perplexity": perplexity.detach(),
    }


def cvae_step(
    elbo_parts: Callable,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    *,
    kl_weight: float = 1.0,
) -> Dict[str, torch.Tensor]:
    r"""One gradient step on the negative conditional ELBO, :math:`-\frac1B\sum_i \mathcal L(x_i; y_i)` (nats per image).

    :func:`vae_step` with the labels ``y`` (int64 ``[B]``) passed along: ``elbo_parts(x, y, eps)`` returns
    ``(elbo, log_px, kl)``, each ``[B]`` (:meth:`CVAE.elbo` with ``return_parts=True``), and ``kl_weight`` weighs
    the KL term of the objective as there. Returns the batch's negative ELBO (unweighted) and its parts, detached.
    """
    elbo, log_px, kl = elbo_parts(x, y, eps)  # (B,) each, nats
    loss = -elbo.mean()  # sum over pixels and latents, mean over the batch
    objective = loss if kl_weight == 1.0 else (kl_weight * kl - log_px).mean()
    optimizer.zero_grad(set_to_none=True)
    objective.backward()
    optimizer.step()
    return {"loss": loss.detach(), "recon": -log_px.detach().mean(), "kl": kl.detach().mean()}


def cgan_step(
    generator: Callable,
    discriminator: Callable,
    real_batches: Sequence[Tuple[torch.Tensor, torch.Tensor]],
    noise: Callable[[], Tuple[torch.Tensor, torch.Tensor]],
    opt_d: torch.optim.Optimizer,
    opt_g: torch.optim.Optimizer,
    *,
    loss: str = "non_saturating",
    real_label: float = 1.0,
) -> Dict[str, torch.Tensor]:
    r""":func:`gan_step` for a conditional GAN: Algorithm 1 of Goodfellow et al. (2014) with every image
    judged together with its label, :math:`D(x, y)`.

    ``k = len(real_batches)`` discriminator steps, each on a real batch ``(x, y)`` and on fakes
    :math:`G(z, y')` of fresh noise and fresh labels, detached, judged with their labels :math:`y'`; then one
    generator step on :func:`~genmodels.gan.generator_loss` at fresh fakes. ``noise()`` draws a batch
    :math:`(z, y')`, :math:`z \sim p(z)` and :math:`y' \sim p(y)`. Returns what :func:`gan_step` returns.
    """
    for x, y in real_batches:  # k steps on the discriminator
        z, y_fake = noise()
        fake = generator(z, y_fake).detach()  # no gradient into the generator
        real_logits = discriminator(x, y)
        d_loss = discriminator_loss(real_logits, discriminator(fake, y_fake), real_label=real_label)
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
    z, y_fake = noise()  # one step on the generator
    fake_logits = discriminator(generator(z, y_fake), y_fake)
    g_loss = generator_loss(fake_logits, kind=loss)
    opt_g.zero_grad(set_to_none=True)
    g_loss.backward()
    g_norm = grad_norm(opt_g)
    opt_g.step()
    return {
        "d_loss": d_loss.detach(),
        "g_loss": g_loss.detach(),
        "d_real": torch.sigmoid(real_logits.detach()).mean(),
        "d_fake": torch.sigmoid(fake_logits.detach()).mean(),
        "g_grad_norm": g_norm,
    }
