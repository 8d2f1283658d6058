"""Guided DDIM in one call: the reference for notebook 05's `sample_with_guidance`.

The reference of `guided_noise` is the blend ε̃ = ε_u + w·(ε_c − ε_u), `labsupport.maths.guidance.cfg_blend`;
the network calls around it are `labsupport.samplers.guidance.guided_eps`. This is DDIM at η = 0 with
that noise prediction.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ..maths.guidance import cfg_blend
from ..maths.schedule import NoiseSchedule
from ..samplers.ddim import DDIMSampler

__all__ = ["cfg_blend", "sample_with_guidance"]


def sample_with_guidance(model: nn.Module, schedule: NoiseSchedule, labels: torch.Tensor, guidance_scale: float,
                         num_steps: int, *, generator: torch.Generator | None = None, x_T: torch.Tensor | None = None,
                         image_shape: Sequence[int] = (1, 28, 28)) -> torch.Tensor:
    """DDIM (η = 0, uniform steps) with classifier-free guidance at scale w for one label per sample.

    x_T defaults to torch.randn((B, *image_shape), generator=generator); returns x̂0, (B, C, H, W).
    """
    sampler = DDIMSampler(model, schedule)
    labels = torch.as_tensor(labels).to(sampler.device)
    shape = tuple(x_T.shape) if x_T is not None else (len(labels), *image_shape)
    return sampler.sample(shape, num_steps=num_steps, x_T=x_T, generator=generator, y=labels,
                          guidance_scale=float(guidance_scale), progress=False)
