"""The trained models behind the book's widgets: loaded by name, verified by hash, trained when missing.

The set ("the zoo") is one fully connected 784-400-*d* VAE for each latent size in :data:`VAE_LATENT_SIZES`
(``vae-d2`` ... ``vae-d50``; ``vae-d2`` is also the 2-D VAE of the latent navigator), the VAE chapter's two
larger VAEs (``vae-mlp2-d50``, two hidden layers of 512; ``vae-conv-d50``, convolutional), one DCGAN for each
noise size in :data:`GAN_LATENT_SIZES` (``gan-d2`` ... ``gan-d64``), and the models of the VAE-versus-GAN
comparison, three seeds of each family: ``vae-d20`` with ``vae-d20-s1`` and ``vae-d20-s2``, and the DCGAN
chapter's network trained long, ``dcgan-s0`` ... ``dcgan-s2``. The VAEs are evaluated when written:
test negative ELBO, importance-weighted bounds and, for some, the log-likelihood estimate with its
standard error; the manifest keeps those numbers and the test curve of training. The GANs, and the VAEs of the
comparison, are evaluated by the Fréchet classifier distance of their samples, measured during training too.
Every file is an ordinary genmodels checkpoint (``gm.load_checkpoint`` and ``python -m genmodels sample``
read it) holding float16 weights only, listed with its sha256 in a ``manifest.json`` beside it. An
unconditional GAN's file holds its generator and the generator's weight average, not its discriminator
(``save_checkpoint(..., leave_out=("discriminator",))``: with the recipe's hidden layer the discriminator is
twice the size of the rest); the loaded model's ``discriminator`` is a
:class:`~genmodels.engine.checkpoints.LeftOut` that refuses to run. The conditional GAN keeps its projection
discriminator, which the conditional chapter reads.

:func:`load` looks for a model

1. in the set shipped inside the package (``genmodels/weights/zoo``), made by
   ``python -m genmodels zoo train --budget full --out code/genmodels/weights/zoo``;
2. in the user cache (``$GENMODELS_CACHE/zoo``, default ``~/.cache/genmodels/zoo``);
3. and otherwise trains it (the quick budget on a CPU, the full budget on a GPU), with a progress bar, and
   stores it in the cache for next time.

A file whose sha256 differs from its manifest entry is refused with :class:`ZooError`, never loaded.

Several processes may share the cache (two notebooks, a notebook and the CLI). Training a model and
updating a manifest each hold a lock file in the folder (``.NAME.lock``, ``.manifest.lock``; ``fcntl.flock``):
a process that asks for a model another one is training waits, then loads what the other wrote. Files are
written to a temporary name and renamed (:func:`genmodels.checkpoints.atomic_write`), so a crash or a full
disk never leaves half a file under a real name.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import os
import shlex
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Tuple, Union

import torch
from torch import nn

from .. import __version__
from ..core import GAN_LATENT_SIZES, VAE_LATENT_SIZES, WEIGHTS_DIR, UserError, eval_mode
from ..engine.checkpoints import (
    _NO_ROOM_ERRNOS,
    CheckpointError,
    _no_room_reason,
    atomic_write,
    load_checkpoint,
    save_checkpoint,
)
from ..gan import DCGAN_RECIPE

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

__all__ = [
    "VAE_LATENT_SIZES",
    "GAN_LATENT_SIZES",
    "BUDGETS",
    "ZooError",
    "ZooSpec",
    "SPECS",
    "SHIPPED_DIR",
    "names",
    "build_like",
    "spec",
    "cache_dir",
    "sha256_of",
    "read_manifest",
    "find",
    "load",
    "train",
]

BUDGETS = ("quick", "full")
MANIFEST = "manifest.json"
FORMAT = "genmodels-zoo"
SHIPPED_DIR = WEIGHTS_DIR / "zoo"

PathLike = Union[str, os.PathLike]


class ZooError(CheckpointError):
    """A zoo model that cannot be used: unknown name, a file that fails its hash, a broken manifest."""


@dataclass(frozen=True)
class ZooSpec:
    r"""How one model of the set is built, trained and evaluated.

    ``epochs`` maps a budget to the number of passes over the training set; ``train`` holds the fields of
    :class:`~genmodels.engine.loops.TrainConfig` that differ from its defaults. VAEs: dynamically binarized
    pixels, Adam 1e-3 with a cosine schedule, batch 128. GANs: DCGAN with ``channels`` feature maps at 14×14,
    non-saturating loss, batch 128, and the book's recipe (:data:`~genmodels.gan.DCGAN_RECIPE`: spectral norm in
    the discriminator and a hidden layer of 512 before its logit, Adam 4e-4 (0.5, 0.999), samples from the
    generator's weight average; the conditional GAN takes all but the hidden layer).

    Conditional models (``cvae-d2``, ``cvae-d20``: the VAE with the class one-hot into encoder and decoder;
    ``cgan``: the DCGAN with a projection discriminator) are scored like their unconditional kin, with the class
    asked for: a CVAE on :math:`-\log p(x \mid y)` with each test digit's label; their samples (classes 0..9 in
    equal shares) also get the share the classifier puts in the class asked for (``accuracy`` and
    ``accuracy_per_class``). The VQ-VAE (``vqvae``) gets its test reconstruction, codebook perplexity and dead
    codes, and the FCD of samples through the independent prior over codes fitted to the training digits.

    ``seed`` seeds the run (initialisation, data order, noise); the entries that differ only in it
    (``dcgan-s0`` ... ``dcgan-s2``, ``vae-d20`` and ``vae-d20-s1``, ``vae-d20-s2``) give the spread over
    seeds. ``fcd_every``: every this many epochs, measure the Fréchet classifier distance and the classes
    of samples from fixed noise (:func:`_evaluate_samples`, on the float32 weights being trained) and keep
    them, with the training seconds so far, in the manifest's ``curve`` (0: not measured).

    VAEs only: ``eval_k``, the importance-weighted bounds :math:`\mathcal L_k` measured on every test digit;
    ``nll``, ``(k, n)`` for the log-likelihood estimate :math:`-\mathcal L_k` with its standard error on all
    test digits or a fixed random ``n`` of them (seed 0), full budget only (``None``: not measured; it costs ``k`` decoder passes a digit); ``curve``: record
    the test negative ELBO after every epoch.
    """

    name: str
    kind: str
    model_config: Dict[str, Any]
    epochs: Dict[str, int]
    train: Dict[str, Any] = field(default_factory=dict)
    eval_k: Tuple[int, ...] = ()
    nll: Optional[Tuple[int, int]] = None
    curve: bool = False
    seed: int = 0
    fcd_every: int = 0

    def build(self) -> nn.Module:
        from ..engine.checkpoints import build_model

        return build_model(self.kind, dict(self.model_config))


def _vae(d: int, *, hidden_dim: int = 400, depth: int = 1, arch: str = "mlp") -> Dict[str, Any]:
    return {"latent_dim": d, "arch": arch, "hidden_dim": hidden_dim, "channels": 32, "depth": depth}


def _gan(d: int, *, channels: int) -> Dict[str, Any]:
    """A DCGAN's config with the book's recipe (:data:`~genmodels.gan.DCGAN_RECIPE`)."""
    return {
        "latent_dim": d,
        "arch": "dcgan",
        "hidden_dim": 256,
        "channels": channels,
        "minibatch_kernels": 0,
        "minibatch_kernel_dim": 5,
        **DCGAN_RECIPE["model"],
    }


VAE_TRAIN = {"lr_schedule": "cosine"}  # Adam 1e-3 decayed to 0: the last epochs settle instead of jittering
# The zoo's DCGANs: the recipe at its constant learning rate for 15 epochs. An earlier set decayed the rate to 0
# along a cosine over 25 epochs: that flattened the curve but cost quality (FCD 136.5 against 115.1 at a constant
# rate after the same 25 epochs), so the zoo keeps the rate constant and says how far the curve still falls.
# The set before this one, without the recipe's hidden layer before the discriminator's logit, had 30 epochs and
# reached FCD 100.7 +- 2.8 (3 seeds); with the layer, seed 0 is at 86.3 after 10 (the DCGAN chapter's ablation),
# and this set reached 52.1 +- 1.4 after 15, still falling (the manifest keeps each seed's curve).
DCGAN_EPOCHS = 15
CGAN_EPOCHS = 20  # ~45 min on one CPU thread; compared with the DCGANs' curves at the same epoch


# The conditional GAN takes the recipe's spectral norm and weight average; it has no hidden layer before its logit
# (CGANConfig has no such field): its projection discriminator already trains it to FCD 7.2 in 20 epochs.
_CGAN_RECIPE = {k: v for k, v in DCGAN_RECIPE["model"].items() if k in ("spectral_norm", "ema")}


def _specs() -> Dict[str, ZooSpec]:
    specs = {}
    for d in VAE_LATENT_SIZES:
        specs[f"vae-d{d}"] = ZooSpec(
            f"vae-d{d}",
            "vae",
            _vae(d),
            {"quick": 10, "full": 100},
            VAE_TRAIN,
            eval_k=(1, 10, 100),
            nll=(5000, 10_000) if d == 20 else None,
            curve=d == 20,
        )
    specs["vae-mlp2-d50"] = ZooSpec(
        "vae-mlp2-d50",
        "vae",
        _vae(50, hidden_dim=512, depth=2),
        {"quick": 10, "full": 150},
        VAE_TRAIN,
        eval_k=(1, 10, 100),
        nll=(5000, 10_000),
        curve=True,
    )
    specs["vae-conv-d50"] = ZooSpec(
        "vae-conv-d50",
        "vae",
        _vae(50, hidden_dim=512, arch="conv"),
        {"quick": 3, "full": 50},
        VAE_TRAIN,
        eval_k=(1, 10, 100),
        nll=(5000, 500),
        curve=True,
    )
    for seed in (1, 2):  # the baseline VAE again from other seeds, for the spread in the VAE-versus-GAN chapter
        specs[f"vae-d20-s{seed}"] = ZooSpec(
            f"vae-d20-s{seed}", "vae", _vae(20), {"quick": 10, "full": 100}, VAE_TRAIN, seed=seed, fcd_every=5
        )
    for seed in range(3):  # the DCGAN chapter's network (64 feature maps, noise size 100), trained long
        specs[f"dcgan-s{seed}"] = ZooSpec(
            f"dcgan-s{seed}",
            "gan",
            _gan(100, channels=64),
            {"quick": 2, "full": DCGAN_EPOCHS},
            dict(DCGAN_RECIPE["train"]),
            seed=seed,
            fcd_every=1,
        )
    # The conditional-models chapter: the baseline VAE with the class as a second input, with a 2-D code and a
    # 20-D one (the 20-D code can carry the class itself), and the DCGAN chapter's network with a projection
    # discriminator, trained like dcgan-s0 (its curve gives the DCGAN at the same epoch).
    for d in (2, 20):
        specs[f"cvae-d{d}"] = ZooSpec(
            f"cvae-d{d}",
            "cvae",
            {"latent_dim": d, "hidden_dim": 400, "depth": 1, "num_classes": 10},
            {"quick": 5, "full": 50},
            VAE_TRAIN,
            eval_k=(1, 100),
        )
    specs["cgan"] = ZooSpec(
        "cgan",
        "cgan",
        {"latent_dim": 100, "channels": 64, "num_classes": 10, **_CGAN_RECIPE},
        {"quick": 2, "full": CGAN_EPOCHS},
        dict(DCGAN_RECIPE["train"]),
        fcd_every=5,
    )
    # The VQ-VAE chapter: 128 codes of size 16 on a 7x7 grid, EMA codebook with dead-code restarts (the
    # restarts are what keeps the codebook in use: the chapter measures it).
    vq = {"num_codes": 128, "code_dim": 16, "channels": 32, "beta": 0.25, "codebook_update": "ema"}
    vq.update(ema_decay=0.99, restart_dead_codes=True, restart_after=100)
    specs["vqvae"] = ZooSpec("vqvae", "vqvae", vq, {"quick": 3, "full": 20})
    for d in GAN_LATENT_SIZES:
        specs[f"gan-d{d}"] = ZooSpec(
            f"gan-d{d}",
            "gan",
            _gan(d, channels=32),
            {"quick": 10, "full": 5},
            dict(DCGAN_RECIPE["train"]),
        )
    return specs


SPECS: Dict[str, ZooSpec] = _specs()


def build_like(kind: str, latent_dim: int) -> nn.Module:
    """An untrained model built like the zoo's (``vae-d20``, ``gan-d16``) with another latent size."""
    from ..engine.checkpoints import build_model

    reference = spec("vae-d20" if kind == "vae" else "gan-d16")
    return build_model(reference.kind, dict(reference.model_config, latent_dim=latent_dim))


