r"""Schematics drawn from code: the VAE's computation graph before and after reparameterization, the GAN's
two-player loop, and a Gaussian fitted to a bimodal target in both directions of the KL.

Each function returns a matplotlib Figure; ``tools/make_figures.py`` writes them to ``book/figures/`` as SVG.
matplotlib is imported only when drawing.

The graphs share one visual convention:

* circle: a **stochastic** node, a value drawn from a distribution (shaded grey when it is data);
* diamond: a **deterministic** node, a value computed from its parents;
* rounded box: a network with its parameters (:math:`\phi`, :math:`\theta`, :math:`\theta_G`, :math:`\theta_D`);
* solid black arrow: the forward computation;
* dashed coloured arrow: a gradient flowing backwards; a **red arrow with a cross** is a path that
  backpropagation cannot take.
"""

from __future__ import annotations

from typing import Dict, Optional, Sequence, Tuple

import torch

from ..divergences import GaussianMixture1D, fit_forward_kl, fit_reverse_kl, normal_log_prob

__all__ = ["vae_graph_figure", "gan_loop_figure", "kl_directions_figure", "BIMODAL_TARGET", "NODE_KINDS"]

#: node kind -> (matplotlib shape, face colour): the legend of every graph
NODE_KINDS: Dict[str, Tuple[str, str]] = {
    "stochastic": ("circle", "#fde0c5"),
    "data": ("circle", "#d9d9d9"),
    "deterministic": ("diamond", "#d6e6f5"),
    "network": ("box", "#f2f2f2"),
}
FLOW = "#1a9850"  # a gradient that flows
BLOCKED = "#d73027"  # a path the gradient cannot take
D_FLOW = "#4575b4"  # the discriminator's gradient in the GAN loop

#: the target of the KL figure: two well-separated modes of different weight and width
BIMODAL_TARGET = GaussianMixture1D(weights=(0.4, 0.6), means=(-3.0, 3.0), stds=(0.7, 1.0))


class _Canvas:
    """Nodes and arrows on one axes whose data units are the layout's units."""

    def __init__(self, ax, xlim: Tuple[float, float], ylim: Tuple[float, float]):
        self.ax = ax
        self.nodes = {}
        self.edges = []  # (from, to, colour, dashed, blocked): the graph as drawn, for the tests
        ax.set_xlim(*xlim)
        ax.set_ylim(*ylim)
        ax.set_aspect("equal")
        ax.set_axis_off()

    def node(self, name: str, xy: Tuple[float, float], label: str, kind: str, *, size: float = 0.42, width=None):
        from matplotlib.patches import Circle, FancyBboxPatch, RegularPolygon

        shape, colour = NODE_KINDS[kind]
        style = dict(facecolor=colour, edgecolor="black", linewidth=1.2, zorder=3)
        if shape == "circle":
            patch = Circle(xy, size, **style)
        elif shape == "diamond":
            patch = RegularPolygon(xy, numVertices=4, radius=size * 1.3, orientation=0.0, **style)
        else:
            w, h = (width or 1.5), 0.8
            patch = FancyBboxPatch(
                (xy[0] - w / 2, xy[1] - h / 2), w, h, boxstyle="round,pad=0.02,rounding_size=0.15", **style
            )
        self.ax.add_patch(patch)
        self.ax.text(*xy, label, ha="center", va="center", fontsize=11, zorder=4)
        self.nodes[name] = (xy, patch)
        return patch

    def arrow(
        self,
        a: str,
        b: str,
        *,
        colour="black",
        dashed=False,
        rad=0.0,
        lw=1.4,
        blocked=False,
        label=None,
        label_dy=-0.32,
    ):
        from matplotlib.patches import FancyArrowPatch

        (xa, ya), pa = self.nodes[a]
        (xb, yb), pb = self.nodes[b]
        arrow = FancyArrowPatch(
            (xa, ya),
            (xb, yb),
            patchA=pa,
            patchB=pb,
            arrowstyle="-|>",
            mutation_scale=14,
            color=colour,
            linewidth=lw,
            linestyle=(0, (4, 2.5)) if dashed else "-",
            connectionstyle=f"arc3,rad={rad}",
            shrinkA=3,
            shrinkB=3,
            zorder=2,
        )
        self.ax.add_patch(arrow)
        self.edges.append((a, b, colour, dashed, blocked))
        if blocked or label:
            # arc3 is a quadratic Bezier with control point chord midpoint + rad * (dy, -dx); its midpoint is halfway
            mx, my = (xa + xb) / 2 + rad * (yb - ya) / 2, (ya + yb) / 2 - rad * (xb - xa) / 2
            if blocked:
                self.ax.plot(
                    mx, my, marker="X", markersize=15, color=BLOCKED, markeredgecolor="white", mew=1.2, zorder=5
                )
            if label:
                va = "top" if label_dy < 0 else "bottom"
                self.ax.text(mx, my + label_dy, label, ha="center", va=va, fontsize=8.5, color=colour, zorder=5)
        return arrow

    def note(self, xy, text, **kw):
        kw = {"ha": "center", "va": "center", "fontsize": 9, **kw}
        self.ax.text(*xy, text, **kw)


