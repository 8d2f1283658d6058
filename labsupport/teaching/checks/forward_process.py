"""Check of notebook 01's piece `forward_process`: ForwardProcessImpl.add_noise and its trajectory demo.

Its known mistakes get the inputs  schedule; add_noise: x_start, t, noise;
demonstrate_forward_trajectory: x_start, timesteps, noise.
"""
from __future__ import annotations

import torch

from ...lab5.forward_process import ForwardProcessImpl
from ...maths.forward import q_sample
from ...maths.predictions import predict_eps_from_x0
from ...maths.schedule import extract
from .cases import images, noise, schedule
from .catalog import Mistake
from .compare import as_tensor
from .core import Case, MethodSpec, Piece, Report, honours_generator, register, run_piece
from .slips import NOISING, noised

__all__ = ["forward_process"]


def _gen(inputs: dict) -> dict:
    return {"generator": torch.Generator().manual_seed(inputs["seed"])} if "seed" in inputs else {}


def _add_noise_cases() -> list[Case]:
    rows = [("t=500, batch 4 of 28×28", "linear", (4, 1, 28, 28), 500),
            ("t=999 (almost pure noise)", "linear", (2, 1, 28, 28), 999),
            ("t=0 (the first step)", "linear", (2, 1, 28, 28), 0),
            ("cosine schedule, t=250", "cosine", (3, 1, 12, 12), 250),
            ("t as a (B,) tensor [0, 10, 500, 999]", "linear", (4, 1, 10, 10), torch.tensor([0, 10, 500, 999])),
            ("2 channels, t=123", "linear", (3, 2, 5, 5), 123)]
    cases = [Case(label, {"schedule": schedule(kind), "x_start": images(shape, k), "t": t, "noise": noise(shape, k)})
             for k, (label, kind, shape, t) in enumerate(rows)]
    # ε from the generator: compared with the reference's draw from an equally seeded one
    return cases + [Case("noise=None, t=400: ε drawn from the generator",
                         {"schedule": schedule("linear"), "x_start": images((2, 1, 8, 8), 9), "t": 400, "noise": None,
                          "seed": 8})]


def _call_add_noise(obj, i: dict):
    return obj.add_noise(i["x_start"], i["t"], noise=i.get("noise"), **_gen(i))


def _reference_add_noise(i: dict):
    return ForwardProcessImpl(i["schedule"]).add_noise(i["x_start"], i["t"], noise=i.get("noise"), **_gen(i))


def _draws_standard_noise(run) -> str | None:
    """Without `noise`, ε must be drawn from N(0, I) through `generator`."""
    s = schedule("linear")
    inputs = {"schedule": s, "x_start": images((64, 1, 28, 28), 7), "t": 500, "noise": None, "seed": 3}
    a, b = run(inputs), run(inputs)
    if not torch.equal(torch.as_tensor(a), torch.as_tensor(b)):
        return ("with noise=None, two calls with equally seeded generators gave different results: draw ε with "
                "torch.randn(x_start.shape, generator=generator, ...) so that runs can be reproduced")
    abar = s.alphas_cumprod[500]
    eps = (torch.as_tensor(a) - abar.sqrt() * inputs["x_start"]) / (1 - abar).sqrt()
    if not (0.9 < float(eps.std()) < 1.1 and abs(float(eps.mean())) < 0.1):
        return (f"with noise=None the implied ε has mean {float(eps.mean()):.2f} and std {float(eps.std()):.2f}; "
                "it should be standard normal noise (mean 0, std 1)")
    return None


def _trajectory_cases() -> list[Case]:
    rows = [("timesteps [0, 100, 500, 999]", "linear", (2, 1, 28, 28), [0, 100, 500, 999]),
            ("cosine schedule, unsorted timesteps [999, 10, 300]", "cosine", (3, 1, 6, 6), [999, 10, 300]),
            ("timesteps given as a tensor", "linear", (1, 1, 8, 8), torch.tensor([5, 50, 400]))]
    return [Case(label, {"schedule": schedule(kind), "x_start": images(shape, 20 + k), "timesteps": ts,
                         "noise": noise(shape, 20 + k)}) for k, (label, kind, shape, ts) in enumerate(rows)]


def _call_trajectory(obj, i: dict):
    return obj.demonstrate_forward_trajectory(i["x_start"], i["timesteps"], noise=i.get("noise"), **_gen(i))


def _reference_trajectory(i: dict):
    return ForwardProcessImpl(i["schedule"]).demonstrate_forward_trajectory(i["x_start"], i["timesteps"],
                                                                            noise=i.get("noise"), **_gen(i))


