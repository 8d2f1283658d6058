"""`labsupport bench`, issue 16's rows: the default path against the plain model, and each sampler's loop overhead.

- `bench_default_path`: DDIM on the model as `load_pretrained` hands it out against the same loop on
  the plain fp32 model, runs alternating from one x_T: speedup and largest difference;
- `bench_loop_overhead`: per sampler (DDPM, DDIM, guided DDIM, respaced DDPM, η > 0, the few-step
  solvers once they exist), wall time of `sample()` / seconds spent inside the network's forwards
  (`NetworkClock`, CPU only).
"""
from __future__ import annotations

import copy
import importlib
import statistics
from typing import Callable

import torch
from torch import nn

from ..maths.schedule import NoiseSchedule
from ..models.pretrained import use_fast_path
from ..samplers import DDIMSampler, DDPMSampler
from ..samplers.guidance import guidance_batching
from .speedups import ModelWrapper, plain_model, with_model
from .timing import timed

__all__ = ["NetworkClock", "bench_default_path", "bench_loop_overhead", "overhead_samplers", "FEW_STEP_SOLVERS"]

QUICK_DDPM_STEPS = 100  # as in `bench`: --quick times DDPM on a 100-step respaced schedule

# the few-step solvers, timed in the overhead table once their modules exist (same constructor and
# sample() interface as DDIMSampler assumed; a mismatch shows up as a "failed" row)
# (row name, module under labsupport.samplers, class, sample() keyword arguments); the table counts their calls
FEW_STEP_SOLVERS = (("DPM-Solver++, 10 steps", "dpm_solver", "DPMSolverSampler", {"num_steps": 10}),
                    ("Heun, 10 steps", "heun", "HeunSampler", {"num_steps": 10}))


class NetworkClock(ModelWrapper):
    """Adds up the seconds spent inside the network (CPU only: on CUDA it would need a sync per call)."""

    seconds = 0.0
    calls = 0

    def forward(self, x_t, t, y=None):
        seconds, out = timed(lambda: self.inner(x_t, t, y), x_t.device)
        self.seconds += seconds
        self.calls += 1
        return out


def bench_default_path(model: nn.Module, schedule: NoiseSchedule, batch: int, steps: int, image_shape, *,
                       repeats: int) -> dict:
    """DDIM-`steps` (η = 0) on the default path (`use_fast_path`) against the same loop on the plain fp32
    model, from one x_T, the runs alternating; speedup = plain median / default median."""
    plain = plain_model(model)
    default = use_fast_path(copy.deepcopy(plain), True)
    device = next(plain.parameters()).device
    x_T = torch.randn((batch, *image_shape), device=device, generator=torch.Generator(device).manual_seed(2))
    samplers = {"plain": DDIMSampler(plain, schedule), "default": DDIMSampler(default, schedule)}
    times: dict[str, list[float]] = {k: [] for k in samplers}
    outs = {}
    for i in range(repeats + 1):  # the first run of each is warm-up
        for name, sampler in samplers.items():
            seconds, outs[name] = timed(lambda: sampler.sample(x_T.shape, x_T=x_T, num_steps=steps, progress=False),
                                        device)
            if i:
                times[name].append(seconds)
    plain_s, default_s = (statistics.median(times[k]) for k in ("plain", "default"))
    return {"batch": batch, "steps": steps, "fast_path": default.fast_path, "plain_s": plain_s, "default_s": default_s,
            "plain_min_max_s": [min(times["plain"]), max(times["plain"])],
            "default_min_max_s": [min(times["default"]), max(times["default"])],
            "speedup": plain_s / default_s, "max_abs_diff": float((outs["default"] - outs["plain"]).abs().max())}


