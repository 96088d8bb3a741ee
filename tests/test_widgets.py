"""genmodels.widgets: one code path for live and static widgets.

The frames a widget shows are compared with the model called directly (the same picture bytes, the same
numbers as ``evaluate_vae``); the static widget's nested Stacks are checked to hold, at every position, the
frame of the control values that position stands for, and to be jslinked to the controls' ``index``, which
is what makes the published page switch pictures without a kernel.
"""

import base64
import io
import itertools
import json
import math
import re
from pathlib import Path

import ipywidgets
import numpy as np
import pytest
import torch
from PIL import Image

import genmodels as gm
from genmodels.app import widgets
from genmodels.app.plotting import image_grid

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def mnist_test(mnist_subset):
    x, y = mnist_subset[1]
    return x[:300], y[:300]


@pytest.fixture(scope="module")
def vaes():
    torch.manual_seed(0)
    return {d: gm.VAE(latent_dim=d, hidden_dim=16).eval() for d in (2, 4, 8)}


@pytest.fixture(scope="module")
def gans():
    torch.manual_seed(0)
    return {d: gm.GAN(latent_dim=d, channels=4).eval() for d in (2, 8)}


def leaves(widget):
    """The frame views of a static explorer, in the order of the control values' product."""
    if isinstance(widget, ipywidgets.Stack):
        return [leaf for child in widget.children for leaf in leaves(child)]
    return [widget]


def descendants(widget):
    yield widget
    for child in getattr(widget, "children", ()):
        yield from descendants(child)


def view_images(view):
    """The PNG bytes of the pictures a frame shows, decoded from its HTML."""
    assert isinstance(view, ipywidgets.HTML) and "gm-frame" in view._dom_classes
    return [base64.b64decode(data) for data in re.findall(r'src="data:image/png;base64,([^"]+)"', view.value)]


def view_text(view):
    return re.search(r'<div class="gm-frame-text">(.*)</div>$', view.value, re.S).group(1)


# --- pieces ----------------------------------------------------------------------------------------


def test_mode_comes_from_the_argument_or_the_environment(monkeypatch):
    monkeypatch.delenv("GENMODELS_WIDGETS", raising=False)
    assert widgets.resolve_mode() == "live"
    monkeypatch.setenv("GENMODELS_WIDGETS", "static")
    assert widgets.resolve_mode() == "static" and widgets.resolve_mode("live") == "live"
    monkeypatch.setenv("GENMODELS_WIDGETS", "frozen")
    with pytest.raises(ValueError, match="GENMODELS_WIDGETS"):
        widgets.resolve_mode()


def test_png_holds_the_grid_enlarged_by_nearest_neighbour():
    images = torch.rand(6, 1, 28, 28)
    grid = image_grid(images, nrow=3, pad_value=0.5)
    expected = (grid.clamp(0, 1) * 255).round().to(torch.uint8)
    picture = Image.open(io.BytesIO(widgets.png(images, nrow=3, scale=3)))
    assert picture.size == (grid.shape[1] * 3, grid.shape[0] * 3) and picture.mode == "L"
    pixels = torch.from_numpy(np.array(picture))
    torch.testing.assert_close(pixels[::3, ::3], expected, rtol=0, atol=0)
    torch.testing.assert_close(pixels[2::3, 2::3], expected, rtol=0, atol=0)


def test_controls_validate_their_options():
    with pytest.raises(ValueError, match="no options"):
        widgets.Control("a", "a", ())
    with pytest.raises(ValueError, match="outside"):
        widgets.Control("a", "a", (("x", 1),), index=1)


# --- the explorer: one render function, two modes --------------------------------------------------


def toy_render(calls):
    def render(a, b):
        calls.append((a, b))
        return widgets.Frame([widgets.Panel(f"{a}{b}", f"{a}-{b}".encode())], f"a={a} b={b}")

    return render