def names(kind: Optional[str] = None) -> List[str]:
    """The names of the set, e.g. ``["vae-d2", ..., "gan-d64"]``; ``kind="vae"`` or ``"gan"`` filters."""
    return [n for n, s in SPECS.items() if kind is None or s.kind == kind]


def spec(name: str) -> ZooSpec:
    """The :class:`ZooSpec` of ``name``; a clear :class:`ZooError` for an unknown name."""
    try:
        return SPECS[name]
    except KeyError:
        raise ZooError(f"no model called {name!r} in the set; the names are {', '.join(SPECS)}") from None


def cache_dir() -> Path:
    """``$GENMODELS_CACHE/zoo`` (default ``~/.cache/genmodels/zoo``): where models trained on demand live."""
    env = os.environ.get("GENMODELS_CACHE")
    root = Path(env).expanduser() if env else Path.home() / ".cache" / "genmodels"
    return root / "zoo"


def sha256_of(path: PathLike) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_manifest(folder: PathLike) -> Dict[str, Dict[str, Any]]:
    """The ``models`` of ``folder/manifest.json`` (empty when there is no manifest)."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        return {}
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ZooError(
            f"{path} is not readable JSON ({err}); delete it and the models it listed will be trained again"
        ) from err
    if (
        not isinstance(manifest, dict)
        or manifest.get("format") != FORMAT
        or not isinstance(manifest.get("models"), dict)
    ):
        raise ZooError(f"{path} is not a genmodels zoo manifest (no '{FORMAT}' format marker)")
    return manifest["models"]


def _write_json_atomic(payload: Dict[str, Any], path: Path) -> None:
    text = json.dumps(payload, indent=1, sort_keys=True) + "\n"
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))


_LOCKS: Dict[str, threading.RLock] = {}  # lock file -> the lock of this process's threads
_DEPTH: Dict[str, int] = {}  # lock file -> how many times this process holds it
_LOCKS_GUARD = threading.Lock()


@contextlib.contextmanager
def _locked(folder: Path, what: str, *, waiting: str = ""):
    """Hold ``folder/.WHAT.lock`` (``fcntl.flock``, exclusive) across processes; re-entrant within one.

    ``waiting`` is printed when another process holds the lock, before waiting for it. Without ``fcntl``
    (Windows) a warning says that processes sharing the folder are not kept apart; in a folder where no
    lock file can be created (read-only) nothing is locked, as nothing can be written there either.
    """
    path = folder / f".{what}.lock"
    key = os.path.abspath(path)
    with _LOCKS_GUARD:
        thread_lock = _LOCKS.setdefault(key, threading.RLock())
    with thread_lock:
        held = _DEPTH.get(key, 0)
        f = None
        if not held:
            if fcntl is None:
                warnings.warn(
                    f"no fcntl on this platform: {folder} is not locked, so two processes that train the "
                    "same model at once both train it (each file stays whole)",
                    RuntimeWarning,
                    stacklevel=3,
                )
            else:
                try:
                    folder.mkdir(parents=True, exist_ok=True)
                    f = open(path, "a")
                except OSError:
                    f = None
        try:
            if f is not None:
                try:
                    fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    if waiting:
                        print(f"{waiting} (lock {path})", flush=True)
                    fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            _DEPTH[key] = held + 1
            try:
                yield
            finally:
                _DEPTH[key] = held
        finally:
            if f is not None:
                f.close()  # closing the file releases the lock


def _update_manifest(folder: Path, name: str, entry: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    """Set ``name``'s entry in ``folder/manifest.json`` (read, change, write atomically, all under the
    folder's manifest lock, so that concurrent updates of other models are not lost); returns the old entry."""
    with _locked(folder, "manifest"):
        models = read_manifest(folder)
        old = models.get(name)
        models[name] = entry
        _write_json_atomic({"format": FORMAT, "version": 1, "models": dict(sorted(models.items()))}, folder / MANIFEST)
    return old


