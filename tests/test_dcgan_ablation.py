"""tools/dcgan_ablation.py: a run keeps a training checkpoint after every epoch, resumes from it to exactly the
run it would have been, trains a finished run on when asked for more epochs, and refuses a checkpoint of
another run."""

import gzip
import importlib.util
import json
import struct
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def _tool():
    spec = importlib.util.spec_from_file_location("dcgan_ablation", REPO_ROOT / "tools" / "dcgan_ablation.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool


def _write_idx(path: Path, array: np.ndarray) -> None:
    """A gzipped IDX file, written by hand: magic 0x0803 / 0x0801, then the sizes, then the bytes."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(gzip.compress(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()))


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    """Four IDX files of random digits: 256 to train on, 200 to measure against."""
    monkeypatch.setenv("GENMODELS_OFFLINE", "1")
    rng = np.random.default_rng(0)
    folder = tmp_path / "mnist"
    folder.mkdir()
    for prefix, n in (("train", 250), ("t10k", 200)):
        _write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8))
        _write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", rng.integers(0, 10, size=n, dtype=np.uint8))
    return folder


def test_a_resumed_run_is_the_run_it_would_have_been(data_dir, tmp_path, monkeypatch):
    tool = _tool()
    monkeypatch.setattr(tool, "N_EVAL", 200)  # samples per FCD: all 200 test digits
    run = lambda epochs, out: tool.run("recipe", epochs=epochs, seed=3, data_dir=str(data_dir), out=out)  # noqa: E731

    whole = run(3, tmp_path / "whole")  # three epochs in one go
    assert (tmp_path / "whole" / "recipe-s3.ckpt.pt").exists()
    assert len(whole["fcd"]) == 3 and whole["epochs"] == 3

    first = run(1, tmp_path / "parts")  # one epoch, then trained on to three from its checkpoint
    assert len(first["fcd"]) == 1
    resumed = run(3, tmp_path / "parts")
    for key in ("fcd", "fcd_ema", "classes"):
        assert resumed[key] == whole[key], key  # the same numbers, not merely close ones
    stored = json.loads((tmp_path / "parts" / "recipe-s3.json").read_text())
    assert stored["finished"] and stored["fcd_ema"] == whole["fcd_ema"] and stored["device"] == "cpu"
    assert len(stored["seconds"]) == 3 and stored["seconds"] == sorted(stored["seconds"])

    # a checkpoint beside the log of another run is refused, not silently continued
    stored["train"] = {"lr": 1e-3}
    (tmp_path / "parts" / "recipe-s3.json").write_text(json.dumps(stored))
    with pytest.raises(SystemExit, match="other settings"):
        run(4, tmp_path / "parts")
