"""Check of notebook 02's piece `ddpm_sampler`: posterior mean and variance, one step, the full loop."""
from __future__ import annotations

import torch

from ...samplers.ddpm import DDPMSampler
from .cases import noise, schedule, short_schedule, toy_model
from .core import Case, MethodSpec, Piece, honours_generator, register, run_piece

__all__ = ["ddpm_sampler"]


def _gen(i: dict) -> dict:
    return {"generator": torch.Generator().manual_seed(i["seed"])} if i.get("seed") is not None else {}


def _ctx(kind="linear", variance_type="fixed_lower", clip_x0=False) -> dict:
    return {"model": toy_model(), "schedule": schedule(kind) if kind != "short" else short_schedule(),
            "variance_type": variance_type, "clip_x0": clip_x0}


def _build(cls, i: dict):
    return cls(i["model"], i["schedule"], variance_type=i["variance_type"], clip_x0=i["clip_x0"])


def _ref(i: dict) -> DDPMSampler:
    return _build(DDPMSampler, i)


def _mean_cases() -> list[Case]:
    rows = [("t=500", "linear", False, 500), ("t=1", "linear", False, 1), ("t=0 (the last step)", "linear", False, 0),
            ("t=999 (pure noise)", "linear", False, 999), ("t as a (B,) tensor [0, 37, 999]", "linear", False,
                                                              torch.tensor([0, 37, 999])),
            ("cosine schedule, t=300", "cosine", False, 300), ("clip_x0=True, t=900", "linear", True, 900),
            ("clip_x0=True, t=20", "linear", True, 20)]
    out = []
    for k, (label, kind, clip, t) in enumerate(rows):
        shape = (3, 1, 8, 8)
        x_t = 1.5 * noise(shape, 60 + k)
        eps = toy_model()(x_t, t)
        out.append(Case(label, {**_ctx(kind, clip_x0=clip), "x_t": x_t, "t": t, "predicted_noise": eps}))
    return out


def _variance_cases() -> list[Case]:
    rows = [("fixed_lower, t=1", "linear", "fixed_lower", 1), ("fixed_lower, t=0", "linear", "fixed_lower", 0),
            ("fixed_lower, t=500", "linear", "fixed_lower", 500),
            ("fixed_lower, t as a tensor [0, 1, 999]", "linear", "fixed_lower", torch.tensor([0, 1, 999])),
            ("fixed_upper, t=500", "linear", "fixed_upper", 500), ("fixed_upper, t=0", "linear", "fixed_upper", 0),
            ("cosine schedule, fixed_lower, t=999", "cosine", "fixed_lower", 999)]
    return [Case(label, {**_ctx(kind, vt), "t": t}) for label, kind, vt, t in rows]


def _step_cases() -> list[Case]:
    rows = [("fixed_lower, t=500", "linear", "fixed_lower", False, 500),
            ("fixed_lower, t=0 (the last step)", "linear", "fixed_lower", False, 0),
            ("fixed_upper, t=0 (the last step)", "linear", "fixed_upper", False, 0),
            ("fixed_upper, t=700", "linear", "fixed_upper", False, 700),
            ("clip_x0=True, t=900", "linear", "fixed_lower", True, 900),
            ("cosine schedule, t=10", "cosine", "fixed_lower", False, 10),
            # at t = 1, β̃_t is about half of β_t: the one step where the two variance types differ clearly
            ("fixed_upper, t=1", "linear", "fixed_upper", False, 1)]
    shape = (2, 1, 8, 8)
    cases = [Case(label, {**_ctx(kind, vt, clip), "x_t": 1.3 * noise(shape, 80 + k), "t": t, "noise": noise(shape, 90 + k)})
             for k, (label, kind, vt, clip, t) in enumerate(rows)]
    # z from the generator: compared with the reference's draw from an equally seeded one
    return cases + [Case("noise=None, t=300: z drawn from the generator", {**_ctx(), "x_t": 1.3 * noise(shape, 97),
                                                                           "t": 300, "noise": None, "seed": 5})]


def _sample_cases() -> list[Case]:
    rows = [("30-step schedule, fixed_lower", "fixed_lower", False), ("30-step schedule, fixed_upper", "fixed_upper", False),
            ("30-step schedule, clip_x0=True", "fixed_lower", True)]
    shape = (2, 1, 6, 6)
    return [Case(label, {**_ctx("short", vt, clip), "shape": shape, "x_T": noise(shape, 100 + k), "seed": k})
            for k, (label, vt, clip) in enumerate(rows)]


