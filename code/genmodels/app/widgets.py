r"""Widgets for playing with the trained models: live in a kernel, and still alive in the static HTML book.

Five widgets, each a function that returns an :class:`Explorer` (display it as the last expression of a cell):

* :func:`latent_size_explorer`: a slider over latent sizes 2 ... 64; for the VAE it shows samples from the
  prior, reconstructions of fixed test digits and the test negative ELBO with its parts, for the GAN
  samples from fixed noise and the Fréchet classifier distance;
* :func:`latent_navigator`: two sliders move :math:`z` in the 2-D VAE's latent space and show the decoded digit;
* :func:`interpolation_explorer`: a slider walks the straight line (and, for Gaussian noise, the spherical
  path) between two test digits' codes or two noise vectors;
* :func:`class_explorer`: a class selector and a slider over fixed noise draws show the conditional VAE's and
  the conditional GAN's samples of the chosen digit side by side, with the classifier's reading of them;
* :func:`training_panel`: latent size, epochs and loss, a Train button with a progress bar, then the new
  samples (needs a kernel).

One code path, two modes. Every explorer is a set of selection controls and a ``render`` function from
their values to a :class:`Frame` (pictures and a line of text).

* ``"live"`` (Jupyter, JupyterLab, Colab, VS Code): one view; moving a control calls ``render`` and updates it.
* ``"static"`` (the built book, no kernel): ``render`` is called for every combination of control values up
  front, and the views sit in nested ipywidgets 8 ``Stack`` widgets whose ``selected_index`` is
  ``jslink``\ ed to the controls' ``index``, so the browser switches pictures by itself. Executing the
  notebook with nbclient stores the widget state, and the book embeds it in the page.

``mode="auto"`` reads ``GENMODELS_WIDGETS`` (``live`` unless set to ``static``; ``make notebooks`` sets it).
Models come from :mod:`genmodels.zoo` by name unless passed in. ipywidgets is imported when a widget is built.
"""

from __future__ import annotations

import base64
import io
import math
import os
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch

from ..core import GAN_LATENT_SIZES, VAE_LATENT_SIZES, UserError
from .plotting import image_grid

__all__ = [
    "MODES",
    "VAE_LATENT_SIZES",
    "GAN_LATENT_SIZES",
    "Control",
    "Panel",
    "Frame",
    "Explorer",
    "resolve_mode",
    "png",
    "latent_size_explorer",
    "latent_navigator",
    "interpolation_explorer",
    "class_explorer",
    "training_panel",
    "TrainingPanel",
    "time_widgets",
]

MODES = ("live", "static")
DIGIT_PAIRS = ((3, 8), (1, 7), (4, 9), (0, 6))


def resolve_mode(mode: str = "auto") -> str:
    """``"live"`` or ``"static"``; ``"auto"`` reads ``GENMODELS_WIDGETS`` (default ``"live"``)."""
    if mode == "auto":
        mode = os.environ.get("GENMODELS_WIDGETS", "live").strip().lower() or "live"
    if mode not in MODES:
        raise UserError(f"widget mode must be 'auto', 'live' or 'static', got {mode!r} (check GENMODELS_WIDGETS)")
    return mode


def _ipywidgets(static: bool):
    import ipywidgets  # a dependency (7.6 or newer); imported when a widget is built

    if static and not hasattr(ipywidgets, "Stack"):
        raise ImportError(
            f"static widgets need ipywidgets 8 (its Stack widget); this kernel has ipywidgets {ipywidgets.__version__}. "
            "Use mode='live', or pip install 'ipywidgets>=8'."
        )
    return ipywidgets


