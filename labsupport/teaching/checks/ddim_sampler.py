"""Check of notebook 03's piece `ddim_sampler`: x̂0, the DDIM step, the loop and the timestep schedule.

Its known mistakes get the inputs  model, schedule, clip_x0, then
predict_x0_from_eps: x_t, eps, t;  ddim_step: x_t, t, s, eta, noise;
create_timestep_schedule: num_steps, schedule_type;
sample: shape, timesteps, eta, x_T, seed, num_steps, schedule_type.
"""
from __future__ import annotations

import torch

from ...maths.ddim import adds_noise, ddim_coefficients, ddim_sigma, ddim_step_given_eps
from ...maths.ddpm import posterior_variance
from ...maths.predictions import predict_eps_from_x0
from ...maths.schedule import alpha_bar
from ...samplers.ddim import DDIMSampler, timestep_schedule
from .cases import SHORT_T, noise, schedule, short_schedule, toy_model
from .catalog import Mistake
from .core import Case, MethodSpec, Piece, Report, honours_generator, register, run_piece
from .slips import (X0_MISTAKES, alphas_as_abar, direction_without_sigma_row, eta_squared_row, sigma_row,
                    unrooted_row, x0_formula)

__all__ = ["ddim_sampler"]


def _gen(i: dict) -> dict:
    return {"generator": torch.Generator().manual_seed(i["seed"])} if i.get("seed") is not None else {}


def _ctx(kind="linear", clip_x0=False) -> dict:
    return {"model": toy_model(), "schedule": short_schedule() if kind == "short" else schedule(kind), "clip_x0": clip_x0}


def _build(cls, i: dict):
    return cls(i["model"], i["schedule"], clip_x0=i["clip_x0"])


def _ref(i: dict) -> DDIMSampler:
    return _build(DDIMSampler, i)


def _x0_cases() -> list[Case]:
    rows = [("t=500", "linear", 500), ("t=0", "linear", 0), ("t=999 (pure noise)", "linear", 999),
            ("t as a (B,) tensor [3, 400, 998]", "linear", torch.tensor([3, 400, 998])),
            ("cosine schedule, t=600", "cosine", 600)]
    shape = (3, 1, 8, 8)
    return [Case(label, {**_ctx(kind), "x_t": 1.4 * noise(shape, 120 + k), "eps": noise(shape, 130 + k), "t": t})
            for k, (label, kind, t) in enumerate(rows)]


def _step_cases() -> list[Case]:
    rows = [("t=999 → s=979, η=0", "linear", False, 999, 979, 0.0),
            ("t=500 → s=-1 (the clean image), η=0", "linear", False, 500, -1, 0.0),
            ("t=700 → s=300 (a big jump), η=0", "linear", False, 700, 300, 0.0),
            ("t=700 → s=300, η=0.5", "linear", False, 700, 300, 0.5),
            ("t=10 → s=9, η=1", "linear", False, 10, 9, 1.0),
            ("clip_x0=True, t=900 → s=500, η=0", "linear", True, 900, 500, 0.0),
            ("cosine schedule, t=800 → s=100, η=0.3", "cosine", False, 800, 100, 0.3)]
    shape = (2, 1, 8, 8)
    cases = [Case(label, {**_ctx(kind, clip), "x_t": 1.2 * noise(shape, 140 + k), "t": t, "s": s, "eta": eta,
                          "noise": noise(shape, 150 + k)}) for k, (label, kind, clip, t, s, eta) in enumerate(rows)]
    # z from the generator: compared with the reference's draw from an equally seeded one
    return cases + [Case("noise=None, t=600 → s=200, η=0.8: z drawn from the generator",
                         {**_ctx(), "x_t": 1.2 * noise(shape, 158), "t": 600, "s": 200, "eta": 0.8, "noise": None,
                          "seed": 6})]


def _sample_cases() -> list[Case]:
    ts = [29, 20, 12, 5, 1]
    rows = [("30-step schedule, timesteps [29, 20, 12, 5, 1], η=0", False, ts, 0.0),
            ("the same timesteps, η=0.6", False, ts, 0.6),
            ("clip_x0=True, η=0", True, ts, 0.0),
            ("timesteps=None, num_steps=6 (uses your create_timestep_schedule)", False, None, 0.0)]
    shape = (2, 1, 6, 6)
    return [Case(label, {**_ctx("short", clip), "shape": shape, "timesteps": t, "eta": eta, "x_T": noise(shape, 160 + k),
                         "seed": k, "num_steps": 6, "schedule_type": "uniform"})
            for k, (label, clip, t, eta) in enumerate(rows)]


