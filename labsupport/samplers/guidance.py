"""Classifier-free guidance as a wrapper around the network's noise prediction (notebook 05).

The blend itself is `labsupport.maths.guidance.cfg_blend`; this module calls the network for the
conditional and the unconditional (null-class) predictions, so DDPM and DDIM loops need no special case.
"""
from __future__ import annotations

import torch
from torch import nn

from ..maths.guidance import cfg_blend
from ..maths.validate import check_guidance_scale

__all__ = ["guided_eps", "check_labels"]


def check_labels(y: torch.Tensor | None, batch: int, num_classes: int, guidance_scale: float | None) -> None:
    """Raise a ValueError naming the problem for labels or a guidance scale that cannot work."""
    if guidance_scale is not None and y is None:
        raise ValueError(f"guidance_scale={guidance_scale} needs class labels: pass y=torch.tensor([...])")
    if guidance_scale is not None:
        check_guidance_scale(guidance_scale)
    if y is None:
        return
    if not torch.is_tensor(y) or y.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
        raise TypeError(f"y must be an integer tensor of class labels, got {type(y).__name__} "
                        f"{getattr(y, 'dtype', '')}")
    if y.shape != (batch,):
        raise ValueError(f"y must have shape ({batch},), one label per sample, got {tuple(y.shape)}")
    if y.numel() and (int(y.min()) < 0 or int(y.max()) > num_classes):
        raise ValueError(f"labels must lie in [0, {num_classes}] ({num_classes} is the null class), "
                         f"got values from {int(y.min())} to {int(y.max())}")


def guided_eps(model: nn.Module, x_t: torch.Tensor, t: torch.Tensor | int, y: torch.Tensor | None = None,
               guidance_scale: float | None = None, *, batched: bool = True) -> torch.Tensor:
    """ε_θ(x_t, t, y), guided when `guidance_scale` is given.

    Batched (default): one forward of a 2B batch [conditional; null], which keeps the
    network's kernels busy and costs less than two forwards of B.
    """
    if guidance_scale is None:
        return model(x_t, t, y)
    if y is None:  # silently dropping the guidance would hide the mistake
        raise ValueError(f"guidance_scale={guidance_scale} needs class labels: pass y=torch.tensor([...])")
    if guidance_scale == 1:  # the blend is exactly ε_c
        return model(x_t, t, y)
    if guidance_scale == 0:  # the blend is exactly ε_u
        return model(x_t, t, None)
    null = torch.full_like(y, model.null_class)
    if not batched:
        return cfg_blend(model(x_t, t, y), model(x_t, t, null), guidance_scale)
    t2 = torch.cat([t, t]) if torch.is_tensor(t) and t.ndim == 1 and t.numel() > 1 else t
    eps_cond, eps_uncond = model(torch.cat([x_t, x_t]), t2, torch.cat([y, null])).chunk(2)
    return cfg_blend(eps_cond, eps_uncond, guidance_scale)
