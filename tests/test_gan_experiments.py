"""Tests of genmodels.gan_experiments: the stored saturation runs are the runs gm.train_gan makes, a stored mode
table scores exactly as the runs it was made from, a stored file round-trips and refuses other settings, and the
shipped files agree with themselves."""

import math
from pathlib import Path

import pytest
import torch

import genmodels as gm
from genmodels import gan_experiments, gan_mixtures
from genmodels.metrics.coverage import mode_coverage, score_mixture_runs

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny():
    train = gm.load_mnist("train", verbose=False)
    test = gm.load_mnist("test", verbose=False)
    return train.images[:256], test.images[:100]


def test_saturation_runs_are_train_gans_runs_and_round_trip(tiny, tmp_path):
    train, reference = tiny
    runs = gan_experiments.saturation_runs(train, reference, epochs=1, seeds=[0], device="cpu")
    assert list(runs) == ["saturating-0", "non_saturating-0", "saturating-k3"]
    # the first run is gm.train_gan's run with the saturating loss from seed 0, step for step
    gm.seed_everything(0)
    history = gm.train_gan(
        gm.GAN(arch="dcgan"), train, num_epochs=1, loss="saturating", seed=0, progress=False, device="cpu"
    )
    assert runs["saturating-0"]["steps"]["g_grad_norm"] == pytest.approx(history.steps["g_grad_norm"], rel=1e-5)
    assert len(runs["saturating-0"]["steps"]["d_fake"]) == 2  # 256 digits, batch 128
    assert len(runs["saturating-k3"]["steps"]["d_fake"]) == 1  # three discriminator batches per generator step
    for r in runs.values():
        assert r["samples"].dtype == torch.uint8 and r["samples"].shape == (64, 1, 28, 28)
        assert math.isfinite(r["fcd"]) and r["fcd"] > 0 and len(r["saturated_steps"]) == 1
    path = tmp_path / "saturation.pt"
    gan_experiments.save_saturation_runs(runs, path, epochs=1, seeds=[0], n_fcd=100, about={"torch": torch.__version__})
    loaded, about = gan_experiments.load_saturation_runs(path, epochs=1, seeds=[0], n_fcd=100)
    assert about["torch"] == str(torch.__version__)
    assert loaded["non_saturating-0"]["steps"] == runs["non_saturating-0"]["steps"]
    assert torch.equal(loaded["saturating-k3"]["samples"], runs["saturating-k3"]["samples"])
    with pytest.raises(gm.UserError, match=r"other settings \(epochs differ\).*stored_runs.py saturation"):
        gan_experiments.load_saturation_runs(path, epochs=4, seeds=[0], n_fcd=100)
    with pytest.raises(gm.UserError, match="is not a stored mode-table file"):
        gan_experiments.load_mode_table([], path)


@pytest.mark.skipif(
    not gan_experiments.SATURATION_FILE.is_file(), reason="the stored saturation runs are not in this checkout"
)
def test_shipped_saturation_runs_are_the_chapters_and_consistent():
    runs, about = gan_experiments.load_saturation_runs(epochs=4, seeds=[0, 1], n_fcd=10_000)
    assert "60,000" in about["train_data"]
    for name, r in runs.items():
        d_fake = r["steps"]["d_fake"]
        assert len(d_fake) == len(r["steps"]["g_grad_norm"]) == (628 if name.endswith("k3") else 4 * 469)
        # the per-epoch counts of saturated steps, recounted from the per-step curve
        assert sum(r["saturated_steps"]) == sum(v < 0.01 for v in d_fake)
        assert len(r["saturated_steps"]) == 4 and math.isfinite(r["fcd"]) and r["fcd"] > 0


