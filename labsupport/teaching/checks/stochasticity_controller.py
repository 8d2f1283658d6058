"""Check of notebook 04's piece `stochasticity_controller`: σ² of a DDIM jump, and runs from one x_T per η.

Its known mistakes get the inputs  model, schedule, then
compute_stochastic_variance: t, s, eta;  analyze_eta_effects: shape, eta_values, num_steps, x_T, seed.
"""
from __future__ import annotations

import torch

from ...lab5.stochasticity_controller import StochasticityController
from ...maths.ddim import ddim_sigma
from ...maths.ddpm import posterior_variance
from ...maths.schedule import alpha_bar
from ...samplers.ddim import DDIMSampler
from .cases import noise, schedule, short_schedule, toy_model
from .catalog import Mistake
from .compare import as_tensor
from .core import Case, MethodSpec, Piece, Report, register, run_piece
from .slips import alphas_as_abar, gen

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


# -- known mistakes: compute_stochastic_variance ---------------------------------------------------
def _sigma2_written(a_t, a_s, eta):
    """η²·(1−ᾱ_s)/(1−ᾱ_t)·(1−ᾱ_t/ᾱ_s) as a student writes it: no square root, so a negative value stays negative."""
    return eta ** 2 * ((1 - a_s) / (1 - a_t) * (1 - a_t / a_s))


def _variance_variant(kind: str):
    def fn(schedule, t, s, eta, **_):
        a_t, a_s = alpha_bar(schedule, t), alpha_bar(schedule, s)
        if kind == "eta_not_squared":
            return eta * ddim_sigma(schedule, t, s, 1.0) ** 2
        if kind == "returned_sigma":
            return ddim_sigma(schedule, t, s, eta)
        if kind == "missing_eta":
            return ddim_sigma(schedule, t, s, 1.0) ** 2
        if kind == "ratio_flipped":
            return eta ** 2 * (1 - a_t) / (1 - a_s) * (1 - a_t / a_s)
        if kind == "abar_ratio_flipped":
            return eta ** 2 * (1 - a_s) / (1 - a_t) * (1 - a_s / a_t)
        if kind == "missing_second_factor":
            return eta ** 2 * (1 - a_s) / (1 - a_t)
        if kind == "s_minus_one_wraps":
            if not bool(torch.as_tensor(s).eq(-1).any()):
                return None
            wrapped = schedule.alphas_cumprod[s if isinstance(s, int) else s.long()]  # [-1]: Python's last entry
            return _sigma2_written(a_t, wrapped, eta)
        if kind == "alpha_for_abar":
            alphas = alphas_as_abar(schedule)
            return _sigma2_written(alpha_bar(alphas, t), alpha_bar(alphas, s), eta)
        if kind == "one_step_variance":
            return eta ** 2 * posterior_variance(schedule, t)
        raise ValueError(kind)
    return fn


_VARIANCE = [
    Mistake("eta_not_squared", "the variance carries η², not η: σ² = η²·(1−ᾱ_s)/(1−ᾱ_t)·(1−ᾱ_t/ᾱ_s) "
            "(σ itself is η times the square root)", _variance_variant("eta_not_squared")),
    Mistake("returned_sigma", "you returned σ, the standard deviation; the method returns the variance σ² "
            "(the sampler takes the square root)", _variance_variant("returned_sigma")),
    Mistake("missing_eta", "η is missing: without it every step adds the full DDPM-like noise, whatever η is",
            _variance_variant("missing_eta")),
    Mistake("ratio_flipped", "the first fraction is upside down: it is (1−ᾱ_s)/(1−ᾱ_t), the target's noise "
            "variance over the current one (smaller than 1, since s < t)", _variance_variant("ratio_flipped")),
    Mistake("abar_ratio_flipped", "the second factor is 1 − ᾱ_t/ᾱ_s (the current ᾱ over the target's); with "
            "ᾱ_s/ᾱ_t it turns negative", _variance_variant("abar_ratio_flipped")),
    Mistake("missing_second_factor", "the factor (1 − ᾱ_t/ᾱ_s) is missing; it is the variance one jump t → s "
            "adds in the forward process", _variance_variant("missing_second_factor")),
    Mistake("s_minus_one_wraps", "for s = −1 you read alphas_cumprod[−1], which Python takes as the LAST entry; "
            "ᾱ_{−1} = 1 (use self.alpha_bar(s)), and then σ² = 0", _variance_variant("s_minus_one_wraps")),
    Mistake("alpha_for_abar", "you used the one-step α where the cumulative ᾱ belongs (schedule.alphas_cumprod, "
            "or self.alpha_bar)", _variance_variant("alpha_for_abar")),
    Mistake("one_step_variance", "that is η²·β̃_t, DDPM's one-step variance; it is right only when s = t − 1. "
            "A DDIM jump t → s needs ᾱ_t and ᾱ_s", _variance_variant("one_step_variance")),
]


