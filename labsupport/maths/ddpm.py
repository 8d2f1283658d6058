"""The DDPM reverse step p_θ(x_{t−1} | x_t) given the network's ε (Ho et al. 2020; seed 004; notebook 02).

The posterior q(x_{t−1} | x_t, x0) has mean μ̃_t = c1·x0 + c2·x_t and variance β̃_t; the schedule
holds c1, c2 and β̃ as tables. With x0 replaced by x̂0(ε) the mean becomes the ε form
μ_θ = (1/√α_t)·(x_t − β_t/√(1−ᾱ_t)·ε).
"""
from __future__ import annotations

import torch

from .guard import equation
from .predictions import predict_x0_from_eps
from .schedule import NoiseSchedule, Timestep, extract

__all__ = ["VARIANCE_TYPES", "posterior_mean_from_eps", "posterior_mean_from_x0", "posterior_variance",
           "ddpm_step_given_eps"]

VARIANCE_TYPES = ("fixed_lower", "fixed_upper")


@equation
def posterior_mean_from_eps(schedule: NoiseSchedule, x_t: torch.Tensor, t: Timestep, eps: torch.Tensor) -> torch.Tensor:
    """μ_θ(x_t, t) = (1/√α_t)·(x_t − (1−α_t)/√(1−ᾱ_t)·ε) (DDPM eq. 11), with β_t for 1 − α_t.

    Written as the lesson writes it, so that the catalogue's slips of it are the ones a student makes.
    """
    beta, alpha, abar = (extract(table, t, x_t.shape).to(x_t)
                         for table in (schedule.betas, schedule.alphas, schedule.alphas_cumprod))
    return (x_t - beta / (1 - abar).sqrt() * eps) / alpha.sqrt()


@equation
def posterior_mean_from_x0(schedule: NoiseSchedule, x_t: torch.Tensor, t: Timestep, x0: torch.Tensor) -> torch.Tensor:
    """μ̃_t(x_t, x0) = √ᾱ_{t−1}·β_t/(1−ᾱ_t)·x0 + √α_t·(1−ᾱ_{t−1})/(1−ᾱ_t)·x_t (DDPM eq. 7)."""
    c1 = extract(schedule.posterior_mean_coef1, t, x_t.shape).to(x_t)
    c2 = extract(schedule.posterior_mean_coef2, t, x_t.shape).to(x_t)
    return c1 * x0 + c2 * x_t


@equation
def posterior_variance(schedule: NoiseSchedule, t: Timestep, variance_type: str = "fixed_lower") -> torch.Tensor:
    """σ_t²: β̃_t = β_t·(1−ᾱ_{t−1})/(1−ᾱ_t) ("fixed_lower", the posterior's) or β_t ("fixed_upper").

    The two bound the true reverse variance from below and above (seed 004); t an int or a (B,) tensor.
    """
    if variance_type not in VARIANCE_TYPES:
        raise ValueError(f"variance_type must be one of {VARIANCE_TYPES}, got {variance_type!r}")
    schedule.check_t(t)
    if variance_type == "fixed_upper":
        return schedule.betas[t]
    exact, i = schedule.float64, t if isinstance(t, int) else t.cpu()  # 1 − ᾱ near t = 0 needs float64
    lower = exact.betas[i] * (1 - exact.alphas_cumprod_prev[i]) / (1 - exact.alphas_cumprod[i])
    return lower.to(schedule.betas.device, torch.float32)


@equation
def ddpm_step_given_eps(schedule: NoiseSchedule, x_t: torch.Tensor, t: int, eps: torch.Tensor,
                        noise: torch.Tensor | None = None, *, variance_type: str = "fixed_lower",
                        clip_x0: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """x_{t−1} = μ_θ(x_t, t) + σ_t·z; returns (x_{t−1}, x̂0). No noise at t = 0, where z is not used.

    clip_x0: clip x̂0 to [−1, 1] and form the mean from it (μ̃_t(x_t, clip(x̂0))).
    """
    x0_hat = predict_x0_from_eps(schedule, x_t, t, eps)                       # 1. x̂0 from ε
    if clip_x0:                                                               # 2. μ: through x̂0, or ε form
        mean = posterior_mean_from_x0(schedule, x_t, t, x0_hat.clamp(-1, 1))
    else:
        mean = posterior_mean_from_eps(schedule, x_t, t, eps)
    sigma = posterior_variance(schedule, t, variance_type).sqrt().to(x_t)
    if t == 0:                                                                # 3. the last step is the mean
        return mean, x0_hat
    if noise is None:
        raise ValueError(f"a DDPM step at t={t} > 0 adds σ_t·z: pass noise (for example torch.randn_like(x_t))")
    return mean + sigma * noise, x0_hat                                       # 4. x_{t−1} = μ + σ·z