def _schedule_cases() -> list[Case]:
    rows = [("T=1000, 10 steps, uniform", "linear", 10, "uniform"), ("T=1000, 50 steps, uniform", "linear", 50, "uniform"),
            ("T=1000, 7 steps, quadratic", "linear", 7, "quadratic"),
            ("T=1000, 50 steps, quadratic (rounding collides near t=0)", "linear", 50, "quadratic"),
            ("T=1000, 10 steps, leading", "linear", 10, "leading"), ("T=1000, 10 steps, trailing", "linear", 10, "trailing"),
            ("T=1000, 1 step", "linear", 1, "uniform"), (f"T={SHORT_T}, all {SHORT_T} steps", "short", SHORT_T, "uniform")]
    return [Case(label, {**_ctx(kind), "num_steps": n, "schedule_type": st}) for label, kind, n, st in rows]


def _call_step(obj, i):
    return obj.ddim_step(i["x_t"], i["t"], i["s"], i["eta"], noise=i.get("noise"), **_gen(i))


def _call_sample(obj, i):
    kwargs = {"return_trajectory": True} if i.get("return_trajectory") else {}
    return obj.sample(i["shape"], i.get("timesteps"), i["eta"], x_T=i.get("x_T"), num_steps=i["num_steps"],
                      schedule_type=i["schedule_type"], **_gen(i), **kwargs)


def _reference_sample(i):
    return _call_sample(_ref(i), {**i})


def _step_uses_generator(run) -> str | None:
    i = {**_ctx(), "x_t": noise((2, 1, 8, 8), 7), "t": 600, "s": 400, "eta": 1.0, "noise": None, "seed": 12}
    a, b = run(i), run(i)
    if not torch.equal(torch.as_tensor(a), torch.as_tensor(b)):
        return ("with η > 0 and noise=None, equally seeded generators gave different steps: draw z with "
                "self.randn(x_t.shape, generator)")
    return None


def _sample_deterministic(run) -> str | None:
    i = {**_ctx("short"), "shape": (2, 1, 6, 6), "timesteps": [29, 15, 4], "eta": 0.0, "x_T": noise((2, 1, 6, 6), 3),
         "seed": None, "num_steps": 3, "schedule_type": "uniform"}
    a, b = run(i), run(i)
    if not torch.equal(torch.as_tensor(a), torch.as_tensor(b)):
        return "with η = 0 and the same x_T, DDIM must return the same samples every time (no random draws)"
    return None


def _sample_trajectory(run) -> str | None:
    i = {**_ctx("short"), "shape": (2, 1, 6, 6), "timesteps": [29, 20, 12, 5, 1], "eta": 0.0,
         "x_T": noise((2, 1, 6, 6), 35), "seed": 2, "num_steps": 5, "schedule_type": "uniform", "return_trajectory": True}
    out = run(i)
    if not (isinstance(out, tuple) and len(out) == 2):
        return "with return_trajectory=True, return a pair (x_0, trajectory)"
    x0, traj = out
    if not torch.allclose(torch.as_tensor(x0).float(), _reference_sample({**i, "return_trajectory": False}),
                          rtol=1e-4, atol=1e-4):
        return "with return_trajectory=True the sample differs from the one returned without it"
    if not (hasattr(traj, "x_t") and hasattr(traj, "x0_hat") and len(traj.x_t) >= 2 and len(traj.x0_hat) == len(traj.x_t)):
        return "the trajectory must be a labsupport Trajectory with x_t and x0_hat recorded at several steps"
    if not torch.allclose(traj.x_t[0].float(), i["x_T"]):
        return "the trajectory's first x_t should be the starting noise x_T (record before taking the step)"
    return None


