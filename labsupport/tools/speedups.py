"""Sampling at speed (notebook 06, Lab 5 part 5 "Advanced Optimizations").

- `measure_step_time` / `steps_for_budget` / `adaptive_num_steps`: the largest step count that fits
  a time budget ("adaptive quality control based on computational budget").
- `use_*` / `optimize_sampler`: the optimizations that `labsupport bench` measures, each a wrapper
  around the noise predictor, so every sampler (the reference ones and the students') runs them
  unchanged.

Chunked, reproducible generation and the health check are in `labsupport.tools.generation`, the
clock in `labsupport.tools.timing`.
"""
from __future__ import annotations

import copy
import shutil
from types import SimpleNamespace
from typing import Callable, Sequence

import torch
from torch import nn

from ..models import pretrained
from .generation import MNIST_SHAPE
from .timing import median_time

__all__ = [
    "measure_step_time", "steps_for_budget", "adaptive_num_steps", "ModelWrapper", "OPTIMIZATIONS",
    "OptimizationUnavailable", "unavailable_reason", "use_autograd", "use_inference_mode", "use_channels_last",
    "use_autocast", "use_compile", "use_cuda_graphs", "use_fast_path", "plain_model", "with_model", "optimize_sampler",
]


class OptimizationUnavailable(RuntimeError):
    """An optimization that cannot run here (its message says why)."""