def find(name: str, *, folders: Optional[Iterable[PathLike]] = None) -> Optional[Dict[str, Any]]:
    """Where ``name`` is: its manifest entry plus ``path`` (the file), or ``None``.

    Searches the shipped set, then the cache (or ``folders`` in that order). An entry whose file is
    missing is skipped; a file that exists is returned without reading it (:func:`load` checks the hash).
    """
    spec(name)
    for folder in folders if folders is not None else (SHIPPED_DIR, cache_dir()):
        folder = Path(folder)
        entry = read_manifest(folder).get(name)
        if entry is None:
            continue
        path = folder / entry["file"]
        if path.is_file():
            return {**entry, "path": str(path)}
    return None


def _verified_load(entry: Dict[str, Any], name: str, device) -> nn.Module:
    path = Path(entry["path"])
    actual = sha256_of(path)
    if actual != entry["sha256"]:
        if path.parent == SHIPPED_DIR:
            remedy = (
                f"Reinstall the package (`pip install --force-reinstall genmodels`; in a clone, `git checkout -- "
                f"{path}`), or delete the file and load {name!r} again, which trains it into the cache "
                f"{cache_dir()}."
            )
        else:  # the cache, where `zoo train` writes by default
            out = "" if path.parent == cache_dir() else f" --out {shlex.quote(str(path.parent))}"
            remedy = (
                f"Delete the file and load {name!r} again, which trains it anew, or train it now with "
                f"`python -m genmodels zoo train --only {name} --budget {entry.get('budget', 'quick')}{out}`."
            )
        raise ZooError(
            f"{path} does not match its manifest: sha256 {actual[:16]}... but the manifest lists "
            f"{entry['sha256'][:16]}... The file is corrupt or was replaced, so it is not loaded. {remedy}"
        )
    s = spec(name)
    model = load_checkpoint(path, map_location=device, kind=s.kind, latent_dim=s.model_config.get("latent_dim"))
    model.zoo_info = {k: v for k, v in entry.items() if k != "path"} | {"name": name, "path": str(path)}
    return model