def test_static_explorer_renders_every_combination_into_linked_stacks():
    calls = []
    controls = [
        widgets.Control("a", "A", (("one", 1), ("two", 2), ("three", 3)), index=1),
        widgets.Control("b", "B", (("x", "x"), ("y", "y")), kind="toggle"),
    ]
    e = widgets.Explorer(controls, toy_render(calls), mode="static", name="toy")
    assert sorted(calls) == sorted(itertools.product((1, 2, 3), ("x", "y")))
    outer = e.widget.children[-1]
    assert isinstance(outer, ipywidgets.Stack) and outer.selected_index == 1
    views = leaves(outer)
    for view, (a, b) in zip(views, itertools.product((1, 2, 3), ("x", "y"))):
        assert view_images(view) == [f"{a}-{b}".encode()] and view_text(view) == f"a={a} b={b}"
    # one link per Stack: the outer one to control a, each inner one to control b
    assert len(e.links) == 4
    for link in e.links:
        source, target = link.source, link.target
        assert source[1] == "index" and target[1] == "selected_index" and isinstance(target[0], ipywidgets.Stack)
    assert [link.source[0] for link in e.links].count(e.controls["b"]) == 3
    assert [link.source[0] for link in e.links].count(e.controls["a"]) == 1
    assert {"gm-widget", "gm-toy"} <= set(e.widget._dom_classes)


def test_static_widget_state_serializes_with_stacks_and_links():
    e = widgets.Explorer(
        [widgets.Control("a", "A", (("1", 1), ("2", 2)))],
        lambda a: widgets.Frame([widgets.Panel("p", bytes([a]))]),
        mode="static",
    )
    state = ipywidgets.Widget.get_manager_state(widgets=None)["state"]
    names = {m["model_name"] for m in state.values()}
    assert {"StackModel", "LinkModel", "SelectionSliderModel", "HTMLModel"} <= names
    link = state[e.links[0].model_id]["state"]
    assert link["source"] == ["IPY_MODEL_" + e.controls["a"].model_id, "index"]
    assert link["target"][1] == "selected_index"


def test_live_explorer_renders_once_then_on_every_move():
    calls = []
    controls = [
        widgets.Control("a", "A", (("one", 1), ("two", 2))),
        widgets.Control("b", "B", (("x", "x"), ("y", "y"))),
    ]
    e = widgets.Explorer(controls, toy_render(calls), mode="live")
    assert calls == [(1, "x")] and not e.links
    e.controls["b"].index = 1
    e.controls["a"].index = 1
    assert calls == [(1, "x"), (1, "y"), (2, "y")]
    assert view_images(e._view.box) == [b"2-y"] and view_text(e._view.box) == "a=2 b=y"


# --- the widgets ------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["live", "static"])
def test_vae_latent_size_explorer_shows_the_models_own_samples_and_bound(mode, vaes, mnist_test):
    e = widgets.latent_size_explorer("vae", sizes=(2, 4, 8), models=vaes, test_data=mnist_test, mode=mode, n_eval=200)
    views = leaves(e.widget.children[-1]) if mode == "static" else [e._view.box]
    sizes = (2, 4, 8) if mode == "static" else (8,)  # the slider starts at the third size
    assert len(views) == len(sizes)
    x, y = mnist_test
    digits = x[[int((y == c).nonzero()[0]) for c in range(8)]]
    for view, d in zip(views, sizes):
        vae = vaes[d]
        samples, recon = view_images(view)
        z = torch.randn(32, d, generator=torch.Generator().manual_seed(0))
        assert samples == widgets.png(vae.sample(z=z), nrow=8)
        binary = gm.eval_images(digits, "dynamic")
        assert recon == widgets.png(torch.cat([binary, vae.reconstruct(binary)]), nrow=8)
        m = gm.evaluate_vae(vae, x[:200])
        text = view_text(view)
        assert f"latent size <b>{d}</b>" in text
        assert f"<b>{m['nelbo']:.1f}</b> nats" in text and f"reconstruction {m['recon']:.1f} + KL {m['kl']:.1f}" in text


