"""Heun sampling in EDM's σ-space (Karras et al. 2022, Algorithm 1; notebook 07) on the discrete ε-model.

The state is x = x_t/√ᾱ_t and the ODE dx/dσ = (x − x̂0)/σ. Each step t → s takes an Euler step
and corrects it with the trapezoid rule, which costs a second network call at s; the final step
to σ = 0 (s = −1) stays Euler (the derivative is undefined there). So `num_steps` steps cost
NFE = 2·num_steps − 1 network calls.

The network was trained on integer timesteps only. Instead of mapping an arbitrary σ to the
nearest timestep, the σ grid is chosen on the model's timesteps (by default `timestep_schedule`,
as DDIM's), so every σ the solver evaluates at is exactly σ_t of a training timestep t.
"""
from __future__ import annotations

from typing import Sequence

import torch

from ..maths.predictions import predict_x0_from_eps
from ..maths.solvers import edm_derivative, from_edm_scaling, heun_euler_update, heun_trapezoid_update, to_edm_scaling
from .base import SamplerBase, Trajectory
from .ddim import check_timesteps, timestep_schedule

__all__ = ["HeunSampler", "heun_nfe", "heun_steps_for_nfe"]


def heun_nfe(num_steps: int) -> int:
    """Network calls of `num_steps` Heun steps: two per step, one on the last (Euler) step."""
    return 2 * num_steps - 1


def heun_steps_for_nfe(nfe: int) -> int:
    """The number of Heun steps that costs exactly `nfe` network calls (an odd number ≥ 1)."""
    if not isinstance(nfe, int) or isinstance(nfe, bool) or nfe < 1 or nfe % 2 == 0:
        raise ValueError(f"Heun costs 2·num_steps − 1 network calls, so nfe must be an odd int >= 1, got {nfe!r}; "
                         f"use nfe={nfe + 1 if isinstance(nfe, int) and nfe >= 1 else 1} or pass num_steps")
    return (nfe + 1) // 2


class HeunSampler(SamplerBase):
    """EDM's deterministic second-order Heun sampler on the model's timesteps.

    clip_x0 clips each x̂0 (EDM's denoiser output D) to [−1, 1].
    """

    def denoise(self, x: torch.Tensor, t: int, *, y=None, guidance_scale=None) -> torch.Tensor:
        """D(x, σ_t): x̂0 from the ε-model, which sees x_t = √ᾱ_t·x at its timestep t."""
        x_t = from_edm_scaling(self.schedule, x, t)
        eps = self.predict_eps(x_t, t, y=y, guidance_scale=guidance_scale)
        x0_hat = predict_x0_from_eps(self.schedule, x_t, t, eps)
        return x0_hat.clamp(-1, 1) if self.clip_x0 else x0_hat

    def heun_step(self, x: torch.Tensor, t: int, s: int, *, y=None, guidance_scale=None
                  ) -> tuple[torch.Tensor, torch.Tensor]:
        """One step σ_t → σ_s in EDM scaling; returns (x at s, x̂0 at t). s = −1 (σ = 0) is Euler only."""
        x0_hat = self.denoise(x, t, y=y, guidance_scale=guidance_scale)            # 1. D(x, σ_t)
        d = edm_derivative(self.schedule, x, t, x0_hat)                           # 2. d = (x − D)/σ_t
        x_next = heun_euler_update(self.schedule, x, t, s, d)                     # 3. Euler to σ_s
        if s < 0:
            return x_next, x0_hat
        x0_next = self.denoise(x_next, s, y=y, guidance_scale=guidance_scale)      # 4. D at the prediction
        d_next = edm_derivative(self.schedule, x_next, s, x0_next)
        return heun_trapezoid_update(self.schedule, x, t, s, d, d_next), x0_hat    # 5. trapezoid correction

    @torch.inference_mode()
    def sample(self, shape: Sequence[int], num_steps: int | None = None, *, nfe: int | None = None,
               timesteps=None, schedule_type: str = "uniform", x_T: torch.Tensor | None = None,
               generator: torch.Generator | None = None, y: torch.Tensor | None = None,
               guidance_scale: float | None = None, return_trajectory: bool = False, progress: bool | None = None,
               record_every: int | None = None):
        """Heun from x_T over `timesteps` (default: `num_steps` of `schedule_type`; 10 steps when neither
        num_steps nor nfe is given). NFE = 2·len(timesteps) − 1; `nfe` (odd) picks the steps for a budget.

        x_T is the usual x_t at the first timestep (unit variance at t = T − 1); the sample is returned
        at σ = 0, where the two scalings agree. Works for any (B, C, H, W).
        """
        if nfe is not None:
            if num_steps is not None or timesteps is not None:
                raise ValueError("pass one of nfe, num_steps or timesteps, not several")
            num_steps = heun_steps_for_nfe(nfe)
        ts = check_timesteps(timestep_schedule(self.T, 10 if num_steps is None else num_steps, schedule_type)
                             if timesteps is None else timesteps, self.T)
        x_t = self.initial_noise(shape, x_T, generator)
        self.check_conditioning(x_t.shape[0], y, guidance_scale)
        record = self.record_set(len(ts), record_every) if return_trajectory else set()
        traj = Trajectory()
        x = to_edm_scaling(self.schedule, x_t, ts[0])
        pairs = list(zip(ts, ts[1:] + [-1]))
        for i, (t, s) in enumerate(self.progress_bar(pairs, progress, f"Heun {len(ts)} steps")):
            x_next, x0_hat = self.heun_step(x, t, s, y=y, guidance_scale=guidance_scale)
            if i in record:
                traj.record(t, from_edm_scaling(self.schedule, x, t), x0_hat)
            x = x_next
        return (x, traj) if return_trajectory else x