# -- known mistakes: analyze_eta_effects -----------------------------------------------------------
def _eta_runs(*, fresh_start_per_eta=False, spread="ok", transpose=False):
    def fn(model, schedule, shape, eta_values, num_steps, x_T=None, seed=None, schedule_type="uniform", **_):
        if fresh_start_per_eta and x_T is not None:
            return None
        sampler = DDIMSampler(model, schedule)
        g = gen(seed)
        start = None if fresh_start_per_eta else sampler.initial_noise((1, *shape[1:]), x_T, g)
        out = []
        for eta in eta_values:
            s0 = sampler.randn((1, *shape[1:]), g) if fresh_start_per_eta else start
            out.append(sampler.sample(shape, eta=float(eta), num_steps=num_steps, schedule_type=schedule_type,
                                      x_T=s0.expand(shape).contiguous(), generator=g, progress=False))
        samples = torch.stack(out)
        value = {"ok": lambda: samples.std(dim=1).mean(dim=(1, 2, 3)),
                 "variance": lambda: samples.var(dim=1).mean(dim=(1, 2, 3)),
                 "biased": lambda: samples.std(dim=1, unbiased=False).mean(dim=(1, 2, 3)),
                 "over_pixels": lambda: samples.flatten(2).std(dim=2).mean(dim=1)}[spread]()
        if transpose:
            samples = samples.transpose(0, 1)
        return {"eta": torch.tensor([float(e) for e in eta_values]), "samples": samples, "spread": value}
    return fn


def _spread_at_eta0(output, inputs) -> bool:
    """The runs do not start from one x_T: they already spread at η = 0."""
    if not isinstance(output, dict) or "samples" not in output:
        return False
    etas = [float(e) for e in inputs["eta_values"]]
    samples = as_tensor(output["samples"])
    if 0.0 not in etas or samples is None or samples.ndim != 5 or samples.shape[0] != len(etas):
        return False
    return float(samples[etas.index(0.0)].std(dim=0).mean()) > 1e-4


_ETA_EFFECTS = [
    Mistake("runs_do_not_share_x_T", "the B runs do not start from the same x_T (they differ even at η = 0): draw ONE "
            "(1, C, H, W) starting point and repeat it, x_T.expand(shape), for every run", test=_spread_at_eta0),
    Mistake("new_x_T_per_eta", "a new x_T was drawn for every η: all η must start from the same x_T, or the spread "
            "mixes two effects", _eta_runs(fresh_start_per_eta=True)),
    Mistake("spread_as_variance", "spread is the standard deviation across runs, not the variance "
            "(samples.std(dim=1), then the mean over pixels)", _eta_runs(spread="variance")),
    Mistake("spread_biased_std", "use the default (unbiased, n − 1) standard deviation, samples.std(dim=1)",
            _eta_runs(spread="biased")),
    Mistake("spread_over_pixels", "you measured how much the pixels of ONE image vary; spread is how much the "
            "same pixel varies across the runs: std over dim 1 (the runs), then the mean", _eta_runs(spread="over_pixels")),
    Mistake("samples_transposed", "samples must be stacked as (K, B, C, H, W), one entry per η first: "
            "torch.stack(list_of_runs_per_eta)", _eta_runs(transpose=True)),
]


PIECE = register(Piece(
    id="stochasticity_controller",
    defines=("StochasticityController",),
    reference={"StochasticityController": StochasticityController},
    build=_build,
    methods=[
        MethodSpec("compute_stochastic_variance", _variance_cases, _call_variance,
                   lambda i: _call_variance(_build(StochasticityController, i), i),
                   properties=(_variance_rejects_negative_eta,), own_maths=("ddim_sigma",)),
        MethodSpec("analyze_eta_effects", _effects_cases, _call_effects,
                   lambda i: _call_effects(_build(StochasticityController, i), i), atol=1e-4,
                   properties=(_eta0_no_spread,), uses=("compute_stochastic_variance",), own_maths=("ddim_sigma",),
                   derive_from=("lab5.stochasticity_controller.StochasticityController.analyze_eta_effects",)),
    ],
    mistakes={"compute_stochastic_variance": _VARIANCE, "analyze_eta_effects": _ETA_EFFECTS},
))


def stochasticity_controller(obj) -> Report:
    """Check StochasticityController (notebook 04) and print ✓ or a precise ✗ per method."""
    return run_piece("stochasticity_controller", obj)
