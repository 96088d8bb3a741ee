"""What a reader relies on when things go wrong: processes sharing the zoo cache, and a disk without room.

Each test runs real child processes (``python -c``), started together behind a barrier of files:

* two processes ask the zoo for the same missing model at once: one trains it, the other waits for the
  lock and loads what the first wrote; the manifest lists it once and the file matches its hash;
* three processes update one manifest at once: no update is lost (the read-modify-write is locked);
* a file-size limit (``RLIMIT_FSIZE``, with ``SIGXFSZ`` ignored so the write fails with ``EFBIG``) makes a
  checkpoint write and a zoo write fail: the previous files are left whole and the error says what
  happened, where, and what to do.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import genmodels as gm
from genmodels.app import zoo

pytestmark = pytest.mark.slow  # real processes, started together

START_TIMEOUT_S = 180
RUN_TIMEOUT_S = 300

# A child's prelude: tiny training and test sets from the offline subset, and nothing shipped.
PRELUDE = r"""
import json, os, sys, time
from pathlib import Path
import genmodels as gm
from genmodels.app import zoo

def tiny(split):
    d = gm.load_mnist(split, verbose=False)
    return gm.ImageSet(d[0][:256], d[1][:256], "MNIST", split, f"the first 256 {split} digits", True)

def wait_for_go(folder):
    (folder / f"ready.{os.getpid()}").touch()
    while not (folder / "go").exists():
        time.sleep(0.005)
"""

ASK_FOR_A_MISSING_MODEL = (
    PRELUDE
    + r"""
folder = Path(sys.argv[1])
zoo.SHIPPED_DIR = folder / "shipped"            # nothing shipped: the model is missing
train, test = tiny("train"), tiny("test")
trainings = []
real_train = zoo.train
def counted_train(*args, **kwargs):
    trainings.append(args)
    return real_train(*args, **kwargs)
zoo.train = counted_train
wait_for_go(folder)
model = zoo.load("vae-d2", data=train, test_data=test, progress=False)
print(json.dumps({"trained": len(trainings), "sha256": model.zoo_info["sha256"], "latent_dim": model.latent_dim}))
"""
)

UPDATE_THE_MANIFEST = (
    PRELUDE
    + r"""
folder, tag, n = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
wait_for_go(folder)
for i in range(n):
    zoo._update_manifest(folder / "zoo", f"{tag}-{i}", {"file": f"{tag}-{i}.pt", "sha256": "0" * 64})
"""
)

WRITE_WITHOUT_ROOM = (
    PRELUDE
    + r"""
import resource, signal
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)   # the write then fails with EFBIG instead of killing the process
what, target, limit = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
if what == "checkpoint":
    model = gm.VAE(latent_dim=2, arch="mlp")
    write = lambda: gm.save_checkpoint(target, model, step=1)
else:
    train, test = tiny("train"), tiny("test")
    write = lambda: zoo.train(["vae-d2"], out_dir=target, budget="quick", device="cpu", progress=False,
                              data=train, test_data=test, seed=1, content_addressed=True)
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
try:
    write()
except OSError as err:
    print(json.dumps({"errno": err.errno, "message": str(err)}))
else:
    print(json.dumps({"errno": None}))
"""
)


def _env(tmp_path: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "GENMODELS_DATA"}
    env.update(GENMODELS_CACHE=str(tmp_path / "cache"), GENMODELS_OFFLINE="1")
    return env


def _run_together(tmp_path: Path, code: str, argvs: list[list[str]]) -> list[subprocess.CompletedProcess]:
    """Start one child per argv, let them all go at once when all are ready, and return their results."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    children = [
        subprocess.Popen(
            [sys.executable, "-c", code, *argv],
            env=_env(tmp_path),
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for argv in argvs
    ]
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while len(list(tmp_path.glob("ready.*"))) < len(children):
            failed = [c for c in children if c.poll() is not None]
            assert not failed, failed[0].communicate()
            assert time.monotonic() < deadline, "the children did not get ready in time"
            time.sleep(0.02)
        (tmp_path / "go").touch()
        results = []
        for child, argv in zip(children, argvs):
            out, err = child.communicate(timeout=RUN_TIMEOUT_S)
            results.append(subprocess.CompletedProcess(argv, child.returncode, out, err))
            assert child.returncode == 0, f"child {argv} exited with {child.returncode}:\n{out}\n{err[-4000:]}"
        return results
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()


def _last_json(text: str) -> dict:
    return json.loads(text.strip().splitlines()[-1])


def _listing(folder: Path) -> dict:
    """Name -> bytes of the files in ``folder``, lock files aside (they stay, empty, by design)."""
    return {p.name: p.read_bytes() for p in folder.iterdir() if not p.name.endswith(".lock")}


# --- two processes, one cache -------------------------------------------------------------------------