# -- known mistakes: one step ----------------------------------------------------------------------
def _step_variant(row=None, *, final_only=False, schedule_of=None, clip=True, recompute_eps=True, no_noise=False,
                  eta_as=None):
    """ddim_step_given_eps with one slip: the coefficient row `row(schedule, t, s, eta)`, the ᾱ of
    `schedule_of(schedule)`, no clipping, no recomputed ε, no fresh noise, or the η `eta_as` for every η."""
    def fn(model, schedule, clip_x0, x_t, t, s, eta, noise, **_):
        if final_only and s >= 0:
            return None  # only s = −1 can tell these lookups apart
        noise = torch.zeros_like(x_t) if no_noise else noise
        eta = eta if eta_as is None else eta_as
        if adds_noise(eta, s) and noise is None:
            return None
        eps = DDIMSampler(model, schedule).predict_eps(x_t, t)
        read = schedule if schedule_of is None else schedule_of(schedule)
        return ddim_step_given_eps(read, x_t, t, s, eps, eta, noise, clip_x0=clip_x0 and clip,
                                   recompute_eps=recompute_eps, coefficients=None if row is None else row(read, t, s, eta))[0]
    return fn


def _x0_step_variant(kind: str):
    """The DDIM update around a wrong x̂0 (ddim_step_given_eps forms its own x̂0, so the update is written out)."""
    def fn(model, schedule, clip_x0, x_t, t, s, eta, noise, **_):
        if adds_noise(eta, s) and noise is None:
            return None
        eps = DDIMSampler(model, schedule).predict_eps(x_t, t)
        x0 = x0_formula(kind)(schedule, x_t, eps, t)
        if clip_x0:
            x0 = x0.clamp(-1, 1)
            eps = predict_eps_from_x0(schedule, x_t, t, x0)
        sqrt_a_s, dir_coef, sigma = ddim_coefficients(schedule, t, s, eta).to(x_t)
        x_s = sqrt_a_s * x0 + dir_coef * eps
        return x_s + sigma * noise if adds_noise(eta, s) else x_s
    return fn


def _wrapped_row(sigma_at_eta0: bool = False):
    """s = −1 read as alphas_cumprod[−1], Python's last entry: the row of a jump to T − 1 (σ² < 0 there, so
    σ is NaN for η > 0; with sigma_at_eta0, also at η = 0, where 0·√(negative) is NaN too)."""
    def row(schedule, t, s, eta):
        last = schedule.T - 1
        sigma = eta * ddim_sigma(schedule, t, last, 1.0) if sigma_at_eta0 else None
        return ddim_coefficients(schedule, t, last, eta, sigma=sigma)
    return row


def _direction_unrooted_row(schedule, t, s, eta):
    """The right row with 1−ᾱ_s−σ², its square root left out, as the direction's coefficient."""
    row = ddim_coefficients(schedule, t, s, eta).clone()
    row[1] = 1 - alpha_bar(schedule, s) - row[2] ** 2
    return row


# σ without its factor η: the η = 1 value, whatever η is given
_sigma_without_eta_row = sigma_row(lambda sch, t, s, eta: ddim_sigma(sch, t, s, 1.0))