def png(images: torch.Tensor, *, nrow: Optional[int] = None, scale: int = 2) -> bytes:
    """PNG bytes of a grid of ``[N, 1, 28, 28]`` images in [0, 1] (white digits on black, grey padding),
    enlarged ``scale`` times with nearest-neighbour so the pixels stay sharp."""
    from PIL import Image

    grid = image_grid(images.float().cpu(), nrow=nrow, pad_value=0.5)
    pixels = (grid.clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    picture = Image.fromarray(pixels, mode="L")
    if scale != 1:
        picture = picture.resize((picture.width * scale, picture.height * scale), Image.NEAREST)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


@dataclass(frozen=True)
class Control:
    """A selection control: ``name`` (the keyword passed to ``render``), its label, and its options as
    ``(label, value)`` pairs. ``kind`` is ``"slider"`` (a ``SelectionSlider``), ``"toggle"``
    (``ToggleButtons``) or ``"dropdown"``; ``index`` is the option selected at first."""

    name: str
    description: str
    options: Tuple[Tuple[str, Any], ...]
    kind: str = "slider"
    index: int = 0

    def __post_init__(self):
        if not self.options:
            raise UserError(f"control {self.name!r} has no options")
        if self.kind not in ("slider", "toggle", "dropdown"):
            raise UserError(f"control kind must be slider, toggle or dropdown, got {self.kind!r}")
        if not 0 <= self.index < len(self.options):
            raise UserError(f"control {self.name!r}: index {self.index} is outside its {len(self.options)} options")


@dataclass
class Panel:
    """One picture of a frame, with a caption above it; ``width`` is its display width in pixels."""

    title: str
    png: bytes
    width: Optional[int] = None


@dataclass
class Frame:
    """What the widget shows for one choice of the controls: pictures side by side and a line of HTML."""

    panels: List[Panel]
    text: str = ""


def frame_html(frame: Frame) -> str:
    """A frame as one piece of HTML: its pictures side by side (PNG data URIs, each under its caption),
    then its line of text."""
    figures = []
    for panel in frame.panels:
        width = f' width="{panel.width}"' if panel.width else ""
        data = base64.b64encode(panel.png).decode("ascii")
        figures.append(
            f'<figure style="margin:0 16px 4px 0"><figcaption><b>{panel.title}</b></figcaption>'
            f'<img class="gm-frame-image" alt="{panel.title}" src="data:image/png;base64,{data}"{width}></figure>'
        )
    return (
        f'<div style="display:flex;flex-wrap:wrap;align-items:flex-start">{"".join(figures)}</div>'
        f'<div class="gm-frame-text">{frame.text}</div>'
    )


class _View:
    """One frame, shown as a single HTML widget (one widget model per frame keeps the stored state of a
    static explorer small); ``update`` replaces its content in place. ``layout`` and ``style`` may be
    shared between the views of one explorer."""

    def __init__(self, w, frame: Frame, *, layout=None, style=None):
        kwargs = {k: v for k, v in (("layout", layout), ("style", style)) if v is not None}
        self.box = w.HTML(value=frame_html(frame), **kwargs)
        self.box.add_class("gm-frame")

    def update(self, frame: Frame) -> None:
        self.box.value = frame_html(frame)


def _labelled(w, label: str, control):
    """``label`` (HTML, no MathJax) left of ``control``, in a row."""
    text = w.HTML(value=label, layout=w.Layout(width="110px"))
    return w.HBox([text, control])


class Explorer:
    """Controls and a ``render`` function, shown live or as precomputed frames (see the module docstring).

    Parameters
    ----------
    controls : the :class:`Control` s, shown top to bottom.
    render : called as ``render(**{control.name: value})``; returns a :class:`Frame`.
    mode : ``"auto"``, ``"live"`` or ``"static"``.
    name : a short name, added as the CSS class ``gm-<name>`` next to ``gm-widget``.
    header : HTML shown above the controls; ``aside`` : widgets shown left of the frames (never change).

    Attributes: ``widget`` (the ipywidgets box to display), ``controls`` (the control widgets by name),
    ``mode``, ``frames_rendered``, ``last_render_seconds``.
    """

    def __init__(
        self,
        controls: Sequence[Control],
        render: Callable[..., Frame],
        *,
        mode: str = "auto",
        name: str = "explorer",
        header: str = "",
        aside: Sequence[Any] = (),
    ):
        self.mode = resolve_mode(mode)
        w = _ipywidgets(static=self.mode == "static")
        self._w = w
        self.specs = list(controls)
        self.render = render
        self.frames_rendered = 0
        self.last_render_seconds = float("nan")
        self.controls = {c.name: self._make_control(c) for c in self.specs}
        self.links = []
        self._shared = None
        if self.mode == "live":
            self._view = _View(w, self._render(self.values()))
            frames = self._view.box
            for control in self.controls.values():
                control.observe(self._on_change, names="index")
        else:
            frames = self._static(0, {})
        body = w.HBox([*aside, frames]) if aside else frames
        rows = [_labelled(w, c.description, self.controls[c.name]) for c in self.specs]
        parts = ([w.HTML(value=header)] if header else []) + rows + [body]
        self.widget = w.VBox(parts)
        self.widget.add_class("gm-widget")
        self.widget.add_class(f"gm-{name}")

    def _make_control(self, c: Control):
        w = self._w
        # No ``description``: the HTML widget manager of the static book typesets descriptions with the
        # MathJax 2 API, which the book's MathJax 3 does not have. The label is an HTML widget beside it.
        if c.kind == "slider":
            return w.SelectionSlider(
                options=list(c.options),
                index=c.index,
                description="",
                continuous_update=True,
                layout=w.Layout(width="360px"),
            )
        if c.kind == "toggle":
            return w.ToggleButtons(options=list(c.options), index=c.index, description="")
        return w.Dropdown(options=list(c.options), index=c.index, description="")

    def values(self, indices: Optional[Dict[str, int]] = None) -> Dict[str, Any]:
        """The controls' values (or the values at the given option indices)."""
        out = {}
        for c in self.specs:
            i = self.controls[c.name].index if indices is None else indices[c.name]
            out[c.name] = c.options[i][1]
        return out

    def _render(self, values: Dict[str, Any]) -> Frame:
        start = time.perf_counter()
        frame = self.render(**values)
        self.last_render_seconds = time.perf_counter() - start
        self.frames_rendered += 1
        return frame

    def _on_change(self, change) -> None:
        self._view.update(self._render(self.values()))

    def _static(self, level: int, fixed: Dict[str, int]):
        """Nested Stacks: level ``k`` holds one child per option of control ``k``, its ``selected_index``
        linked in the browser to that control's ``index``; the leaves are the rendered frames."""
        w = self._w
        if level == len(self.specs):
            view = _View(w, self._render(self.values(fixed)), **(self._shared or {}))
            if self._shared is None:  # the later frames share the first one's layout and style models
                self._shared = {"layout": view.box.layout, "style": view.box.style}
            return view.box
        c = self.specs[level]
        children = [self._static(level + 1, {**fixed, c.name: i}) for i in range(len(c.options))]
        stack = w.Stack(children, selected_index=c.index)
        self.links.append(w.jslink((self.controls[c.name], "index"), (stack, "selected_index")))
        return stack

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)

    def __repr__(self) -> str:
        return f"Explorer({', '.join(c.name for c in self.specs)}; mode={self.mode}, {self.frames_rendered} frames rendered)"