def load(
    name: str,
    *,
    device: Union[str, torch.device] = "cpu",
    train_if_missing: bool = True,
    budget: Optional[str] = None,
    progress: bool = True,
    data=None,
    test_data=None,
) -> nn.Module:
    """Load a model of the set by name, in eval mode, after checking its sha256 against its manifest.

    Parameters
    ----------
    name : one of :func:`names`, e.g. ``"vae-d10"`` or ``"gan-d64"``.
    device : where to put the model.
    train_if_missing : when the model is neither shipped nor cached, train it (else raise :class:`ZooError`).
    budget : ``"quick"`` or ``"full"`` for such training; default full on CUDA, quick elsewhere.
    progress : show the training progress bar.
    data, test_data : training and test images for such training (default ``gm.load_mnist``).

    The model carries ``zoo_info``: the manifest entry (data, budget, metrics, seconds) and the file's path.
    Another process training the same model into the cache is waited for (its lock), not raced.
    """
    from ..core import pick_device

    device = pick_device(device)
    entry = find(name)
    if entry is not None and Path(entry["path"]).parent == SHIPPED_DIR:
        return _verified_load(entry, name, device)
    cache = cache_dir()
    missing = ZooError(
        f"{name!r} is neither shipped with the package nor in the cache {cache}; "
        f"train it with `python -m genmodels zoo train --only {name}` or load it with train_if_missing=True"
    )
    if entry is None and not train_if_missing:
        raise missing
    # Under the model's lock: a process training it now finishes first, and the file found stays in place.
    with _locked(cache, name, waiting=f"waiting for another process that is training {name} into {cache}"):
        entry = find(name, folders=[cache])
        if entry is None:
            if not train_if_missing:
                raise missing
            if budget is None:
                budget = "full" if device.type == "cuda" else "quick"
            train(
                [name],
                out_dir=cache,
                budget=budget,
                device=device,
                progress=progress,
                data=data,
                test_data=test_data,
                content_addressed=True,
            )
            entry = find(name, folders=[cache])
            if entry is None:  # pragma: no cover - train() writes the entry it returns
                raise ZooError(f"training {name!r} did not leave a model in {cache}")
        return _verified_load(entry, name, device)