_DDIM_STEP = [
    Mistake("abar_t_for_abar_s", "you used ᾱ_t where ᾱ_s belongs: after estimating x̂0 the update re-noises it to the "
            "TARGET level s, x_s = √ᾱ_s·x̂0 + √(1−ᾱ_s−σ²)·ε",
            _step_variant(lambda sch, t, s, eta: ddim_coefficients(sch, t, t, eta, sigma=ddim_sigma(sch, t, s, eta)))),
    Mistake("alpha_for_abar", "you used α where ᾱ belongs: both lines of the DDIM update need the cumulative ᾱ "
            "(schedule.alphas_cumprod)", _step_variant(schedule_of=alphas_as_abar)),
    Mistake("s_minus_one_wraps", "for s = −1 (the clean image) you read alphas_cumprod[−1], which Python takes as the "
            "LAST entry ᾱ_{T−1} ≈ 0, the noisiest level; ᾱ_{−1} must be 1, so x_s = x̂0 at the final step",
            _step_variant(_wrapped_row(), final_only=True)),
    Mistake("s_minus_one_wraps_nan", "for s = −1 you read alphas_cumprod[−1], Python's LAST entry ᾱ_{T−1} ≈ 0; "
            "then 1 − ᾱ_t/ᾱ_s < 0 and σ's square root gives NaN. ᾱ_{−1} must be 1, so the final jump returns x̂0",
            _step_variant(_wrapped_row(sigma_at_eta0=True), final_only=True)),
    Mistake("s_minus_one_as_zero", "for s = −1 you used ᾱ_0 instead of 1: the final jump must land exactly on x̂0 "
            "(ᾱ_{−1} = 1)", _step_variant(lambda sch, t, s, eta: ddim_coefficients(sch, t, 0, eta), final_only=True)),
    Mistake("missing_sqrt", "the re-noising line is missing its square roots: x_s = √ᾱ_s·x̂0 + √(1−ᾱ_s−σ²)·ε",
            _step_variant(unrooted_row)),
    Mistake("direction_missing_sqrt", "the ε term's coefficient is missing its square root: x_s = √ᾱ_s·x̂0 + "
            "√(1−ᾱ_s−σ²)·ε; 1−ᾱ_s−σ² is the variance left for the direction, its coefficient is the square root "
            "(the error is tiny where 1−ᾱ_s−σ² is close to 1, at the noisy end, and grows towards the clean end)",
            _step_variant(_direction_unrooted_row)),
    Mistake("sigma_without_eta", "σ is missing its factor η: σ = η·√((1−ᾱ_s)/(1−ᾱ_t))·√(1−ᾱ_t/ᾱ_s). Without η, σ "
            "is the η = 1 value for every η: even at η = 0 the ε term shrinks to √(1−ᾱ_s−σ²) although no noise "
            "is added, and with 0 < η < 1 the step adds too much noise", _step_variant(_sigma_without_eta_row)),
    Mistake("eta_ignored", "η is not used at all: the step is the η = 1 step (σ without its factor η, and σ·z "
            "added) whatever η is given, so even η = 0 adds noise; use σ = η·√((1−ᾱ_s)/(1−ᾱ_t))·√(1−ᾱ_t/ᾱ_s) and "
            "add σ·z only when η > 0 and s >= 0", _step_variant(eta_as=1.0)),
    Mistake("direction_ignores_sigma", "the direction term ignores σ²: with η > 0 part of the noise budget goes to "
            "the fresh noise σ·z, so the ε term is √(1−ᾱ_s−σ²)·ε, not √(1−ᾱ_s)·ε",
            _step_variant(direction_without_sigma_row)),
    Mistake("sigma_not_square_rooted", "σ was left as a variance: σ = η·√((1−ᾱ_s)/(1−ᾱ_t)·(1−ᾱ_t/ᾱ_s)) needs the "
            "outer square root (what you used is σ², squared twice)",
            _step_variant(sigma_row(lambda sch, t, s, eta: eta * ddim_sigma(sch, t, s, 1.0) ** 2))),
    Mistake("eta_squared", "σ carries η, not η²: σ = η·√((1−ᾱ_s)/(1−ᾱ_t)·(1−ᾱ_t/ᾱ_s))",
            _step_variant(eta_squared_row)),
    Mistake("one_step_sigma", "σ was taken from the one-step DDPM variance β̃_t, but this step jumps from t to s: use "
            "ᾱ_t and ᾱ_s in σ", _step_variant(sigma_row(lambda sch, t, s, eta: eta * posterior_variance(sch, t).sqrt()))),
    Mistake("no_noise", "with η > 0 the step adds fresh noise σ·z (use the `noise` argument when it is given)",
            _step_variant(no_noise=True)),
    Mistake("x0_not_clipped", "clip_x0 is on but x̂0 was not clipped to [−1, 1]", _step_variant(clip=False)),
    Mistake("eps_not_recomputed", "after clipping x̂0 you kept the network's ε; recompute ε = (x_t − √ᾱ_t·x̂0)/√(1−ᾱ_t) "
            "so that ε and the clipped x̂0 describe the same x_t", _step_variant(recompute_eps=False)),
] + [Mistake(n, "(x̂0 inside the step) " + e, _x0_step_variant(n)) for n, e in X0_MISTAKES]


def _x0_variant(kind):
    def fn(schedule, x_t, eps, t, **_):
        return x0_formula(kind)(schedule, x_t, eps, t)
    return fn