# -- time budget ---------------------------------------------------------------------------------
def measure_step_time(sampler, batch_size: int, *, image_shape: Sequence[int] = MNIST_SHAPE,
                      guidance_scale: float | None = None, repeats: int = 5, warmup: int = 2) -> float:
    """Median seconds of one network evaluation of `sampler` at `batch_size` (with guidance if given).

    A sampler step costs its network call: the update itself is under 1% (docs/benchmarks.md).
    """
    x = torch.randn((batch_size, *image_shape), device=sampler.device, dtype=sampler.dtype)
    y = None if guidance_scale is None else torch.zeros(batch_size, dtype=torch.long, device=sampler.device)
    with torch.inference_mode():
        return median_time(lambda: sampler.predict_eps(x, sampler.T // 2, y=y, guidance_scale=guidance_scale),
                           sampler.device, repeats=repeats, warmup=warmup)


def steps_for_budget(seconds_per_step: float, budget_s: float, *, fixed_s: float = 0.0, min_steps: int = 1,
                     max_steps: int = 1000, choices: Sequence[int] | None = None) -> int:
    """Largest step count n (from `choices` if given) with fixed_s + n·seconds_per_step <= budget_s.

    Raises ValueError when not even `min_steps` (or the smallest choice) fits, saying how long it needs.
    """
    if seconds_per_step <= 0:
        raise ValueError(f"seconds_per_step must be positive, got {seconds_per_step}")
    if min_steps < 1 or max_steps < min_steps:
        raise ValueError(f"need 1 <= min_steps <= max_steps, got {min_steps} and {max_steps}")
    fits = int((budget_s - fixed_s) / seconds_per_step + 1e-9)
    allowed = sorted(c for c in (choices or range(min_steps, max_steps + 1)) if min_steps <= c <= max_steps)
    if not allowed:
        raise ValueError(f"no step count in {list(choices or [])} lies in [{min_steps}, {max_steps}]")
    best = [c for c in allowed if c <= fits]
    if not best:
        need = fixed_s + allowed[0] * seconds_per_step
        raise ValueError(f"a budget of {budget_s:.3g} s fits {max(fits, 0)} steps of {seconds_per_step:.3g} s, "
                         f"but the smallest allowed count ({allowed[0]}) needs {need:.3g} s: "
                         "raise the budget, lower the batch size, or allow fewer steps")
    return best[-1]


def adaptive_num_steps(sampler, batch_size: int, budget_s: float, *, image_shape: Sequence[int] = MNIST_SHAPE,
                       guidance_scale: float | None = None, choices: Sequence[int] | None = None,
                       min_steps: int = 1) -> int:
    """Measure one step here, then the most DDIM steps that fit `budget_s` (at most the schedule's T)."""
    per_step = measure_step_time(sampler, batch_size, image_shape=image_shape, guidance_scale=guidance_scale)
    return steps_for_budget(per_step, budget_s, min_steps=min_steps, max_steps=sampler.T, choices=choices)


# -- optimization wrappers -----------------------------------------------------------------------
class ModelWrapper(nn.Module):
    """Calls `inner(x_t, t, y)` and keeps the attributes that samplers and guidance read."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner
        self.num_classes = getattr(inner, "num_classes", 10)
        self.null_class = getattr(inner, "null_class", self.num_classes)
        self.config = getattr(inner, "config", None)

    def forward(self, x_t: torch.Tensor, t, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.inner(x_t, t, y)


class _Autograd(ModelWrapper):
    """The naive baseline: a forward that records autograd history, as a loop without no_grad does."""

    def forward(self, x_t, t, y=None):
        # the inputs may be inference tensors (made inside `sample`); their clones may enter autograd
        with torch.inference_mode(False), torch.enable_grad():
            x_t, t, y = (v.clone() if torch.is_tensor(v) else v for v in (x_t, t, y))
            return self.inner(x_t, t, y).detach()


class _InferenceMode(ModelWrapper):
    def forward(self, x_t, t, y=None):
        with torch.inference_mode():
            return self.inner(x_t, t, y)


class _ChannelsLast(ModelWrapper):
    def forward(self, x_t, t, y=None):
        return self.inner(x_t.contiguous(memory_format=torch.channels_last), t, y).contiguous()


class _Autocast(ModelWrapper):
    def __init__(self, inner: nn.Module, dtype: torch.dtype | None = None):
        super().__init__(inner)
        self.dtype = dtype

    def forward(self, x_t, t, y=None):
        device_type = x_t.device.type
        dtype = self.dtype or (torch.float16 if device_type == "cuda" else torch.bfloat16)
        # no weight cache: each weight is cast once per forward anyway, and CUDA graphs forbid the cache
        with torch.autocast(device_type, dtype=dtype, cache_enabled=False):
            return self.inner(x_t, t, y).float()


class _CUDAGraph(ModelWrapper):
    """Replays a captured forward per (shape, dtype, conditional or not); the first call captures."""

    def __init__(self, inner: nn.Module, warmup: int = 3):
        super().__init__(inner)
        self.warmup = warmup
        self.graphs: dict[tuple, SimpleNamespace] = {}

    def forward(self, x_t, t, y=None):
        B = x_t.shape[0]
        t = torch.as_tensor(t, device=x_t.device).reshape(-1).expand(B)
        key = (tuple(x_t.shape), x_t.dtype, y is None)
        g = self.graphs.get(key) or self._capture(key, x_t, t, y)
        g.x.copy_(x_t)
        g.t.copy_(t)
        if y is not None:
            g.y.copy_(y)
        g.graph.replay()
        return g.out.clone()  # the next replay overwrites g.out

    def _capture(self, key, x_t, t, y) -> SimpleNamespace:
        g = SimpleNamespace(x=x_t.clone(), t=t.long().clone(), y=None if y is None else y.clone())
        side = torch.cuda.Stream(x_t.device)
        side.wait_stream(torch.cuda.current_stream(x_t.device))
        with torch.cuda.stream(side):  # warm-up off the capture stream, as torch.cuda.graph requires
            for _ in range(self.warmup):
                self.inner(g.x, g.t, g.y)
        torch.cuda.current_stream(x_t.device).wait_stream(side)
        g.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g.graph):
            g.out = self.inner(g.x, g.t, g.y)
        self.graphs[key] = g
        return g


def _device_of(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def unavailable_reason(name: str, device: torch.device | str) -> str | None:
    """Why optimization `name` cannot run on `device`, or None when it can."""
    if name not in OPTIMIZATIONS:
        raise ValueError(f"unknown optimization {name!r}; choose from {sorted(OPTIMIZATIONS)}")
    device = torch.device(device)
    if name == "cuda_graphs" and device.type != "cuda":
        return f"CUDA graphs need a CUDA device; this run is on {device.type}"
    if name == "compile" and device.type == "cpu" and not (shutil.which("c++") or shutil.which("g++")):
        return "torch.compile on the CPU needs a C++ compiler (c++ or g++ on PATH); none was found"
    return None


def _require(name: str, model: nn.Module) -> None:
    reason = unavailable_reason(name, _device_of(model))
    if reason:
        raise OptimizationUnavailable(reason)


def use_autograd(model: nn.Module) -> nn.Module:
    """The baseline "fp32 eager": every forward records autograd history (no torch.no_grad)."""
    return _Autograd(model)


def use_inference_mode(model: nn.Module) -> nn.Module:
    """Forward under torch.inference_mode(): no autograd records, no version counters."""
    return _InferenceMode(model)


def use_channels_last(model: nn.Module) -> nn.Module:
    """A copy of `model` with NHWC weights, fed NHWC inputs (the layout convolution kernels prefer)."""
    return _ChannelsLast(copy.deepcopy(model).to(memory_format=torch.channels_last))


def plain_model(model: nn.Module) -> nn.Module:
    """`model` itself when it is plain, else a plain copy: the baseline every optimization is measured against.

    `load_pretrained` hands out its models on the fast path (`labsupport.models.fast_path.use_fast_path`).
    """
    return pretrained.use_plain_path(copy.deepcopy(model)) if getattr(model, "fast_path", None) else model


def use_fast_path(model: nn.Module) -> nn.Module:
    """What `load_pretrained` does by default: a copy in the fastest exact setting of its device (CPU: channels_last)."""
    return ModelWrapper(pretrained.use_fast_path(copy.deepcopy(model), True))


def use_autocast(model: nn.Module, dtype: torch.dtype | None = None) -> nn.Module:
    """Mixed precision: bfloat16 on the CPU, float16 on CUDA (or `dtype`); ε comes back as float32."""
    return _Autocast(model, dtype)


def use_compile(model: nn.Module, **compile_kwargs) -> nn.Module:
    """torch.compile(model); the first call compiles (tens of seconds to minutes on a small CPU)."""
    _require("compile", model)
    return ModelWrapper(torch.compile(model, **compile_kwargs))


def use_cuda_graphs(model: nn.Module) -> nn.Module:
    """Capture the fixed-shape forward once per shape and replay it: one launch instead of hundreds."""
    _require("cuda_graphs", model)
    return _CUDAGraph(model)


# the order in which `optimize_sampler` stacks them, innermost first
OPTIMIZATIONS: dict[str, Callable[[nn.Module], nn.Module]] = {
    "fast_path": use_fast_path,
    "channels_last": use_channels_last,
    "autocast": use_autocast,
    "compile": use_compile,
    "cuda_graphs": use_cuda_graphs,
    "inference_mode": use_inference_mode,
}


def with_model(sampler, model: nn.Module):
    """A shallow copy of `sampler` that calls `model` instead (same schedule, same settings)."""
    new = copy.copy(sampler)
    new.model = model
    return new


def optimize_sampler(sampler, *names: str):
    """A copy of `sampler` whose network runs with the named optimizations (see OPTIMIZATIONS).

    Raises OptimizationUnavailable, with the reason, for one that cannot run on this device.
    """
    unknown = [n for n in names if n not in OPTIMIZATIONS]
    if unknown:
        raise ValueError(f"unknown optimization(s) {unknown}; choose from {list(OPTIMIZATIONS)}")
    model = sampler.model
    for name, wrap in OPTIMIZATIONS.items():
        if name in names:
            model = wrap(model)
    return with_model(sampler, model)