# --------------------------------------------------------------------------------------------------
# Helpers


def _test_set(test_data):
    """``(images uint8 [N, 28, 28], labels or None, description)``."""
    if test_data is None:
        from ..engine.sources import load_mnist

        test_data = load_mnist(split="test")
    if isinstance(test_data, tuple):
        images, labels = test_data[0], test_data[1]
    else:
        images, labels = test_data, None
    return images, labels, getattr(test_data, "origin", f"{len(images):,} test images")


def _first_of_each(labels, classes: Sequence[int], n_images: int) -> List[int]:
    """Indices of the first test digit of each class in ``classes`` (or the first images without labels)."""
    if labels is None:
        return list(range(len(classes)))[:n_images]
    found = []
    for c in classes:
        hits = (labels == c).nonzero()
        if len(hits):
            found.append(int(hits[0]))
    return found


class _Models:
    """Models by key, loaded from the zoo on first use (or given), kept in memory."""

    def __init__(self, prefix: str, given: Optional[Dict[Any, torch.nn.Module]], device, progress: bool):
        self.prefix, self.given, self.device, self.progress = prefix, dict(given or {}), device, progress

    def __getitem__(self, key):
        if key not in self.given:
            from . import zoo

            self.given[key] = zoo.load(f"{self.prefix}{key}", device=self.device, progress=self.progress)
        return self.given[key].eval()


def _typical_codes(codes: torch.Tensor, labels: torch.Tensor) -> Dict[int, torch.Tensor]:
    """For each class, the code of its test digit nearest to the class's mean code (a real digit, and a
    typical one: the first digit of a class is often an odd one)."""
    out = {}
    for c in labels.unique().tolist():
        members = codes[labels == c]
        nearest = (members - members.mean(0)).norm(dim=1).argmin()
        out[c] = members[nearest]
    return out


def _noise(n: int, d: int, seed: int) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed))


def _fmt_signed(v: float) -> str:
    return f"{v:+.1f}".replace("-", "\u2212")


# --------------------------------------------------------------------------------------------------
# The four widgets