def test_two_processes_asking_for_the_same_missing_model_train_it_once(tmp_path, monkeypatch):
    runs = _run_together(tmp_path, ASK_FOR_A_MISSING_MODEL, [[str(tmp_path)], [str(tmp_path)]])
    reports = [_last_json(r.stdout) for r in runs]
    assert sorted(r["trained"] for r in reports) == [0, 1], reports  # one trained, the other waited
    waited = next(run for run, report in zip(runs, reports) if report["trained"] == 0)
    assert "waiting for another process that is training vae-d2" in waited.stdout
    assert reports[0]["sha256"] == reports[1]["sha256"] and reports[0]["latent_dim"] == 2

    cache = tmp_path / "cache" / "zoo"
    text = (cache / zoo.MANIFEST).read_text()
    manifest = json.loads(text)  # valid JSON ...
    assert list(manifest["models"]) == ["vae-d2"] and text.count('"vae-d2"') == 1  # ... listing the model once
    entry = manifest["models"]["vae-d2"]
    assert entry["sha256"] == reports[0]["sha256"]
    files = sorted(_listing(cache))
    assert files == sorted([zoo.MANIFEST, entry["file"]]), files  # one file, no temporary left
    assert hashlib.sha256((cache / entry["file"]).read_bytes()).hexdigest() == entry["sha256"]

    monkeypatch.setattr(zoo, "SHIPPED_DIR", tmp_path / "shipped")
    monkeypatch.setenv("GENMODELS_CACHE", str(tmp_path / "cache"))
    model = zoo.load("vae-d2", train_if_missing=False)
    assert isinstance(model, gm.VAE) and model.zoo_info["sha256"] == entry["sha256"]
    assert torch.isfinite(model.sample(4)).all()


def test_concurrent_manifest_updates_lose_nothing(tmp_path):
    n = 40
    tags = ["a", "b", "c"]
    _run_together(tmp_path, UPDATE_THE_MANIFEST, [[str(tmp_path), tag, str(n)] for tag in tags])
    models = zoo.read_manifest(tmp_path / "zoo")
    assert sorted(models) == sorted(f"{tag}-{i}" for tag in tags for i in range(n))
    assert sorted(_listing(tmp_path / "zoo")) == [zoo.MANIFEST]  # no temporary manifest left


def test_a_lock_is_reentrant_within_a_process_and_exclusive_across_processes(tmp_path):
    """The lock load() holds while train() takes it again must not deadlock; another process must wait."""
    fcntl = pytest.importorskip("fcntl")
    with zoo._locked(tmp_path, "vae-d2"):
        with zoo._locked(tmp_path, "vae-d2"):
            with open(tmp_path / ".vae-d2.lock") as other:  # another open file: flock treats it as another holder
                with pytest.raises(BlockingIOError):
                    fcntl.flock(other.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    with open(tmp_path / ".vae-d2.lock") as other:
        fcntl.flock(other.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)  # released on the way out


# --- no room on the disk ------------------------------------------------------------------------------


def _without_room(tmp_path: Path, what: str, target: Path, limit: int) -> dict:
    pytest.importorskip("resource")
    if not hasattr(__import__("signal"), "SIGXFSZ"):
        pytest.skip("no SIGXFSZ on this platform")
    run = subprocess.run(
        [sys.executable, "-c", WRITE_WITHOUT_ROOM, what, str(target), str(limit)],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
    )
    assert run.returncode == 0, f"exit status {run.returncode}:\n{run.stdout}\n{run.stderr[-4000:]}"
    return _last_json(run.stdout)


def test_a_checkpoint_write_without_room_keeps_the_old_file_and_says_what_to_do(tmp_path):
    path = tmp_path / "runs" / "vae.pt"
    gm.save_checkpoint(path, gm.VAE(latent_dim=2, arch="mlp"), step=0)
    before = _listing(path.parent)
    limit = 64 * 1024
    assert path.stat().st_size > limit  # the new checkpoint cannot fit under the limit

    report = _without_room(tmp_path, "checkpoint", path, limit)
    assert report["errno"] == errno.EFBIG, report
    message = report["message"]
    assert f"could not write {path}" in message and "too large" in message and "ulimit -f" in message
    assert "previous file there is unchanged" in message
    assert _listing(path.parent) == before  # the old checkpoint whole, no temporary left
    assert gm.read_checkpoint(path)["step"] == 0


def test_a_zoo_write_without_room_keeps_the_cache_and_says_what_to_do(tmp_path, monkeypatch, mnist_subset):
    monkeypatch.setattr(zoo, "SHIPPED_DIR", tmp_path / "shipped")
    monkeypatch.setenv("GENMODELS_CACHE", str(tmp_path / "cache"))
    train, test = (
        gm.ImageSet(d[0][:256], d[1][:256], "MNIST", d.split, f"the first 256 {d.split} digits", True)
        for d in mnist_subset
    )
    cache = zoo.cache_dir()
    first = zoo.train(
        ["vae-d2"],
        out_dir=cache,
        budget="quick",
        device="cpu",
        progress=False,
        data=train,
        test_data=test,
        content_addressed=True,
    )["vae-d2"]
    before = _listing(cache)
    limit = 64 * 1024
    assert first["bytes"] > limit

    report = _without_room(tmp_path, "zoo", cache, limit)
    assert report["errno"] == errno.EFBIG, report
    message = report["message"]
    assert f"could not store vae-d2 in {cache}" in message and "too large" in message
    assert "GENMODELS_CACHE" in message and "`python -m genmodels zoo train --only vae-d2`" in message
    assert "unchanged" in message
    assert _listing(cache) == before  # manifest and model whole, no temporary left
    assert zoo.load("vae-d2", train_if_missing=False).zoo_info["sha256"] == first["sha256"]
