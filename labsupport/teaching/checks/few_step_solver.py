"""Check of notebook 07's bonus piece `few_step_solver`: DPM-Solver++(2M), `DPMSolverPlusPlus`.

`check.few_step_solver(DPMSolverPlusPlus)`: the class is built as `cls(model, schedule)`.
Its known mistakes get the inputs  dpm_solver_step: schedule, x_t, t, s, x0_hat, x0_prev, t_prev;
sample: model, schedule, x_T, num_steps, labels, guidance_scale.
"""
from __future__ import annotations

import torch

from ...maths.schedule import NoiseSchedule
from ...maths.solvers import dpm_solver_first_order_update, dpm_solver_2m_update, half_log_snr
from ...samplers.dpm_solver import DPMSolverSampler
from ...samplers.ddim import timestep_schedule
from . import core
from .cases import ToyCondEpsModel, noise, short_schedule
from .catalog import Mistake
from .core import Case, MethodSpec, Piece, Report, register, run_piece

__all__ = ["few_step_solver"]

_CACHE: dict[str, object] = {}


def _toy() -> ToyCondEpsModel:
    if "model" not in _CACHE:
        _CACHE["model"] = ToyCondEpsModel().eval()
    return _CACHE["model"]


def _linear() -> NoiseSchedule:
    if "linear" not in _CACHE:
        _CACHE["linear"] = NoiseSchedule.linear()
    return _CACHE["linear"]


# -- dpm_solver_step ----------------------------------------------------------------------------------
def _step_cases() -> list[Case]:
    rows = [("first step t = 29 -> s = 20 (no previous x̂0)", short_schedule(), 29, 20, None),
            ("second order: t = 20 -> s = 12 after t_prev = 29", short_schedule(), 20, 12, 29),
            ("uneven steps: t = 12 -> s = 2 after t_prev = 20", short_schedule(), 12, 2, 20),
            ("the final jump t = 2 -> s = −1 (returns x̂0), previous x̂0 given", short_schedule(), 2, -1, 12),
            ("linear T = 1000: t = 500 -> s = 300 after t_prev = 800", _linear(), 500, 300, 800),
            ("linear T = 1000: t = 100 -> s = 0 after t_prev = 300", _linear(), 100, 0, 300),
            ("4-channel latents (B, 4, 7, 7): t = 15 -> s = 9 after t_prev = 24", short_schedule(), 15, 9, 24)]
    out = []
    for k, (label, sched, t, s, t_prev) in enumerate(rows):
        shape = (2, 4, 7, 7) if "latents" in label else (2, 1, 5, 5)
        out.append(Case(label, {"schedule": sched, "x_t": noise(shape, 500 + k), "t": t, "s": s,
                                "x0_hat": noise(shape, 520 + k).clamp(-1, 1),
                                "x0_prev": None if t_prev is None else noise(shape, 540 + k).clamp(-1, 1),
                                "t_prev": t_prev}))
    return out


def _call_step(obj, i):
    return obj.dpm_solver_step(i["x_t"], i["t"], i["s"], i["x0_hat"], i["x0_prev"], i["t_prev"])


def _reference_step(i):
    return DPMSolverSampler(_toy(), i["schedule"]).dpm_solver_step(i["x_t"], i["t"], i["s"], i["x0_hat"],
                                                                    i["x0_prev"], i["t_prev"])


def _slipped_step(*, r_inverted=False, no_half=False, first_order=False, full_log_snr=False):
    def fn(schedule, x_t, t, s, x0_hat, x0_prev=None, t_prev=None, **_):
        if s < 0:
            return x0_hat
        k = 2.0 if full_log_snr else 1.0
        lam = {j: k * half_log_snr(schedule, j, x_t.shape) for j in {t, s} | ({t_prev} if t_prev is not None else set())}
        h = lam[s] - lam[t]
        d = x0_hat
        if x0_prev is not None and not first_order:
            r = (lam[t] - lam[t_prev]) / h
            r = 1 / r if r_inverted else r
            c = 1 / r if no_half else 1 / (2 * r)
            d = (1 + c).to(x_t) * x0_hat - c.to(x_t) * x0_prev
        if full_log_snr:
            abar = schedule.float64.alphas_cumprod
            a_t, a_s = abar[t], abar[s]
            return ((1 - a_s) / (1 - a_t)).sqrt().to(x_t) * x_t - (a_s.sqrt() * torch.expm1(-h)).to(x_t) * d
        return dpm_solver_first_order_update(schedule, x_t, t, s, d)
    return fn


