"""Check of notebook 02's piece `trained_model_analyzer` (Lab 5 part 1).

Its known mistakes get the inputs  model, schedule, x_clean, timesteps, noise.
"""
from __future__ import annotations

import torch

from ...lab5.trained_model_analyzer import TrainedModelAnalyzer
from ...samplers.base import SamplerBase
from .cases import images, noise, schedule, toy_model
from .catalog import Mistake
from .core import Case, MethodSpec, Piece, Report, register, run_piece
from .slips import NOISING, X0_MISTAKES, noised, x0_formula

__all__ = ["trained_model_analyzer"]


def _cases() -> list[Case]:
    rows = [("linear schedule, timesteps [0, 100, 500, 999]", "linear", (3, 1, 8, 8), [0, 100, 500, 999]),
            ("cosine schedule, timesteps [10, 900]", "cosine", (2, 1, 6, 6), [10, 900]),
            ("one timestep given as a tensor", "linear", (4, 1, 5, 5), torch.tensor([250]))]
    return [Case(label, {"model": toy_model(), "schedule": schedule(kind), "x_clean": images(shape, 40 + k),
                         "timesteps": ts, "noise": noise(shape, 40 + k)})
            for k, (label, kind, shape, ts) in enumerate(rows)]


def _quality(obj, i):
    return obj.analyze_noise_prediction_quality(i["x_clean"], i["timesteps"], noise=i["noise"])


def _visualize(obj, i):
    return obj.visualize_noise_predictions(i["x_clean"], i["timesteps"], noise=i["noise"], show=False)


def _build(cls, i):
    return cls(i["model"], i["schedule"])


# -- known mistakes --------------------------------------------------------------------------------
def _rows(model, schedule, x_clean, timesteps, noise, signal="sqrt_abar", noise_coef="sqrt_1m_abar"):
    """(t, x_t, ε_θ(x_t, t)) at every t, x_t noised with the given tables (the defaults: q_sample)."""
    sampler = SamplerBase(model, schedule)
    for t in timesteps:
        t = int(t)
        x_t = noised(signal, noise_coef)(schedule, x_clean, t, noise)
        yield t, x_t, sampler.predict_eps(x_t, t)


def _quality_variant(error: str = "mse", target: str = "noise", signal="sqrt_abar", noise_coef="sqrt_1m_abar"):
    def fn(model, schedule, x_clean, timesteps, noise, **_):
        if noise is None:
            return None
        out = []
        for _t, _x_t, eps_pred in _rows(model, schedule, x_clean, timesteps, noise, signal, noise_coef):
            diff = eps_pred - (noise if target == "noise" else x_clean)
            out.append({"mse": (diff ** 2).mean(), "rmse": (diff ** 2).mean().sqrt(), "sum": (diff ** 2).sum(),
                        "mae": diff.abs().mean()}[error])
        return torch.stack(out)
    return fn


def _visualize_variant(x0_kind: str = "ok", signal="sqrt_abar", noise_coef="sqrt_1m_abar", true_noise: bool = False):
    def fn(model, schedule, x_clean, timesteps, noise, **_):
        if noise is None:
            return None
        rows = {"x_t": [], "eps_pred": [], "x0_hat": []}
        for t, x_t, eps_pred in _rows(model, schedule, x_clean, timesteps, noise, signal, noise_coef):
            x0_hat = x0_formula(x0_kind)(schedule, x_t, noise if true_noise else eps_pred, t)
            for key, value in zip(rows, (x_t, eps_pred, x0_hat)):
                rows[key].append(value)
        return {key: torch.stack(value) for key, value in rows.items()}
    return fn


_NOISING_FOR_ANALYZER = [n for n in NOISING if n[0] in ("alpha_for_abar", "missing_sqrt", "one_minus_sqrt",
                                                         "swapped_coefficients", "off_by_one_timestep")]
_QUALITY = [
    Mistake("rmse_not_mse", "you returned the root mean squared error; the method returns the mean squared error "
                            "(no square root)", _quality_variant("rmse")),
    Mistake("sum_not_mean", "the squared errors are summed; average them with .mean()", _quality_variant("sum")),
    Mistake("absolute_error", "that is the mean absolute error |ε_θ − ε|; square the differences",
            _quality_variant("mae")),
    Mistake("compared_with_image", "ε_θ was compared with the clean image; the network predicts the noise, so "
                                   "compare it with the ε that you added", _quality_variant(target="x_clean")),
] + [Mistake(n, "(when noising x_clean) " + e, _quality_variant(signal=a, noise_coef=b))
     for n, a, b, e in _NOISING_FOR_ANALYZER]

_VISUALIZE = [
    Mistake("x0_from_true_noise", "x̂0 was computed with the true noise ε, which just gives x_clean back; the point "
                                  "is the model's estimate, so use ε_θ(x_t, t)", _visualize_variant(true_noise=True)),
] + [Mistake(n, "(in x̂0) " + e, _visualize_variant(x0_kind=n)) for n, e in X0_MISTAKES] + [
    Mistake(n, "(when noising x_clean) " + e, _visualize_variant(signal=a, noise_coef=b))
    for n, a, b, e in _NOISING_FOR_ANALYZER]


PIECE = register(Piece(
    id="trained_model_analyzer",
    defines=("TrainedModelAnalyzer",),
    reference={"TrainedModelAnalyzer": TrainedModelAnalyzer},
    build=_build,
    methods=[
        MethodSpec("analyze_noise_prediction_quality", _cases, _quality,
                   lambda i: _quality(_build(TrainedModelAnalyzer, i), i), own_maths=("q_sample",),
                   derive_from=("lab5.trained_model_analyzer.TrainedModelAnalyzer.analyze_noise_prediction_quality",)),
        MethodSpec("visualize_noise_predictions", _cases, _visualize,
                   lambda i: _visualize(_build(TrainedModelAnalyzer, i), i), rtol=1e-4, atol=1e-4,
                   own_maths=("q_sample", "predict_x0_from_eps"),
                   derive_from=("lab5.trained_model_analyzer.TrainedModelAnalyzer.visualize_noise_predictions",)),
    ],
    mistakes={"analyze_noise_prediction_quality": _QUALITY, "visualize_noise_predictions": _VISUALIZE},
))


def trained_model_analyzer(obj) -> Report:
    """Check TrainedModelAnalyzer (notebook 02) and print ✓ or a precise ✗ per method."""
    return run_piece("trained_model_analyzer", obj)
