"""Lab 5 part 5 (notebook 06): a DDIM loop over precomputed coefficients, and chunked generation.

The reference for the piece `sampling_optimizer`. The chunking itself, the per-sample seeds, the
memory estimate and the health check live in `labsupport.tools.generation`; this class is the Lab's interface.
"""
from __future__ import annotations

from typing import Sequence

import torch

from ..tools.generation import MNIST_SHAPE, chunk_size_for_memory, generate
from ..maths.ddim import adds_noise, ddim_step_given_eps
from ..samplers.base import SamplerBase
from ..samplers.ddim import DDIMSampler

__all__ = ["SamplingOptimizer", "ddim_coefficient_table"]


def ddim_coefficient_table(ddim_sampler: DDIMSampler, timesteps: torch.Tensor, eta: float = 0.0) -> list[list[float]]:
    """One row per step i (t_i → s_i, s_last = −1): [1/√ᾱ_t, √(1−ᾱ_t), √ᾱ_s, √(1−ᾱ_s−σ²), σ] as Python floats.

    Made once before the loop: a step then multiplies tensors by plain numbers, with no table
    lookups, no square roots and no small tensors to create (each of which is a kernel launch on a GPU).
    """
    ts = torch.as_tensor(timesteps).long().to(ddim_sampler.device)
    s = torch.cat([ts[1:], ts.new_tensor([-1])])
    a_t = ddim_sampler.alpha_bar(ts)
    update = ddim_sampler.update_coefficients(ts, s, eta)                       # (n, 3): √ᾱ_s, √(1−ᾱ_s−σ²), σ
    return torch.cat([torch.stack([a_t.rsqrt(), (1 - a_t).sqrt()], 1), update], 1).cpu().tolist()


class SamplingOptimizer(SamplerBase):
    """Production helpers around a trained noise predictor: `SamplingOptimizer(model, schedule)`."""

    @torch.no_grad()
    def cached_noise_schedule_sampling(self, ddim_sampler: DDIMSampler, shape: Sequence[int], num_steps: int, *,
                                       eta: float = 0.0, x_T: torch.Tensor | None = None,
                                       generator: torch.Generator | None = None) -> torch.Tensor:
        """DDIM over `num_steps` uniform steps with every coefficient computed before the loop.

        Gives ddim_sampler.sample(shape, num_steps=num_steps, eta=eta, x_T=x_T, generator=generator)
        (a sampler without clipping); only where the numbers come from changes.
        """
        ts = ddim_sampler.create_timestep_schedule(num_steps).tolist()
        targets = ts[1:] + [-1]
        table = ddim_sampler.update_coefficients(torch.tensor(ts), torch.tensor(targets), eta)   # (n, 3), once
        x = ddim_sampler.initial_noise(shape, x_T, generator)
        for t, s, coefs in zip(ts, targets, table):
            eps = ddim_sampler.predict_eps(x, t)
            noise = ddim_sampler.randn(x.shape, generator) if adds_noise(eta, s) else None
            x = ddim_step_given_eps(ddim_sampler.schedule, x, t, s, eps, eta, noise, coefficients=coefs)[0]
        return x

    def batch_sampling_with_memory_management(self, total_samples: int, batch_size: int, *, num_steps: int = 50,
                                              eta: float = 0.0, seed: int = 0, memory_budget: int | None = None,
                                              image_shape: Sequence[int] = MNIST_SHAPE, y: torch.Tensor | None = None,
                                              guidance_scale: float | None = None) -> torch.Tensor:
        """`total_samples` DDIM samples made at most `batch_size` at a time, on the CPU.

        memory_budget (bytes) lowers the chunk to what fits (`chunk_size_for_memory`). Sample i draws
        its noise from its own generator (`sample_generators(seed, [i])`), so the result does not
        depend on the chunk size. Every chunk passes the health check (no NaN, no inf).
        """
        if total_samples < 1 or batch_size < 1:
            raise ValueError(f"total_samples and batch_size must be at least 1, got {total_samples} and {batch_size}")
        chunk = batch_size if memory_budget is None else min(batch_size, chunk_size_for_memory(
            self.model, memory_budget, image_shape, guided=guidance_scale is not None))
        sampler = DDIMSampler(self.model, self.schedule)
        return generate(sampler, total_samples, chunk_size=chunk, seed=seed, image_shape=image_shape, y=y,
                        num_steps=num_steps, eta=eta, guidance_scale=guidance_scale)
