"""Check of notebook 04's piece `stochasticity_controller`: σ² of a DDIM jump, and runs from one x_T per η."""
from __future__ import annotations

import torch

from ...lab5.stochasticity_controller import StochasticityController
from .cases import noise, schedule, short_schedule, toy_model
from .core import Case, MethodSpec, Piece, register, run_piece

__all__ = ["stochasticity_controller"]


def _gen(i: dict) -> dict:
    return {"generator": torch.Generator().manual_seed(i["seed"])} if i.get("seed") is not None else {}


def _ctx(kind: str = "linear") -> dict:
    return {"model": toy_model(), "schedule": short_schedule() if kind == "short" else schedule(kind)}


def _build(cls, i: dict):
    return cls(i["model"], i["schedule"])


def _variance_cases() -> list[Case]:
    rows = [("t=999 → s=979, η=0.5", "linear", 999, 979, 0.5),
            ("t=10 → s=9, η=1 (one DDPM step: σ² = β̃_10)", "linear", 10, 9, 1.0),
            ("t=700 → s=300 (a big jump), η=1", "linear", 700, 300, 1.0),
            ("t=400 → s=200, η=0 (deterministic)", "linear", 400, 200, 0.0),
            ("t=500 → s=-1 (the clean image), η=1", "linear", 500, -1, 1.0),
            ("t, s as tensors [999, 500, 20] → [949, 250, -1], η=0.7", "linear",
             torch.tensor([999, 500, 20]), torch.tensor([949, 250, -1]), 0.7),
            ("cosine schedule, t=800 → s=100, η=0.3", "cosine", 800, 100, 0.3)]
    return [Case(label, {**_ctx(kind), "t": t, "s": s, "eta": eta}) for label, kind, t, s, eta in rows]


def _effects_cases() -> list[Case]:
    rows = [("4 runs, η ∈ [0, 0.5, 1], 5 steps, given x_T", (4, 1, 6, 6), [0.0, 0.5, 1.0], 5, True, 0),
            ("3 runs, η ∈ [0.2, 0], 6 steps, x_T drawn from the generator", (3, 1, 5, 5), [0.2, 0.0], 6, False, 1),
            ("2 runs, η ∈ [1], 30 steps (the full short schedule)", (2, 1, 4, 4), [1.0], 30, True, 2)]
    return [Case(label, {**_ctx("short"), "shape": shape, "eta_values": etas, "num_steps": n,
                         "x_T": noise((1, *shape[1:]), 200 + k) if given else None, "seed": seed})
            for k, (label, shape, etas, n, given, seed) in enumerate(rows)]


def _call_variance(obj, i):
    return obj.compute_stochastic_variance(i["t"], i["s"], i["eta"])


def _call_effects(obj, i):
    return obj.analyze_eta_effects(i["shape"], i["eta_values"], i["num_steps"], x_T=i.get("x_T"), **_gen(i))


def _variance_rejects_negative_eta(run) -> str | None:
    try:
        run({**_ctx(), "t": 500, "s": 400, "eta": -0.5})
    except ValueError:
        return None
    return "η = −0.5 was accepted; raise ValueError(f\"eta must be >= 0, got {eta}\") for a negative η"


def _eta0_no_spread(run) -> str | None:
    i = {**_ctx("short"), "shape": (3, 1, 5, 5), "eta_values": [0.0], "num_steps": 4, "x_T": None, "seed": 9}
    out = run(i)
    spread = float(torch.as_tensor(out["spread"]).reshape(-1)[0])
    if abs(spread) > 1e-5:
        return (f"at η = 0 the runs from one x_T should be identical (spread 0), got spread {spread:.3g}: "
                "start every run from the same x_T")
    return None


PIECE = register(Piece(
    id="stochasticity_controller",
    defines=("StochasticityController",),
    reference={"StochasticityController": StochasticityController},
    build=_build,
    methods=[
        MethodSpec("compute_stochastic_variance", _variance_cases, _call_variance,
                   lambda i: _call_variance(_build(StochasticityController, i), i),
                   properties=(_variance_rejects_negative_eta,)),
        MethodSpec("analyze_eta_effects", _effects_cases, _call_effects,
                   lambda i: _call_effects(_build(StochasticityController, i), i), atol=1e-4,
                   properties=(_eta0_no_spread,), uses=("compute_stochastic_variance",)),
    ],
))


def stochasticity_controller(obj) -> "Report":  # noqa: F821
    """Check StochasticityController (notebook 04) and print ✓ or a precise ✗ per method."""
    return run_piece("stochasticity_controller", obj)