_STEP_MISTAKES = [
    Mistake("always_first_order", "the previous x̂0 was ignored: this is DDIM's first-order step; after the first "
            "step use D = (1 + 1/(2r))·x̂0 − (1/(2r))·x̂0_prev", _slipped_step(first_order=True)),
    Mistake("r_inverted", "r is upside down: r = h_prev / h, the PREVIOUS step's length in λ over the current one's",
            _slipped_step(r_inverted=True)),
    Mistake("missing_half", "the factor ½ is missing: D = (1 + 1/(2r))·x̂0 − (1/(2r))·x̂0_prev (the linear "
            "extrapolation is evaluated at the middle of the step)", _slipped_step(no_half=True)),
    Mistake("full_log_snr", "λ is half the log-SNR: λ = ½·log(ᾱ/(1−ᾱ)) = log(√ᾱ/√(1−ᾱ)); with log(ᾱ/(1−ᾱ)) every h "
            "doubles", _slipped_step(full_log_snr=True)),
]


# -- sample ---------------------------------------------------------------------------------------------
def _sample_cases() -> list[Case]:
    rows = [("5 steps, unconditional", 5, None, None, (2, 1, 6, 6)),
            ("1 step (first order only)", 1, None, None, (2, 1, 5, 5)),
            ("8 steps, guided w = 3, labels [1, 7]", 8, [1, 7], 3.0, (2, 1, 6, 6)),
            ("all 30 steps of the short schedule", 30, None, None, (2, 1, 5, 5)),
            ("4-channel latents (B, 4, 7, 7), 6 steps", 6, None, None, (2, 4, 7, 7))]
    return [Case(label, {"model": _toy(), "schedule": short_schedule(), "x_T": noise(shape, 560 + k), "num_steps": n,
                         "labels": None if y is None else torch.tensor(y), "guidance_scale": w})
            for k, (label, n, y, w, shape) in enumerate(rows)]


def _call_sample(obj, i):
    return obj.sample(tuple(i["x_T"].shape), num_steps=i["num_steps"], x_T=i["x_T"], y=i["labels"],
                      guidance_scale=i["guidance_scale"], progress=False)


def _reference_sample(i):
    return DPMSolverSampler(i["model"], i["schedule"]).sample(tuple(i["x_T"].shape), num_steps=i["num_steps"],
                                                              x_T=i["x_T"], y=i["labels"],
                                                              guidance_scale=i["guidance_scale"], progress=False)


def _slipped_loop(*, first_order=False, stale_prev=False, no_final=False):
    def fn(model, schedule, x_T, num_steps, labels=None, guidance_scale=None, **_):
        ref = DPMSolverSampler(model, schedule)
        ts = timestep_schedule(schedule.T, num_steps).tolist()
        pairs = list(zip(ts, ts[1:] + [-1]))
        if no_final:
            pairs = pairs[:-1]
        x, prev = x_T.clone(), None
        with torch.inference_mode():
            for t, s in pairs:
                x0 = ref.predict_x0(x, t, y=labels, guidance_scale=guidance_scale)
                use = None if first_order or prev is None else prev
                x = dpm_solver_first_order_update(schedule, x, t, s, x0) if use is None or s < 0 else \
                    dpm_solver_2m_update(schedule, x, t, s, x0, use[0], use[1])
                if prev is None or not stale_prev:
                    prev = (x0, t)
        return x
    return fn


_SAMPLE_MISTAKES = [
    Mistake("always_first_order", "no step used the previous x̂0: the samples are DDIM's; pass the previous step's "
            "x̂0 and t to dpm_solver_step", _slipped_loop(first_order=True)),
    Mistake("stale_previous", "the 'previous' x̂0 was never updated after the first step: keep the x̂0 and t of the "
            "step just taken", _slipped_loop(stale_prev=True)),
    Mistake("no_final_step", "the loop stops at the last timestep; finish with the jump to s = −1, which returns x̂0",
            _slipped_loop(no_final=True)),
]


PIECE = register(Piece(
    id="few_step_solver",
    defines=("DPMSolverPlusPlus",),
    reference={"DPMSolverPlusPlus": DPMSolverSampler},
    build=lambda cls, i: cls(i.get("model") or _toy(), i["schedule"]),
    methods=[
        MethodSpec("dpm_solver_step", _step_cases, _call_step, _reference_step, atol=1e-5,
                   own_maths=("dpm_solver_first_order_update", "dpm_solver_2m_update")),
        MethodSpec("sample", _sample_cases, _call_sample, _reference_sample, atol=1e-4, uses=("dpm_solver_step",),
                   own_maths=("dpm_solver_first_order_update", "dpm_solver_2m_update")),
    ],
    mistakes={"dpm_solver_step": _STEP_MISTAKES, "sample": _SAMPLE_MISTAKES},
))


def few_step_solver(cls) -> Report:
    """Check DPMSolverPlusPlus (notebook 07, bonus); ✓ or a precise ✗ per method."""
    report = run_piece("few_step_solver", cls)
    core._LAST["few_step_solver"] = (cls, report)
    return report
