"""Spherical interpolation of Gaussian noises (seed 000; notebook 03)."""
from __future__ import annotations

import torch

from .guard import equation
from .validate import check_finite

__all__ = ["slerp"]


@equation
def slerp(z0: torch.Tensor, z1: torch.Tensor, alpha: float | torch.Tensor) -> torch.Tensor:
    """Great-circle interpolation: keeps the norm a Gaussian sample should have, unlike a straight line.

    Each sample (leading dimension) gets its own angle; alpha = 0 gives z0, alpha = 1 gives z1.
    """
    if z0.shape != z1.shape:
        raise ValueError(f"z0 and z1 must have the same shape, got {tuple(z0.shape)} and {tuple(z1.shape)}")
    a, b = check_finite(z0, "z0").flatten(1), check_finite(z1, "z1").flatten(1)
    for name, norm in (("z0", a.norm(dim=1)), ("z1", b.norm(dim=1))):
        if bool((norm == 0).any()):  # a zero vector has no direction to interpolate from
            raise ValueError(f"{name} has a sample that is all zeros; slerp needs non-zero noises such as torch.randn")
    cos = (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1))
    theta = torch.arccos(cos.clamp(-1, 1))[:, None]
    alpha = torch.as_tensor(alpha, dtype=z0.dtype, device=z0.device)
    sin = torch.sin(theta)
    lerp = (1 - alpha) * a + alpha * b
    out = torch.where(sin.abs() < 1e-6, lerp,
                      (torch.sin((1 - alpha) * theta) * a + torch.sin(alpha * theta) * b) / sin)
    return out.reshape(z0.shape)
