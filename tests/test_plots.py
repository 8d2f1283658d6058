"""Figures show their inputs, titles and labels; sliders draw once and redraw (Agg backend, no display)."""
from __future__ import annotations

import base64
import time

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import labsupport as lab  # noqa: E402
from labsupport.teaching import plots, widgets  # noqa: E402
from labsupport.lab5.trained_model_analyzer import TrainedModelAnalyzer  # noqa: E402
from labsupport.models.scripted import ScriptedNoise  # noqa: E402
from labsupport.teaching.checks.cases import toy_model  # noqa: E402
from labsupport.teaching.notebook import fast_mode, pick, progress, timer  # noqa: E402


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def images(n=4):
    return torch.rand(n, 1, 8, 8) * 2 - 1


def test_grid_array_layout():
    grid = plots.grid_array(images(5), nrow=3)
    assert grid.shape == (2 * 10 - 2, 3 * 10 - 2) and grid.min() >= 0 and grid.max() <= 1


def to_unit(x):
    """(N, 1, H, W) in [-1, 1] -> (N, H, W) gray levels in [0, 1], written here: (clip(x, -1, 1) + 1) / 2."""
    return ((x.clamp(-1, 1) + 1) / 2)[:, 0].double().numpy()


def shown(ax):
    (im,) = ax.images
    return np.asarray(im.get_array(), dtype=float)


def test_show_images_draws_the_grid_with_its_title():
    x = images(4)
    plots.show_images(x, "digits")
    fig = plt.gcf()
    (ax,) = fig.axes
    assert ax.get_title() == "digits"
    assert shown(ax).shape == (8, 4 * 10 - 2)
    assert (shown(ax)[:, 8:10] == 1).all()  # a white gap between digits
    for k, digit in enumerate(to_unit(x)):  # 4 digits side by side, 2-pixel gaps
        np.testing.assert_allclose(shown(ax)[:, k * 10: k * 10 + 8], digit, atol=1e-6)


def test_image_rows_one_row_per_entry():
    rows = {"a": images(3), "b": images(2)}
    plots.image_rows(rows, "rows", col_titles=["1", "2", "3"])
    fig = plt.gcf()
    assert fig._suptitle.get_text() == "rows"
    axes = np.array(fig.axes).reshape(2, 3)
    assert [ax.get_title() for ax in axes[0]] == ["1", "2", "3"] and [ax.get_title() for ax in axes[1]] == [""] * 3
    assert [ax.get_ylabel() for ax in axes[:, 0]] == ["a", "b"]
    for r, name in enumerate(rows):
        for c in range(3):
            if c < len(rows[name]):
                np.testing.assert_allclose(shown(axes[r, c]), to_unit(rows[name])[c], atol=1e-6)
            else:
                assert len(axes[r, c].images) == 0  # row b has two digits: its third cell stays empty


def test_trajectory_shows_x_t_over_x0_hat_and_the_result():
    traj = lab.Trajectory()
    for t in (40, 20, 0):
        traj.record(t, images(), images())
    final = images()
    plots.trajectory(traj, "trajectory", final=final, sample=1)
    fig = plt.gcf()
    axes = np.array(fig.axes).reshape(2, 4)
    assert fig._suptitle.get_text() == "trajectory"
    assert [ax.get_title() for ax in axes[0]] == ["t=40", "t=20", "t=0", "result"]
    assert [ax.get_ylabel() for ax in axes[:, 0]] == ["x_t", "x̂0"]
    for k in range(3):
        np.testing.assert_allclose(shown(axes[0, k]), to_unit(traj.x_t[k])[1], atol=1e-6)
        np.testing.assert_allclose(shown(axes[1, k]), to_unit(traj.x0_hat[k])[1], atol=1e-6)
    for r in range(2):
        np.testing.assert_allclose(shown(axes[r, 3]), to_unit(final)[1], atol=1e-6)


