"""Killing training at any moment leaves the last checkpoint valid, and resuming reproduces the run."""

import os
import signal
import subprocess
import sys
import time

import pytest
import torch

import genmodels as gm

ARGS = [
    "train",
    "vae",
    "--latent-dim",
    "4",
    "--hidden-dim",
    "32",
    "--epochs",
    "3",
    "--batch-size",
    "32",
    "--checkpoint-every",
    "10",
    "--device",
    "cpu",
    "--no-progress",
]  # 125 steps per epoch
STEPS = 3 * 125


def _env():
    env = {**os.environ, "GENMODELS_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    env.pop("GENMODELS_DATA", None)
    return env


def _train(out, cwd):
    return subprocess.Popen(
        [sys.executable, "-m", "genmodels", *ARGS, "--out", out],
        cwd=cwd,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("full")
    proc = _train("full.pt", cwd)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-2000:]
    return gm.read_checkpoint(cwd / "full.pt")


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_kill_mid_epoch_then_resume_reproduces_the_uninterrupted_run(sig, tmp_path, uninterrupted):
    path = tmp_path / "cut.pt"
    proc = _train("cut.pt", tmp_path)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:  # wait for a checkpoint written inside an epoch, then kill at once
        if path.exists():
            try:
                ckpt = gm.read_checkpoint(path)
            except gm.CheckpointError:  # impossible with atomic writes: would fail the test below anyway
                raise
            if ckpt["step"] >= 30:
                break
        time.sleep(0.005)
    proc.send_signal(sig)
    proc.communicate(timeout=60)
    assert proc.returncode == -sig  # it was killed, not finished
    ckpt = gm.read_checkpoint(path)  # what is on disk is a complete checkpoint
    assert ckpt["step"] % 10 == 0 and 0 < ckpt["step"] < STEPS
    assert ckpt["data"]["position"] == ckpt["step"] % 125  # where in its epoch the checkpoint was taken

    resumed = _train("cut.pt", tmp_path)
    out, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err[-2000:]
    assert "resuming from cut.pt" in out
    final = gm.read_checkpoint(path)
    assert final["step"] == uninterrupted["step"] == STEPS
    for name, value in uninterrupted["model_state"].items():
        assert torch.equal(final["model_state"][name], value), name
    assert final["history"]["steps"] == uninterrupted["history"]["steps"]
