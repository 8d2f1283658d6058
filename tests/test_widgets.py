"""labsupport.teaching.widgets, headless: each helper puts one output on screen (the live widget with a still
PNG of its first figure), its slider has the stated range, and the figure it draws shows the right images and
titles, at the start and after the slider moves (Agg backend; `display` is captured). The figure is shown in a
`W.Image` (no `W.Output` anywhere) and closed after each render."""
from __future__ import annotations

import base64
import io
import math
import re

import matplotlib

matplotlib.use("Agg")

import matplotlib.image as mpimg  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
import ipywidgets as W  # noqa: E402
from ipywidgets.widgets import widget as widget_module  # noqa: E402

import labsupport as lab  # noqa: E402
from labsupport.teaching import widgets  # noqa: E402

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


@pytest.fixture
def shown(monkeypatch):
    """What the helpers hand to IPython's display: a list of (bundle, raw)."""
    calls = []
    monkeypatch.setattr(widgets, "display", lambda obj, raw=False: calls.append((obj, raw)))
    return calls


@pytest.fixture
def rendered(monkeypatch):
    """Every figure the helpers render, in order (closed by then, but its axes can still be read)."""
    figures = []
    real = widgets._render

    def recording(draw, value):
        def draw_and_keep(v):
            draw(v)
            figures.append(plt.gcf())
        return real(draw_and_keep, value)

    monkeypatch.setattr(widgets, "_render", recording)
    return figures


def widget_by_id(model_id):
    registry = getattr(widget_module, "_instances", None) or W.Widget.widgets
    return registry[model_id]


def images(n, seed):
    return torch.rand((n, 1, 6, 6), generator=torch.Generator().manual_seed(seed)) * 2.4 - 1.2  # some outside [-1, 1]