def _legend(fig, *, gradient_labels: Sequence[Tuple[str, str]]):
    from matplotlib.lines import Line2D

    handles = [
        Line2D([], [], marker="o", ls="", ms=13, mfc=NODE_KINDS["stochastic"][1], mec="black", label="stochastic node"),
        Line2D([], [], marker="o", ls="", ms=13, mfc=NODE_KINDS["data"][1], mec="black", label="data (stochastic)"),
        Line2D(
            [],
            [],
            marker="D",
            ls="",
            ms=11,
            mfc=NODE_KINDS["deterministic"][1],
            mec="black",
            label="deterministic node",
        ),
        Line2D([], [], marker="s", ls="", ms=13, mfc=NODE_KINDS["network"][1], mec="black", label="network"),
        Line2D([], [], color="black", lw=1.4, label="forward computation"),
    ]
    for colour, label in gradient_labels:
        handles.append(Line2D([], [], color=colour, lw=1.4, ls=(0, (4, 2.5)), label=label))
    handles.append(Line2D([], [], color=BLOCKED, lw=0, marker="X", ms=12, mec="white", label="gradient cannot pass"))
    fig.legend(handles=handles, loc="lower center", ncol=4, fontsize=9, frameon=False, handlelength=2.2)


def vae_graph_figure():
    r"""The VAE's computation graph before and after reparameterization (one panel each).

    Before: :math:`z \sim q_\phi(z\mid x)` is drawn by a sampler, a stochastic node; the gradient of the loss
    reaches :math:`z` (and the decoder) but cannot pass the sampler back to :math:`\mu` and :math:`\sigma`, so the
    encoder gets no gradient from the reconstruction term. After: the noise :math:`\varepsilon \sim \mathcal N(0, I)`
    is an input, :math:`z = \mu + \sigma \odot \varepsilon` is deterministic, and
    :math:`\partial z/\partial\mu = 1`, :math:`\partial z/\partial\sigma = \varepsilon` carry the gradient to the
    encoder.

    Returns
    -------
    matplotlib.figure.Figure (its ``graphs`` attribute holds each panel's edges as drawn,
    ``{"before": [(from, to, colour, dashed, blocked), ...], "after": [...]}``)
    """
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 1, figsize=(10, 6.6))
    fig.graphs = {}
    panels = (
        ("before: z is sampled, the sampler blocks the gradient", False),
        ("after: z = μ + σ ⊙ ε is computed, ε ~ N(0, I) is an input", True),
    )
    for ax, (title, reparameterized) in zip(axes, panels):
        c = _Canvas(ax, (-0.2, 11.6), (-1.35, 3.0))
        ax.set_title(title, fontsize=11, loc="left")
        c.node("x", (0.4, 1.3), "x", "data")
        c.node("enc", (2.3, 1.3), "encoder φ", "network")
        c.node("mu", (4.4, 2.2), "μ", "deterministic")
        c.node("sigma", (4.4, 0.4), "σ", "deterministic")
        if reparameterized:
            c.node("z", (6.6, 1.3), "z", "deterministic")
            c.node("eps", (6.6, -0.7), "ε", "stochastic")
            c.note((7.35, -0.7), "ε ~ N(0, I)", ha="left")
            c.note((6.6, 2.35), "z = μ + σ ⊙ ε")
        else:
            c.node("z", (6.6, 1.3), "z", "stochastic")
            c.note((7.1, 2.2), "z ~ N(μ, σ²)", ha="left")
        c.node("dec", (8.6, 1.3), "decoder θ", "network")
        c.node("loss", (10.7, 1.3), "f", "deterministic")
        c.note((10.7, 0.3), "f = −log p(x | z)")
        # forward
        for a, b in [("x", "enc"), ("enc", "mu"), ("enc", "sigma"), ("mu", "z"), ("sigma", "z"), ("z", "dec")]:
            c.arrow(a, b)
        c.arrow("dec", "loss")
        c.arrow("x", "loss", rad=-0.28, colour="#7f7f7f", lw=1.0)
        if reparameterized:
            c.arrow("eps", "z")
        # backward
        c.arrow("loss", "dec", colour=FLOW, dashed=True, rad=0.45)
        c.arrow("dec", "z", colour=FLOW, dashed=True, rad=0.45)
        for target, rad in (("mu", 0.35), ("sigma", -0.35)):
            if reparameterized:
                c.arrow("z", target, colour=FLOW, dashed=True, rad=rad)
                c.arrow(target, "enc", colour=FLOW, dashed=True, rad=rad)
            else:
                c.arrow("z", target, colour=BLOCKED, dashed=True, rad=rad, blocked=True)
        if reparameterized:
            c.note((5.5, -0.1), "∂z/∂μ = 1\n∂z/∂σ = ε", color=FLOW, fontsize=8.5)
        else:
            c.note((2.3, 0.1), "no gradient\nfrom f reaches φ", color=BLOCKED, fontsize=8.5)
        fig.graphs["after" if reparameterized else "before"] = c.edges
    _legend(fig, gradient_labels=[(FLOW, "gradient of f, flowing backwards")])
    fig.subplots_adjust(left=0.01, right=0.99, top=0.95, bottom=0.12, hspace=0.18)
    return fig