def test_schedule_curves_plot_beta_abar_and_log_snr():
    betas = np.linspace(1e-4, 0.02, 50)
    abar = np.cumprod(1 - betas)
    plots.schedule_curves({"linear": lab.NoiseSchedule.linear(50), "cosine": lab.NoiseSchedule.cosine(50)})
    fig = plt.gcf()
    assert len(fig.axes) == 3 and fig._suptitle.get_text() == "Noise schedules"
    assert [ax.get_ylabel() for ax in fig.axes] == ["β_t", "ᾱ_t", "log SNR"]
    assert fig.axes[0].get_yscale() == "log"
    for ax, expected in zip(fig.axes, (betas, abar, np.log(abar / (1 - abar)))):
        linear, cosine = ax.get_lines()
        assert (linear.get_label(), cosine.get_label()) == ("linear", "cosine")
        np.testing.assert_allclose(linear.get_xdata(), np.arange(50))
        np.testing.assert_allclose(linear.get_ydata(), expected, rtol=1e-4)


def test_timestep_schedules_mark_each_schedules_steps():
    s = lab.NoiseSchedule.linear(50)
    abar = np.cumprod(1 - np.linspace(1e-4, 0.02, 50))
    steps = {"uniform": [49, 25, 0], "leading": [40, 20, 0]}
    plots.timestep_schedules(s, steps)
    fig = plt.gcf()
    assert len(fig.axes) == 3
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["uniform", "leading"]
    for row, ts in enumerate(steps.values()):
        on_t, on_abar, on_snr = (ax.get_lines()[row] for ax in fig.axes)
        np.testing.assert_allclose(on_t.get_xdata(), ts)
        np.testing.assert_allclose(on_abar.get_xdata(), abar[ts], rtol=1e-5)
        np.testing.assert_allclose(on_snr.get_xdata(), np.log(abar[ts] / (1 - abar[ts])), rtol=1e-4, atol=1e-4)
        assert set(on_t.get_ydata()) == {row}


def test_curves_one_line_per_entry_and_labeled_levels():
    plots.curves([0, 1, 2], {"a": [1, 2, 3]}, "curves", xlabel="x", ylabel="y", logy=True, hlines={"one": 1.0})
    (ax,) = plt.gcf().axes
    assert (ax.get_title(), ax.get_xlabel(), ax.get_ylabel(), ax.get_yscale()) == ("curves", "x", "y", "log")
    line, level = ax.get_lines()
    assert line.get_label() == "a" and list(line.get_xdata()) == [0, 1, 2] and list(line.get_ydata()) == [1, 2, 3]
    assert level.get_label() == "one" and set(level.get_ydata()) == {1.0}
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["a", "one"]
    plots.curves({"a": [0, 1], "b": [1, 2]}, {"a": [1, 2], "b": [2, 3]}, "two x", xlabel="x", ylabel="y")
    (ax,) = plt.gcf().axes
    assert ax.get_yscale() == "linear"
    assert [(list(l.get_xdata()), list(l.get_ydata())) for l in ax.get_lines()] == [([0, 1], [1, 2]), ([1, 2], [2, 3])]


def test_pareto_ours_beside_the_published_trend():
    plots.pareto([5, 10], [30.0, 20.0], ["1 s", "2 s"], floor=5.0, extra={"other": (10, 25.0)})
    fig = plt.gcf()
    ours, published = fig.axes
    assert ours.get_xscale() == "log" and published.get_yscale() == "log"
    lines = {l.get_label(): l for l in ours.get_lines()}
    assert list(lines["DDIM, this lab"].get_xdata()) == [5, 10]
    assert list(lines["DDIM, this lab"].get_ydata()) == [30.0, 20.0]
    assert list(lines["other"].get_xdata()) == [10] and list(lines["other"].get_ydata()) == [25.0]
    assert set(lines["real held-out digits (same count)"].get_ydata()) == {5.0}
    assert [t.get_text() for t in ours.texts] == ["1 s", "2 s"]
    paper = {l.get_label(): list(l.get_ydata()) for l in published.get_lines()}
    assert paper == {k: v for k, v in plots.DDIM_PAPER_CIFAR10.items() if k != "steps"}
    assert paper["DDIM (η = 0)"][0] == 13.36  # Song et al. 2021, Table 1: 10 steps, η = 0
    plots.pareto([5], [30.0], ["1 s"], published=None)
    assert len(plt.gcf().axes) == 1


