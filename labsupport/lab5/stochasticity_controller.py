"""How much fresh noise a DDIM step adds, controlled by η (Lab 5 part 3, notebook 04).

σ²(t→s) = η² · (1−ᾱ_s)/(1−ᾱ_t) · (1−ᾱ_t/ᾱ_s)   (DDIM, eq. 16, with ᾱ_{-1} = 1)

η = 0 is deterministic DDIM; η = 1 between consecutive steps gives σ² = β̃_t, DDPM's posterior
variance, so DDIM at η = 1 on the full schedule is DDPM's ancestral sampler.
"""
from __future__ import annotations

from typing import Sequence

import torch

from ..maths.ddim import ddim_sigma
from ..samplers.base import check_shape
from ..samplers.ddim import DDIMSampler

__all__ = ["StochasticityController"]


class StochasticityController(DDIMSampler):
    """A DDIM sampler whose σ comes from `compute_stochastic_variance` (the reference for notebook 04).

    Every DDIM update of this class, `sample` included, uses σ = √(compute_stochastic_variance(t, s, η)).
    """

    def compute_sigma(self, t, s, eta: float) -> torch.Tensor:
        return self.compute_stochastic_variance(t, s, eta).sqrt()

    def compute_stochastic_variance(self, t, s, eta: float) -> torch.Tensor:
        """σ² of the jump t → s: η²·(1−ᾱ_s)/(1−ᾱ_t)·(1−ᾱ_t/ᾱ_s); t, s ints or (n,) tensors, s = −1 allowed."""
        return ddim_sigma(self.schedule, t, s, eta) ** 2

    @torch.no_grad()
    def analyze_eta_effects(self, shape: Sequence[int], eta_values: Sequence[float], num_steps: int, *,
                            x_T: torch.Tensor | None = None, generator: torch.Generator | None = None,
                            schedule_type: str = "uniform") -> dict[str, torch.Tensor]:
        """Sample B = shape[0] times from ONE starting point x_T at every η; measure how far the runs spread.

        x_T, of shape (1, C, H, W), is drawn from `generator` first when not given. Then, for each η
        in order, DDIM (`self.sample`) runs B copies of x_T with the same `generator`.
        Returns {"eta": (K,), "samples": (K, B, C, H, W), "spread": (K,)}, where spread is the
        per-pixel standard deviation across the B runs, averaged over pixels (0 at η = 0).
        """
        shape = check_shape(shape)
        if shape[0] < 2:
            raise ValueError(f"shape[0] is the number of runs per η and must be at least 2, got {shape[0]}")
        start = self.initial_noise((1, *shape[1:]), x_T, generator)
        runs = start.expand(shape).contiguous()
        samples = torch.stack([self.sample(shape, eta=float(eta), num_steps=num_steps, schedule_type=schedule_type,
                                           x_T=runs, generator=generator, progress=False) for eta in eta_values])
        spread = samples.std(dim=1).mean(dim=(1, 2, 3))
        return {"eta": torch.tensor([float(e) for e in eta_values]), "samples": samples, "spread": spread}
