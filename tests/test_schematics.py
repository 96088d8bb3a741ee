"""The schematics say what the mathematics says: where the gradient flows and where it stops, which nodes are
stochastic, and which Gaussian each direction of the KL fits; and the committed SVG files are what
`tools/make_figures.py` draws from the code now."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.patches import Circle, RegularPolygon  # noqa: E402

from genmodels import divergences as dv  # noqa: E402
from genmodels.app import schematics  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "tools"))
import make_figures  # noqa: E402  (tools/make_figures.py: build tooling, outside the installed package)


def _reachable(edges, start, colour):
    """Nodes a gradient of `colour` reaches from `start` along dashed, unblocked edges."""
    seen, todo = {start}, [start]
    while todo:
        node = todo.pop()
        for a, b, c, dashed, blocked in edges:
            if a == node and c == colour and dashed and not blocked and b not in seen:
                seen.add(b)
                todo.append(b)
    return seen


@pytest.fixture(scope="module")
def vae_fig():
    fig = schematics.vae_graph_figure()
    yield fig
    plt.close(fig)


def test_vae_graph_before_blocks_the_gradient_at_the_sampler_and_after_lets_it_reach_the_encoder(vae_fig):
    before, after = vae_fig.graphs["before"], vae_fig.graphs["after"]
    flow = schematics.FLOW
    # before: the gradient of f reaches z and the decoder, not mu, sigma or the encoder
    assert _reachable(before, "loss", flow) == {"loss", "dec", "z"}
    blocked = {(a, b) for a, b, _, _, is_blocked in before if is_blocked}
    assert blocked == {("z", "mu"), ("z", "sigma")}
    # after: eps is an input with no gradient into it, and the gradient reaches the encoder through mu and sigma
    assert _reachable(after, "loss", flow) == {"loss", "dec", "z", "mu", "sigma", "enc"}
    assert not any(is_blocked for *_, is_blocked in after)
    assert ("eps", "z") in {(a, b) for a, b, _, dashed, _ in after if not dashed}
    assert "eps" not in {b for _, b, _, dashed, _ in after if dashed}


def test_vae_graph_draws_z_stochastic_before_and_deterministic_after(vae_fig):
    ax_before, ax_after = vae_fig.axes[:2]

    def shapes(ax):
        circles = sum(isinstance(p, Circle) for p in ax.patches)
        diamonds = sum(isinstance(p, RegularPolygon) for p in ax.patches)
        return circles, diamonds

    assert shapes(ax_before) == (2, 3)  # circles x, z; diamonds mu, sigma, f
    assert shapes(ax_after) == (2, 4)  # circles x, eps; diamonds mu, sigma, z, f
    crosses = [len([ln for ln in ax.lines if ln.get_marker() == "X"]) for ax in (ax_before, ax_after)]
    assert crosses == [2, 0]


def test_what_the_vae_graph_claims_holds_in_autograd():
    mu = torch.tensor([0.5], requires_grad=True)
    sigma = torch.tensor([1.2], requires_grad=True)
    q = torch.distributions.Normal(mu, sigma)
    assert q.sample().grad_fn is None  # the sampler: no path back to mu and sigma
    eps = torch.tensor([0.7])
    z = mu + sigma * eps  # after: deterministic in mu and sigma
    dz_dmu, dz_dsigma = torch.autograd.grad(z.sum(), (mu, sigma))
    assert dz_dmu.item() == 1.0 and dz_dsigma.item() == pytest.approx(0.7)


def test_gan_loop_discriminator_steps_stop_at_the_fake_and_generator_steps_pass_through_d():
    fig = schematics.gan_loop_figure()
    edges = fig.graph
    plt.close(fig)
    # the discriminator's loss updates D only; its path into G is drawn blocked (fake.detach())
    assert _reachable(edges, "LD", schematics.D_FLOW) == {"LD", "D"}
    assert ("fake", "G") in {(a, b) for a, b, c, _, blocked in edges if blocked and c == schematics.BLOCKED}
    # the generator's non-saturating loss reaches G through D and the fake
    assert _reachable(edges, "LG", schematics.FLOW) == {"LG", "D", "fake", "G"}
    # forward: noise -> G -> fake -> D, and data -> D; D feeds both losses
    forward = {(a, b) for a, b, _, dashed, _ in edges if not dashed}
    assert {("z", "G"), ("G", "fake"), ("fake", "D"), ("real", "D"), ("D", "LD"), ("D", "LG")} <= forward


def test_kl_directions_figure_shows_the_moment_match_and_one_reverse_fit_per_mode():
    p = schematics.BIMODAL_TARGET
    fig = schematics.kl_directions_figure(p, starts=(-2.0, 2.0))
    fits = fig.fits
    forward_line = fig.axes[0].lines[0]
    plt.close(fig)
    assert fits["forward"].mu == pytest.approx(p.mean, abs=1e-12)
    assert fits["forward"].sigma == pytest.approx(math.sqrt(p.variance), abs=1e-12)
    for fit, k in zip(fits["reverse"], (0, 1)):
        assert abs(fit.mu - p.means[k]) < 0.01 and abs(fit.sigma / p.stds[k] - 1) < 0.01
        assert fit.kl < dv.reverse_kl(p, fits["forward"].mu, fits["forward"].sigma).item()
    # the drawn forward curve is the N(mu, sigma^2) density: over mu +- 4 sigma of p it holds erf(4 / sqrt 2)
    x, y = (torch.as_tensor(v, dtype=torch.float64) for v in forward_line.get_data())
    assert torch.trapezoid(y, x).item() == pytest.approx(math.erf(4 / math.sqrt(2)), abs=1e-5)


def test_the_committed_svgs_are_what_the_code_draws(tmp_path):
    written = make_figures.write_figures(tmp_path)
    assert {p.name for p in written} == set(make_figures.FIGURES)
    stale = [p.name for p in written if p.read_bytes() != (REPO_ROOT / "book" / "figures" / p.name).read_bytes()]
    assert not stale, f"book/figures/{stale} differ from the code's drawing: run `make figures` and commit them"


def test_the_svgs_are_deterministic(tmp_path):
    a, b = make_figures.write_figures(tmp_path / "a"), make_figures.write_figures(tmp_path / "b")
    assert [p.read_bytes() for p in a] == [p.read_bytes() for p in b]
    text = a[0].read_text(encoding="utf-8")
    assert "<dc:date>" not in text and "<text" in text  # no date; text kept as text
