"""The classifier-free guidance blend (Ho & Salimans 2022; seed 000; notebook 05).

Course convention: ε̃ = ε_u + w·(ε_c − ε_u); w = 0 is unconditional, w = 1 plain conditional, and
w > 1 extrapolates past the conditional prediction. The paper writes (1 + w')·ε_c − w'·ε_u, so its
w' is our w − 1.
"""
from __future__ import annotations

import torch

from .guard import equation
from .validate import check_guidance_scale

__all__ = ["cfg_blend"]


@equation
def cfg_blend(eps_cond: torch.Tensor, eps_uncond: torch.Tensor, guidance_scale: float | torch.Tensor) -> torch.Tensor:
    """ε̃ = ε_u + w·(ε_c − ε_u) (seed 001: ε_c = 1.0, ε_u = 0.6 gives 1.0, 2.6, 6.6 at w = 1, 5, 15)."""
    check_guidance_scale(guidance_scale)
    return eps_uncond + guidance_scale * (eps_cond - eps_uncond)
