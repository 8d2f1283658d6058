"""labsupport.lab5.trained_model_analyzer: what a noise predictor gets right, step by step (notebook 02).

A stand-in network that returns a tensor we choose makes every result a closed form: with the true ε,
x̂0 is the clean image and the error is zero; with ε + c, the error is c².
"""
from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from conftest import reference_tables  # noqa: E402
from labsupport import NoiseSchedule  # noqa: E402
from labsupport.lab5.trained_model_analyzer import TrainedModelAnalyzer  # noqa: E402
from labsupport.maths.forward import q_sample  # noqa: E402
from labsupport.teaching.checks.cases import short_schedule, toy_model  # noqa: E402

SHAPE = (3, 1, 6, 6)
TIMESTEPS = [0, 1, 250, 500, 999]


class Returns(nn.Module):
    """A network that answers the tensor it was given (whatever x_t), and records the t it was asked about."""

    num_classes, null_class = 10, 10

    def __init__(self, answer: torch.Tensor):
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros((), dtype=answer.dtype), requires_grad=False)
        self.answer = answer
        self.seen_t: list[int] = []

    def forward(self, x_t, t, y=None):
        assert x_t.shape == self.answer.shape
        self.seen_t.append(int(torch.as_tensor(t).reshape(-1)[0]))
        return self.answer.clone()


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def data(seed=0):
    g = torch.Generator().manual_seed(seed)
    x0 = (2 * torch.randn(SHAPE, generator=g, dtype=torch.float64)).tanh()
    eps = torch.randn(SHAPE, generator=g, dtype=torch.float64)
    return x0, eps


def test_shapes_and_x_t_is_the_forward_process(schedule):
    x0, eps = data()
    analyzer = TrainedModelAnalyzer(Returns(eps), schedule)
    out = analyzer.visualize_noise_predictions(x0, TIMESTEPS, noise=eps, show=False)
    assert set(out) == {"x_t", "eps_pred", "x0_hat"}
    for value in out.values():
        assert value.shape == (len(TIMESTEPS), *SHAPE) and value.dtype == torch.float64
    abar = reference_tables()["abar"]
    for k, t in enumerate(TIMESTEPS):
        torch.testing.assert_close(out["x_t"][k], q_sample(schedule, x0, t, eps))
        torch.testing.assert_close(out["x_t"][k], math.sqrt(abar[t]) * x0 + math.sqrt(1 - abar[t]) * eps,
                                   rtol=1e-6, atol=1e-7)


def test_true_noise_gives_back_the_clean_image_and_zero_error(schedule):
    x0, eps = data(1)
    model = Returns(eps)
    analyzer = TrainedModelAnalyzer(model, schedule)
    out = analyzer.visualize_noise_predictions(x0, TIMESTEPS, noise=eps, show=False)
    for k in range(len(TIMESTEPS)):
        torch.testing.assert_close(out["eps_pred"][k], eps, rtol=0, atol=0)
        # x̂0 = (x_t − √(1−ᾱ)ε)/√ᾱ with x_t = √ᾱ·x0 + √(1−ᾱ)ε: x0 up to float64 rounding (÷ √ᾱ_999 ≈ 0.006)
        torch.testing.assert_close(out["x0_hat"][k], x0, rtol=0, atol=1e-12)
    mse = analyzer.analyze_noise_prediction_quality(x0, TIMESTEPS, noise=eps)
    assert mse.shape == (len(TIMESTEPS),)
    assert torch.equal(mse, torch.zeros_like(mse))
    assert model.seen_t == TIMESTEPS * 2  # one call per timestep, in order, for each method


@pytest.mark.parametrize("c", [0.5, -2.0])
def test_error_of_a_shifted_prediction_is_its_square(schedule, c):
    """ε_θ = ε + c at every pixel: MSE = c² at every t; x̂0 moves by −c·√(1−ᾱ_t)/√ᾱ_t."""
    x0, eps = data(2)
    analyzer = TrainedModelAnalyzer(Returns(eps + c), schedule)
    mse = analyzer.analyze_noise_prediction_quality(x0, TIMESTEPS, noise=eps)
    torch.testing.assert_close(mse, torch.full((len(TIMESTEPS),), c * c, dtype=mse.dtype), rtol=1e-12, atol=1e-12)
    out = analyzer.visualize_noise_predictions(x0, [10, 600], noise=eps, show=False)
    abar = reference_tables()["abar"]
    for k, t in enumerate([10, 600]):
        torch.testing.assert_close(out["x0_hat"][k], x0 - c * math.sqrt((1 - abar[t]) / abar[t]), rtol=1e-5, atol=1e-5)