_PREDICT_X0 = [Mistake(n, e, _x0_variant(n)) for n, e in X0_MISTAKES]


# -- known mistakes: the loop ----------------------------------------------------------------------
def _ddim_loop(*, final="ok", use_x_T=True, ignore_timesteps=False):
    def fn(model, schedule, clip_x0, shape, x_T, seed, timesteps=None, eta=0.0, num_steps=50,
           schedule_type="uniform", **_):
        if ignore_timesteps:
            if timesteps is None:
                return None
            ts = timestep_schedule(schedule.T, num_steps, schedule_type).tolist()
        elif timesteps is None:
            ts = timestep_schedule(schedule.T, num_steps, schedule_type).tolist()
        else:
            ts = [int(t) for t in timesteps]
        targets = {"ok": ts[1:] + [-1], "none": ts[1:], "zero": ts[1:] + [0]}[final]
        if final == "zero" and ts[-1] == 0:
            return None
        ref = DDIMSampler(model, schedule, clip_x0=clip_x0)
        g = torch.Generator().manual_seed(seed)
        x = x_T.clone() if use_x_T and x_T is not None else ref.randn(shape, g)
        for t, s in zip(ts, targets):
            x = ref.step(x, t, s, eta, generator=g)[0]
        return x
    return fn


_SAMPLE_DDIM = [
    Mistake("no_final_step", "the loop stops at the last timestep and returns x_t there; finish with one more jump "
            "to s = −1 (ᾱ = 1), which returns x̂0", _ddim_loop(final="none")),
    Mistake("final_step_to_zero", "the last jump goes to s = 0 instead of s = −1: the final step must land on the "
            "clean image (ᾱ_{−1} = 1)", _ddim_loop(final="zero")),
    Mistake("ignored_x_T", "the given starting noise x_T was not used; start from x_T when it is passed "
            "(self.initial_noise(shape, x_T, generator))", _ddim_loop(use_x_T=False)),
    Mistake("ignored_timesteps", "the `timesteps` argument was ignored; only when it is None build the schedule with "
            "self.create_timestep_schedule(num_steps, schedule_type)", _ddim_loop(ignore_timesteps=True)),
]


