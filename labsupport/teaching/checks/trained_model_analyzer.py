"""Check of notebook 02's piece `trained_model_analyzer` (Lab 5 part 1)."""
from __future__ import annotations

import torch

from ...lab5.trained_model_analyzer import TrainedModelAnalyzer
from .cases import images, noise, schedule, toy_model
from .core import Case, MethodSpec, Piece, register, run_piece

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


PIECE = register(Piece(
    id="trained_model_analyzer",
    defines=("TrainedModelAnalyzer",),
    reference={"TrainedModelAnalyzer": TrainedModelAnalyzer},
    build=_build,
    methods=[
        MethodSpec("analyze_noise_prediction_quality", _cases, _quality,
                   lambda i: _quality(_build(TrainedModelAnalyzer, i), i)),
        MethodSpec("visualize_noise_predictions", _cases, _visualize,
                   lambda i: _visualize(_build(TrainedModelAnalyzer, i), i), rtol=1e-4, atol=1e-4),
    ],
))


def trained_model_analyzer(obj) -> "Report":  # noqa: F821
    """Check TrainedModelAnalyzer (notebook 02) and print ✓ or a precise ✗ per method."""
    return run_piece("trained_model_analyzer", obj)
