"""labsupport.teaching.widgets, headless: each helper puts one output on screen (the live widget with a still
PNG of its first figure), its slider has the stated range, and the figure it draws shows the right images and
titles, at the start and after the slider moves (Agg backend; `display` is captured)."""
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
    """One display call: the box holding the slider once and the output area, plus a PNG still."""
    (bundle, raw), = shown
    assert raw
    box = widget_by_id(bundle[WIDGET_VIEW]["model_id"])
    assert isinstance(box, W.VBox) and list(box.children) == [explorer.control, explorer.output]
    assert isinstance(explorer.control, W.IntSlider) and isinstance(explorer.output, W.Output)
    png = base64.b64decode(bundle["image/png"])
    assert png.startswith(b"\x89PNG")
    return mpimg.imread(io.BytesIO(png), format="png")


def test_slider_draws_the_start_value_once_for_the_still_and_once_live(shown):
    drawn = []

    def draw(v):
        drawn.append(v)
        fig, ax = plt.subplots(figsize=(1, 1))
        ax.imshow(np.full((4, 4), v / 10), cmap="gray", vmin=0, vmax=1)
        ax.set_title(f"v={v}")
        ax.axis("off")

    explorer = widgets.slider(draw, min=2, max=8, value=6, step=2, description="level")
    still = check_one_output(shown, explorer)
    assert drawn == [6, 6]
    # the still image is the figure at the start value: its middle pixel is gray 0.6
    h, w = still.shape[:2]
    assert still[h // 2 + 5, w // 2, :3] == pytest.approx([0.6] * 3, abs=2 / 255)
    c = explorer.control
    assert (c.min, c.max, c.value, c.step, c.description, c.continuous_update) == (2, 8, 6, 2, "level", False)
    assert explorer._ipython_display_() is None  # the Explorer itself shows nothing (no second widget)
    assert plt.gca().get_title() == "v=6"
    c.value = 8  # moving the slider redraws once, with the new value
    assert drawn == [6, 6, 8] and plt.gca().get_title() == "v=8"
    c.value = 8  # no move, no redraw
    assert drawn == [6, 6, 8]
    assert len(shown) == 1  # and nothing new is displayed


def test_noising_explorer_shows_x_t_and_its_noise_level(shown):
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
        ax = plt.gca()
        np.testing.assert_allclose(shown_image(ax), grid(add_noise(x0, t, noise), 3), atol=1e-6)
        title = ax.get_title()
        assert title.startswith(f"x_t at t = {t}:")
        shown_abar = float(re.search(r"ᾱ_t = ([0-9.]+)", title).group(1))
        snr = float(re.search(r"SNR = ᾱ/\(1−ᾱ\) = ([0-9.e+-]+)", title).group(1))
        assert shown_abar == pytest.approx(abar[t], abs=5e-4)
        assert snr == pytest.approx(abar[t] / (1 - abar[t]), rel=5e-3)


def test_trajectory_explorer_shows_x_t_over_x0_hat(shown):
    traj = lab.Trajectory()
    for k, t in enumerate((90, 45, 0)):
        traj.record(t, images(5, 10 + k), images(5, 20 + k))
    explorer = widgets.trajectory_explorer(traj, n=4)
    check_one_output(shown, explorer)
    c = explorer.control
    assert (c.min, c.max, c.value, c.description) == (0, 2, 0, "step")
    for k in (0, 2):
        c.value = k
        top, bottom = plt.gcf().axes
        assert top.get_title() == f"x_t at recorded step t = {traj.steps[k]}"
        assert bottom.get_title() == f"x̂0 at recorded step t = {traj.steps[k]}"
        np.testing.assert_allclose(shown_image(top), grid(traj.x_t[k][:4], 4), atol=1e-6)
        np.testing.assert_allclose(shown_image(bottom), grid(traj.x0_hat[k][:4], 4), atol=1e-6)


def test_gallery_explorer_one_set_per_position(shown):
    results = {"10 steps": images(6, 30), "50 steps": images(6, 31), "DDPM": images(6, 32)}
    explorer = widgets.gallery_explorer(results, description="steps", n=5, notes={"50 steps": "2.1 s"})
    check_one_output(shown, explorer)
    c = explorer.control
    assert (c.min, c.max, c.value, c.description) == (0, 2, 0, "steps")
    for k, (name, title) in enumerate([("10 steps", "10 steps"), ("50 steps", "50 steps  (2.1 s)"),
                                       ("DDPM", "DDPM")]):
        c.value = k
        (ax,) = plt.gcf().axes
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
