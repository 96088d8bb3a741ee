"""Batches made on the training device from uint8 images that live there; resumable exactly.

:class:`DeviceBatches` keeps the uint8 images on the device once and makes each batch there
(one ``randperm`` per epoch, an ``index_select`` and a division per batch), with a
``state_dict`` that resumes the exact same sequence of batches.
"""

from __future__ import annotations

from typing import (
    Iterator,
    Optional,
    Union,
)

import torch

from ..core import UserError, check_int
from .pixels import _check_pixels, static_binarize

__all__ = [
    "DeviceBatches",
]


class DeviceBatches:
    r"""Batches made on the device from uint8 images that live there; resumable exactly.

    The images are moved once to ``device`` as uint8 (a quarter of the float32 size; all of MNIST
    is 47 MB). Each epoch draws one ``torch.randperm`` on the device; each batch is an
    ``index_select``, a conversion to float32 ``[B, 1, 28, 28]`` in ``[0, 1]`` and, for
    ``pixels="dynamic"``, a fresh draw :math:`\tilde x \sim \mathrm{Bernoulli}(x)`. With
    ``pixels="static"`` the images are binarized once at construction
    (:func:`static_binarize` with ``seed``).

    Iterating yields the *remaining* batches of the current epoch; after the last batch of an epoch
    :attr:`epoch` advances and the next ``iter()`` starts a new epoch with a new permutation. So
    ``for epoch in range(n): for x in batches: ...`` runs ``n`` epochs, and after
    :meth:`load_state_dict` the loop continues exactly where the saved one stopped. Like a file
    handle, one object holds one position: do not interleave two iterators over it.

    Parameters
    ----------
    images : torch.Tensor
        uint8 ``[N, H, W]`` or ``[N, 1, H, W]``.
    labels : torch.Tensor, optional
        ``[N]`` integer labels; if given, batches are ``(x, y)`` with ``y`` int64 on the device.
    batch_size : int
        Images per batch (positive).
    pixels : {"continuous", "dynamic", "static"}
        Pixel model, see :data:`PIXEL_MODELS`.
    device : str or torch.device
        Where images, permutations and batches live.
    shuffle : bool, default True
        A new random order each epoch; else the stored order.
    drop_last : bool, default False
        Drop the last, smaller batch of an epoch.
    seed : int, default 0
        Seeds the permutation generator (``seed``), the noise generator (``seed + 1``) and the
        static binarization (``seed``).

    Examples
    --------
    >>> x, y = load_mnist(verbose=False)  # doctest: +SKIP
    >>> batches = DeviceBatches(x, batch_size=128, pixels="dynamic", device="cuda")  # doctest: +SKIP
    >>> for xb in batches:  # one epoch of float32 [128, 1, 28, 28] 0/1 batches  # doctest: +SKIP
    ...     pass
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: Optional[torch.Tensor] = None,
        *,
        batch_size: int,
        pixels: str = "continuous",
        device: Union[str, torch.device] = "cpu",
        shuffle: bool = True,
        drop_last: bool = False,
        seed: int = 0,
    ) -> None:
        check_int("batch_size", batch_size)
        self.pixels = _check_pixels(pixels)
        images = torch.as_tensor(images)
        if images.dtype != torch.uint8:
            raise UserError(f"DeviceBatches expects uint8 images (0..255), got {images.dtype}")
        if images.ndim == 4 and images.shape[1] == 1:
            images = images[:, 0]
        if images.ndim != 3:
            raise UserError(f"DeviceBatches expects images [N, H, W] or [N, 1, H, W], got {list(images.shape)}")
        if images.shape[0] == 0:
            raise UserError("DeviceBatches got no images (N = 0)")
        self.num_images = int(images.shape[0])
        if labels is not None:
            labels = torch.as_tensor(labels)
            if labels.ndim != 1 or labels.shape[0] != self.num_images:
                raise UserError(f"labels must have shape [{self.num_images}], got {list(labels.shape)}")
        self.batch_size = batch_size
        self.device = torch.device(device)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.seed = int(seed)
        if len(self) == 0:
            raise UserError(f"drop_last=True with batch_size={batch_size} > N={self.num_images} leaves no batch")

        if pixels == "static":
            images = static_binarize(images, seed=self.seed)  # 0/1 uint8, converted without /255
        self._images = images.unsqueeze(1).to(self.device).contiguous()  # uint8 [N, 1, H, W]
        self._labels = None if labels is None else labels.to(self.device, torch.int64)

        self._perm_gen = torch.Generator(device=self.device).manual_seed(self.seed)
        self._noise_gen = torch.Generator(device=self.device).manual_seed(self.seed + 1)
        self.epoch = 0
        self._position = 0  # batches already yielded in the current epoch
        self._perm: Optional[torch.Tensor] = None  # None: the current epoch has not started
        self._epoch_perm_state: Optional[torch.Tensor] = None  # perm generator before the randperm

    @property
    def position(self) -> int:
        """Batches already yielded in the current epoch (0 right after an epoch ends)."""
        return self._position

    def __len__(self) -> int:
        """Batches per epoch."""
        if self.drop_last:
            return self.num_images // self.batch_size
        return (self.num_images + self.batch_size - 1) // self.batch_size

    def __repr__(self) -> str:
        return (
            f"DeviceBatches(n={self.num_images:,}, batch_size={self.batch_size}, pixels={self.pixels!r}, "
            f"device={str(self.device)!r}, epoch={self.epoch}, position={self._position}/{len(self)})"
        )

    # -- epoch bookkeeping ---------------------------------------------------------------------

    def _start_epoch(self) -> None:
        self._epoch_perm_state = self._perm_gen.get_state()
        if self.shuffle:
            self._perm = torch.randperm(self.num_images, generator=self._perm_gen, device=self.device)
        else:
            self._perm = torch.arange(self.num_images, device=self.device)

    def _finish_epoch(self) -> None:
        self.epoch += 1
        self._position = 0
        self._perm = None
        self._epoch_perm_state = None

    def _batch(self, i: int):
        idx = self._perm[i * self.batch_size : (i + 1) * self.batch_size]
        x = self._images.index_select(0, idx).float()  # [B, 1, H, W]
        if self.pixels != "static":
            x.div_(255)
        if self.pixels == "dynamic":
            x = torch.bernoulli(x, generator=self._noise_gen)
        if self._labels is None:
            return x
        return x, self._labels.index_select(0, idx)

    def __iter__(self) -> Iterator:
        n = len(self)
        if self._position >= n:  # only after loading an odd state: that epoch is over
            if self._perm is None:
                self._start_epoch()
            self._finish_epoch()
        while True:
            if self._perm is None:
                self._start_epoch()
            batch = self._batch(self._position)
            self._position += 1
            last = self._position >= n
            if last:
                # Advance before yielding, so a state_dict taken after the last batch (or a
                # loop that breaks there) is already at the start of the next epoch.
                self._finish_epoch()
            yield batch
            if last:
                return

    # -- exact resume ----------------------------------------------------------------------------

    def state_dict(self) -> dict:
        """The position and random state, enough to resume the exact sequence of batches.

        Returns
        -------
        dict
            Ints, strings and CPU ByteTensors only (safe for ``torch.load(weights_only=True)``):
            ``epoch``, ``position``, ``perm_state`` (permutation generator at the start of the
            current epoch), ``noise_state`` (noise generator now), and the settings they depend on.
        """
        perm_state = self._perm_gen.get_state() if self._perm is None else self._epoch_perm_state
        return {
            "epoch": int(self.epoch),
            "position": int(self._position),
            "perm_state": perm_state.detach().to("cpu", torch.uint8).clone(),
            "noise_state": self._noise_gen.get_state().detach().to("cpu", torch.uint8).clone(),
            "num_images": self.num_images,
            "batch_size": self.batch_size,
            "drop_last": int(self.drop_last),
            "shuffle": int(self.shuffle),
            "pixels": self.pixels,
            "device_type": self.device.type,
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore a :meth:`state_dict`, so iteration continues with exactly the same batches.

        Parameters
        ----------
        state : dict
            From :meth:`state_dict` of a DeviceBatches over the same images with the same settings.

        Raises
        ------
        ValueError
            If the settings (N, batch size, drop_last, shuffle, pixel model, device type) differ.
        """
        for key, mine in (
            ("num_images", self.num_images),
            ("batch_size", self.batch_size),
            ("drop_last", int(self.drop_last)),
            ("shuffle", int(self.shuffle)),
            ("pixels", self.pixels),
            ("device_type", self.device.type),
        ):
            if key in state and state[key] != mine:
                raise UserError(
                    f"state_dict was saved with {key}={state[key]!r} but this DeviceBatches has "
                    f"{key}={mine!r}: build it with the same settings to resume"
                )
        position = int(state["position"])
        if not 0 <= position <= len(self):
            raise UserError(f"state_dict position {position} is outside 0..{len(self)}")
        self._perm_gen.set_state(state["perm_state"].to("cpu", torch.uint8))
        self._noise_gen.set_state(state["noise_state"].to("cpu", torch.uint8))
        self.epoch = int(state["epoch"])
        self._position = position
        self._perm = None
        self._epoch_perm_state = None
        if position > 0:
            self._start_epoch()  # redraws the same permutation and advances the generator past it