def latent_size_explorer(
    family: str = "vae",
    *,
    sizes: Optional[Sequence[int]] = None,
    models: Optional[Dict[int, torch.nn.Module]] = None,
    test_data=None,
    n_samples: int = 32,
    n_eval: Optional[int] = None,
    seed: int = 0,
    mode: str = "auto",
    device="cpu",
    progress: bool = True,
) -> Explorer:
    """A slider over latent sizes showing, for the VAE (``family="vae"``), 32 samples from the prior, eight
    test digits over their reconstructions, and the test negative ELBO = reconstruction + KL (nats per
    image, on the first ``n_eval`` test images, default all, under the fixed evaluation binarization); for
    the GAN (``family="gan"``), 32 samples from fixed noise and the Fréchet classifier distance and class
    coverage recorded when the model was trained (or measured now on 500 samples for a model without them).

    ``sizes`` default to the zoo's (:data:`VAE_LATENT_SIZES` or :data:`GAN_LATENT_SIZES`); ``models`` maps a
    size to a trained model; missing sizes are loaded from :mod:`genmodels.zoo` (``vae-d10``, ``gan-d8``...),
    which trains and caches any model it does not have.
    """
    if family not in ("vae", "gan"):
        raise UserError(f"family must be 'vae' or 'gan', got {family!r}")
    sizes = list(sizes if sizes is not None else (VAE_LATENT_SIZES if family == "vae" else GAN_LATENT_SIZES))
    models_ = _Models(f"{family}-d", models, device, progress)
    images, labels, origin = _test_set(test_data)
    digits = images[_first_of_each(labels, range(8), 8)]
    scored = images if n_eval is None else images[:n_eval]
    cache: Dict[int, Dict[str, float]] = {}

    def vae_frame(latent_dim: int) -> Frame:
        from ..engine.loops import eval_images, evaluate_vae

        vae = models_[latent_dim]
        samples = vae.sample(z=_noise(n_samples, latent_dim, seed))
        x = eval_images(digits, "dynamic")  # [8, 1, 28, 28], the fixed binarization the bound is computed on
        recon = vae.reconstruct(x.to(vae.device))
        if latent_dim not in cache:
            cache[latent_dim] = evaluate_vae(vae, scored)
        m = cache[latent_dim]
        text = (
            f"latent size <b>{latent_dim}</b>: test negative ELBO <b>{m['nelbo']:.1f}</b> nats per image = "
            f"reconstruction {m['recon']:.1f} + KL {m['kl']:.1f} "
            f"<span style='color:#666'>({origin if n_eval is None else f'the first {len(scored):,} of {origin}'})</span>"
        )
        return Frame(
            [
                Panel("Samples from the prior, z ~ N(0, I)", png(samples, nrow=8)),
                Panel(
                    "Binarized test digits (top) and their reconstructions", png(torch.cat([x, recon.cpu()]), nrow=8)
                ),
            ],
            text,
        )

    def gan_frame(latent_dim: int) -> Frame:
        gan = models_[latent_dim]
        samples = gan.sample(z=_noise(n_samples, latent_dim, seed).to(gan.device))
        metrics = getattr(gan, "zoo_info", {}).get("metrics")
        if metrics is None:
            if latent_dim not in cache:
                from . import zoo

                cache[latent_dim] = zoo._evaluate_samples(gan, images[:500], device)
            metrics = cache[latent_dim]
        text = (
            f"noise size <b>{latent_dim}</b>: Fréchet classifier distance <b>{metrics['fcd']:.0f}</b> "
            f"({metrics['fcd_images']:,} samples against as many test digits; lower is better), "
            f"{metrics['classes_covered']} of 10 digit classes drawn "
            f"<span style='color:#666'>(test digits: {metrics.get('test_data', origin)})</span>"
        )
        return Frame([Panel("Samples from fixed noise z ~ N(0, I)", png(samples, nrow=8))], text)

    control = Control(
        "latent_dim",
        "latent size" if family == "vae" else "noise size",
        tuple((str(d), d) for d in sizes),
        index=min(2, len(sizes) - 1),
    )
    header = (
        "<b>VAE: how the latent size changes samples, reconstructions and the bound.</b> Move the slider."
        if family == "vae"
        else "<b>GAN: how the noise size changes the samples.</b> Move the slider; each size draws its noise "
        "with the same seed."
    )
    return Explorer(
        [control], vae_frame if family == "vae" else gan_frame, mode=mode, name="latent-size", header=header
    )


