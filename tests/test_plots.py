"""Figures and sliders draw without error on tiny inputs (Agg backend, no display)."""
from __future__ import annotations

import base64

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
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


def test_figures_draw():
    s = lab.NoiseSchedule.linear(50)
    plots.show_images(images(), "digits")
    plots.image_rows({"a": images(3), "b": images(2)}, "rows", col_titles=["1", "2", "3"])
    traj = lab.Trajectory()
    for t in (40, 20, 0):
        traj.record(t, images(), images())
    plots.trajectory(traj, "trajectory", final=images())
    plots.schedule_curves({"linear": s, "cosine": lab.NoiseSchedule.cosine(50)})
    plots.timestep_schedules(s, {"uniform": [49, 25, 0], "leading": [40, 20, 0]})
    plots.curves([0, 1, 2], {"a": [1, 2, 3]}, "curves", xlabel="x", ylabel="y", logy=True, hlines={"one": 1.0})
    plots.curves({"a": [0, 1], "b": [1, 2]}, {"a": [1, 2], "b": [2, 3]}, "two x", xlabel="x", ylabel="y")
    plots.pareto([5, 10], [30.0, 20.0], ["1 s", "2 s"], floor=5.0, extra={"other": (10, 25.0)})
    result = TrainedModelAnalyzer(toy_model(), s).visualize_noise_predictions(images(2), [0, 25, 49], show=False)
    plots.noise_predictions(result, [0, 25, 49])


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
    assert explorer._ipython_display_() is None and drawn == [10, 10]   # the still image, then the widget
    explorer.control.value = 30  # moving the slider redraws
    assert drawn[-1] == 30
    traj = lab.Trajectory()
    for t in (40, 0):
        traj.record(t, images(), images())
    widgets.trajectory_explorer(traj, n=4).control.value = 1
    widgets.gallery_explorer({"a": images(), "b": images()}, n=4, notes={"a": "1 s"}).control.value = 1
    assert len(shown) == 3


def test_notebook_helpers(monkeypatch):
    monkeypatch.setenv("LABSUPPORT_FAST", "1")
    assert fast_mode() and pick(100, 10) == 10
    monkeypatch.delenv("LABSUPPORT_FAST")
    assert not fast_mode() and pick(100, 10) == 100
    with timer() as tm:
        sum(progress(range(3), "count"))
    assert tm.seconds >= 0


def test_scripted_noise_reproduces_the_practice_sheet():
    hand = lab.NoiseSchedule(torch.tensor([1 - 0.70, 1 - 0.30 / 0.70, 1 - 0.01 / 0.30], dtype=torch.float64))
    ddim = lab.DDIMSampler(ScriptedNoise({2: 1.8, 1: 1.4, 0: 0.5}), hand)
    x = torch.full((1, 1, 1, 1), 2.0)
    for (t, s), expected in zip([(2, 1), (1, 0), (0, -1)], [2.651, 3.027, 3.290]):
        x = ddim.ddim_step(x, t, s)
        assert float(x) == pytest.approx(expected, abs=2e-3)
    with pytest.raises(ValueError, match="knows t"):
        ScriptedNoise({0: 1.0})(x, 5)