def _half_copy(model: nn.Module) -> nn.Module:
    """A float16 copy of the model (integer buffers such as batch-norm counters stay as they are)."""
    return copy.deepcopy(model).cpu().half()


def _describe(images) -> str:
    """Which data, without file paths (an ImageSet's ``origin``), else just how many images."""
    return getattr(images, "origin", None) or f"{len(images[0] if isinstance(images, tuple) else images):,} images"


def _evaluate_vae(model: nn.Module, test_images, s: "ZooSpec", budget: str) -> Dict[str, Any]:
    """Test negative ELBO and its parts, the negative bounds ``iwae_K`` for ``s.eval_k`` (nats per image, on
    every test digit, under the fixed evaluation binarization), and with the full budget ``s.nll``'s estimate
    with its standard error (minutes of CPU: not for the quick models trained on first use)."""
    from ..engine.loops import estimate_nll, evaluate_vae

    x = test_images[0] if isinstance(test_images, tuple) else test_images
    labels = None
    if s.kind == "cvae":  # scored on -log p(x | y), with the test digits' own labels
        if not isinstance(test_images, tuple):
            raise UserError(f"{s.name} is conditional: its test data must be (images, labels), as gm.load_mnist gives")
        labels = test_images[1]
    metrics = evaluate_vae(model, x, k=tuple(s.eval_k), labels=labels)
    out = {
        "test_nelbo": metrics["nelbo"],
        "test_recon": metrics["recon"],
        "test_kl": metrics["kl"],
        **{f"iwae_{k}": metrics[f"iwae_{k}"] for k in s.eval_k},
        "test_images": len(x),
        "test_data": _describe(test_images),
    }
    if s.nll is not None and budget == "full":
        k, n = s.nll
        # all test digits, or a fixed random n of them: the test file is ordered by source (its first 5,000
        # digits are the cleaner ones), so its first n would flatter the model
        chosen = x if n >= len(x) else x[torch.randperm(len(x), generator=torch.Generator().manual_seed(0))[:n]]
        out["nll"] = estimate_nll(model, chosen, k=k)
    return out