def _scatter_png(mu: torch.Tensor, labels, span: float) -> bytes:
    """The test digits' codes coloured by class (each class's digit at the median of its codes), with the
    navigator's square marked."""
    from matplotlib.figure import (
        Figure,  # no pyplot: the notebook's plotting backend stays as it is
    )
    from matplotlib.patches import Rectangle

    fig = Figure(figsize=(2.8, 2.8), dpi=80)
    ax = fig.subplots()
    colours = labels.numpy() if labels is not None else "k"
    ax.scatter(mu[:, 0].numpy(), mu[:, 1].numpy(), c=colours, cmap="tab10", s=2, alpha=0.6, vmin=0, vmax=9)
    if labels is not None:  # each class's label at the median of its codes
        for c in labels.unique().tolist():
            centre = mu[labels == c].median(dim=0).values
            ax.text(
                float(centre[0]), float(centre[1]), str(c), fontsize=10, fontweight="bold", ha="center", va="center"
            )
    ax.add_patch(Rectangle((-span, -span), 2 * span, 2 * span, fill=False, lw=1, ls="--"))
    ax.set_xlim(-4, 4), ax.set_ylim(-4, 4)
    ax.set_xlabel("$z_1$"), ax.set_ylabel("$z_2$")
    ax.set_title("test codes μ(x) by class", fontsize=9)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def latent_navigator(
    model=None,
    *,
    steps: int = 11,
    span: float = 2.5,
    test_data=None,
    mode: str = "auto",
    device="cpu",
    progress: bool = True,
) -> Explorer:
    r"""Two sliders set :math:`z = (z_1, z_2)` of the 2-D VAE (default: ``vae-d2`` from the zoo) on a grid of
    ``steps`` values from ``-span`` to ``span``; the widget shows the decoded digit :math:`\sigma(a(z))`,
    next to a scatter of the test digits' codes with the grid's square marked."""
    from ..latent_space import encode_dataset

    if steps < 2:
        raise UserError(f"steps must be at least 2, got {steps!r}")
    vae = model if model is not None else _Models("vae-d", None, device, progress)[2]
    if vae.latent_dim != 2:
        raise UserError(f"the latent navigator needs a VAE with latent_dim=2, got {vae.latent_dim}")
    images, labels, _ = _test_set(test_data)
    n = min(len(images), 2000)
    mu = encode_dataset(vae, images[:n])
    w = _ipywidgets(static=False)
    scatter = w.Image(value=_scatter_png(mu.cpu(), None if labels is None else labels[:n], span), format="png")
    values = torch.linspace(-span, span, steps).tolist()
    options = tuple((_fmt_signed(v), v) for v in values)

    def frame(z1: float, z2: float) -> Frame:
        z = torch.tensor([[z1, z2]], dtype=torch.float32)
        digit = vae.sample(z=z.to(vae.device))
        text = f"z = ({_fmt_signed(z1)}, {_fmt_signed(z2)}); density under the prior N(0, I): {math.exp(-(z1**2 + z2**2) / 2) / (2 * math.pi):.3f}"
        return Frame([Panel("decoded digit σ(decoder(z))", png(digit, scale=5))], text)

    middle = steps // 2
    controls = [Control("z1", "z₁", options, index=middle), Control("z2", "z₂", options, index=middle)]
    return Explorer(
        controls,
        frame,
        mode=mode,
        name="navigator",
        aside=[scatter],
        header="<b>The 2-D VAE's latent space.</b> Move z₁ and z₂; the decoder draws the digit at that point.",
    )


