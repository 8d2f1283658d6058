"""Check of notebook 01's piece `forward_process`: ForwardProcessImpl.add_noise and its trajectory demo."""
from __future__ import annotations

import torch

from ...lab5.forward_process import ForwardProcessImpl
from .cases import images, noise, schedule
from .core import Case, MethodSpec, Piece, honours_generator, register, run_piece

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


PIECE = register(Piece(
    id="forward_process",
    defines=("ForwardProcessImpl",),
    reference={"ForwardProcessImpl": ForwardProcessImpl},
    build=lambda cls, i: cls(i["schedule"]),
    methods=[
        MethodSpec("add_noise", _add_noise_cases, _call_add_noise, _reference_add_noise,
                   properties=(_draws_standard_noise, honours_generator(
                       lambda seed: {"schedule": schedule("linear"), "x_start": images((2, 1, 8, 8), 10), "t": 600,
                                     "noise": None, "seed": seed}))),
        MethodSpec("demonstrate_forward_trajectory", _trajectory_cases, _call_trajectory, _reference_trajectory,
                   uses=("add_noise",)),
    ],
))


def forward_process(obj) -> "Report":  # noqa: F821
    """Check ForwardProcessImpl (notebook 01) and print ✓ or a precise ✗ per method."""
    return run_piece("forward_process", obj)