def _evaluate_samples(model: nn.Module, test_images, device, n: int = 10_000, prior=None) -> Dict[str, Any]:
    """Fréchet classifier distance between ``n`` samples (fixed noise; a VAE's are its Bernoulli means) and ``n``
    random test digits (all of MNIST's 10,000), and the number of digit classes the shipped classifier finds in
    the samples (at least 2 % each).

    A conditional model (``num_classes``) is asked for the classes 0, 1, ..., 9, 0, 1, ... (equal shares, as in
    the test set within 1.5 %); it also gets its class-conditional ``accuracy`` (the share of samples the
    classifier gives the class asked for) and ``accuracy_per_class``. A VQ-VAE samples through ``prior``."""
    from ..metrics.classifier import load_classifier
    from ..metrics.coverage import class_histogram, classes_covered
    from ..metrics.frechet import frechet_classifier_distance

    x = test_images[0] if isinstance(test_images, tuple) else test_images
    n = min(n, len(x))
    classifier = load_classifier(device=device)
    g = torch.Generator(device="cpu").manual_seed(1234)
    out: Dict[str, Any] = {}
    if prior is not None:
        fakes = model.sample(n, prior=prior, generator=g).cpu()
    else:
        z = torch.randn(n, model.latent_dim, generator=g).to(model.device)
        if hasattr(model, "num_classes"):
            y = torch.arange(n) % model.num_classes
            fakes = torch.cat(
                [model.sample(z=zc, y=yc.to(model.device)).cpu() for zc, yc in zip(z.split(1000), y.split(1000))]
            )
            # the classifier's histogram of the samples asked for each class: its diagonal share is the accuracy
            rows = [class_histogram(fakes[y == k], classifier=classifier) for k in range(model.num_classes)]
            per_class = [float(row[k]) / float(row.sum()) for k, row in enumerate(rows)]
            hits = sum(float(row[k]) for k, row in enumerate(rows))
            out.update(accuracy=hits / n, accuracy_per_class=per_class)
        else:
            fakes = model.sample(z=z).cpu()
    reals = x[torch.randperm(len(x), generator=g)[:n]]
    fcd = frechet_classifier_distance(fakes, reals, classifier=classifier)
    hist = class_histogram(fakes, classifier=classifier)
    return {
        "fcd": fcd,
        "fcd_images": n,
        "classes_covered": classes_covered(hist),
        **out,
        "test_data": _describe(test_images),
    }


def _evaluate_vqvae(model: nn.Module, train_images, test_images, device) -> Dict[str, Any]:
    """A VQ-VAE on the test digits (:func:`~genmodels.engine.loops.evaluate_vqvae`: reconstruction in nats,
    codebook perplexity and dead codes), and the FCD of its samples through the independent prior fitted to the
    training digits' codes (the simplest prior; the chapter adds an autoregressive one)."""
    from ..engine.loops import evaluate_vqvae, vqvae_codes
    from ..vqvae import fit_independent_prior

    x = test_images[0] if isinstance(test_images, tuple) else test_images
    prior = fit_independent_prior(vqvae_codes(model, train_images), num_codes=model.num_codes)
    out = evaluate_vqvae(model, x, prior=prior)
    out.update(test_images=len(x), test_data=_describe(test_images))
    out["samples_independent_prior"] = _evaluate_samples(model, test_images, device, prior=prior)
    return out