def test_error_of_a_zero_prediction_is_the_noise_power(schedule):
    x0, eps = data(3)
    mse = TrainedModelAnalyzer(Returns(torch.zeros_like(eps)), schedule).analyze_noise_prediction_quality(
        x0, [5, 700], noise=eps)
    torch.testing.assert_close(mse, (eps ** 2).mean().repeat(2))


def test_one_noise_drawn_from_the_generator_serves_every_t(schedule):
    x0, _ = data(4)
    analyzer = TrainedModelAnalyzer(toy_model(), schedule)
    out = analyzer.visualize_noise_predictions(x0, TIMESTEPS, generator=torch.Generator().manual_seed(7), show=False)
    abar = reference_tables()["abar"]
    implied = [(out["x_t"][k].double() - math.sqrt(abar[t]) * x0) / math.sqrt(1 - abar[t])
               for k, t in enumerate(TIMESTEPS)]
    for e in implied[1:]:
        torch.testing.assert_close(e, implied[0], rtol=1e-4, atol=1e-4)
    # the same seed gives the same numbers, another seed other numbers
    again = analyzer.visualize_noise_predictions(x0, TIMESTEPS, generator=torch.Generator().manual_seed(7), show=False)
    other = analyzer.visualize_noise_predictions(x0, TIMESTEPS, generator=torch.Generator().manual_seed(8), show=False)
    assert all(torch.equal(out[k], again[k]) for k in out)
    assert not torch.allclose(out["x_t"], other["x_t"])
    # and the quality method draws the same ε from the same seed
    mse = analyzer.analyze_noise_prediction_quality(x0, TIMESTEPS, generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(mse, ((out["eps_pred"] - implied[0].float()) ** 2).mean(dim=(1, 2, 3, 4)),
                               rtol=1e-4, atol=1e-5)


def test_respaced_schedule_asks_the_network_about_training_timesteps():
    full = NoiseSchedule.linear(1000)
    respaced = full.respace([0, 250, 500, 999])
    x0, eps = data(5)
    model = Returns(eps)
    out = TrainedModelAnalyzer(model, respaced).visualize_noise_predictions(x0, [3, 1], noise=eps, show=False)
    assert model.seen_t == [999, 250]
    # the respaced schedule keeps ᾱ at those steps: x_t is the full schedule's x_t at 999 and 250
    torch.testing.assert_close(out["x_t"][0], q_sample(full, x0, 999, eps), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out["x_t"][1], q_sample(full, x0, 250, eps), rtol=1e-5, atol=1e-6)


def test_show_draws_one_figure_of_three_rows():
    s = short_schedule()
    x0, _ = data(6)
    before = len(plt.get_fignums())
    TrainedModelAnalyzer(toy_model(), s).visualize_noise_predictions(x0.float(), [0, 15, 29],
                                                                     generator=torch.Generator().manual_seed(0))
    assert len(plt.get_fignums()) == before + 1
    fig = plt.gcf()
    assert len(fig.axes) == 3 * 3  # rows x_t, ε_θ, x̂0 by one column per timestep
    assert [ax.get_title() for ax in fig.axes[:3]] == ["t=0", "t=15", "t=29"]


def test_noise_of_the_wrong_shape(schedule):
    x0, eps = data(7)
    analyzer = TrainedModelAnalyzer(Returns(eps), schedule)
    for call in (analyzer.visualize_noise_predictions, analyzer.analyze_noise_prediction_quality):
        with pytest.raises(ValueError, match=r"noise must have the shape of x_clean \(3, 1, 6, 6\), got \(3, 1, 6\)"):
            call(x0, [1], noise=eps[..., 0])
