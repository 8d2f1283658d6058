"""What every notebook starts with: a seeded session, the fast-mode switch, timers and progress bars.

LABSUPPORT_FAST=1 shrinks sample counts (CI speed); the defaults also run in minutes on a laptop CPU.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Iterable, TypeVar

import torch
from tqdm.auto import tqdm

from .device import get_device

__all__ = ["setup", "fast_mode", "pick", "timer", "progress"]

T = TypeVar("T")


def fast_mode() -> bool:
    """True when $LABSUPPORT_FAST is set to 1 (smaller runs for CI)."""
    return os.environ.get("LABSUPPORT_FAST", "0") == "1"


def pick(default: T, fast: T) -> T:
    """`fast` in fast mode, else `default`: the one place a notebook's run size is chosen."""
    return fast if fast_mode() else default


def setup(seed: int = 0) -> torch.device:
    """Seed torch, choose the device (labsupport.get_device) and say what was chosen."""
    torch.manual_seed(seed)
    device = get_device()
    print(f"device: {device} · seed {seed} · fast mode {'on' if fast_mode() else 'off'}")
    return device


@dataclass
class Timer:
    seconds: float = 0.0


class timer:
    """`with timer() as tm: ...` then `tm.seconds` (waits for the GPU, if there is one, before reading the clock)."""

    def __enter__(self) -> Timer:
        self._sync()
        self._t0 = time.perf_counter()
        self.result = Timer()
        return self.result

    def __exit__(self, *exc) -> None:
        self._sync()
        self.result.seconds = time.perf_counter() - self._t0

    @staticmethod
    def _sync() -> None:
        if torch.cuda.is_available():
            torch.cuda.synchronize()


def progress(iterable: Iterable[T], desc: str, total: int | None = None) -> Iterable[T]:
    """A progress bar (a widget in notebooks, text elsewhere); off when $LABSUPPORT_PROGRESS=0."""
    return tqdm(iterable, desc=desc, total=total, leave=False,
                disable=os.environ.get("LABSUPPORT_PROGRESS", "1") == "0")