def train(
    names_: Optional[Iterable[str]] = None,
    *,
    out_dir: PathLike,
    budget: str = "full",
    device: Union[str, torch.device] = "auto",
    progress: bool = True,
    data=None,
    test_data=None,
    seed: Optional[int] = None,
    content_addressed: bool = False,
) -> Dict[str, Dict[str, Any]]:
    """Train models of the set and write each, with float16 weights, and its manifest entry to ``out_dir``.

    Each model is seeded with ``seed`` (``None``: its spec's own), trained from scratch, rounded to float16,
    evaluated (VAEs: test negative ELBO with its parts; GANs: Fréchet classifier distance to test digits and
    classes covered),
    and written atomically; then its manifest entry (file, sha256, size, config, training settings, data,
    budget, epochs, device, seconds, metrics, and for ``curve`` specs the test negative ELBO after every
    epoch) replaces the old one. ``content_addressed`` names files ``NAME.SHA12.pt``
    (the cache does, so two processes training the same model cannot leave a manifest that lists the
    other's file). Returns the new entries.
    """
    from ..core import pick_device, seed_everything
    from ..engine.loops import train_cgan, train_cvae, train_gan, train_vae, train_vqvae
    from ..engine.sources import load_mnist

    if budget not in BUDGETS:
        raise UserError(f"budget must be one of {BUDGETS}, got {budget!r}")
    selected = list(names_) if names_ is not None else names()
    for n in selected:
        spec(n)
    out_dir = Path(out_dir)
    device = pick_device(device)
    data = data if data is not None else load_mnist(split="train")
    test_data = test_data if test_data is not None else load_mnist(split="test")
    written = {}
    for name in selected:
        s = spec(name)
        epochs = s.epochs[budget]
        run_seed = s.seed if seed is None else seed
        seed_everything(run_seed)
        model = s.build()
        start = time.perf_counter()
        settings = dict(s.train, num_epochs=epochs, seed=run_seed, device=str(device), progress=progress)
        curve_data = test_data if s.curve else None
        same_run = {k: v for k, v in settings.items() if k not in ("device", "progress")}
        partial = _Partial(out_dir, name, {"budget": budget, "train": same_run, "data": _describe(data)})
        samples_curve = partial.samples_curve
        if progress:
            resumed = f", resuming after epoch {partial.epoch}" if partial.epoch else ""
            print(f"training {name} ({budget} budget: {epochs} epochs on {device}{resumed})", flush=True)

        def measure(epoch: int, history, model=model, every=s.fcd_every, last=epochs, log=samples_curve, run=partial):
            if every and ((epoch + 1) % every == 0 or epoch + 1 == last):
                with eval_mode(model):
                    m = _evaluate_samples(model, test_data, device)
                while log["epoch"] and log["epoch"][-1] >= epoch + 1:  # an epoch redone after a kill
                    for values in log.values():
                        values.pop()
                log["epoch"].append(epoch + 1)
                log["fcd"].append(m["fcd"])
                log["classes_covered"].append(m["classes_covered"])
                log["seconds"].append(round(sum(history.epochs["seconds"]), 2))
            run.save_curve()

        loop = dict(callback=measure, checkpoint=partial.checkpoint, resume=True, **settings)
        try:
            if s.kind in ("vae", "cvae"):
                history = (train_vae if s.kind == "vae" else train_cvae)(model, data, test_data=curve_data, **loop)
            elif s.kind == "vqvae":
                history = train_vqvae(model, data, **loop)
            else:
                history = (train_gan if s.kind == "gan" else train_cgan)(model, data, **loop)
        except OSError as err:
            if not partial.checkpoint.exists():  # nothing to resume from: leave the folder as it was
                partial.remove()
            if err.errno in _NO_ROOM_ERRNOS:
                raise _no_room(err, name, out_dir) from err
            raise
        # this process's time, plus the training epochs of the processes it resumed (their measuring aside)
        seconds = time.perf_counter() - start + sum(history.epochs["seconds"][: partial.epoch])
        curve = {"test_nelbo": history.epochs["test_nelbo"], "seconds": history.epochs["seconds"]} if curve_data else {}
        if s.fcd_every:
            curve.update(samples=samples_curve, seconds=history.epochs["seconds"])
        small = _half_copy(model)
        # Measure what is shipped: the float16 weights, back in float32 for the arithmetic.
        evaluated = s.build()
        evaluated.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in small.state_dict().items()})
        evaluated.to(device).eval()
        if s.kind in ("gan", "cgan"):
            metrics = _evaluate_samples(evaluated, test_data, device)
        elif s.kind == "vqvae":
            metrics = _evaluate_vqvae(evaluated, data, test_data, device)
        elif s.kind == "cvae":
            metrics = _evaluate_vae(evaluated, test_data, s, budget)
            metrics["samples"] = _evaluate_samples(evaluated, test_data, device)
        else:
            metrics = _evaluate_vae(evaluated, test_data, s, budget)
            if s.fcd_every:  # the samples' distance too, for the comparison with GANs
                metrics["samples"] = _evaluate_samples(evaluated, test_data, device)
        with _locked(out_dir, name):
            written[name] = _store(
                out_dir,
                name,
                small,
                content_addressed,
                {
                    "kind": s.kind,
                    "model_config": dict(s.model_config),
                    "budget": budget,
                    "epochs": epochs,
                    "train_config": dict(s.train),
                    "seed": run_seed,
                    "device": str(device),
                    "train_seconds": round(seconds, 2),
                    "train_data": _describe(data),
                    "metrics": metrics,
                    **({"curve": curve} if curve else {}),
                    **({"events": list(history.events)} if s.kind in ("gan", "cgan") else {}),
                    "package_version": __version__,
                    "torch_version": torch.__version__.split("+")[0],
                },
                _describe(data),
            )
        partial.remove()
    return written


