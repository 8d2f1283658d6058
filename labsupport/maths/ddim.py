"""The DDIM update from t to any earlier s given the network's ε (Song et al. 2021; seed 000; notebooks 03, 04).

    x_s = √ᾱ_s·x̂0 + √(1 − ᾱ_s − σ²)·ε + σ·z,   σ(η) = η·√((1−ᾱ_s)/(1−ᾱ_t))·√(1 − ᾱ_t/ᾱ_s)

with ᾱ_{−1} = 1, so the last jump (s = −1) lands on x̂0. η = 0 is deterministic; η = 1 between
consecutive steps gives σ² = β̃_t, DDPM's posterior variance.
"""
from __future__ import annotations

import torch

from .guard import equation
from .predictions import predict_eps_from_x0, predict_x0_from_eps
from .schedule import NoiseSchedule, Timestep, alpha_bar
from .validate import check_eta

__all__ = ["ddim_sigma", "ddim_coefficients", "ddim_step_given_eps", "adds_noise"]


@equation
def ddim_sigma(schedule: NoiseSchedule, t: Timestep, s: Timestep, eta: float) -> torch.Tensor:
    """σ(η) = η·√((1−ᾱ_s)/(1−ᾱ_t))·√(1 − ᾱ_t/ᾱ_s) of the jump t → s (DDIM eq. 16); ints or (n,) tensors."""
    eta = check_eta(eta)
    a_t, a_s = alpha_bar(schedule, t), alpha_bar(schedule, s)
    if eta == 0:  # exactly 0, also for DDIM inversion's upward jumps (s > t), where the root does not exist
        return torch.zeros_like(a_t * a_s)
    return eta * ((1 - a_s) / (1 - a_t) * (1 - a_t / a_s)).sqrt()


@equation
def ddim_coefficients(schedule: NoiseSchedule, t: Timestep, s: Timestep, eta: float, *,
                      sigma: torch.Tensor | None = None) -> torch.Tensor:
    """(√ᾱ_s, √(1−ᾱ_s−σ²), σ) of the jump t → s: (3,) for int steps, (n, 3) for (n,) tensors.

    `sigma` defaults to `ddim_sigma`; a sampler with its own σ rule passes it in. A σ larger than
    √(1−ᾱ_s) has no direction term left and is refused, with the largest η the jump allows.
    """
    eta = check_eta(eta)
    sigma = ddim_sigma(schedule, t, s, eta) if sigma is None else sigma
    a_s = alpha_bar(schedule, s)
    rest = 1 - a_s - sigma ** 2
    if bool((rest < -1e-6).any()):
        i = int(rest.argmin()) if rest.ndim else 0
        t_i, s_i = (int(v) if isinstance(v, int) else int(v.reshape(-1)[i]) for v in (t, s))
        sigma_1 = ddim_sigma(schedule, t_i, s_i, 1.0)
        largest = float((1 - alpha_bar(schedule, s_i)).sqrt() / sigma_1)
        raise ValueError(f"eta={eta:g} is too large for the jump t={t_i} -> s={s_i}: 1 - ᾱ_s - σ² = "
                         f"{float(rest.reshape(-1)[i]):.3g} < 0, so √(1 - ᾱ_s - σ²) does not exist; "
                         f"this jump allows eta up to {largest:.4g}")
    return torch.stack([a_s.sqrt(), rest.clamp(min=0).sqrt(), sigma.to(a_s)], -1)


def adds_noise(eta: float, s: int) -> bool:
    """Whether the jump to s adds σ·z: only with η > 0, and never on the last jump to x̂0 (s = −1)."""
    return eta > 0 and s >= 0


@equation
def ddim_step_given_eps(schedule: NoiseSchedule, x_t: torch.Tensor, t: int, s: int, eps: torch.Tensor,
                        eta: float = 0.0, noise: torch.Tensor | None = None, *, clip_x0: bool = False,
                        recompute_eps: bool = True,
                        coefficients: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One DDIM update t → s; returns (x_s, x̂0).

    clip_x0 clips x̂0 to [−1, 1]; recompute_eps then uses the ε that the clipped x̂0 implies, so the
    update stays consistent (DDIM at η = 1 on the full schedule is then DDPM's clipped step).
    `coefficients` is the row of `ddim_coefficients(schedule, t, s, eta)`, when made before the loop.
    """
    x0_hat = predict_x0_from_eps(schedule, x_t, t, eps)                        # 1. x̂0 (DDIM eq. 12)
    if clip_x0:
        x0_hat = x0_hat.clamp(-1, 1)
        if recompute_eps:                                                      #    ε consistent with x̂0
            eps = predict_eps_from_x0(schedule, x_t, t, x0_hat)
    coefs = ddim_coefficients(schedule, t, s, eta) if coefficients is None else coefficients
    sqrt_a_s, dir_coef, sigma = coefs.to(x_t)
    x_s = sqrt_a_s * x0_hat + dir_coef * eps                                   # 2. point to x̂0, direction to x_t
    if adds_noise(eta, s):                                                     # 3. fresh noise σ·z
        if noise is None:
            raise ValueError(f"a DDIM jump with eta={eta:g} > 0 to s={s} adds σ·z: pass noise "
                             "(for example torch.randn_like(x_t))")
        x_s = x_s + sigma * noise
    return x_s, x0_hat
