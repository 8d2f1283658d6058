"""Few-step ODE solvers on the discrete ε-model (notebook 07): DPM-Solver++(2M) and EDM's Heun.

Both integrate the probability-flow ODE that DDIM (η = 0) discretises to first order.

DPM-Solver++ (Lu et al. 2022, "DPM-Solver++: Fast Solver for Guided Sampling of Diffusion
Probabilistic Models", eqs. 8-9 and Algorithm 2) writes x_t = α_t·x0 + σ_t·ε with α_t = √ᾱ_t,
σ_t = √(1−ᾱ_t) and steps in the half-log-SNR λ_t = log(α_t/σ_t), with h = λ_s − λ_t > 0 from t to
the less noisy s, on the data prediction x̂0:

    first order (= DDIM, η = 0):  x_s = (σ_s/σ_t)·x_t − α_s·(e^{−h} − 1)·x̂0_t
    second order, multistep:     r = h_prev/h,  D = (1 + 1/(2r))·x̂0_t − (1/(2r))·x̂0_{t_prev}
                                 x_s = (σ_s/σ_t)·x_t − α_s·(e^{−h} − 1)·D

Heun (Karras et al. 2022, "Elucidating the Design Space of Diffusion-Based Generative Models",
Algorithm 1) works in EDM's scaling x = x_t/√ᾱ_t = x0 + σ·ε with σ_t = √((1−ᾱ_t)/ᾱ_t), where the
ODE is dx/dσ = (x − x̂0)/σ. The network only knows its training timesteps, so every σ these
functions use is the σ_t of an integer timestep t (ᾱ_{−1} = 1 gives σ = 0, λ = +∞): a sampler picks
its σ grid from the model's timesteps and never evaluates between them.
"""
from __future__ import annotations

import torch

from .guard import equation
from .schedule import NoiseSchedule, Timestep, extract

__all__ = ["half_log_snr", "edm_sigma", "dpm_solver_first_order_update", "dpm_solver_2m_update",
           "to_edm_scaling", "from_edm_scaling", "edm_derivative", "heun_euler_update", "heun_trapezoid_update"]


def _abar(schedule: NoiseSchedule, t: Timestep, shape=None) -> torch.Tensor:
    """ᾱ_t (float64) with ᾱ_{−1} = 1 for the clean image: shaped to broadcast over `shape`, or as `t` is
    (0-d for an int, (n,) for a tensor) when `shape` is None."""
    table = torch.cat([schedule.float64.alphas_cumprod, torch.ones(1, dtype=torch.float64)])
    if isinstance(t, int):
        if not -1 <= t < schedule.T:
            raise ValueError(f"t must lie in [-1, {schedule.T}), got {t}")
        return table[t].reshape((1,) * len(shape or ()))
    t = t.cpu().long().reshape(-1)
    if t.numel() and (int(t.min()) < -1 or int(t.max()) >= schedule.T):
        raise ValueError(f"t must lie in [-1, {schedule.T}), got values from {int(t.min())} to {int(t.max())}")
    index = torch.where(t < 0, schedule.T, t)
    return table[index] if shape is None else extract(table, index, shape)


@equation
def half_log_snr(schedule: NoiseSchedule, t: Timestep, shape=None) -> torch.Tensor:
    """λ_t = log(√ᾱ_t / √(1−ᾱ_t)), half the log-SNR (DPM-Solver++ §3); +∞ at t = −1 (float64)."""
    abar = _abar(schedule, t, shape)
    return torch.log(abar.sqrt() / (1 - abar).sqrt())


@equation
def edm_sigma(schedule: NoiseSchedule, t: Timestep, shape=None) -> torch.Tensor:
    """σ_t = √((1−ᾱ_t)/ᾱ_t), EDM's noise level of timestep t (Karras et al. 2022, §2); 0 at t = −1 (float64)."""
    abar = _abar(schedule, t, shape)
    return ((1 - abar) / abar).sqrt()


@equation
def dpm_solver_first_order_update(schedule: NoiseSchedule, x_t: torch.Tensor, t: int, s: int,
                                  x0_hat: torch.Tensor) -> torch.Tensor:
    """x_s = (σ_s/σ_t)·x_t − α_s·(e^{−h} − 1)·x̂0_t, h = λ_s − λ_t (DPM-Solver++ eq. 9 at first order).

    This is DDIM's η = 0 update written in λ; s = −1 (h = ∞) returns x̂0.
    """
    a_t, a_s = _abar(schedule, t, x_t.shape), _abar(schedule, s, x_t.shape)
    h = half_log_snr(schedule, s, x_t.shape) - half_log_snr(schedule, t, x_t.shape)
    coef_x = ((1 - a_s) / (1 - a_t)).sqrt()                                    # σ_s/σ_t
    coef_x0 = -a_s.sqrt() * (torch.exp(-h) - 1)                                # −α_s·(e^{−h} − 1)
    return coef_x.to(x_t) * x_t + coef_x0.to(x_t) * x0_hat