def gan_loop_figure():
    r"""The GAN's two-player loop, as Algorithm 1 of Goodfellow et al. (2014) orders it.

    Noise :math:`z \sim p(z)` goes through the generator to a fake :math:`\tilde x = G(z)`; real :math:`x` comes
    from the data; the discriminator scores both. The discriminator's loss
    :math:`L_D = -\log D(x) - \log(1 - D(\tilde x))` updates :math:`\theta_D` only: its gradient stops at
    ``fake.detach()``. The generator's non-saturating loss :math:`L_G = -\log D(G(z))` is backpropagated *through*
    the discriminator into the generator and updates :math:`\theta_G` only. Each iteration takes :math:`k`
    discriminator steps, then one generator step.

    Returns
    -------
    matplotlib.figure.Figure (its ``graph`` attribute holds the edges as drawn, as for :func:`vae_graph_figure`)
    """
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 5.4))
    c = _Canvas(ax, (-0.3, 12.6), (-1.6, 4.6))
    c.node("z", (0.4, 0.8), "z", "stochastic")
    c.note((0.4, 0.05), "z ~ p(z)")
    c.node("G", (2.6, 0.8), "generator θ_G", "network", width=1.9)
    c.node("fake", (5.0, 0.8), "x̃", "deterministic")
    c.note((5.6, 0.4), "x̃ = G(z)", ha="left")
    c.node("real", (5.0, 3.4), "x", "data")
    c.note((5.0, 4.1), "x ~ p_data")
    c.node("D", (7.3, 2.1), "discriminator θ_D", "network", width=2.3)
    c.node("LD", (10.6, 3.4), "L_D", "deterministic", size=0.5)
    c.node("LG", (10.6, 0.8), "L_G", "deterministic", size=0.5)
    c.note((10.6, 4.3), "L_D = −log D(x) − log(1 − D(x̃))", fontsize=9)
    c.note((10.6, -0.15), "L_G = −log D(x̃)  (non-saturating)", fontsize=9)
    # forward
    c.arrow("z", "G")
    c.arrow("G", "fake")
    c.arrow("real", "D")
    c.arrow("fake", "D")
    c.arrow("D", "LD")
    c.arrow("D", "LG")
    c.note((9.15, 2.1), "D(x), D(x̃)", fontsize=8.5)
    # the discriminator's steps: gradient into θ_D, stopped at fake.detach()
    c.arrow("LD", "D", colour=D_FLOW, dashed=True, rad=0.3, label="k steps: update θ_D", label_dy=0.12)
    c.arrow("fake", "G", colour=BLOCKED, dashed=True, rad=0.45, blocked=True)
    c.note((3.8, 1.95), "D steps use fake.detach():\nθ_G gets nothing from L_D", color=BLOCKED, fontsize=8.5)
    # the generator's step: through D (held fixed) into G
    c.arrow("LG", "D", colour=FLOW, dashed=True, rad=-0.3)
    c.arrow("D", "fake", colour=FLOW, dashed=True, rad=-0.35)
    c.arrow("fake", "G", colour=FLOW, dashed=True, rad=-0.45, label="1 step: update θ_G")
    c.note((8.4, 0.6), "through D,\nθ_D held fixed", color=FLOW, fontsize=8.5)
    c.note(
        (6.2, -1.2),
        "repeat:  k discriminator steps (descend L_D on θ_D),  then one generator step (descend L_G on θ_G)",
        fontsize=10,
        bbox=dict(boxstyle="round,pad=0.35", facecolor="white", edgecolor="#7f7f7f"),
    )
    _legend(
        fig,
        gradient_labels=[(D_FLOW, "gradient of L_D (discriminator step)"), (FLOW, "gradient of L_G (generator step)")],
    )
    fig.subplots_adjust(left=0.01, right=0.99, top=0.99, bottom=0.15)
    fig.graph = c.edges
    return fig


