"""Timing torch work on any device (notebook 06, `labsupport bench`, the step budget of `speedups`).

- `synchronize`: wait for queued CUDA work, so that a clock reads finished work.
- `timed`: seconds (and result) of one call, synchronised before and after on CUDA.
- `repeat_times` / `median_time`: `warmup` untimed calls, then the seconds of each of `repeats`
  calls, or their median.

CUDA runs kernels asynchronously: without a synchronisation, a timer around a CUDA call measures
how long it took to queue the work, not to do it.
"""
from __future__ import annotations

import statistics
import time
from typing import Callable, TypeVar

import torch

__all__ = ["synchronize", "timed", "repeat_times", "median_time"]

R = TypeVar("R")


def synchronize(device: torch.device | str | None = None) -> None:
    """Wait for queued CUDA work on `device` (None: the current CUDA device, once CUDA is in use); a no-op elsewhere."""
    if device is None:
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            torch.cuda.synchronize()
    elif torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], R], device: torch.device | str | None = None) -> tuple[float, R]:
    """(seconds, result) of one call of `fn()`, synchronised on CUDA before and after."""
    synchronize(device)
    start = time.perf_counter()
    out = fn()
    synchronize(device)
    return time.perf_counter() - start, out


def repeat_times(fn: Callable[[], object], device: torch.device | str | None = None, *, repeats: int = 5,
                 warmup: int = 1) -> list[float]:
    """Seconds of each of `repeats` calls of `fn()`, after `warmup` calls that are not timed."""
    if repeats < 1 or warmup < 0:
        raise ValueError(f"need repeats >= 1 and warmup >= 0, got {repeats} and {warmup}")
    for _ in range(warmup):
        timed(fn, device)
    return [timed(fn, device)[0] for _ in range(repeats)]


def median_time(fn: Callable[[], object], device: torch.device | str | None = None, *, repeats: int = 5,
                warmup: int = 1) -> float:
    """Median seconds of `fn()` over `repeats` calls after `warmup` untimed ones, synchronised on CUDA."""
    return statistics.median(repeat_times(fn, device, repeats=repeats, warmup=warmup))