def grid(x, nrow):
    """The grid the figures show, written here: each digit (clip(x, −1, 1) + 1)/2, 2-pixel white gaps."""
    x = x.detach().double().numpy()[:, 0]
    n, h, w = x.shape
    ncol = min(nrow, n)
    rows = -(-n // ncol)
    out = np.ones((rows * (h + 2) - 2, ncol * (w + 2) - 2))
    for k in range(n):
        r, c = divmod(k, ncol)
        out[r * (h + 2): r * (h + 2) + h, c * (w + 2): c * (w + 2) + w] = (np.clip(x[k], -1, 1) + 1) / 2
    return out


def shown_image(ax):
    (im,) = ax.images
    return np.asarray(im.get_array(), dtype=float)


def check_one_output(shown, explorer):
    """One display call: the box holding the slider once, the figure's image and the (empty) error line,
    plus a PNG still, the same PNG the image widget starts with; no figure is left open."""
    (bundle, raw), = shown
    assert raw
    box = widget_by_id(bundle[WIDGET_VIEW]["model_id"])
    assert isinstance(box, W.VBox) and list(box.children) == [explorer.control, explorer.image, explorer.message]
    assert isinstance(explorer.control, W.IntSlider) and isinstance(explorer.image, W.Image)
    assert explorer.output is explorer.image and explorer.image.format == "png" and explorer.message.value == ""
    png = base64.b64decode(bundle["image/png"])
    assert png.startswith(b"\x89PNG") and explorer.image.value == png
    assert plt.get_fignums() == []
    return mpimg.imread(io.BytesIO(png), format="png")


def png_pixels(data):
    return mpimg.imread(io.BytesIO(data), format="png")


def test_slider_draws_the_start_value_once_for_the_still_and_the_live_image(shown, rendered):
    drawn = []

    def draw(v):
        drawn.append(v)
        fig, ax = plt.subplots(figsize=(1, 1))
        ax.imshow(np.full((4, 4), v / 10), cmap="gray", vmin=0, vmax=1)
        ax.set_title(f"v={v}")
        ax.axis("off")

    explorer = widgets.slider(draw, min=2, max=8, value=6, step=2, description="level")
    still = check_one_output(shown, explorer)
    assert drawn == [6]
    # the still image is the figure at the start value: its middle pixel is gray 0.6
    h, w = still.shape[:2]
    assert still[h // 2 + 5, w // 2, :3] == pytest.approx([0.6] * 3, abs=2 / 255)
    c = explorer.control
    assert (c.min, c.max, c.value, c.step, c.description, c.continuous_update) == (2, 8, 6, 2, "level", False)
    assert explorer._ipython_display_() is None  # the Explorer itself shows nothing (no second widget)
    assert rendered[-1].axes[0].get_title() == "v=6"
    first = explorer.image.value
    c.value = 8  # moving the slider redraws once, with the new value, into the image widget
    assert drawn == [6, 8] and rendered[-1].axes[0].get_title() == "v=8"
    assert explorer.image.value != first
    moved = png_pixels(explorer.image.value)
    assert moved[h // 2 + 5, w // 2, :3] == pytest.approx([0.8] * 3, abs=2 / 255)
    assert plt.get_fignums() == []  # each render closes its figure
    c.value = 8  # no move, no redraw
    assert drawn == [6, 8]
    assert len(shown) == 1  # and nothing new is displayed


def test_noising_explorer_shows_x_t_and_its_noise_level(shown, rendered):
    s = lab.NoiseSchedule.linear(200)
    x0, noise = images(3, 0), torch.randn((3, 1, 6, 6), generator=torch.Generator().manual_seed(1))
    abar = np.cumprod(1 - np.linspace(1e-4, 0.02, 200))

    def add_noise(x, t, e):
        return math.sqrt(abar[t]) * x + math.sqrt(1 - abar[t]) * e

    explorer = widgets.noising_explorer(add_noise, x0, noise, s, value=40)
    check_one_output(shown, explorer)
    c = explorer.control
    assert (c.min, c.max, c.value, c.step, c.description) == (0, 199, 40, 10, "t")
    for t in (40, 150):
        c.value = t
        (ax,) = rendered[-1].axes
        np.testing.assert_allclose(shown_image(ax), grid(add_noise(x0, t, noise), 3), atol=1e-6)
        title = ax.get_title()
        assert title.startswith(f"x_t at t = {t}:")
        shown_abar = float(re.search(r"ᾱ_t = ([0-9.]+)", title).group(1))
        snr = float(re.search(r"SNR = ᾱ/\(1−ᾱ\) = ([0-9.e+-]+)", title).group(1))
        assert shown_abar == pytest.approx(abar[t], abs=5e-4)
        assert snr == pytest.approx(abar[t] / (1 - abar[t]), rel=5e-3)


def test_trajectory_explorer_shows_x_t_over_x0_hat(shown, rendered):
    traj = lab.Trajectory()
    for k, t in enumerate((90, 45, 0)):
        traj.record(t, images(5, 10 + k), images(5, 20 + k))
    explorer = widgets.trajectory_explorer(traj, n=4)
    check_one_output(shown, explorer)
    c = explorer.control
    assert (c.min, c.max, c.value, c.description) == (0, 2, 0, "step")
    for k in (0, 2):
        c.value = k
        top, bottom = rendered[-1].axes
        assert top.get_title() == f"x_t at recorded step t = {traj.steps[k]}"
        assert bottom.get_title() == f"x̂0 at recorded step t = {traj.steps[k]}"
        np.testing.assert_allclose(shown_image(top), grid(traj.x_t[k][:4], 4), atol=1e-6)
        np.testing.assert_allclose(shown_image(bottom), grid(traj.x0_hat[k][:4], 4), atol=1e-6)


def test_gallery_explorer_one_set_per_position(shown, rendered):
    results = {"10 steps": images(6, 30), "50 steps": images(6, 31), "DDPM": images(6, 32)}
    explorer = widgets.gallery_explorer(results, description="steps", n=5, notes={"50 steps": "2.1 s"})
    check_one_output(shown, explorer)
    c = explorer.control
    assert (c.min, c.max, c.value, c.description) == (0, 2, 0, "steps")
    for k, (name, title) in enumerate([("10 steps", "10 steps"), ("50 steps", "50 steps  (2.1 s)"),
                                       ("DDPM", "DDPM")]):
        c.value = k
        (ax,) = rendered[-1].axes
        assert ax.get_title() == title
        np.testing.assert_allclose(shown_image(ax), grid(results[name][:5], 5), atol=1e-6)


def test_each_helper_displays_exactly_once(shown):
    s = lab.NoiseSchedule.linear(50)
    traj = lab.Trajectory()
    traj.record(10, images(2, 0), images(2, 1))
    made = [widgets.noising_explorer(lambda x, t, e: x, images(2, 2), images(2, 3), s, value=0),
            widgets.trajectory_explorer(traj, n=2),
            widgets.gallery_explorer({"a": images(2, 4)}, n=2)]
    assert len(shown) == 3
    ids = [bundle[WIDGET_VIEW]["model_id"] for bundle, _ in shown]
    assert len(set(ids)) == 3
    for explorer, model_id in zip(made, ids):
        assert explorer.control in widget_by_id(model_id).children


def test_no_output_widget_is_created(shown, monkeypatch):
    """nbclient's Output-widget emulation crashes (KeyError) or stalls headless: the helpers never make one."""
    def refuse(*args, **kwargs):
        raise AssertionError("W.Output created")

    import ipywidgets.widgets as ww
    from ipywidgets.widgets import widget_output
    output_class = widget_output.Output
    for module in (W, ww, widget_output):
        monkeypatch.setattr(module, "Output", refuse)
    s = lab.NoiseSchedule.linear(50)
    traj = lab.Trajectory()
    traj.record(10, images(2, 0), images(2, 1))
    traj.record(0, images(2, 2), images(2, 3))
    made = [widgets.noising_explorer(lambda x, t, e: x, images(2, 2), images(2, 3), s, value=0),
            widgets.trajectory_explorer(traj, n=2),
            widgets.gallery_explorer({"a": images(2, 4), "b": images(2, 5)}, n=2)]
    for explorer in made:
        explorer.control.value = 1
    assert len(shown) == 3
    for bundle, _ in shown:
        box = widget_by_id(bundle[WIDGET_VIEW]["model_id"])
        assert not any(isinstance(child, output_class) for child in box.children)


def test_a_failing_redraw_keeps_the_image_and_says_why(shown):
    def draw(v):
        if v == 3:
            raise ValueError("no level 3")
        fig, ax = plt.subplots(figsize=(1, 1))
        ax.set_title(f"v={v}")

    explorer = widgets.slider(draw, min=0, max=5, value=1)
    first = explorer.image.value
    explorer.control.value = 3
    assert explorer.image.value == first
    assert "ValueError: no level 3" in explorer.message.value and "draw(3)" in explorer.message.value
    assert plt.get_fignums() == []  # the figure of the failed draw is closed too
    explorer.control.value = 4
    assert explorer.message.value == "" and explorer.image.value != first


def test_a_failing_first_draw_raises_and_displays_nothing(shown):
    def draw(v):
        plt.subplots()
        raise ValueError("broken")

    with pytest.raises(ValueError, match="broken"):
        widgets.slider(draw, min=0, max=5, value=1)
    assert shown == [] and plt.get_fignums() == []


def test_a_draw_that_calls_show_still_gives_its_figure_once(shown, rendered, monkeypatch):
    """plots.show_images without `ax` ends with plt.show(): inside the helpers that shows nothing itself,
    and the figure it drew is the one rendered."""
    from labsupport.teaching import plots
    calls = []
    monkeypatch.setattr(plt, "show", lambda *a, **k: calls.append("show"))
    x = images(2, 5)

    explorer = widgets.slider(lambda v: plots.show_images(x, f"v={v}", nrow=2), min=0, max=3, value=1)
    check_one_output(shown, explorer)
    explorer.control.value = 2
    assert calls == [] and plt.get_fignums() == []
    assert [fig.axes[0].get_title() for fig in rendered] == ["v=1", "v=2"]
    np.testing.assert_allclose(shown_image(rendered[-1].axes[0]), grid(x, 2), atol=1e-6)
    plt.show()   # plt.show is itself again after each render
    assert calls == ["show"]