# -- known mistakes: the timestep schedule ---------------------------------------------------------
def _timesteps(kind: str):
    def fn(schedule, num_steps, schedule_type="uniform", **_):
        T, n = schedule.T, num_steps
        uniform = schedule_type in ("uniform", "linspace")
        i = torch.arange(n, dtype=torch.float64)
        if kind == "ascending":
            return timestep_schedule(T, n, schedule_type).flip(0)
        # n = 1 is [T − 1] for every type, before any spacing is computed (the docstring's rule)
        if kind == "n_plus_one" and uniform and n > 1:
            return torch.linspace(T - 1, 0, n + 1, dtype=torch.float64).round().long()
        if kind == "truncated" and uniform and n > 1:
            return torch.linspace(T - 1, 0, n, dtype=torch.float64).long()
        if kind == "starts_at_T" and uniform and n > 1:
            return torch.linspace(T, 0, n, dtype=torch.float64).round().long()
        if kind == "fixed_stride" and uniform and n > 1:
            return torch.arange(0, T, max(1, T // n)).flip(0)
        if kind == "dense_at_noisy_end" and schedule_type == "quadratic" and n > 1:
            return ((T - 1) * (1 - (i / (n - 1)) ** 2)).round().long()
        if kind == "from_T" and schedule_type == "quadratic":
            return torch.tensor(sorted({max(0, int(T * (1 - (k / n) ** 2))) for k in range(n)}, reverse=True))
        if kind in ("collisions_kept", "collisions_dropped") and schedule_type == "quadratic" and n > 1:
            ts = ((T - 1) * (i / (n - 1)) ** 2).round().long()
            if kind == "collisions_dropped":
                ts = ts.unique(sorted=True)
            return ts.flip(0)
        if kind == "trailing_no_minus_one" and schedule_type == "trailing":
            return (torch.arange(1, n + 1, dtype=torch.float64) * T / n).round().long().flip(0)
        return None
    return fn


_TIMESTEPS = [
    Mistake("ascending", "the timesteps go up; sampling walks from the noisiest step down, so return them in "
            "decreasing order", _timesteps("ascending")),
    Mistake("n_plus_one", "you made num_steps + 1 timesteps (linspace with num_steps + 1 points); the schedule holds "
            "exactly num_steps network calls", _timesteps("n_plus_one")),
    Mistake("truncated", "the values were truncated (.long() rounds toward zero); round to the nearest integer first",
            _timesteps("truncated")),
    Mistake("starts_at_T", "the schedule starts at T, one past the last valid index T − 1", _timesteps("starts_at_T")),
    Mistake("fixed_stride", "a fixed stride T // num_steps counted from 0 is the 'leading' spacing and never visits "
            "T − 1; 'uniform' spreads the steps evenly from T − 1 down to 0", _timesteps("fixed_stride")),
    Mistake("dense_at_noisy_end", "your quadratic steps crowd near T; they should crowd near t = 0, where the fine "
            "details form: t_i = (T − 1)·(i/(n − 1))², then reverse", _timesteps("dense_at_noisy_end")),
    Mistake("from_T", "this quadratic spacing starts at T (past the last index T − 1), is dense at the noisy end and "
            "loses steps to rounding; see the docstring's formula", _timesteps("from_T")),
    Mistake("collisions_kept", "rounding makes several quadratic steps equal near t = 0; push each step at least one "
            "above the step before it so that all num_steps values differ", _timesteps("collisions_kept")),
    Mistake("collisions_dropped", "duplicates near t = 0 were removed, which leaves fewer than num_steps timesteps; "
            "push each step at least one above the previous one instead", _timesteps("collisions_dropped")),
    Mistake("trailing_no_minus_one", "trailing steps are round(k·T/n) − 1 for k = n, …, 1; without the − 1 the first "
            "step is T, past the last index", _timesteps("trailing_no_minus_one")),
]


PIECE = register(Piece(
    id="ddim_sampler",
    defines=("DDIMSampler",),
    reference={"DDIMSampler": DDIMSampler},
    build=_build,
    methods=[
        MethodSpec("predict_x0_from_eps", _x0_cases,
                   lambda obj, i: obj.predict_x0_from_eps(i["x_t"], i["eps"], i["t"]),
                   lambda i: _ref(i).predict_x0_from_eps(i["x_t"], i["eps"], i["t"]),
                   own_maths=("predict_x0_from_eps",)),
        MethodSpec("ddim_step", _step_cases, _call_step, lambda i: _call_step(_ref(i), i),
                   properties=(_step_uses_generator, honours_generator(
                       lambda seed: {**_ctx(), "x_t": noise((2, 1, 8, 8), 8), "t": 600, "s": 400, "eta": 1.0,
                                     "noise": None, "seed": seed})),
                   uses=("predict_x0_from_eps",),
                   own_maths=("ddim_step_given_eps", "ddim_sigma", "ddim_coefficients", "alpha_bar"),
                   derive_from=("predict_x0_from_eps", "predict_eps_from_x0")),
        MethodSpec("sample", _sample_cases, _call_sample, _reference_sample, atol=1e-4,
                   properties=(_sample_deterministic, _sample_trajectory),
                   uses=("ddim_step", "predict_x0_from_eps", "create_timestep_schedule"),
                   own_maths=("ddim_step_given_eps",), derive_from=("samplers.ddim.DDIMSampler.sample",)),
        MethodSpec("create_timestep_schedule", _schedule_cases,
                   lambda obj, i: obj.create_timestep_schedule(i["num_steps"], i["schedule_type"]),
                   lambda i: _ref(i).create_timestep_schedule(i["num_steps"], i["schedule_type"]),
                   rtol=0.0, atol=0.0, integer=True, derive_from=("samplers.ddim.timestep_schedule",)),
    ],
    mistakes={"predict_x0_from_eps": _PREDICT_X0, "ddim_step": _DDIM_STEP, "sample": _SAMPLE_DDIM,
              "create_timestep_schedule": _TIMESTEPS},
))


def ddim_sampler(obj) -> Report:
    """Check DDIMSampler (notebook 03) and print ✓ or a precise ✗ per method."""
    return run_piece("ddim_sampler", obj)
