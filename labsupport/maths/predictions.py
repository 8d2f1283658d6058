"""What the network predicts, two ways: the noise ε, or the clean image x̂0 it implies (notebooks 02, 03).

Both follow from the forward process x_t = √ᾱ_t·x0 + √(1−ᾱ_t)·ε solved for the other unknown.
"""
from __future__ import annotations

import torch

from .guard import equation
from .schedule import NoiseSchedule, Timestep, extract

__all__ = ["predict_x0_from_eps", "predict_eps_from_x0"]


@equation
def predict_x0_from_eps(schedule: NoiseSchedule, x_t: torch.Tensor, t: Timestep, eps: torch.Tensor) -> torch.Tensor:
    """x̂0 = (x_t − √(1−ᾱ_t)·ε) / √ᾱ_t (DDPM eq. 15, DDIM eq. 9)."""
    sqrt_abar = extract(schedule.sqrt_alphas_cumprod, t, x_t.shape).to(x_t)
    sqrt_1m_abar = extract(schedule.sqrt_one_minus_alphas_cumprod, t, x_t.shape).to(x_t)
    return (x_t - sqrt_1m_abar * eps) / sqrt_abar


@equation
def predict_eps_from_x0(schedule: NoiseSchedule, x_t: torch.Tensor, t: Timestep, x0: torch.Tensor) -> torch.Tensor:
    """ε = (x_t − √ᾱ_t·x̂0) / √(1−ᾱ_t): the noise that a given (for example clipped) x̂0 implies."""
    sqrt_abar = extract(schedule.sqrt_alphas_cumprod, t, x_t.shape).to(x_t)
    sqrt_1m_abar = extract(schedule.sqrt_one_minus_alphas_cumprod, t, x_t.shape).to(x_t)
    return (x_t - sqrt_abar * x0) / sqrt_1m_abar
