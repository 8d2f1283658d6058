"""What the DDPM and DDIM samplers share: the model call, noise, progress and trajectories."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Sequence

import torch
from torch import nn
from tqdm.auto import tqdm

from .guidance import check_labels, guided_eps
from ..maths.schedule import NoiseSchedule
from ..maths.validate import check_finite

__all__ = ["Trajectory", "SamplerBase", "check_shape"]


@dataclass
class Trajectory:
    """x_t and the model's x̂0 at the recorded steps (t = -1 is the final sample)."""
    steps: list[int] = field(default_factory=list)
    x_t: list[torch.Tensor] = field(default_factory=list)
    x0_hat: list[torch.Tensor] = field(default_factory=list)

    def record(self, t: int, x_t: torch.Tensor, x0_hat: torch.Tensor) -> None:
        self.steps.append(int(t))
        self.x_t.append(x_t.detach().cpu())
        self.x0_hat.append(x0_hat.detach().cpu())


def check_shape(shape: Sequence[int], channels: int | None = None) -> tuple[int, ...]:
    """Validate a (B, C, H, W) sample shape."""
    shape = tuple(int(s) for s in shape)
    if len(shape) != 4 or min(shape) < 1:
        raise ValueError(f"shape must be (B, C, H, W) with positive sizes, got {shape}")
    if channels is not None and shape[1] != channels:
        raise ValueError(f"shape has {shape[1]} channels but the model expects {channels}: use (B, {channels}, H, W)")
    return shape


def default_progress() -> bool:
    return os.environ.get("LABSUPPORT_PROGRESS", "1") != "0"


class SamplerBase:
    """Holds the model and the schedule's tables on the model's device."""

    def __init__(self, model: nn.Module, schedule: NoiseSchedule, *, clip_x0: bool = False):
        if not isinstance(schedule, NoiseSchedule):
            raise TypeError(f"schedule must be a labsupport NoiseSchedule, got {type(schedule).__name__}")
        self.model = model
        self.device = next(model.parameters()).device
        self.dtype = next(model.parameters()).dtype
        self.schedule = schedule.to(self.device)
        self.T = schedule.T
        self.clip_x0 = clip_x0

    # -- model -------------------------------------------------------------------------------
    def predict_eps(self, x_t: torch.Tensor, t: int | torch.Tensor, *, y: torch.Tensor | None = None,
                    guidance_scale: float | None = None) -> torch.Tensor:
        """ε_θ at schedule index t (mapped to the training timestep for respaced schedules)."""
        t_model = self.schedule.timesteps[t]
        if guidance_scale is None:  # the plain call needs nothing of guidance (the grader's view relies on it)
            return self.model(x_t, t_model, y)
        return guided_eps(self.model, x_t, t_model, y, guidance_scale)

    def check_conditioning(self, batch: int, y: torch.Tensor | None, guidance_scale: float | None) -> None:
        check_labels(y, batch, getattr(self.model, "num_classes", 10), guidance_scale)

    # -- randomness --------------------------------------------------------------------------
    def randn(self, shape: Sequence[int], generator: torch.Generator | Sequence[torch.Generator] | None
              ) -> torch.Tensor:
        """Standard normal noise from `generator` (drawn on its device), on the model's device.

        A list of generators, one per sample, draws sample i's noise from generator i alone, so a
        sample's noise does not depend on the batch it sits in (`labsupport.tools.generation.generate`).
        """
        if isinstance(generator, (list, tuple)):
            if len(generator) != shape[0]:
                raise ValueError(f"got {len(generator)} generators for a batch of {shape[0]}: pass one per sample")
            return torch.stack([self.randn(shape[1:], g) for g in generator])
        device = generator.device if generator is not None else self.device
        return torch.randn(tuple(shape), generator=generator, device=device).to(self.device, self.dtype)

    def initial_noise(self, shape: Sequence[int], x_T: torch.Tensor | None, generator: torch.Generator | None):
        shape = check_shape(shape)
        if x_T is None:
            return self.randn(shape, generator)
        if tuple(x_T.shape) != shape:
            raise ValueError(f"x_T must have shape {shape}, got {tuple(x_T.shape)}")
        return check_finite(x_T, "x_T").to(self.device, self.dtype)

    @staticmethod
    def progress_bar(steps, enabled: bool | None, desc: str):
        return tqdm(steps, desc=desc, disable=not (default_progress() if enabled is None else enabled), leave=False)

    @staticmethod
    def record_set(num_steps: int, record_every: int | None) -> set[int]:
        """Loop indices whose state goes into the trajectory (about ten by default, plus the last)."""
        every = record_every or max(1, num_steps // 10)
        return set(range(0, num_steps, every)) | {num_steps - 1}
