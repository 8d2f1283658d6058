"""Cheaper and gentler classifier-free guidance (notebook 07): a limited interval, and rescaling.

`IntervalGuidance(model, w, interval=(lo, hi), rescale=φ)` is a noise predictor for the lab's
samplers. Inside the interval of training timesteps it returns the CFG blend (two network calls of
B, so the calls can be counted one by one), optionally rescaled (`rescale_guided_eps`); outside it
returns ε_c alone, one call, which is where the saving comes from (Kynkäänniemi et al. 2024 guide
only at middle noise levels).
"""
from __future__ import annotations

import torch
from torch import nn

from ..maths.guidance import cfg_blend, rescale_guided_eps
from ..maths.validate import check_guidance_scale

__all__ = ["IntervalGuidance"]


class IntervalGuidance(nn.Module):
    """(x_t, t, y) -> ε̃ with guidance only for training timesteps lo <= t <= hi; pass it where samplers take the model."""

    def __init__(self, model: nn.Module, guidance_scale: float, interval: tuple[int, int] = (0, 999),
                 rescale: float = 0.0):
        super().__init__()
        check_guidance_scale(guidance_scale)
        lo, hi = (int(v) for v in interval)
        if not 0 <= lo <= hi:
            raise ValueError(f"interval must be (lo, hi) with 0 <= lo <= hi, got {interval}")
        if not 0 <= rescale <= 1:
            raise ValueError(f"rescale must lie in [0, 1], got {rescale}")
        self.model, self.guidance_scale, self.interval, self.rescale = model, float(guidance_scale), (lo, hi), rescale
        self.num_classes = model.num_classes
        self.null_class = model.null_class

    def forward(self, x_t: torch.Tensor, t: int | torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if y is None:
            raise ValueError("guidance needs labels: pass y=torch.tensor([...]) to sample")
        eps_cond = self.model(x_t, t, y)
        step = int(torch.as_tensor(t).reshape(-1)[0])  # the samplers pass one timestep for the whole batch
        if not self.interval[0] <= step <= self.interval[1]:
            return eps_cond
        eps = cfg_blend(eps_cond, self.model(x_t, t, torch.full_like(y, self.null_class)), self.guidance_scale)
        return rescale_guided_eps(eps, eps_cond, self.rescale) if self.rescale else eps