def overhead_samplers(model: nn.Module, schedule: NoiseSchedule, batch: int, *, quick: bool = False) -> list[tuple]:
    """(name, sampler, sample() keyword arguments, network evaluations) of each row of the overhead table."""
    device, T = next(model.parameters()).device, schedule.T
    y = torch.arange(batch, device=device) % getattr(model, "num_classes", 10)
    gen = torch.Generator(device).manual_seed(0)
    respaced = min(T, 100)
    rows = [
        (f"DDPM-{min(T, QUICK_DDPM_STEPS) if quick else T}",
         DDPMSampler(model, schedule.respace(torch.linspace(0, T - 1, QUICK_DDPM_STEPS).round().long())
                     if quick and T > QUICK_DDPM_STEPS else schedule), {"generator": gen},
         min(T, QUICK_DDPM_STEPS) if quick else T),
        ("DDIM-50", DDIMSampler(model, schedule), {"num_steps": min(50, T)}, min(50, T)),
        ("guided DDIM-50 (w = 3)", DDIMSampler(model, schedule),
         {"num_steps": min(50, T), "y": y, "guidance_scale": 3.0}, 2 * min(50, T)),
        (f"DDPM respaced to {respaced} steps",
         DDPMSampler(model, schedule.respace(torch.linspace(0, T - 1, respaced).round().long())),
         {"generator": gen}, respaced),
        ("DDIM-50, η = 0.5", DDIMSampler(model, schedule), {"num_steps": min(50, T), "eta": 0.5, "generator": gen},
         min(50, T)),
    ]
    for name, module, cls, kwargs in FEW_STEP_SOLVERS:
        try:
            sampler_cls = getattr(importlib.import_module(f"labsupport.samplers.{module}"), cls)
        except (ImportError, AttributeError) as err:
            rows.append((name, None, f"not available yet: labsupport.samplers.{module}.{cls} ({type(err).__name__})",
                         None))
            continue
        rows.append((name, sampler_cls(model, schedule), dict(kwargs), None))
    return rows


def bench_loop_overhead(model: nn.Module, schedule: NoiseSchedule, batch: int, image_shape, *, repeats: int,
                        quick: bool = False, log: Callable[[str], None] = print) -> list[dict]:
    """The loop's own cost per sampler: wall time of sample() / seconds spent inside the network's forwards
    (in-loop measure, CPU only: on CUDA it would need a sync per call). Guided rows count 2 evaluations per step."""
    device = next(model.parameters()).device
    x_T = torch.randn((batch, *image_shape), device=device, generator=torch.Generator(device).manual_seed(3))
    with torch.inference_mode():  # warms the network at B and 2B, and makes the guidance choice (once per
        guidance_batching(model, x_T, torch.tensor(500, device=device),  # process) outside the timed runs
                          torch.arange(batch, device=device) % getattr(model, "num_classes", 10))
    rows = []
    for name, sampler, kwargs, nfe in overhead_samplers(model, schedule, batch, quick=quick):
        if sampler is None:
            rows.append({"batch": batch, "sampler": name, "status": kwargs})
            continue
        log(f"  loop overhead: {name}")
        clock = NetworkClock(model)
        run_sampler = with_model(sampler, clock)
        try:
            walls, ratios = [], []
            for _ in range(repeats):
                clock.seconds, clock.calls = 0.0, 0
                wall, _ = timed(lambda: run_sampler.sample(x_T.shape, x_T=x_T, progress=False, **kwargs), device)
                walls.append(wall)
                ratios.append(wall / clock.seconds)
        except Exception as err:  # a new solver with another interface is a result to report, not a reason to stop
            rows.append({"batch": batch, "sampler": name,
                         "status": f"failed: {type(err).__name__}: {str(err).splitlines()[0][:200]}"})
            continue
        rows.append({"batch": batch, "sampler": name, "status": "ok", "nfe": nfe, "calls": clock.calls,
                     "median_s": statistics.median(walls), "network_s": clock.seconds,
                     "in_loop": statistics.median(ratios), "in_loop_min": min(ratios), "in_loop_max": max(ratios)})
    return rows
