"""DistributedDataParallel on 2 CPU processes (gloo), launched by torchrun as a user would."""

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch

import genmodels as gm
from genmodels.app.cli import main

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]


def _env():
    env = {**os.environ, "GENMODELS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    env.pop("GENMODELS_DATA", None)
    return env


def _run(cmd, cwd):
    done = subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, (done.stdout[-1500:], done.stderr[-3000:])
    return done


SCRIPT = textwrap.dedent("""
    import json, sys
    import torch, torch.distributed as dist
    import genmodels as gm

    kind, out = sys.argv[1], sys.argv[2]
    gm.seed_everything(0)
    images = (torch.rand(128, 28, 28, generator=torch.Generator().manual_seed(0)) * 255).to(torch.uint8)
    if kind == "gan":
        model = gm.GAN(latent_dim=8, arch="dcgan", channels=4, minibatch_kernels=3)
        before = [p.detach().clone() for p in model.parameters()]
        gm.train_gan(model, images, num_epochs=2, batch_size=32, d_steps=2, device="cpu", progress=False)
    else:
        model = gm.VAE(latent_dim=3, hidden_dim=16)
        before = [p.detach().clone() for p in model.parameters()]
        gm.train_vae(model, images, num_epochs=2, batch_size=32, device="cpu", progress=False)
    flat = torch.cat([p.detach().flatten() for p in model.parameters()])
    gathered = [torch.zeros_like(flat) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, flat)
    if dist.get_rank() == 0:
        json.dump({
            "world": dist.get_world_size(),
            "max_diff_across_ranks": max((g - gathered[0]).abs().max().item() for g in gathered),
            "moved": max((a - b.detach()).abs().max().item() for a, b in zip(before, model.parameters())),
        }, open(out, "w"))
    dist.destroy_process_group()
""")


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["vae", "gan"])
def test_parameters_stay_identical_across_ranks(kind, tmp_path):
    (tmp_path / "ddp_script.py").write_text(SCRIPT)
    _run(TORCHRUN + ["ddp_script.py", kind, "result.json"], cwd=tmp_path)
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["world"] == 2
    assert result["moved"] > 1e-4  # training happened
    assert result["max_diff_across_ranks"] == 0.0  # gradients were averaged: every rank took the same steps


@pytest.mark.slow
def test_two_processes_match_one_process_with_the_same_global_batch(tmp_path, monkeypatch):
    """Each rank trains on its half of the same global batch (the same shuffle, binarization and noise),
    DDP averages the gradients, so the result is the single-process run's up to float rounding."""
    args = [
        "train",
        "vae",
        "--latent-dim",
        "4",
        "--hidden-dim",
        "64",
        "--epochs",
        "2",
        "--batch-size",
        "64",
        "--device",
        "cpu",
        "--no-progress",
    ]
    done = _run(TORCHRUN + ["-m", "genmodels"] + args + ["--out", "ddp.pt"], cwd=tmp_path)
    assert done.stdout.count("training vae-mlp-z4") == 1 and "2 processes (gloo)" in done.stdout  # rank 0 speaks
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GENMODELS_OFFLINE", "1")
    monkeypatch.delenv("GENMODELS_DATA", raising=False)
    assert main(args + ["--out", "single.pt"]) == 0
    ddp, single = gm.read_checkpoint(tmp_path / "ddp.pt"), gm.read_checkpoint(tmp_path / "single.pt")
    assert ddp["step"] == single["step"] == 2 * 63
    for name, value in single["model_state"].items():
        torch.testing.assert_close(ddp["model_state"][name], value, rtol=1e-4, atol=2e-5)
    for key in ("loss", "recon", "kl"):
        torch.testing.assert_close(
            torch.tensor(ddp["history"]["steps"][key]),
            torch.tensor(single["history"]["steps"][key]),
            rtol=1e-4,
            atol=1e-3,
        )


@pytest.mark.slow
def test_a_global_batch_that_does_not_split_evenly_is_refused(tmp_path):
    done = subprocess.run(
        TORCHRUN
        + [
            "-m",
            "genmodels",
            "train",
            "vae",
            "--batch-size",
            "63",
            "--epochs",
            "1",
            "--device",
            "cpu",
            "--no-progress",
            "--out",
            "x.pt",
        ],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode != 0
    assert "must be divisible by the 2 processes" in done.stderr + done.stdout