def _call_step(obj, i):
    return obj.ddpm_step(i["x_t"], i["t"], noise=i.get("noise"), **_gen(i))


def _call_sample(obj, i):
    kwargs = {"return_trajectory": True} if i.get("return_trajectory") else {}
    return obj.sample(i["shape"], x_T=i.get("x_T"), **_gen(i), **kwargs)


def _reference_sample(i):
    kwargs = {"return_trajectory": True} if i.get("return_trajectory") else {}
    return _ref(i).sample(i["shape"], x_T=i.get("x_T"), progress=False, **_gen(i), **kwargs)


def _step_uses_generator(run) -> str | None:
    i = {**_ctx(), "x_t": noise((2, 1, 8, 8), 5), "t": 400, "noise": None, "seed": 11}
    a, b = run(i), run(i)
    if not torch.equal(torch.as_tensor(a), torch.as_tensor(b)):
        return ("with noise=None, equally seeded generators gave different steps: draw z with "
                "self.randn(x_t.shape, generator)")
    return None


def _sample_reproducible(run) -> str | None:
    i = {**_ctx("short"), "shape": (2, 1, 6, 6), "x_T": None, "seed": 21}
    a, b = run(i), run(i)
    if not torch.equal(torch.as_tensor(a), torch.as_tensor(b)):
        return ("without x_T, two runs with equally seeded generators differ: draw every noise through `generator` "
                "(self.initial_noise(shape, x_T, generator), and pass generator to ddpm_step)")
    return None


def _sample_trajectory(run) -> str | None:
    i = {**_ctx("short"), "shape": (2, 1, 6, 6), "x_T": noise((2, 1, 6, 6), 33), "seed": 4, "return_trajectory": True}
    out = run(i)
    if not (isinstance(out, tuple) and len(out) == 2):
        return "with return_trajectory=True, return a pair (x_0, trajectory)"
    x0, traj = out
    expected = _reference_sample({**i, "return_trajectory": False})
    if not torch.allclose(torch.as_tensor(x0).float(), expected, rtol=1e-4, atol=1e-4):
        return "with return_trajectory=True the sample differs from the one returned without it"
    if not (hasattr(traj, "x_t") and hasattr(traj, "x0_hat") and len(traj.x_t) >= 2 and len(traj.x0_hat) == len(traj.x_t)):
        return f"the trajectory must be a labsupport Trajectory with x_t and x0_hat recorded at several steps, got {traj!r}"[:300]
    if not torch.allclose(traj.x_t[0].float(), i["x_T"]):
        return "the trajectory's first x_t should be the starting noise x_T (record before taking the step)"
    return None


PIECE = register(Piece(
    id="ddpm_sampler",
    defines=("DDPMSampler",),
    reference={"DDPMSampler": DDPMSampler},
    build=_build,
    methods=[
        MethodSpec("compute_posterior_mean", _mean_cases,
                   lambda obj, i: obj.compute_posterior_mean(i["x_t"], i["t"], i["predicted_noise"]),
                   lambda i: _ref(i).compute_posterior_mean(i["x_t"], i["t"], i["predicted_noise"])),
        MethodSpec("compute_posterior_variance", _variance_cases,
                   lambda obj, i: obj.compute_posterior_variance(i["t"]),
                   lambda i: _ref(i).compute_posterior_variance(i["t"]), rtol=1e-3, atol=1e-9),
        MethodSpec("ddpm_step", _step_cases, _call_step, lambda i: _call_step(_ref(i), i),
                   properties=(_step_uses_generator, honours_generator(
                       lambda seed: {**_ctx(), "x_t": noise((2, 1, 8, 8), 6), "t": 400, "noise": None, "seed": seed})),
                   uses=("compute_posterior_mean", "compute_posterior_variance")),
        MethodSpec("sample", _sample_cases, _call_sample, _reference_sample, atol=1e-4,
                   properties=(_sample_reproducible, _sample_trajectory, honours_generator(
                       lambda seed: {**_ctx("short"), "shape": (2, 1, 6, 6), "x_T": noise((2, 1, 6, 6), 34),
                                     "seed": seed})),
                   uses=("ddpm_step", "compute_posterior_mean", "compute_posterior_variance")),
    ],
))


def ddpm_sampler(obj) -> "Report":  # noqa: F821
    """Check DDPMSampler (notebook 02) and print ✓ or a precise ✗ per method."""
    return run_piece("ddpm_sampler", obj)
