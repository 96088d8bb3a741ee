"""Checkpoints: written atomically, read safely, and rebuilt from the config they store.

A checkpoint is a ``torch.save``'d dict of tensors, numbers, strings, lists and dicts only, so it loads
with ``torch.load(weights_only=True)``: opening a file downloaded from elsewhere runs no code. It holds
the model's kind and config (enough to rebuild the network), its weights, the optimizer states, the
training config, the step and epoch, the history, the random-number states and the data iterator's
position, which is everything :func:`genmodels.train.train_vae` / ``train_gan`` need to resume as if
never stopped.
"""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path
from typing import Any, BinaryIO, Callable, Dict, Optional, Sequence, Union

import torch
from torch import nn

from .. import __version__
from ..conditional import CGAN, CVAE, CGANConfig, CVAEConfig
from ..core import UserError
from ..gan import GAN, GANConfig
from ..vae import VAE, VAEConfig
from ..vqvae import (
    VQVAE,
    AutoregressiveCodePrior,
    AutoregressivePriorConfig,
    IndependentCodePrior,
    IndependentPriorConfig,
    VQVAEConfig,
)

__all__ = [
    "CheckpointError",
    "FORMAT",
    "FORMAT_VERSION",
    "MODEL_KINDS",
    "save_checkpoint",
    "atomic_torch_save",
    "atomic_write",
    "read_checkpoint",
    "load_checkpoint",
    "model_kind",
    "build_model",
    "load_state_checked",
    "LeftOut",
]

FORMAT = "genmodels-checkpoint"
FORMAT_VERSION = 1
MODEL_KINDS = {
    "vae": (VAE, VAEConfig),
    "gan": (GAN, GANConfig),
    "vqvae": (VQVAE, VQVAEConfig),
    "independent_code_prior": (IndependentCodePrior, IndependentPriorConfig),
    "autoregressive_code_prior": (AutoregressiveCodePrior, AutoregressivePriorConfig),
    "cvae": (CVAE, CVAEConfig),
    "cgan": (CGAN, CGANConfig),
}

PathLike = Union[str, os.PathLike]
# A write that failed for want of room: a full disk, a quota, a file-size limit (``ulimit -f``).
_NO_ROOM_ERRNOS = frozenset(getattr(errno, name) for name in ("ENOSPC", "EDQUOT", "EFBIG") if hasattr(errno, name))


class CheckpointError(UserError, RuntimeError):
    """A checkpoint that cannot be used: missing, corrupt, from another model, or from a newer package."""


def _version_tuple(version: str):
    parts = []
    for piece in str(version).split("+")[0].split("."):
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def model_kind(model: nn.Module) -> str:
    """The key of ``model``'s class in :data:`MODEL_KINDS`: ``"vae"``, ``"gan"``, ``"cvae"``, ``"vqvae"``..."""
    for kind, (cls, _) in MODEL_KINDS.items():
        if isinstance(model, cls):
            return kind
    raise TypeError(f"no checkpoint kind for {type(model).__name__}; expected one of {sorted(MODEL_KINDS)}")


def build_model(kind: str, config: Dict[str, Any]) -> nn.Module:
    """Rebuild an untrained model from a checkpoint's ``kind`` and ``model_config``."""
    if kind not in MODEL_KINDS:
        raise CheckpointError(f"unknown model kind {kind!r} in checkpoint; known kinds: {sorted(MODEL_KINDS)}")
    cls, config_cls = MODEL_KINDS[kind]
    try:
        return cls(config=config_cls(**config))
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"the checkpoint's {kind} config {config} is not valid for this package: {err}") from err


