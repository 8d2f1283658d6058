"""Forward (noising) process q(x_t | x_0) in closed form, and one step of the chain (notebook 01)."""
from __future__ import annotations

import torch

from .guard import equation
from .schedule import NoiseSchedule, Timestep, extract
from .validate import noise_like

__all__ = ["q_sample", "q_step", "q_mean_variance"]


@equation
def q_mean_variance(schedule: NoiseSchedule, x0: torch.Tensor, t: Timestep) -> tuple[torch.Tensor, torch.Tensor]:
    """The Gaussian q(x_t | x_0) as (mean, variance): the clean image scaled by √ᾱ_t, and 1 − ᾱ_t per pixel."""
    mean = extract(schedule.sqrt_alphas_cumprod, t, x0.shape).to(x0) * x0
    var = extract(1 - schedule.alphas_cumprod, t, x0.shape).to(x0)
    return mean, var


@equation
def q_sample(schedule: NoiseSchedule, x0: torch.Tensor, t: Timestep, noise: torch.Tensor | None = None,
             *, generator: torch.Generator | None = None) -> torch.Tensor:
    """x_t = √ᾱ_t·x0 + √(1-ᾱ_t)·ε: jump straight from x0 to step t."""
    schedule.check_t(t)
    noise = noise_like(x0, noise, generator, "x0")
    abar = extract(schedule.float64.alphas_cumprod, t, x0.shape)   # float64: 1 − ᾱ_t keeps its digits near t = 0
    return abar.sqrt().to(x0) * x0 + (1 - abar).sqrt().to(x0) * noise


@equation
def q_step(schedule: NoiseSchedule, x_prev: torch.Tensor, t: Timestep, noise: torch.Tensor | None = None,
           *, generator: torch.Generator | None = None) -> torch.Tensor:
    """One step of the chain: x_t = √α_t·x_{t-1} + √β_t·ε."""
    schedule.check_t(t)
    noise = noise_like(x_prev, noise, generator, "x_prev")
    a = extract(schedule.alphas, t, x_prev.shape).to(x_prev).sqrt()
    b = extract(schedule.betas, t, x_prev.shape).to(x_prev).sqrt()
    return a * x_prev + b * noise
