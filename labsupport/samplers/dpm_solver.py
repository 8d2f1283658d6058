"""DPM-Solver++(2M) sampling (Lu et al. 2022; notebook 07): second order at one network call per step.

The updates are `labsupport.maths.solvers.dpm_solver_first_order_update` (the first step, and the final
jump to s = −1, where h = ∞: diffusers' "lower_order_final") and `dpm_solver_2m_update` (every other
step, extrapolating x̂0 from the previous step's). The network is evaluated only at the model's own
integer timesteps, so num_steps steps cost exactly num_steps calls (NFE = num_steps).
"""
from __future__ import annotations

from typing import Sequence

import torch

from ..maths.predictions import predict_x0_from_eps
from ..maths.solvers import dpm_solver_2m_update, dpm_solver_first_order_update
from .base import SamplerBase, Trajectory
from .ddim import check_timesteps, timestep_schedule

__all__ = ["DPMSolverSampler"]


class DPMSolverSampler(SamplerBase):
    """DPM-Solver++(2M): the data-prediction multistep solver of the probability-flow ODE.

    clip_x0 clips each x̂0 to [−1, 1] before it enters the update (the paper's thresholding, static).
    """

    def predict_x0(self, x_t: torch.Tensor, t: int, *, y=None, guidance_scale=None) -> torch.Tensor:
        """x̂0 from one (guided, when guidance_scale is given) network call at timestep t."""
        eps = self.predict_eps(x_t, t, y=y, guidance_scale=guidance_scale)
        x0_hat = predict_x0_from_eps(self.schedule, x_t, t, eps)
        return x0_hat.clamp(-1, 1) if self.clip_x0 else x0_hat

    def dpm_solver_step(self, x_t: torch.Tensor, t: int, s: int, x0_hat: torch.Tensor,
                        x0_prev: torch.Tensor | None = None, t_prev: int | None = None) -> torch.Tensor:
        """One step t → s (s = −1: the clean image) given x̂0 at t and, after the first step, x̂0 at t_prev.

        First order (DDIM, η = 0) without a previous x̂0 and on the final jump to s = −1; second order
        (DPM-Solver++(2M)) otherwise.
        """
        if x0_prev is None or s < 0:
            return dpm_solver_first_order_update(self.schedule, x_t, t, s, x0_hat)
        return dpm_solver_2m_update(self.schedule, x_t, t, s, x0_hat, x0_prev, t_prev)

    @torch.inference_mode()
    def sample(self, shape: Sequence[int], num_steps: int = 20, *, timesteps=None, schedule_type: str = "uniform",
               x_T: torch.Tensor | None = None, generator: torch.Generator | None = None,
               y: torch.Tensor | None = None, guidance_scale: float | None = None, return_trajectory: bool = False,
               progress: bool | None = None, record_every: int | None = None):
        """DPM-Solver++(2M) from x_T over `timesteps` (default: `num_steps` of `schedule_type`, as DDIM's).

        One network call per timestep (NFE = len(timesteps)); the last step lands on x̂0. Works for any
        (B, C, H, W). Deterministic: `generator` only draws x_T when it is not given.
        """
        ts = check_timesteps(timestep_schedule(self.T, num_steps, schedule_type) if timesteps is None
                             else timesteps, self.T)
        x = self.initial_noise(shape, x_T, generator)
        self.check_conditioning(x.shape[0], y, guidance_scale)
        record = self.record_set(len(ts), record_every) if return_trajectory else set()
        traj = Trajectory()
        x0_prev, t_prev = None, None
        pairs = list(zip(ts, ts[1:] + [-1]))
        for i, (t, s) in enumerate(self.progress_bar(pairs, progress, f"DPM-Solver++(2M) {len(ts)} steps")):
            x0_hat = self.predict_x0(x, t, y=y, guidance_scale=guidance_scale)    # 1. the one network call
            x_s = self.dpm_solver_step(x, t, s, x0_hat, x0_prev, t_prev)           # 2. first or second order
            if i in record:
                traj.record(t, x, x0_hat)
            x, x0_prev, t_prev = x_s, x0_hat, t                                    # 3. keep x̂0 for the next step
        return (x, traj) if return_trajectory else x