def save_checkpoint(path: PathLike, model: nn.Module, *, leave_out: Sequence[str] = (), **state: Any) -> Path:
    """Write ``model`` (its kind, config and weights) and any extra ``state`` to ``path`` atomically.

    ``leave_out`` names submodules of ``model`` (``("discriminator",)``) whose weights are not written: a
    GAN kept for sampling needs its generators only, and its discriminator can be many times their size.
    :func:`load_checkpoint` then rebuilds those parts as :class:`LeftOut` stand-ins that refuse to run.

    The file is written to a temporary name in the same folder, flushed to disk, then renamed over
    ``path`` (``os.replace`` is atomic on POSIX and Windows): a reader, or a crash at any moment, sees
    either the previous complete checkpoint or the new complete one, never a half-written file.

    Extra keys (``optimizers``, ``train_config``, ``step``, ``epoch``, ``history``, ``rng``, ``data``)
    must be tensors, numbers, strings, or lists/tuples/dicts of them.
    """
    for name in leave_out:
        if not isinstance(getattr(model, name, None), nn.Module):
            raise UserError(f"cannot leave out {name!r}: it is not a submodule of this {type(model).__name__}")
    # parts already missing (a model loaded from such a checkpoint) stay recorded as left out
    leave_out = [n for n, m in model.named_children() if n in leave_out or isinstance(m, LeftOut)]
    prefixes = tuple(f"{name}." for name in leave_out)
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "package_version": __version__,
        "kind": model_kind(model),
        "model_config": model.config.to_dict(),
        "model_state": {k: v.detach().cpu() for k, v in model.state_dict().items() if not k.startswith(prefixes)},
        **({"left_out": leave_out} if leave_out else {}),
        **state,
    }
    path = Path(path)
    atomic_torch_save(payload, path)
    return path


def atomic_torch_save(payload: Any, path: PathLike) -> None:
    """``torch.save(payload)`` to ``path`` through :func:`atomic_write`."""
    atomic_write(path, lambda f: torch.save(payload, f))


def _no_room_reason(code: int) -> str:
    """What a write that failed with ``code`` (one of ``_NO_ROOM_ERRNOS``) ran out of, and what to do."""
    if code == errno.EFBIG:
        return (
            "the file is too large for this process (a file-size limit such as `ulimit -f`, or the file "
            "system's maximum): raise the limit or write to another file system"
        )
    if code == getattr(errno, "EDQUOT", None):
        return "the disk quota is exceeded: free some of your space there or write to another disk"
    return "the disk is full: free some space there or write to another disk"


def _write_error(err: BaseException) -> Optional[OSError]:
    """The ``OSError`` of a full disk behind ``err``: itself, or the cause of an error that torch raised
    while writing through a Python file; ``None`` for any other error."""
    while err is not None:
        if isinstance(err, OSError) and err.errno in _NO_ROOM_ERRNOS:
            return err
        err = err.__cause__ or err.__context__
    return None


def atomic_write(path: PathLike, write: Callable[[BinaryIO], None]) -> None:
    """Call ``write(f)`` on a temporary file in the same folder, flush it to disk, then rename it over
    ``path`` with ``os.replace`` (atomic on POSIX and Windows): readers and crashes see the old file or the
    new one, never half of one.

    A write that fails for want of room (disk full, quota, file-size limit) raises an ``OSError`` with the
    same ``errno`` whose message says so, names ``path`` and what to do; the temporary file is removed and
    the previous file at ``path``, if any, is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; checkpoints and manifests are meant to be shared
        os.replace(tmp, path)
    except BaseException as err:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        no_room = _write_error(err)
        if no_room is None:
            raise
        kept = "the previous file there is unchanged" if path.exists() else "no file was left there"
        raise OSError(
            no_room.errno,
            f"could not write {path}: {_no_room_reason(no_room.errno)}; then run the command again ({kept})",
            str(path),
        ) from err
    try:  # make the rename itself durable
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass


def read_checkpoint(path: PathLike, *, map_location: Union[str, torch.device] = "cpu") -> Dict[str, Any]:
    """Read and validate a checkpoint file; return its dict.

    Raises :class:`CheckpointError` when the file is missing, truncated or corrupt, is not a genmodels
    checkpoint, or was written by a newer version of the package.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}: check the path, or train one with `python -m genmodels train`")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises RuntimeError, EOFError, UnpicklingError... for bad files
        raise CheckpointError(
            f"{path} is truncated or corrupt and cannot be read ({type(err).__name__}: {str(err).splitlines()[0][:200]}). "
            "Delete it and train again (or download it again)."
        ) from err
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path} is a PyTorch file but not a genmodels checkpoint (no '{FORMAT}' marker)")
    written_by = str(ckpt.get("package_version", "0"))
    if ckpt.get("format_version", 0) > FORMAT_VERSION or _version_tuple(written_by) > _version_tuple(__version__):
        raise CheckpointError(
            f"{path} was written by genmodels {written_by} (checkpoint format {ckpt.get('format_version')}), "
            f"newer than the installed genmodels {__version__} (format {FORMAT_VERSION}). "
            "Upgrade the package (`pip install -U genmodels`, or `git pull` and `pip install -e .`)."
        )
    return ckpt


