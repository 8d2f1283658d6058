"""Lab 5's forward-process class (notebook 01): the reference that the `forward_process` check compares with."""
from __future__ import annotations

import torch

from ..maths.forward import q_sample
from ..maths.schedule import NoiseSchedule, Timestep
from ..maths.validate import noise_like

__all__ = ["ForwardProcessImpl"]


class ForwardProcessImpl:
    """Lab 5's forward-process class (notebook 01): the reference that `checks.forward_process` compares with."""

    def __init__(self, schedule: NoiseSchedule):
        self.schedule = schedule

    def add_noise(self, x_start: torch.Tensor, t: Timestep, noise: torch.Tensor | None = None,
                  generator: torch.Generator | None = None) -> torch.Tensor:
        """Draw x_t from the closed-form forward process: mean √ᾱ_t·x_0, variance 1 − ᾱ_t per pixel (t: int or (B,) tensor)."""
        return q_sample(self.schedule, x_start, t, noise, generator=generator)

    def demonstrate_forward_trajectory(self, x_start: torch.Tensor, timesteps, noise: torch.Tensor | None = None,
                                       generator: torch.Generator | None = None) -> torch.Tensor:
        """x_t at every t of `timesteps`, all made from x_start with one shared ε: (K, B, C, H, W)."""
        noise = noise_like(x_start, noise, generator, "x_start")
        return torch.stack([q_sample(self.schedule, x_start, int(t), noise) for t in timesteps])