def test_stored_mode_table_scores_as_its_runs_and_refuses_other_settings(tmp_path):
    jobs = [dict(j, hidden_dim=16, num_eval=300) for j in gan_mixtures.mode_table_jobs(20, [0, 1])[:2]]
    runs = gan_mixtures.train_mixture_table(jobs, processes=1)
    entries = [gan_experiments.summarize_mixture_runs(r, j) for r, j in zip(runs, jobs)]
    path = tmp_path / "table.pt"
    gan_experiments.save_mode_table(entries, jobs, path, about={"what": "test"})
    loaded, about = gan_experiments.load_mode_table(jobs, path)
    assert about == {"what": "test"}
    for run, entry in zip(runs, loaded):
        for mine, theirs in zip(entry.scores(), score_mixture_runs(run)):
            assert {k: v for k, v in mine.items() if k != "counts"} == pytest.approx(
                {k: v for k, v in theirs.items() if k != "counts"}, nan_ok=True
            )
        for i, snap in enumerate(run.snapshots):
            assert entry.snapshot_steps[i] == snap["step"]
            assert [s["counts"].tolist() for s in entry.scores(i)] == [
                s["counts"].tolist() for s in score_mixture_runs(run, samples=snap["samples"])
            ]
        assert torch.equal(entry.samples, run.samples[0])
    # other settings, a missing file and a corrupt one are refused with the command that remakes the file
    with pytest.raises(gan_mixtures.UserError, match="other settings.*tools/stored_runs.py mode-table"):
        gan_experiments.load_mode_table([dict(jobs[0], steps=jobs[0]["steps"] + 20)], path)
    with pytest.raises(gan_mixtures.UserError, match="missing.*tools/stored_runs.py mode-table"):
        gan_experiments.load_mode_table(jobs, tmp_path / "none.pt")
    (tmp_path / "bad.pt").write_bytes(path.read_bytes()[:100])
    with pytest.raises(gan_mixtures.UserError, match="cannot be read"):
        gan_experiments.load_mode_table(jobs, tmp_path / "bad.pt")


def test_stored_runs_tool_runs_only_the_jobs_whose_settings_changed(tmp_path, monkeypatch):
    """tools/stored_runs.py mode-table keeps the stored jobs that the recipe still asks for, exactly as stored,
    and runs the others; --fresh runs all."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("stored_runs", REPO_ROOT / "tools" / "stored_runs.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    recipe, table_jobs = {"steps": 20}, gan_mixtures.mode_table_jobs
    small = (
        lambda steps, seeds: [  # noqa: E731  two tiny jobs, the second one's steps set by `recipe`
            dict(j, hidden_dim=16, num_eval=300, **(recipe if i == 1 else {}))
            for i, j in enumerate(table_jobs(20, seeds)[:2])
        ]
    )
    ran, train_table = [], gan_mixtures.train_mixture_table

    def train(jobs):
        ran.append([(j["method"], j["steps"]) for j in jobs])
        return train_table(jobs, processes=1)

    monkeypatch.setattr(gan_mixtures, "mode_table_jobs", small)
    monkeypatch.setattr(gan_mixtures, "train_mixture_table", train)
    out = tmp_path / "table.pt"
    argv = ["mode-table", "--seeds", "0", "--out", str(out)]
    assert tool.main(argv) == 0
    first, about = gan_experiments.load_mode_table(small(20, [0]), out)
    assert len(ran[-1]) == 2 and "kept" not in about
    recipe["steps"] = 40  # the recipe changes for the second job only
    assert tool.main(argv) == 0
    assert ran[-1] == [(small(20, [0])[1]["method"], 40)]
    second, about = gan_experiments.load_mode_table(small(20, [0]), out)
    assert torch.equal(second[0].snapshot_counts, first[0].snapshot_counts) and second[0].seconds == first[0].seconds
    assert second[1].job["steps"] == 40 and about["kept"].startswith("1 of the 2 jobs kept")
    assert tool.main(argv + ["--fresh"]) == 0 and len(ran[-1]) == 2
    # what the helper keeps: nothing without a file; a corrupt file is refused, not silently retrained over
    assert gan_experiments.reusable_mode_entries(small(20, [0]), tmp_path / "none.pt") == ([None, None], {})
    (tmp_path / "bad.pt").write_bytes(out.read_bytes()[:100])
    with pytest.raises(gan_mixtures.UserError, match="cannot be read"):
        gan_experiments.reusable_mode_entries(small(20, [0]), tmp_path / "bad.pt")


@pytest.mark.skipif(
    not gan_experiments.MODE_TABLE_FILE.is_file(), reason="the stored mode table is not in this checkout"
)
def test_shipped_mode_table_is_the_chapters_and_consistent():
    jobs = gan_mixtures.mode_table_jobs(20_000, [0, 1, 2])
    entries, about = gan_experiments.load_mode_table(jobs)
    for entry in entries:
        assert entry.counts.shape == (3, len(entry.centres)) and entry.snapshot_counts.shape[0] == 21
        assert entry.snapshot_steps[-1] == entry.job["steps"]
        assert torch.equal(entry.snapshot_counts[-1], entry.counts)  # the last snapshot is the end of the run
        # the stored samples of the first seed, counted again, give its stored histogram
        again = mode_coverage(entry.samples, entry.centres, entry.std, min_count=1)["counts"]
        assert again.tolist() == entry.counts[0].tolist()