def test_gan_noise_size_explorer_uses_recorded_numbers_or_measures_them(gans, mnist_test):
    gans[2].zoo_info = {"metrics": {"fcd": 123.4, "fcd_images": 2000, "classes_covered": 7, "test_data": "somewhere"}}
    try:
        e = widgets.latent_size_explorer("gan", sizes=(2, 8), models=gans, test_data=mnist_test, mode="static")
    finally:
        del gans[2].zoo_info
    first, second = leaves(e.widget.children[-1])
    assert "<b>123</b>" in view_text(first) and "7 of 10" in view_text(first)
    z = torch.randn(32, 8, generator=torch.Generator().manual_seed(0))
    assert view_images(second) == [widgets.png(gans[8].sample(z=z), nrow=8)]
    fcd = float(re.search(r"distance <b>([0-9.]+)</b>", view_text(second)).group(1))
    assert math.isfinite(fcd) and fcd > 0


@pytest.mark.parametrize("mode", ["live", "static"])
def test_latent_navigator_decodes_the_point_the_sliders_select(mode, vaes, mnist_test):
    e = widgets.latent_navigator(vaes[2], steps=5, span=2.0, test_data=mnist_test, mode=mode)
    grid = torch.linspace(-2, 2, 5).tolist()
    if mode == "static":
        views = leaves(e.widget.children[-1].children[-1])
        assert len(views) == 25
        for view, (z1, z2) in zip(views, itertools.product(grid, grid)):
            z = torch.tensor([[z1, z2]])
            assert view_images(view) == [widgets.png(vaes[2].sample(z=z), scale=5)]
    else:
        e.controls["z1"].index, e.controls["z2"].index = 0, 4
        z = torch.tensor([[grid[0], grid[4]]])
        assert view_images(e._view.box) == [widgets.png(vaes[2].sample(z=z), scale=5)]
        assert "z = (−2.0, +2.0)" in view_text(e._view.box)


def test_latent_navigator_needs_a_2d_vae(vaes, mnist_test):
    with pytest.raises(ValueError, match="latent_dim=2"):
        widgets.latent_navigator(vaes[4], test_data=mnist_test)


def test_gan_interpolation_offers_both_paths_and_reports_the_norms(gans):
    e = widgets.interpolation_explorer("gan", model=gans[8], pairs=2, steps=5, mode="static")
    views = leaves(e.widget.children[-1])
    assert len(views) == 2 * 2 * 5
    z = torch.randn(2, 8, generator=torch.Generator().manual_seed(0))  # noise pair 1
    for view, (path, t) in zip(
        views[:10], itertools.product(("linear", "spherical"), torch.linspace(0, 1, 5).tolist())
    ):
        z_t = gm.latent_space.interpolate(z[0], z[1], t, path=path)
        assert f"‖z_t‖ = <b>{z_t.norm():.2f}</b>" in view_text(view)
        assert view_images(view)[0] == widgets.png(gans[8].sample(z=z_t), scale=4)


def test_vae_interpolation_walks_between_two_typical_test_digits_codes(vaes, mnist_test):
    e = widgets.interpolation_explorer("vae", model=vaes[4], pairs=1, steps=3, test_data=mnist_test, mode="live")
    x, y = mnist_test
    codes = gm.latent_space.encode_dataset(vaes[4], x)
    ends = []
    for c in (3, 8):  # by brute force: the member of the class closest to the class's mean code
        members = codes[y == c]
        distances = [float((m - members.mean(0)).norm()) for m in members]
        ends.append(members[distances.index(min(distances))])
    e.controls["t"].index = 2
    assert view_images(e._view.box)[0] == widgets.png(vaes[4].sample(z=ends[1][None]), scale=4)
    e.controls["t"].index = 0
    assert view_images(e._view.box)[0] == widgets.png(vaes[4].sample(z=ends[0][None]), scale=4)
    assert e.specs[0].options[0][0] == "a typical 3 → a typical 8"


# --- the class explorer: both conditional models asked for one digit ----------------------------------


