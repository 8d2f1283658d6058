"""What the pretrained noise predictor gets right, step by step (Lab 5 part 1, notebook 02)."""
from __future__ import annotations

from typing import Sequence

import torch

from ..samplers.base import SamplerBase
from ..maths.forward import q_sample
from ..maths.predictions import predict_x0_from_eps

__all__ = ["TrainedModelAnalyzer"]


class TrainedModelAnalyzer(SamplerBase):
    """Noise a batch of real digits at chosen timesteps and compare ε_θ with the noise that was added.

    The reference for `checks.trained_model_analyzer`; one ε (given or drawn once) serves every t.
    """

    def _shared_noise(self, x_clean: torch.Tensor, noise: torch.Tensor | None, generator) -> torch.Tensor:
        if noise is None:
            return self.randn(x_clean.shape, generator)
        if noise.shape != x_clean.shape:
            raise ValueError(f"noise must have the shape of x_clean {tuple(x_clean.shape)}, got {tuple(noise.shape)}")
        return noise.to(self.device, self.dtype)

    @torch.no_grad()
    def visualize_noise_predictions(self, x_clean: torch.Tensor, timesteps: Sequence[int],
                                    noise: torch.Tensor | None = None, generator: torch.Generator | None = None,
                                    *, show: bool = True) -> dict[str, torch.Tensor]:
        """x_t, ε_θ(x_t, t) and x̂0 = (x_t − √(1−ᾱ_t)·ε_θ)/√ᾱ_t at every t, each stacked to (K, B, C, H, W).

        Returns {"x_t", "eps_pred", "x0_hat"}; with show=True it also draws them for the first digit. In
        notebook 02's TODO cell the student's code must leave this dictionary in a variable named `result`:
        the given lines after the solution block draw `result` and return it, as the last lines here do.
        """
        x0 = x_clean.to(self.device, self.dtype)
        eps = self._shared_noise(x0, noise, generator)
        s = self.schedule
        rows = {"x_t": [], "eps_pred": [], "x0_hat": []}
        for t in timesteps:
            t = int(t)
            x_t = q_sample(s, x0, t, eps)
            eps_pred = self.predict_eps(x_t, t)
            x0_hat = predict_x0_from_eps(s, x_t, t, eps_pred)
            for key, value in zip(rows, (x_t, eps_pred, x0_hat)):
                rows[key].append(value)
        result = {key: torch.stack(value) for key, value in rows.items()}
        if show:
            from ..teaching.plots import noise_predictions
            noise_predictions(result, timesteps)
        return result

    @torch.no_grad()
    def analyze_noise_prediction_quality(self, x_clean: torch.Tensor, timesteps: Sequence[int],
                                         noise: torch.Tensor | None = None,
                                         generator: torch.Generator | None = None) -> torch.Tensor:
        """Mean squared error between ε_θ(x_t, t) and the true ε at every t of `timesteps`: (K,)."""
        x0 = x_clean.to(self.device, self.dtype)
        eps = self._shared_noise(x0, noise, generator)
        s = self.schedule
        errors = []
        for t in timesteps:
            t = int(t)
            x_t = q_sample(s, x0, t, eps)
            errors.append(((self.predict_eps(x_t, t) - eps) ** 2).mean())
        return torch.stack(errors)