def kl_directions_figure(
    p: Optional[GaussianMixture1D] = None, *, starts: Sequence[float] = (-2.0, 2.0), sigma0: float = 1.5
):
    r"""One Gaussian fitted to a bimodal :math:`p` by the forward and by the reverse KL.

    The forward fit (:func:`genmodels.divergences.fit_forward_kl`, moment matching) covers both modes; the reverse
    fit (:func:`genmodels.divergences.fit_reverse_kl`) is run from each start in ``starts`` and settles on the mode
    nearest to it. The legend gives each fit's :math:`\mu`, :math:`\sigma` and divergence, as computed.

    Parameters
    ----------
    p : the target (default :data:`BIMODAL_TARGET`).
    starts : initial means of the reverse fits, all with standard deviation ``sigma0``.

    Returns
    -------
    matplotlib.figure.Figure (its ``fits`` attribute holds the fits: ``{"forward": ..., "reverse": [...]}``)
    """
    import matplotlib.pyplot as plt

    p = BIMODAL_TARGET if p is None else p
    forward = fit_forward_kl(p)
    reverse = [fit_reverse_kl(p, mu0=s, sigma0=sigma0) for s in starts]
    lo, hi = p.mean - 4 * p.variance**0.5, p.mean + 4 * p.variance**0.5
    x = torch.linspace(lo, hi, 801, dtype=torch.float64)  # for drawing only; the fits use their own grid
    fig, ax = plt.subplots(figsize=(8, 3.6))
    ax.fill_between(x, p.log_prob(x).exp(), color="#bdbdbd", label="target p (two modes)")
    ax.plot(
        x,
        normal_log_prob(x, forward.mu, forward.sigma).exp(),
        color="#4575b4",
        lw=2,
        label=f"forward KL(p ‖ q): μ = {forward.mu:.2f}, σ = {forward.sigma:.2f}  (KL = {forward.kl:.2f} nats)",
    )
    for fit, start, ls in zip(reverse, starts, ("-", "--", ":", "-.")):
        ax.plot(
            x,
            normal_log_prob(x, fit.mu, fit.sigma).exp(),
            color="#d73027",
            lw=2,
            ls=ls,
            label=f"reverse KL(q ‖ p) from μ₀ = {start:g}: μ = {fit.mu:.2f}, σ = {fit.sigma:.2f}  (KL = {fit.kl:.2f})",
        )
    ax.set(xlabel="x", ylabel="density", xlim=(lo, hi))
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8, loc="upper left", frameon=False)
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    fig.fits = {"forward": forward, "reverse": reverse}
    return fig