@pytest.fixture(scope="module")
def conditional_models():
    torch.manual_seed(0)
    return gm.CVAE(latent_dim=3, hidden_dim=16).eval(), gm.CGAN(latent_dim=6, channels=4).eval()


def png_pixels(data: bytes, scale: int = 2) -> torch.Tensor:
    """The grey levels of a widget picture, one per original pixel (the picture is enlarged ``scale`` times)."""
    return torch.from_numpy(np.array(Image.open(io.BytesIO(data))))[::scale, ::scale]


def grid_pixels(images: torch.Tensor) -> torch.Tensor:
    """The grey levels :func:`widgets.png` writes for ``images`` in a grid of four columns."""
    return (image_grid(images, nrow=4, pad_value=0.5).clamp(0, 1) * 255).round().to(torch.uint8)


def test_class_explorer_shows_each_models_samples_of_the_chosen_digit_from_fixed_noise(conditional_models):
    cvae, cgan = conditional_models
    e = widgets.class_explorer(cvae, cgan, draws=3, n_images=8, seed=5, mode="static")
    views = leaves(e.widget.children[-1])
    assert len(views) == 10 * 3  # one frame per (digit, draw)
    shown = {}
    for view, (digit, draw) in zip(views, itertools.product(range(10), range(3))):
        pictures = view_images(view)
        assert len(pictures) == 2
        for name, model, picture in (("CVAE", cvae, pictures[0]), ("CGAN", cgan, pictures[1])):
            z = torch.randn(8, model.latent_dim, generator=torch.Generator().manual_seed(5 + draw))
            images = model.sample(z=z, y=torch.full((8,), digit))  # the same noise, asked for this digit
            torch.testing.assert_close(png_pixels(picture), grid_pixels(images), rtol=0, atol=0)
            shown[name, digit, draw] = png_pixels(picture)
        counts = [
            int(gm.class_histogram(m.sample(z=z_, y=digit))[digit])
            for m, z_ in (
                (cvae, torch.randn(8, 3, generator=torch.Generator().manual_seed(5 + draw))),
                (cgan, torch.randn(8, 6, generator=torch.Generator().manual_seed(5 + draw))),
            )
        ]
        text = view_text(view)
        assert f"digit <b>{digit}</b>, noise draw {draw + 1} of 3" in text
        assert f"reads <b>{counts[0]}</b> of the CVAE's 8 and <b>{counts[1]}</b> of the CGAN's 8 as {digit}s" in text
    # the label changes the pictures (same noise, another digit), and so does the noise (same digit, another draw)
    for name in ("CVAE", "CGAN"):
        assert not torch.equal(shown[name, 3, 0], shown[name, 8, 0])
        assert not torch.equal(shown[name, 3, 0], shown[name, 3, 1])


def test_class_explorer_static_structure_is_small_and_linked(conditional_models):
    cvae, cgan = conditional_models
    e = widgets.class_explorer(cvae, cgan, draws=2, n_images=8, mode="static")
    outer = e.widget.children[-1]
    assert isinstance(outer, ipywidgets.Stack) and len(outer.children) == 10 and outer.selected_index == 7
    assert all(isinstance(c, ipywidgets.Stack) and len(c.children) == 2 for c in outer.children)
    assert isinstance(e.controls["digit"], ipywidgets.ToggleButtons)
    assert isinstance(e.controls["draw"], ipywidgets.SelectionSlider)
    sources = [link.source[0] for link in e.links]
    assert len(e.links) == 11 and sources.count(e.controls["digit"]) == 1 and sources.count(e.controls["draw"]) == 10
    assert all(link.source[1] == "index" and link.target[1] == "selected_index" for link in e.links)
    assert {"gm-widget", "gm-class-explorer"} <= set(e.widget._dom_classes)
    views = leaves(outer)
    assert len({id(v.layout) for v in views}) == 1  # the frames share one layout model
    for view in views:  # two 4 x 2 grids of 28 x 28 digits (2-pixel padding), enlarged twice: small pictures
        for picture in view_images(view):
            assert Image.open(io.BytesIO(picture)).size == (2 * (4 * 30 + 2), 2 * (2 * 30 + 2))
    assert sum(len(v.value) for v in views) < 20 * 30_000