def interpolation_explorer(
    family: str = "vae",
    *,
    model=None,
    latent_dim: Optional[int] = None,
    pairs: int = 3,
    steps: int = 11,
    test_data=None,
    seed: int = 0,
    mode: str = "auto",
    device="cpu",
    progress: bool = True,
) -> Explorer:
    r"""Walk from one code to another. VAE (default ``vae-d20``): between the posterior means of two test
    digits of different classes (for each class, among the first 2,000 test digits, the one whose code lies
    nearest to its class's mean code), on the straight line. GAN (default ``gan-d64``): between two noise
    vectors, on the straight line or the spherical path (:func:`genmodels.latent.interpolate`). The
    widget shows the image at ``t``, the whole path, and the norm :math:`\lVert z_t\rVert`."""
    from ..latent_space import interpolate

    if family not in ("vae", "gan"):
        raise UserError(f"family must be 'vae' or 'gan', got {family!r}")
    if model is None:
        latent_dim = latent_dim or (20 if family == "vae" else 64)
        model = _Models(f"{family}-d", None, device, progress)[latent_dim]
    d = model.latent_dim
    endpoints: List[Tuple[str, torch.Tensor, torch.Tensor]] = []
    if family == "vae":
        from ..latent_space import encode_dataset

        images, labels, _ = _test_set(test_data)
        if labels is None:
            codes = encode_dataset(model, images[: 2 * pairs])
            endpoints = [
                (f"test images {2 * k} → {2 * k + 1}", codes[2 * k], codes[2 * k + 1])
                for k in range(min(pairs, len(codes) // 2))
            ]
        else:
            codes = encode_dataset(model, images[:2000])
            typical = _typical_codes(codes, labels[:2000])
            endpoints = [
                (f"a typical {a} → a typical {b}", typical[a], typical[b])
                for a, b in DIGIT_PAIRS[:pairs]
                if a in typical and b in typical
            ]
        paths = ("linear",)
    else:
        for k in range(pairs):
            z = _noise(2, d, seed + k)
            endpoints.append((f"noise pair {k + 1}", z[0], z[1]))
        paths = ("linear", "spherical")
    if not endpoints:
        raise UserError("no pair of test digits to interpolate between")
    ts = torch.linspace(0, 1, steps)

    def frame(pair: int, path: str, t: float) -> Frame:
        name, z0, z1 = endpoints[pair]
        zs = interpolate(z0, z1, ts, path=path)
        z_t = interpolate(z0, z1, t, path=path)
        strip = model.sample(z=zs.to(model.device)).cpu()
        image = model.sample(z=z_t.to(model.device)).cpu()
        text = (
            f"t = {t:.1f} on the {path} path: ‖z_t‖ = <b>{z_t.norm():.2f}</b>; ‖z_0‖ = {z0.norm():.2f}, "
            f"‖z_1‖ = {z1.norm():.2f}"
        )
        if family == "gan":
            text += f"; a draw from N(0, I) in {d} dimensions has ‖z‖ ≈ √{d} = {math.sqrt(d):.1f}"
        return Frame(
            [
                Panel(f"at t = {t:.1f}", png(image, scale=4)),
                Panel(f"the whole {path} path, t = 0 … 1", png(strip, nrow=steps, scale=2)),
            ],
            text,
        )

    controls = [Control("pair", "endpoints", tuple((e[0], i) for i, e in enumerate(endpoints)), kind="dropdown")]
    controls.append(Control("path", "path", tuple((p, p) for p in paths), kind="toggle"))
    controls.append(Control("t", "t", tuple((f"{t:.1f}", float(t)) for t in ts.tolist())))
    header = (
        "<b>Interpolating between two test digits' codes.</b> Pick the pair, then move t. Each end is "
        "the test digit whose code lies nearest to the mean code of its class."
        if family == "vae"
        else f"<b>Interpolating between two noise vectors of the {d}-dimensional GAN.</b> Compare the straight "
        "line with the spherical path: watch the norm in the middle."
    )
    return Explorer(controls, frame, mode=mode, name=f"interpolation-{family}", header=header)


def _conditional_model(model, role: str, zoo_name: str, kind, device, progress: bool):
    """``model`` checked to be the conditional model ``kind`` (a zoo name is loaded; ``None`` loads ``zoo_name``)."""
    if model is None or isinstance(model, str):
        from . import zoo

        model = zoo.load(model or zoo_name, device=device, progress=progress)
    if not isinstance(model, kind):
        raise UserError(
            f"{role} must be a conditional model, a gm.{kind.__name__} (e.g. gm.zoo.load({zoo_name!r})), got "
            f"{type(model).__name__}: an unconditional model cannot be asked for a class. For an unconditional "
            "model use latent_size_explorer or interpolation_explorer."
        )
    return model.eval()


def class_explorer(
    cvae=None,
    cgan=None,
    *,
    draws: int = 4,
    n_images: int = 8,
    seed: int = 0,
    classifier=None,
    mode: str = "auto",
    device="cpu",
    progress: bool = True,
) -> Explorer:
    r"""Ask both conditional models for one digit: a class selector (0 ... 9) and a slider over ``draws`` fixed
    noise draws; the frame shows ``n_images`` samples of the chosen digit from the conditional VAE and as many
    from the conditional GAN, side by side, and how many of each the book's classifier reads as that digit.

    Draw ``j`` is the same codes for every class: :math:`z \sim \mathcal N(0, I)` drawn with seed ``seed + j``
    (``n_images`` rows of the model's latent size), so moving the class selector changes only the label and
    moving the slider changes only the noise. The CVAE's pictures are its Bernoulli means
    :math:`\sigma(a(z, y))` (:meth:`~genmodels.conditional.CVAE.sample`), the CGAN's its generator's images
    (:meth:`~genmodels.conditional.CGAN.sample`).

    ``cvae`` (a :class:`~genmodels.conditional.CVAE`) and ``cgan`` (a :class:`~genmodels.conditional.CGAN`)
    default to the zoo's ``cvae-d2`` and ``cgan`` (a zoo name may be given instead); anything else raises a
    :class:`~genmodels.core.UserError`. ``classifier`` defaults to the shipped one. Static mode renders
    ``10 * draws`` frames.
    """
    from ..conditional import CGAN, CVAE
    from ..core import check_int
    from ..metrics.coverage import class_histogram

    check_int("draws", draws)
    check_int("n_images", n_images)
    cvae = _conditional_model(cvae, "cvae", "cvae-d2", CVAE, device, progress)
    cgan = _conditional_model(cgan, "cgan", "cgan", CGAN, device, progress)
    if cvae.num_classes != cgan.num_classes:
        raise UserError(f"the CVAE knows {cvae.num_classes} classes and the CGAN {cgan.num_classes}: they must agree")
    num_classes = cvae.num_classes

    def read_as(images: torch.Tensor, digit: int) -> int:
        if num_classes > 10:  # the classifier knows the ten digits only
            return -1
        return int(class_histogram(images, classifier=classifier, device=device)[digit])

    def frame(digit: int, draw: int) -> Frame:
        panels, counts = [], []
        for name, model in (("CVAE", cvae), ("CGAN", cgan)):
            z = _noise(n_images, model.latent_dim, seed + draw).to(model.device)
            images = model.sample(z=z, y=digit).cpu()
            panels.append(Panel(f"{name} ({model.latent_dim}-D code), asked for a {digit}", png(images, nrow=4)))
            counts.append(read_as(images, digit))
        text = f"digit <b>{digit}</b>, noise draw {draw + 1} of {draws}"
        if min(counts) >= 0:
            text += (
                f": the classifier reads <b>{counts[0]}</b> of the CVAE's {n_images} and <b>{counts[1]}</b> of the "
                f"CGAN's {n_images} as {digit}s"
            )
        return Frame(panels, text)

    controls = [
        Control(
            "digit",
            "digit y",
            tuple((str(k), k) for k in range(num_classes)),
            kind="toggle",
            index=min(7, num_classes - 1),
        ),
        Control("draw", "noise draw", tuple((str(j + 1), j) for j in range(draws))),
    ]
    header = (
        "<b>Draw a digit.</b> Pick the class; the slider picks one of a few fixed noise draws. Each draw is the "
        "same noise for every class, so changing the class keeps the noise and changes only the label."
    )
    return Explorer(controls, frame, mode=mode, name="class-explorer", header=header)


def training_panel(
    *,
    data=None,
    test_data=None,
    mode: str = "auto",
    max_epochs: int = 30,
    device="auto",
    seed: int = 0,
) -> "TrainingPanel":
    """Train a model from the browser: the model and its loss (VAE with the ELBO, or the DCGAN with the
    non-saturating or the saturating generator loss), the latent size and the number of epochs, a Train
    button with a progress bar, then 32 samples and the final numbers. Needs a running kernel: in the
    static book the controls are shown disabled with a note saying so.

    Returns a :class:`TrainingPanel`.
    """
    from . import zoo

    resolved = resolve_mode(mode)
    w = _ipywidgets(static=False)
    family = w.Dropdown(
        options=[
            ("VAE (ELBO)", "vae"),
            ("GAN, non-saturating loss", "non_saturating"),
            ("GAN, saturating loss", "saturating"),
        ]
    )
    latent = w.Dropdown(options=[(str(d), d) for d in sorted({*VAE_LATENT_SIZES, *GAN_LATENT_SIZES})], value=10)
    epochs = w.IntSlider(value=3, min=1, max=max_epochs)
    button = w.Button(description="Train", button_style="primary", icon="play")
    bar = w.IntProgress(value=0, min=0, max=1)
    status = w.HTML()
    picture = w.Image(format="png")
    picture.layout.display = "none"
    box = w.VBox(
        [
            w.HTML("<b>Train a model yourself.</b> Choose, press Train, watch the bar, then look at the samples."),
            _labelled(w, "model and loss", family),
            _labelled(w, "latent size", latent),
            _labelled(w, "epochs", epochs),
            w.HBox([button, _labelled(w, "epochs done", bar)]),
            status,
            picture,
        ]
    )
    box.add_class("gm-widget")
    box.add_class("gm-training")
    panel = TrainingPanel(resolved, box, {"family": family, "latent_dim": latent, "epochs": epochs, "train": button})
    if resolved == "static":
        for control in (family, latent, epochs, button):
            control.disabled = True
        status.value = (
            "<i>Training needs a running Python kernel. Open this chapter in Colab or Jupyter "
            "(the launch button at the top of the page) and run the cells.</i>"
        )
        return panel

    def run(_=None):
        from ..core import pick_device
        from ..engine.loops import evaluate_vae, train_gan, train_vae
        from ..engine.sources import load_mnist

        button.disabled = True
        try:
            dev = pick_device(device)
            train_set = data if data is not None else load_mnist(split="train")
            kind, d, n = family.value, latent.value, epochs.value
            bar.max, bar.value = n, 0
            status.value = f"training on {getattr(train_set, 'origin', 'the given images')} on {dev} ..."
            model = zoo.build_like("vae" if kind == "vae" else "gan", d)
            start = time.perf_counter()

            def step(epoch, history):
                bar.value = epoch + 1

            if kind == "vae":
                history = train_vae(
                    model, train_set, num_epochs=n, seed=seed, device=str(dev), progress=False, callback=step
                )
            else:
                import warnings

                with warnings.catch_warnings():  # a discriminator that wins is reported below, not as a warning
                    warnings.simplefilter("ignore", RuntimeWarning)
                    history = train_gan(
                        model,
                        train_set,
                        num_epochs=n,
                        seed=seed,
                        device=str(dev),
                        progress=False,
                        callback=step,
                        loss=kind,
                    )
            seconds = time.perf_counter() - start
            model.eval()
            samples = model.sample(z=_noise(32, d, seed).to(model.device)).cpu()
            picture.value = png(samples, nrow=8)
            picture.layout.display = None
            if kind == "vae":
                images, _, origin = _test_set(test_data)
                m = evaluate_vae(model, images)
                result = f"test negative ELBO {m['nelbo']:.1f} nats (reconstruction {m['recon']:.1f} + KL {m['kl']:.1f}) on {origin}"
            else:
                last = history.epochs
                result = (
                    f"last epoch: mean D(x) {last['d_real'][-1]:.2f}, mean D(G(z)) {last['d_fake'][-1]:.3f}, "
                    f"{last['saturated_steps'][-1]} saturated generator steps"
                )
            status.value = f"{n} epochs in {seconds:.1f} s on {dev}: {result}"
            panel.history = history
        finally:
            button.disabled = False

    button.on_click(run)
    panel.train = run
    return panel


class TrainingPanel:
    """What :func:`training_panel` returns: ``widget`` (to display), ``controls`` by name, ``mode``,
    ``train()`` (what the Train button does; live mode only) and ``history`` of the last run."""

    def __init__(self, mode: str, widget, controls: Dict[str, Any]):
        self.mode, self.widget, self.controls, self.history = mode, widget, controls, None

    def train(self, _=None):
        raise RuntimeError("training needs a running kernel: build the panel with mode='live'")

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)

    def __repr__(self) -> str:
        return f"TrainingPanel(mode={self.mode})"


def time_widgets(*, moves: int = 10, test_data=None, device="cpu") -> List[str]:
    """Time the live widgets on this machine: building each one (loading its models from the zoo and
    drawing the first picture: the time to first sample), then ``moves`` moves of its last slider (the
    median and the slowest update). Returns printable lines; used by ``python -m genmodels zoo time``."""
    import statistics

    images, labels, origin = _test_set(test_data)
    test = (images, labels) if labels is not None else images
    builders = [
        ("VAE latent-size explorer", lambda: latent_size_explorer("vae", test_data=test, mode="live", device=device)),
        ("GAN noise-size explorer", lambda: latent_size_explorer("gan", test_data=test, mode="live", device=device)),
        ("2-D VAE latent navigator", lambda: latent_navigator(test_data=test, mode="live", device=device)),
        ("VAE interpolation", lambda: interpolation_explorer("vae", test_data=test, mode="live", device=device)),
        ("GAN interpolation", lambda: interpolation_explorer("gan", mode="live", device=device)),
    ]
    lines = [
        f"live widgets on {device}, torch {torch.__version__.split('+')[0]}, {torch.get_num_threads()} threads; "
        f"test digits: {origin}"
    ]
    for title, build in builders:
        start = time.perf_counter()
        explorer = build()
        first = time.perf_counter() - start
        control = explorer.controls[explorer.specs[-1].name]
        n_options = len(explorer.specs[-1].options)
        updates = []
        for k in range(moves):
            control.index = (control.index + 1 + k % 2) % n_options  # a new value every time
            updates.append(explorer.last_render_seconds)
        lines.append(
            f"{title}: first sample {first * 1000:.0f} ms (models loaded from the set, first picture drawn); "
            f"slider moves: median {statistics.median(updates) * 1000:.1f} ms, slowest {max(updates) * 1000:.1f} ms"
        )
    return lines
