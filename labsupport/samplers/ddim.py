"""DDIM sampling (Song et al. 2021; seeds 000/001, notebooks 03 and 04), inversion included."""
from __future__ import annotations

import math
from typing import Sequence

import torch

from ..maths.ddim import adds_noise, ddim_coefficients, ddim_sigma, ddim_step_given_eps
from ..maths.predictions import predict_x0_from_eps
from ..maths.schedule import alpha_bar
from ..maths.validate import check_eta
from .base import SamplerBase, Trajectory

__all__ = ["DDIMSampler", "SCHEDULE_TYPES", "timestep_schedule"]

SCHEDULE_TYPES = ("uniform", "linspace", "quadratic", "leading", "trailing")


def timestep_schedule(T: int, num_steps: int, schedule_type: str = "uniform") -> torch.Tensor:
    """`num_steps` strictly decreasing timesteps in [0, T): where the network is evaluated.

    uniform/linspace: evenly spread from T-1 down to 0.
    quadratic: dense near t = 0 (the DDIM paper's choice for small images).
    leading: multiples of T // num_steps, starting at 0 (diffusers' default for SD).
    trailing: T-1, T-1-T/n, ... (Lin et al. 2024: starts at the true noise level).
    """
    if not isinstance(num_steps, int) or isinstance(num_steps, bool):
        raise TypeError(f"num_steps must be an int, got {type(num_steps).__name__}")
    if not 1 <= num_steps <= T:
        raise ValueError(f"num_steps must lie in [1, {T}], got {num_steps}")
    if schedule_type not in SCHEDULE_TYPES:
        raise ValueError(f"schedule_type must be one of {SCHEDULE_TYPES}, got {schedule_type!r}")
    n = num_steps
    if n == 1:
        return torch.tensor([T - 1])
    i = torch.arange(n, dtype=torch.float64)
    if schedule_type in ("uniform", "linspace"):
        ts = torch.round(i * (T - 1) / (n - 1)).long()
    elif schedule_type == "quadratic":
        ts = torch.round((T - 1) * (i / (n - 1)) ** 2).long()
        # collisions at the dense end: push each step at least one above its predecessor
        ts = torch.cummax(ts - torch.arange(n), 0).values + torch.arange(n)
    elif schedule_type == "leading":
        ts = torch.arange(n) * (T // n)
    else:  # trailing
        ts = torch.round(torch.arange(1, n + 1, dtype=torch.float64) * T / n).long() - 1
    return ts.flip(0).long()


def check_timesteps(timesteps, T: int) -> list[int]:
    ts = [int(t) for t in (timesteps.tolist() if torch.is_tensor(timesteps) else timesteps)]
    if not ts:
        raise ValueError("timesteps must not be empty")
    if ts[0] >= T or ts[-1] < 0:
        raise ValueError(f"timesteps must lie in [0, {T}), got {ts[0]} .. {ts[-1]}")
    if any(b >= a for a, b in zip(ts, ts[1:])):
        raise ValueError(f"timesteps must be strictly decreasing, got {ts[:8]}{'...' if len(ts) > 8 else ''}")
    return ts


class DDIMSampler(SamplerBase):
    """x_s = √ᾱ_s·x̂0 + √(1−ᾱ_s−σ²)·ε_θ + σ·z, jumping from t to any earlier s.

    clip_x0: clip x̂0 to [-1, 1]. recompute_eps (used with clip_x0): recompute ε from the clipped
    x̂0, ε = (x_t − √ᾱ_t·x̂0)/√(1−ᾱ_t), so the update stays consistent: with it, DDIM at η = 1 on the
    full schedule equals DDPM's clipped posterior step, and guided samples survive clipping.
    """

    def __init__(self, model, schedule, *, clip_x0: bool = False, recompute_eps: bool = True):
        super().__init__(model, schedule, clip_x0=clip_x0)
        self.recompute_eps = recompute_eps
        # update coefficients of the current `sample` run, keyed (t, s, eta): made in one pass before
        # the loop, so a step costs the network and the elementwise update, nothing more
        self._coefs: dict[tuple[int, int, float], torch.Tensor] = {}

    def alpha_bar(self, s) -> torch.Tensor:
        """ᾱ_s with ᾱ_{-1} = 1."""
        return alpha_bar(self.schedule, s)

    def predict_x0_from_eps(self, x_t: torch.Tensor, eps: torch.Tensor, t) -> torch.Tensor:
        """x̂0 = (x_t − √(1−ᾱ_t)·ε) / √ᾱ_t."""
        return predict_x0_from_eps(self.schedule, x_t, t, eps)

    def compute_sigma(self, t, s, eta: float) -> torch.Tensor:
        """σ = η·√((1−ᾱ_s)/(1−ᾱ_t))·√(1−ᾱ_t/ᾱ_s)."""
        return ddim_sigma(self.schedule, t, s, eta)

    def update_coefficients(self, t, s, eta: float) -> torch.Tensor:
        """(√ᾱ_s, √(1−ᾱ_s−σ²), σ) of the jump t -> s: (3,) for int steps, (n, 3) for (n,) tensors."""
        return ddim_coefficients(self.schedule, t, s, eta, sigma=self.compute_sigma(t, s, eta))

    def step(self, x_t: torch.Tensor, t: int, s: int, eta: float = 0.0, *, y=None, guidance_scale=None,
             generator=None, noise=None) -> tuple[torch.Tensor, torch.Tensor]:
        """One DDIM update t -> s; returns (x_s, x̂0)."""
        eps = self.predict_eps(x_t, t, y=y, guidance_scale=guidance_scale)      # 1. network
        if adds_noise(eta, s) and noise is None:                               # 2. z, drawn only where used
            noise = self.randn(x_t.shape, generator)
        coefs = self._coefs.get((t, s, eta))
        coefs = self.update_coefficients(t, s, eta) if coefs is None else coefs
        return ddim_step_given_eps(self.schedule, x_t, t, s, eps, eta, noise,   # 3. the update (the maths)
                                   clip_x0=self.clip_x0, recompute_eps=self.recompute_eps, coefficients=coefs)

    def ddim_step(self, x_t: torch.Tensor, t: int, s: int, eta: float = 0.0, *, y=None, guidance_scale=None,
                  generator=None, noise=None) -> torch.Tensor:
        """x_s from x_t (Lab 5 interface); s = -1 returns x̂0."""
        if not -1 <= s < t < self.T:
            raise ValueError(f"need -1 <= s < t < {self.T}, got t={t}, s={s}")
        return self.step(x_t, t, s, eta, y=y, guidance_scale=guidance_scale, generator=generator, noise=noise)[0]

    def create_timestep_schedule(self, num_steps: int, schedule_type: str = "uniform") -> torch.Tensor:
        """Decreasing timesteps for `num_steps` network calls (see `timestep_schedule`)."""
        return timestep_schedule(self.T, num_steps, schedule_type)

    @torch.inference_mode()
    def sample(self, shape: Sequence[int], timesteps=None, eta: float = 0.0, return_trajectory: bool = False, *,
               num_steps: int = 50, schedule_type: str = "uniform", x_T: torch.Tensor | None = None,
               generator: torch.Generator | None = None, y: torch.Tensor | None = None,
               guidance_scale: float | None = None, progress: bool | None = None, record_every: int | None = None):
        """DDIM from x_T over `timesteps` (default: `num_steps` of `schedule_type`); last step returns x̂0."""
        eta = check_eta(eta)
        ts = check_timesteps(self.create_timestep_schedule(num_steps, schedule_type) if timesteps is None
                             else timesteps, self.T)
        x = self.initial_noise(shape, x_T, generator)
        self.check_conditioning(x.shape[0], y, guidance_scale)
        record = self.record_set(len(ts), record_every) if return_trajectory else set()
        traj = Trajectory()
        pairs = list(zip(ts, ts[1:] + [-1]))
        table = self.update_coefficients(torch.tensor(ts), torch.tensor(ts[1:] + [-1]), eta)  # (n, 3)
        self._coefs = {(t, s, eta): row for (t, s), row in zip(pairs, table)}
        for i, (t, s) in enumerate(self.progress_bar(pairs, progress, f"DDIM {len(ts)} steps, eta={eta:g}")):
            x_s, x0_hat = self.step(x, t, s, eta, y=y, guidance_scale=guidance_scale, generator=generator)
            if i in record:
                traj.record(t, x, x0_hat)
            x = x_s
        return (x, traj) if return_trajectory else x

    @torch.inference_mode()
    def invert(self, x0: torch.Tensor, timesteps=None, *, num_steps: int = 50, schedule_type: str = "uniform",
               y: torch.Tensor | None = None, guidance_scale: float | None = None,
               progress: bool | None = None) -> torch.Tensor:
        """DDIM inversion: run the η = 0 update backwards, image -> its x_T (deterministic).

        Uses ε_θ at the current (less noisy) step as the stand-in for ε at the next one, which is
        exact in the limit of small steps, so the round trip improves with more steps.
        """
        ts = check_timesteps(self.create_timestep_schedule(num_steps, schedule_type) if timesteps is None
                             else timesteps, self.T)[::-1]  # increasing
        self.check_conditioning(x0.shape[0], y, guidance_scale)
        x = x0.to(self.device, self.dtype)
        for t_cur, t_next in self.progress_bar(list(zip(ts, ts[1:])), progress, "DDIM inversion"):
            eps = self.predict_eps(x, t_cur, y=y, guidance_scale=guidance_scale)
            x = ddim_step_given_eps(self.schedule, x, t_cur, t_next, eps, 0.0)[0]  # the η = 0 update, run upwards
        return x
