"""What the network predicts, two ways: the noise ε, or the clean image x̂0 it implies (notebooks 02, 03).

Both follow from the forward process x_t = √ᾱ_t·x0 + √(1−ᾱ_t)·ε solved for the other unknown. They
are written as the lessons write them (ᾱ_t and its roots), on the float64 tables, so that the
catalogue's slips of them are the ones a student makes (teaching/checks/derived.py).
"""
from __future__ import annotations

import torch

from .guard import equation
from .schedule import NoiseSchedule, Timestep, extract

__all__ = ["predict_x0_from_eps", "predict_eps_from_x0"]


@equation
def predict_x0_from_eps(schedule: NoiseSchedule, x_t: torch.Tensor, t: Timestep, eps: torch.Tensor) -> torch.Tensor:
    """x̂0 = (x_t − √(1−ᾱ_t)·ε) / √ᾱ_t (DDPM eq. 15, DDIM eq. 9)."""
    abar = extract(schedule.float64.alphas_cumprod, t, x_t.shape)
    return (x_t - (1 - abar).sqrt().to(x_t) * eps) / abar.sqrt().to(x_t)


@equation
def predict_eps_from_x0(schedule: NoiseSchedule, x_t: torch.Tensor, t: Timestep, x0: torch.Tensor) -> torch.Tensor:
    """ε = (x_t − √ᾱ_t·x̂0) / √(1−ᾱ_t): the noise that a given (for example clipped) x̂0 implies."""
    abar = extract(schedule.float64.alphas_cumprod, t, x_t.shape)
    return (x_t - abar.sqrt().to(x_t) * x0) / (1 - abar).sqrt().to(x_t)