def _no_room(err: OSError, name: str, out_dir: Path) -> OSError:
    """The error for a model (or its training checkpoint) that found no room in ``out_dir``: why, and what to do."""
    return OSError(
        err.errno,
        (
            f"could not store {name} in {out_dir}: {_no_room_reason(err.errno)} (for the cache: set "
            f"GENMODELS_CACHE); then load {name!r} again, or run `python -m genmodels zoo train --only {name}`. "
            f"The models already there and {MANIFEST} are unchanged"
        ),
        str(out_dir),
    )


class _Partial:
    """The unfinished run of one zoo model in ``out_dir``: the training checkpoint written after every epoch
    (``.NAME.partial.pt``) and, beside it, the samples curve measured so far and the settings of the run
    (``.NAME.partial.json``). A zoo run that is killed (a closed laptop, a lost session) resumes from there
    when the same command is run again; a leftover from other settings (budget, seed, recipe, data) is
    set aside, with a message, and the model trained from scratch.
    """

    def __init__(self, out_dir: Path, name: str, settings: Dict[str, Any]):
        self.checkpoint = out_dir / f".{name}.partial.pt"
        self.sidecar = out_dir / f".{name}.partial.json"
        self.settings = json.loads(json.dumps(settings))  # as it reads back from the file
        self.samples_curve: Dict[str, List[float]] = {"epoch": [], "fcd": [], "classes_covered": [], "seconds": []}
        self.epoch = 0
        if not self.checkpoint.exists():
            return
        try:
            saved = json.loads(self.sidecar.read_text())
            same = saved["settings"] == self.settings
        except (OSError, ValueError, KeyError, TypeError):
            saved, same = None, False
        if not same:
            print(
                f"{self.checkpoint} is from a run with other settings (or has lost its {self.sidecar.name}): "
                f"training {name} from scratch",
                flush=True,
            )
            self.remove()
            return
        self.samples_curve.update(saved["samples_curve"])
        from ..engine.checkpoints import read_checkpoint

        self.epoch = int(read_checkpoint(self.checkpoint, map_location="cpu").get("epoch") or 0)

    def save_curve(self) -> None:
        payload = json.dumps({"settings": self.settings, "samples_curve": self.samples_curve}).encode()
        atomic_write(self.sidecar, lambda f: f.write(payload))

    def remove(self) -> None:
        self.checkpoint.unlink(missing_ok=True)
        self.sidecar.unlink(missing_ok=True)


def _store(
    out_dir: Path, name: str, small: nn.Module, content_addressed: bool, about: Dict[str, Any], data_source: str
) -> Dict[str, Any]:
    """Write one trained model and its manifest entry (``about`` plus file, sha256, bytes); returns the entry.

    The checkpoint goes to a name of this process (:func:`genmodels.checkpoints.atomic_write`), the manifest
    is updated, and only then is the file renamed to its own name: a full disk at either write raises an
    ``OSError`` that says so and leaves the folder's models and manifest as they were.
    """
    tmp = out_dir / f".{name}.{os.getpid()}.pt"
    try:
        # a GAN is kept for sampling: its generators only (the discriminator can be many times their size)
        # an unconditional GAN's discriminator serves no reader; the cgan's is read by the conditional chapter
        leave_out = ("discriminator",) if about.get("kind") == "gan" else ()
        save_checkpoint(tmp, small, data_source=data_source, zoo_name=name, leave_out=leave_out)
        digest = sha256_of(tmp)
        path = out_dir / (f"{name}.{digest[:12]}.pt" if content_addressed else f"{name}.pt")
        entry = {"file": path.name, "sha256": digest, "bytes": tmp.stat().st_size, **about}
        old = _update_manifest(out_dir, name, entry)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        if err.errno not in _NO_ROOM_ERRNOS:
            raise
        raise _no_room(err, name, out_dir) from err
    os.replace(tmp, path)  # needs no space; a reader holding the model's lock never sees the gap
    if old is not None and old.get("file") not in (None, path.name):
        try:
            (out_dir / old["file"]).unlink()
        except OSError:
            pass
    return entry