class LeftOut(nn.Module):
    """Stands in for a submodule whose weights a checkpoint does not hold (``save_checkpoint(leave_out=...)``):
    it has no parameters, and running it or asking for its parameters raises a :class:`CheckpointError` that
    says what is missing, instead of silently using untrained weights."""

    def __init__(self, name: str, source: str):
        super().__init__()
        self.name, self.source = name, source

    def _refuse(self) -> CheckpointError:
        return CheckpointError(
            f"the {self.name} of {self.source} was left out when it was written (it holds what sampling needs); "
            f"train a model with `python -m genmodels train` to get one with its {self.name}"
        )

    def forward(self, *args, **kwargs):
        raise self._refuse()

    def parameters(self, recurse: bool = True):
        raise self._refuse()

    def extra_repr(self) -> str:
        return f"{self.name!r} left out of {self.source}"


def load_state_checked(
    model: nn.Module, state: Dict[str, torch.Tensor], *, source: str = "checkpoint", left_out: Sequence[str] = ()
) -> None:
    """``model.load_state_dict(state)``, but a mismatch names every differing parameter and both shapes.
    The submodules named in ``left_out`` are not in ``state``: they become :class:`LeftOut` stand-ins."""
    for name in left_out:
        if not isinstance(getattr(model, name, None), nn.Module):
            raise CheckpointError(
                f"the {source} says it left out {name!r}, which this {type(model).__name__} does not have"
            )
        setattr(model, name, LeftOut(name, source))
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [
        f"{name}: {source} has {list(state[name].shape)}, model has {list(own[name].shape)}"
        for name in own
        if name in state and state[name].shape != own[name].shape
    ]
    if missing or unexpected or shapes:
        lines = [f"the {source} does not fit this {type(model).__name__}:"]
        lines += [f"  shape mismatch {s}" for s in shapes[:8]]
        if missing:
            lines.append(f"  missing from the {source}: {', '.join(missing[:8])}")
        if unexpected:
            lines.append(f"  not in the model: {', '.join(unexpected[:8])}")
        lines.append("Build the model from the checkpoint with gm.load_checkpoint(path) instead.")
        raise CheckpointError("\n".join(lines))
    model.load_state_dict(state)


def load_checkpoint(
    path: PathLike,
    *,
    map_location: Union[str, torch.device] = "cpu",
    kind: Optional[str] = None,
    latent_dim: Optional[int] = None,
) -> nn.Module:
    """Rebuild the model stored in a checkpoint, load its weights, and return it in eval mode.

    Parameters
    ----------
    path : path of the checkpoint.
    map_location : where to put the weights (``"cpu"``, ``"cuda"``, a device).
    kind : str, optional (a key of :data:`MODEL_KINDS`: ``"vae"``, ``"gan"``, ``"cvae"``...)
        If given, the checkpoint must hold that kind of model.
    latent_dim : int, optional
        If given, the checkpoint's model must have that latent size.

    The returned model has a ``checkpoint_info`` dict: path, step, epoch, package version.
    """
    ckpt = read_checkpoint(path, map_location=map_location)
    if kind is not None and ckpt["kind"] != kind:
        raise CheckpointError(f"{path} holds a {ckpt['kind']}, not a {kind}")
    config = ckpt["model_config"]
    if latent_dim is not None and config.get("latent_dim") != latent_dim:
        raise CheckpointError(
            f"{path} holds a {ckpt['kind']} with latent_dim={config.get('latent_dim')}, "
            f"but latent_dim={latent_dim} was asked for: pick the checkpoint trained with that size"
        )
    model = build_model(ckpt["kind"], config)
    left_out = ckpt.get("left_out", [])
    load_state_checked(model, ckpt["model_state"], source=f"checkpoint {path}", left_out=left_out)
    model.to(map_location).eval()
    model.checkpoint_info = {
        "path": str(path),
        "step": ckpt.get("step"),
        "epoch": ckpt.get("epoch"),
        "package_version": ckpt.get("package_version"),
        "data": ckpt.get("data_source"),
        "left_out": list(left_out),
    }
    return model
