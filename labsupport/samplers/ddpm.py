"""DDPM ancestral sampling (Ho et al. 2020; seed 004, notebook 02)."""
from __future__ import annotations

from typing import Sequence

import torch

from ..maths.ddpm import (VARIANCE_TYPES, ddpm_step_given_eps, posterior_mean_from_eps, posterior_mean_from_x0,
                          posterior_variance)
from ..maths.predictions import predict_x0_from_eps
from .base import SamplerBase, Trajectory

__all__ = ["DDPMSampler", "VARIANCE_TYPES"]


class DDPMSampler(SamplerBase):
    """p_θ(x_{t-1} | x_t) = N(μ_θ(x_t, t), σ_t² I), one network call per step.

    variance_type: "fixed_lower" uses β̃_t (posterior variance), "fixed_upper" uses β_t.
    clip_x0: clip x̂0 to [-1, 1] and form μ from the clipped x̂0 (equation of μ̃_t(x_t, x0)).
    Works on any schedule, including one rebuilt on fewer steps with `NoiseSchedule.respace`.
    """

    def __init__(self, model, schedule, *, variance_type: str = "fixed_lower", clip_x0: bool = False):
        if variance_type not in VARIANCE_TYPES:
            raise ValueError(f"variance_type must be one of {VARIANCE_TYPES}, got {variance_type!r}")
        super().__init__(model, schedule, clip_x0=clip_x0)
        self.variance_type = variance_type

    def predict_x0(self, x_t: torch.Tensor, t, eps: torch.Tensor) -> torch.Tensor:
        """x̂0 = (x_t − √(1−ᾱ_t)·ε) / √ᾱ_t."""
        return predict_x0_from_eps(self.schedule, x_t, t, eps)

    def compute_posterior_mean(self, x_t: torch.Tensor, t, predicted_noise: torch.Tensor) -> torch.Tensor:
        """μ_θ(x_t, t) = (1/√α_t)·(x_t − (1−α_t)/√(1−ᾱ_t)·ε_θ).

        With clipping, the same mean written through x̂0: μ̃ = c1·clip(x̂0) + c2·x_t.
        """
        if self.clip_x0:
            x0_hat = self.predict_x0(x_t, t, predicted_noise).clamp(-1, 1)
            return posterior_mean_from_x0(self.schedule, x_t, t, x0_hat)
        return posterior_mean_from_eps(self.schedule, x_t, t, predicted_noise)

    def compute_posterior_variance(self, t) -> torch.Tensor:
        """σ_t²: β̃_t = β_t·(1−ᾱ_{t−1})/(1−ᾱ_t) ("fixed_lower") or β_t ("fixed_upper")."""
        return posterior_variance(self.schedule, t, self.variance_type)

    def step(self, x_t: torch.Tensor, t: int, *, y=None, guidance_scale=None, generator=None,
             noise: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """One reverse step; returns (x_{t-1}, x̂0). No noise is added at t = 0."""
        eps = self.predict_eps(x_t, t, y=y, guidance_scale=guidance_scale)   # 1. network
        if t > 0 and noise is None:                                          # 2. z, drawn only where used
            noise = self.randn(x_t.shape, generator)
        return ddpm_step_given_eps(self.schedule, x_t, t, eps, noise,          # 3. μ_θ + σ_t·z (the maths)
                                   variance_type=self.variance_type, clip_x0=self.clip_x0)

    def ddpm_step(self, x_t: torch.Tensor, t: int, *, y=None, guidance_scale=None, generator=None,
                  noise: torch.Tensor | None = None) -> torch.Tensor:
        """x_{t-1} ~ p_θ(x_{t-1} | x_t) (Lab 5 interface)."""
        if not isinstance(t, int):
            raise TypeError(f"t must be a Python int step index, got {type(t).__name__}")
        self.schedule.check_t(t)
        return self.step(x_t, t, y=y, guidance_scale=guidance_scale, generator=generator, noise=noise)[0]

    @torch.inference_mode()
    def sample(self, shape: Sequence[int], return_trajectory: bool = False, *, x_T: torch.Tensor | None = None,
               generator: torch.Generator | None = None, y: torch.Tensor | None = None,
               guidance_scale: float | None = None, progress: bool | None = None,
               record_every: int | None = None):
        """Run all T steps from x_T ~ N(0, I). Returns x0, or (x0, Trajectory)."""
        x = self.initial_noise(shape, x_T, generator)
        self.check_conditioning(x.shape[0], y, guidance_scale)
        record = self.record_set(self.T, record_every) if return_trajectory else set()
        traj = Trajectory()
        for i in self.progress_bar(range(self.T), progress, f"DDPM {self.T} steps"):
            t = self.T - 1 - i
            x_prev, x0_hat = self.step(x, t, y=y, guidance_scale=guidance_scale, generator=generator)
            if i in record:
                traj.record(int(self.schedule.timesteps[t]), x, x0_hat)  # training step, as DDIM records
            x = x_prev
        return (x, traj) if return_trajectory else x
