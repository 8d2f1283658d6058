"""Check of notebook 03's piece `ddim_sampler`: x̂0, the DDIM step, the loop and the timestep schedule."""
from __future__ import annotations

import torch

from ...samplers.ddim import DDIMSampler
from .cases import SHORT_T, noise, schedule, short_schedule, toy_model
from .core import Case, MethodSpec, Piece, honours_generator, register, run_piece

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


PIECE = register(Piece(
    id="ddim_sampler",
    defines=("DDIMSampler",),
    reference={"DDIMSampler": DDIMSampler},
    build=_build,
    methods=[
        MethodSpec("predict_x0_from_eps", _x0_cases,
                   lambda obj, i: obj.predict_x0_from_eps(i["x_t"], i["eps"], i["t"]),
                   lambda i: _ref(i).predict_x0_from_eps(i["x_t"], i["eps"], i["t"])),
        MethodSpec("ddim_step", _step_cases, _call_step, lambda i: _call_step(_ref(i), i),
                   properties=(_step_uses_generator, honours_generator(
                       lambda seed: {**_ctx(), "x_t": noise((2, 1, 8, 8), 8), "t": 600, "s": 400, "eta": 1.0,
                                     "noise": None, "seed": seed})),
                   uses=("predict_x0_from_eps",)),
        MethodSpec("sample", _sample_cases, _call_sample, _reference_sample, atol=1e-4,
                   properties=(_sample_deterministic, _sample_trajectory),
                   uses=("ddim_step", "predict_x0_from_eps", "create_timestep_schedule")),
        MethodSpec("create_timestep_schedule", _schedule_cases,
                   lambda obj, i: obj.create_timestep_schedule(i["num_steps"], i["schedule_type"]),
                   lambda i: _ref(i).create_timestep_schedule(i["num_steps"], i["schedule_type"]),
                   rtol=0.0, atol=0.0, integer=True),
    ],
))


def ddim_sampler(obj) -> "Report":  # noqa: F821
    """Check DDIMSampler (notebook 03) and print ✓ or a precise ✗ per method."""
    return run_piece("ddim_sampler", obj)