def test_noise_predictions_rows_of_x_t_eps_and_x0_hat():
    s = lab.NoiseSchedule.linear(50)
    result = TrainedModelAnalyzer(toy_model(), s).visualize_noise_predictions(images(2), [0, 25, 49], show=False)
    plots.noise_predictions(result, [0, 25, 49])
    axes = np.array(plt.gcf().axes).reshape(3, 3)
    assert [ax.get_title() for ax in axes[0]] == ["t=0", "t=25", "t=49"]
    assert [ax.get_ylabel() for ax in axes[:, 0]] == ["x_t", "ε_θ", "x̂0"]
    for c in range(3):
        np.testing.assert_allclose(shown(axes[0, c]), to_unit(result["x_t"][c])[0], atol=1e-6)
        # ε_θ is shown on [-3, 3]
        np.testing.assert_allclose(shown(axes[1, c]), to_unit(result["eps_pred"][c].clamp(-3, 3) / 3)[0], atol=1e-6)
        np.testing.assert_allclose(shown(axes[2, c]), to_unit(result["x0_hat"][c])[0], atol=1e-6)


def test_widgets_draw_once_and_redraw(monkeypatch):
    shown = []
    monkeypatch.setattr(widgets, "display", lambda obj, raw=False: shown.append((obj, raw)))
    s = lab.NoiseSchedule.linear(50)
    x0, eps = images(), torch.randn(4, 1, 8, 8)
    drawn = []
    explorer = widgets.noising_explorer(lambda x, t, n: drawn.append(t) or lab.q_sample(s, x, t, n), x0, eps, s,
                                        value=10)
    # one output: the live widget and, for exports that keep no widget state, a still PNG of the same figure
    (bundle, raw), = shown
    assert raw and "application/vnd.jupyter.widget-view+json" in bundle
    assert base64.b64decode(bundle["image/png"]).startswith(b"\x89PNG")
    assert explorer._ipython_display_() is None and drawn == [10]   # one render: the still and the W.Image
    assert explorer.image.value == base64.b64decode(bundle["image/png"])
    explorer.control.value = 30  # moving the slider redraws into the image widget
    assert drawn[-1] == 30 and explorer.image.value != base64.b64decode(bundle["image/png"])
    rendered = []
    real = widgets._render
    monkeypatch.setattr(widgets, "_render", lambda draw, v: real(lambda k: (draw(k), rendered.append(plt.gcf())), v))
    traj = lab.Trajectory()
    for t in (40, 0):
        traj.record(t, images(), images())
    widgets.trajectory_explorer(traj, n=4).control.value = 1
    assert [ax.get_title() for ax in rendered[-1].axes] == ["x_t at recorded step t = 0", "x̂0 at recorded step t = 0"]
    gallery = widgets.gallery_explorer({"a": images(), "b": images()}, n=4, notes={"a": "1 s"})
    assert rendered[-1].axes[0].get_title() == "a  (1 s)"
    gallery.control.value = 1
    assert rendered[-1].axes[0].get_title() == "b"
    assert len(shown) == 3 and plt.get_fignums() == []   # every figure closed after its render


def test_notebook_helpers(monkeypatch):
    monkeypatch.setenv("LABSUPPORT_FAST", "1")
    assert fast_mode() and pick(100, 10) == 10
    monkeypatch.delenv("LABSUPPORT_FAST")
    assert not fast_mode() and pick(100, 10) == 100
    assert list(progress(range(3), "count")) == [0, 1, 2]
    with timer() as short:
        time.sleep(0.01)
    with timer() as long:
        time.sleep(0.3)
    # a known sleep, within what a busy machine may add; longer work reads longer
    assert 0.01 <= short.seconds < long.seconds and 0.3 <= long.seconds < 5.3


def test_scripted_noise_reproduces_the_practice_sheet():
    hand = lab.NoiseSchedule(torch.tensor([1 - 0.70, 1 - 0.30 / 0.70, 1 - 0.01 / 0.30], dtype=torch.float64))
    ddim = lab.DDIMSampler(ScriptedNoise({2: 1.8, 1: 1.4, 0: 0.5}), hand)
    x = torch.full((1, 1, 1, 1), 2.0)
    for (t, s), expected in zip([(2, 1), (1, 0), (0, -1)], [2.651, 3.027, 3.290]):
        x = ddim.ddim_step(x, t, s)
        assert float(x) == pytest.approx(expected, abs=2e-3)
    with pytest.raises(ValueError, match="knows t"):
        ScriptedNoise({0: 1.0})(x, 5)
