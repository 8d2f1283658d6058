"""Guidance (notebook 05): the classifier-free blend (Ho & Salimans 2022; seed 000) and the classifier
guidance shift (Dhariwal & Nichol 2021; seed 004).

Course convention: ε̃ = ε_u + w·(ε_c − ε_u); w = 0 is unconditional, w = 1 plain conditional, and
w > 1 extrapolates past the conditional prediction. The paper writes (1 + w')·ε_c − w'·ε_u, so its
w' is our w − 1.
"""
from __future__ import annotations

import torch

from .guard import equation
from .schedule import NoiseSchedule, Timestep, extract
from .validate import check_guidance_scale

__all__ = ["cfg_blend", "classifier_guided_eps", "rescale_guided_eps"]


@equation
def cfg_blend(eps_cond: torch.Tensor, eps_uncond: torch.Tensor, guidance_scale: float | torch.Tensor) -> torch.Tensor:
    """ε̃ = ε_u + w·(ε_c − ε_u) (seed 001: ε_c = 1.0, ε_u = 0.6 gives 1.0, 2.6, 6.6 at w = 1, 5, 15)."""
    check_guidance_scale(guidance_scale)
    return eps_uncond + guidance_scale * (eps_cond - eps_uncond)


@equation
def classifier_guided_eps(schedule: NoiseSchedule, t: Timestep, eps: torch.Tensor, grad_log_p: torch.Tensor,
                          guidance_scale: float) -> torch.Tensor:
    """ε̃ = ε − s·√(1−ᾱ_t)·∇_{x_t} log p(y | x_t, t) (seed 004).

    The score is −ε/√(1−ᾱ_t), so adding s·∇ log p(y | x_t) to the score, ∇ log p(x_t) + s·∇ log p(y | x_t)
    (seed 000's Bayes view), is this shift of ε.
    """
    check_guidance_scale(guidance_scale)
    abar = extract(schedule.float64.alphas_cumprod, t, eps.shape)
    return eps - guidance_scale * (1 - abar).sqrt().to(eps) * grad_log_p


@equation
def rescale_guided_eps(eps_guided: torch.Tensor, eps_cond: torch.Tensor, phi: float) -> torch.Tensor:
    """Guidance rescale (Lin et al. 2024): ε̃ scaled to the per-sample std of ε_c, mixed by φ.

    ε_r = ε̃·std(ε_c)/std(ε̃) (stds over each sample's C, H, W); returns φ·ε_r + (1 − φ)·ε̃, so φ = 0 is ε̃.
    Strong guidance inflates ε̃'s size, which over-saturates samples; rescaling undoes that size change only.
    """
    if not 0 <= phi <= 1:
        raise ValueError(f"phi must lie in [0, 1], got {phi}")
    dims = tuple(range(1, eps_guided.ndim))
    ratio = eps_cond.std(dim=dims, keepdim=True) / eps_guided.std(dim=dims, keepdim=True)
    return phi * eps_guided * ratio + (1 - phi) * eps_guided
