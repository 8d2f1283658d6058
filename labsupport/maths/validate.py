"""The course maths' input checks: each bad number is refused once, with what to do instead."""
from __future__ import annotations

import math

import torch

__all__ = ["check_eta", "check_guidance_scale", "check_finite", "noise_like"]


def check_eta(eta: float) -> float:
    """η scales DDIM's fresh noise: a finite number ≥ 0 (0 is deterministic DDIM, 1 is DDPM's noise level)."""
    if torch.is_tensor(eta):
        eta = float(eta)
    if not isinstance(eta, (int, float)) or isinstance(eta, bool):
        raise TypeError(f"eta must be a number, got {type(eta).__name__}")
    if not math.isfinite(eta) or eta < 0:
        raise ValueError(f"eta must be >= 0 and finite, got {eta}")
    return float(eta)


def check_guidance_scale(w: float | torch.Tensor) -> None:
    """A guidance scale must be finite: NaN or inf would turn every pixel of the sample into NaN."""
    finite = bool(torch.isfinite(w).all()) if torch.is_tensor(w) else math.isfinite(float(w))
    if not finite:
        raise ValueError(f"guidance_scale must be finite, got {w}; the course sweeps w from 0 to about 20")


def check_finite(x: torch.Tensor, name: str) -> torch.Tensor:
    """`x` unchanged, or a ValueError naming `name` when it holds NaN or inf."""
    if not bool(torch.isfinite(x).all()):
        bad = int((~torch.isfinite(x)).sum())
        raise ValueError(f"{name} holds {bad} NaN or infinite values; pass finite numbers "
                         f"(for example torch.randn(...) for a starting noise)")
    return x


def noise_like(x: torch.Tensor, noise: torch.Tensor | None, generator: torch.Generator | None,
               name: str = "x") -> torch.Tensor:
    """The given ε, checked to have the shape of `x`, or a fresh ε ~ N(0, I) drawn from `generator`."""
    if noise is None:
        return torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    if noise.shape != x.shape:
        raise ValueError(f"noise must have the shape of {name} {tuple(x.shape)}, got {tuple(noise.shape)}")
    return noise