@equation
def dpm_solver_2m_update(schedule: NoiseSchedule, x_t: torch.Tensor, t: int, s: int, x0_hat: torch.Tensor,
                         x0_prev: torch.Tensor, t_prev: int) -> torch.Tensor:
    """DPM-Solver++(2M) (Lu et al. 2022, Algorithm 2): the first-order update on the extrapolated
    D = (1 + 1/(2r))·x̂0_t − (1/(2r))·x̂0_{t_prev}, r = h_prev/h, h_prev = λ_t − λ_{t_prev}.

    Needs a previous step (t_prev > t) and a finite h, so s ≥ 0: the sampler's first step and its
    final jump to s = −1 are first order.
    """
    if s < 0:
        raise ValueError("the second-order update needs s >= 0: the final jump to s = -1 (h = ∞) is first order")
    lam_prev, lam_t, lam_s = (half_log_snr(schedule, k, x_t.shape) for k in (t_prev, t, s))
    h, h_prev = lam_s - lam_t, lam_t - lam_prev                                # 1. step sizes in λ
    r = h_prev / h
    d = (1 + 1 / (2 * r)).to(x_t) * x0_hat - (1 / (2 * r)).to(x_t) * x0_prev    # 2. linear extrapolation of x̂0
    a_t, a_s = _abar(schedule, t, x_t.shape), _abar(schedule, s, x_t.shape)
    coef_x = ((1 - a_s) / (1 - a_t)).sqrt()                                    # 3. the first-order form on D
    coef_d = -a_s.sqrt() * (torch.exp(-h) - 1)
    return coef_x.to(x_t) * x_t + coef_d.to(x_t) * d


@equation
def to_edm_scaling(schedule: NoiseSchedule, x_t: torch.Tensor, t: Timestep) -> torch.Tensor:
    """x = x_t/√ᾱ_t = x0 + σ_t·ε: the variance-exploding state of EDM (Karras et al. 2022, eq. 4 with s(t) = √ᾱ_t)."""
    return x_t / _abar(schedule, t, x_t.shape).sqrt().to(x_t)


@equation
def from_edm_scaling(schedule: NoiseSchedule, x: torch.Tensor, t: Timestep) -> torch.Tensor:
    """x_t = √ᾱ_t·x: what the ε-model sees at timestep t (the inverse of `to_edm_scaling`)."""
    return x * _abar(schedule, t, x.shape).sqrt().to(x)


@equation
def edm_derivative(schedule: NoiseSchedule, x: torch.Tensor, t: Timestep, x0_hat: torch.Tensor) -> torch.Tensor:
    """d = dx/dσ = (x − x̂0)/σ_t, the probability-flow ODE in EDM scaling (Karras et al. 2022, Algorithm 1 line 4).

    With x̂0 from ε_θ this is ε_θ itself.
    """
    return (x - x0_hat) / edm_sigma(schedule, t, x.shape).to(x)


@equation
def heun_euler_update(schedule: NoiseSchedule, x: torch.Tensor, t: int, s: int, d: torch.Tensor) -> torch.Tensor:
    """x_s = x + (σ_s − σ_t)·d, the Euler predictor (Karras et al. 2022, Algorithm 1 line 5)."""
    step = edm_sigma(schedule, s, x.shape) - edm_sigma(schedule, t, x.shape)
    return x + step.to(x) * d


@equation
def heun_trapezoid_update(schedule: NoiseSchedule, x: torch.Tensor, t: int, s: int, d: torch.Tensor,
                          d_next: torch.Tensor) -> torch.Tensor:
    """x_s = x + (σ_s − σ_t)·(d + d')/2, Heun's trapezoid corrector (Karras et al. 2022, Algorithm 1 line 8).

    d' is the derivative at the Euler prediction; not used on the final step to σ = 0.
    """
    step = edm_sigma(schedule, s, x.shape) - edm_sigma(schedule, t, x.shape)
    return x + step.to(x) * (d + d_next) / 2