# -- known mistakes --------------------------------------------------------------------------------
def _residual_ignores_noise(x_t: torch.Tensor, x_start, t, noise, schedule) -> bool:
    """True when x_t looks like q_sample(x_0, t, ε') for some fresh ε' that is not the given noise."""
    sd = extract(schedule.sqrt_one_minus_alphas_cumprod, t, x_start.shape).expand_as(x_start)
    resid = predict_eps_from_x0(schedule, x_t.double(), t, x_start)  # the ε that x_t implies
    keep = sd > 0.2
    if int(keep.sum()) < 50:
        return False
    r, n = resid[keep], noise.double()[keep]
    cos = float((r * n).sum() / (r.norm() * n.norm() + 1e-12))
    return 0.7 < float(r.std()) < 1.3 and cos < 0.5


def _add_noise_ignores_noise(output, inputs) -> bool:
    out = as_tensor(output)
    if out is None or inputs.get("noise") is None or tuple(out.shape) != tuple(inputs["x_start"].shape):
        return False
    return _residual_ignores_noise(out, inputs["x_start"], inputs["t"], inputs["noise"], inputs["schedule"])


def _trajectory_ignores_noise(output, inputs) -> bool:
    out = as_tensor(output) if not isinstance(output, (list, tuple)) else None
    ts = [int(t) for t in inputs["timesteps"]]
    if out is None or inputs.get("noise") is None or tuple(out.shape) != (len(ts), *inputs["x_start"].shape):
        return False
    noisy = [k for k, t in enumerate(ts) if float(1 - inputs["schedule"].alphas_cumprod[t]) > 0.2]
    return bool(noisy) and all(_residual_ignores_noise(out[k], inputs["x_start"], ts[k], inputs["noise"],
                                                       inputs["schedule"]) for k in noisy)


def _trajectory_of(add_noise_fn):
    def fn(schedule, x_start, timesteps, noise, **_):
        frames = [add_noise_fn(schedule=schedule, x_start=x_start, t=int(t), noise=noise) for t in timesteps]
        return None if any(f is None for f in frames) else torch.stack(frames)
    return fn


def _trajectory_chained(schedule, x_start, timesteps, noise, **_):
    if noise is None:
        return None
    frames, x = [], x_start
    for t in timesteps:
        x = q_sample(schedule, x, int(t), noise)  # from the previous frame, not from x_start
        frames.append(x)
    return torch.stack(frames)


def _trajectory_transposed(schedule, x_start, timesteps, noise, **_):
    if noise is None:
        return None
    return torch.stack([q_sample(schedule, x_start, int(t), noise) for t in timesteps], dim=1)


_ADD_NOISE = [Mistake(n, e, noised(a, b)) for n, a, b, e in NOISING] + [
    Mistake("ignored_noise_argument",
            "the result does not use the `noise` you were given (fresh noise was drawn instead): when `noise` is "
            "passed, x_t must be built from exactly that ε", test=_add_noise_ignores_noise),
]

_TRAJECTORY = [
    Mistake("chained_frames",
            "each frame was noised from the previous frame instead of from x_start: the closed form jumps from x_0 "
            "straight to every t, so every frame must start from x_start", _trajectory_chained),
    Mistake("stacked_on_wrong_axis",
            "the frames are stacked along dim 1; the trajectory has shape (K, B, C, H, W), timesteps first "
            "(torch.stack(frames) stacks along dim 0)", _trajectory_transposed),
    Mistake("fresh_noise_per_frame",
            "the frames do not share the given ε (new noise per frame?): use one ε for every t, so that only the "
            "noise level changes along the trajectory", test=_trajectory_ignores_noise),
] + [Mistake(m.name, "(in every frame) " + m.explanation, _trajectory_of(m.fn)) for m in _ADD_NOISE if m.fn]


PIECE = register(Piece(
    id="forward_process",
    defines=("ForwardProcessImpl",),
    reference={"ForwardProcessImpl": ForwardProcessImpl},
    build=lambda cls, i: cls(i["schedule"]),
    methods=[
        MethodSpec("add_noise", _add_noise_cases, _call_add_noise, _reference_add_noise,
                   properties=(_draws_standard_noise, honours_generator(
                       lambda seed: {"schedule": schedule("linear"), "x_start": images((2, 1, 8, 8), 10), "t": 600,
                                     "noise": None, "seed": seed})),
                                     own_maths=("q_sample", "q_step", "q_mean_variance")),
        MethodSpec("demonstrate_forward_trajectory", _trajectory_cases, _call_trajectory, _reference_trajectory,
                   uses=("add_noise",), own_maths=("q_sample",),
                   derive_from=("lab5.forward_process.ForwardProcessImpl.demonstrate_forward_trajectory",)),
    ],
    mistakes={"add_noise": _ADD_NOISE, "demonstrate_forward_trajectory": _TRAJECTORY},
))


def forward_process(obj) -> Report:
    """Check ForwardProcessImpl (notebook 01) and print ✓ or a precise ✗ per method."""
    return run_piece("forward_process", obj)