def test_class_explorer_live_redraws_on_every_move(conditional_models):
    cvae, cgan = conditional_models
    e = widgets.class_explorer(cvae, cgan, draws=2, n_images=4, mode="live")
    assert e.frames_rendered == 1 and not e.links
    e.controls["digit"].index = 2
    e.controls["draw"].index = 1
    z = torch.randn(4, 6, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(
        png_pixels(view_images(e._view.box)[1]), grid_pixels(cgan.sample(z=z, y=2)), rtol=0, atol=0
    )
    assert "digit <b>2</b>, noise draw 2 of 2" in view_text(e._view.box)


def test_class_explorer_refuses_a_model_that_is_not_conditional(conditional_models, vaes, gans):
    cvae, cgan = conditional_models
    with pytest.raises(gm.UserError, match=r"cvae must be a conditional model, a gm.CVAE .* got VAE"):
        widgets.class_explorer(vaes[2], cgan, mode="live")
    with pytest.raises(gm.UserError, match=r"cgan must be a conditional model, a gm.CGAN .* got GAN"):
        widgets.class_explorer(cvae, gans[2], mode="live")
    with pytest.raises(gm.UserError, match="got CGAN"):  # the two swapped
        widgets.class_explorer(cgan, cvae, mode="live")


def test_training_panel_trains_with_a_progress_bar_then_shows_samples(mnist_test):
    x, y = mnist_test
    panel = widgets.training_panel(data=(x[:128], y[:128]), test_data=(x[:100], y[:100]), mode="live", device="cpu")
    panel.controls["epochs"].value = 2
    panel.controls["latent_dim"].value = 2
    panel.controls["train"].click()
    bar = next(w for w in descendants(panel.widget) if isinstance(w, ipywidgets.IntProgress))
    assert bar.value == bar.max == 2
    picture = panel.widget.children[-1]
    assert Image.open(io.BytesIO(picture.value)).size[0] > 0
    assert len(panel.history.epochs["loss"]) == 2
    assert "2 epochs" in panel.widget.children[-2].value and "test negative ELBO" in panel.widget.children[-2].value
    panel.controls["family"].value = "saturating"
    panel.controls["epochs"].value = 1
    panel.train()
    assert "D(G(z))" in panel.widget.children[-2].value and not panel.controls["train"].disabled


def test_training_panel_in_the_static_book_is_disabled_and_says_why():
    panel = widgets.training_panel(mode="static")
    assert all(c.disabled for c in panel.controls.values())
    assert "running Python kernel" in panel.widget.children[-2].value


# --- the chapters store the static widgets -----------------------------------------------------------


def widget_state(notebook):
    nb = json.loads((ROOT / notebook).read_text())
    return nb["metadata"].get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {}).get("state", {})


@pytest.mark.parametrize(
    "notebook,name",
    [
        ("book/vae/vae-mnist.ipynb", "gm-latent-size"),
        ("book/gan/dcgan-mnist.ipynb", "gm-latent-size"),
        ("book/comparison/conditional.ipynb", "gm-class-explorer"),
    ],
)
def test_chapters_embed_a_static_explorer(notebook, name):
    state = widget_state(notebook)
    boxes = [m for m in state.values() if name in m["state"].get("_dom_classes", [])]
    assert boxes, f"{notebook} stores no {name} widget: run `make notebooks NOTEBOOKS={notebook}`"
    links = [m["state"] for m in state.values() if m["model_name"] == "LinkModel"]
    stacks = {k for k, m in state.items() if m["model_name"] == "StackModel"}
    assert any(
        link["target"][0].removeprefix("IPY_MODEL_") in stacks and link["source"][1] == "index" for link in links
    )
