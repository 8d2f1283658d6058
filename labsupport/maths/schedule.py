"""Noise schedules: every coefficient of the forward and reverse process, computed once.

Symbols (course notation -> attribute here -> name in other libraries):
    beta_t            -> betas
    alpha_t = 1-beta  -> alphas
    abar_t (ᾱ_t)      -> alphas_cumprod            (diffusers: alphas_cumprod)
    abar_{t-1}        -> alphas_cumprod_prev       (ᾱ_{-1} := 1)
    beta_tilde_t      -> posterior_variance        (improved-diffusion: posterior_variance)
    mu_tilde coefs    -> posterior_mean_coef1 (on x0), posterior_mean_coef2 (on x_t)

Timestep convention, used everywhere in the package: integer t in [0, T), given as an int or a
(B,) tensor. Index 0 is the least noisy step; "s = -1" means the clean image (ᾱ = 1).
"""
from __future__ import annotations

import copy
from types import SimpleNamespace
import math
from typing import Sequence, Union

import torch

from .guard import equation

__all__ = ["NoiseSchedule", "linear_betas", "cosine_betas", "extract", "alpha_bar"]

Timestep = Union[int, torch.Tensor]
# The course's linear schedule: T steps, beta from BETA_RANGE[0] up to BETA_RANGE[1].
COURSE_T, BETA_RANGE = 1000, (1e-4, 0.02)


def linear_betas(T: int = COURSE_T, beta_start: float = BETA_RANGE[0], beta_end: float = BETA_RANGE[1]) -> torch.Tensor:
    """Ho et al. (2020): beta rises linearly from beta_start to beta_end (float64)."""
    return torch.linspace(beta_start, beta_end, T, dtype=torch.float64)


def cosine_betas(T: int = 1000, s: float = 0.008, max_beta: float = 0.999) -> torch.Tensor:
    """Nichol & Dhariwal (2021): ᾱ(t) = cos²((t/T + s)/(1 + s) · π/2), betas capped at max_beta."""
    steps = torch.arange(T + 1, dtype=torch.float64) / T
    f = torch.cos((steps + s) / (1 + s) * math.pi / 2) ** 2
    abar = f / f[0]
    return (1 - abar[1:] / abar[:-1]).clamp(max=max_beta)


def extract(coef: torch.Tensor, t: Timestep, x_shape: Sequence[int]) -> torch.Tensor:
    """Look up coef[t] and shape it to broadcast over x: (B,) -> (B, 1, 1, 1).

    `t` may be an int (same step for the whole batch) or a (B,) integer tensor.
    """
    if isinstance(t, int):
        if not 0 <= t < len(coef):  # a negative int would silently read from the end of the table
            raise ValueError(f"t must lie in [0, {len(coef)}), got {t}")
        return coef[t].reshape((1,) * len(x_shape))
    if t.ndim > 1 or t.numel() not in (1, x_shape[0]):
        raise ValueError(f"t must be an int or a (B,) tensor with B = {x_shape[0]}, got shape {tuple(t.shape)}")
    out = coef.gather(0, t.to(coef.device).long().reshape(-1))
    return out.reshape((-1,) + (1,) * (len(x_shape) - 1))


@equation
def alpha_bar(schedule: "NoiseSchedule", s: Timestep) -> torch.Tensor:
    """ᾱ_s for s in [-1, T), with ᾱ_{-1} = 1: the clean image that DDIM's last jump lands on.

    An int gives a 0-d tensor, a (n,) tensor of steps gives (n,) values (notebooks 03 and 04).
    """
    abar = schedule.alphas_cumprod
    if isinstance(s, int):
        if not -1 <= s < schedule.T:  # -2 would silently read ᾱ_{T-2} from the end of the table
            raise ValueError(f"s must lie in [-1, {schedule.T}), got {s}")
        return abar[s] if s >= 0 else abar.new_ones(())
    s = torch.as_tensor(s, device=abar.device).long()
    if s.numel() and (int(s.min()) < -1 or int(s.max()) >= schedule.T):
        raise ValueError(f"s must lie in [-1, {schedule.T}), got values from {int(s.min())} to {int(s.max())}")
    return torch.where(s >= 0, abar[s.clamp(min=0)], abar.new_ones(()))


class NoiseSchedule:
    """All coefficient tables of one schedule; float64 maths, stored float32.

    `timesteps` holds the original training timestep of each entry, so a schedule rebuilt on a
    subsequence (see `respace`) still tells the model which noise level it sees.
    """

    def __init__(self, betas: torch.Tensor, timesteps: torch.Tensor | None = None, kind: str = "custom"):
        betas = torch.as_tensor(betas, dtype=torch.float64).cpu()
        if betas.ndim != 1 or len(betas) < 1:
            raise ValueError(f"betas must be a non-empty 1-D tensor, got shape {tuple(betas.shape)}")
        if not bool(((betas > 0) & (betas <= 1)).all()):
            raise ValueError("betas must lie in (0, 1]; check the schedule's endpoints")
        self.kind = kind
        self.T = len(betas)
        alphas = 1 - betas
        abar = torch.cumprod(alphas, 0)
        abar_prev = torch.cat([torch.ones(1, dtype=torch.float64), abar[:-1]])
        post_var = betas * (1 - abar_prev) / (1 - abar)
        tables = {
            "betas": betas,
            "alphas": alphas,
            "alphas_cumprod": abar,
            "alphas_cumprod_prev": abar_prev,
            "sqrt_alphas_cumprod": abar.sqrt(),
            "sqrt_one_minus_alphas_cumprod": (1 - abar).sqrt(),
            "sqrt_recip_alphas": alphas.rsqrt(),
            "eps_coef": betas / (1 - abar).sqrt(),  # (1-α_t)/√(1-ᾱ_t) in μ_θ
            "posterior_variance": post_var,
            # β̃_0 = 0, so its log is clipped to β̃_1 (improved-diffusion's convention)
            "posterior_log_variance_clipped": torch.log(torch.cat([post_var[1:2], post_var[1:]])),
            "posterior_mean_coef1": betas * abar_prev.sqrt() / (1 - abar),
            "posterior_mean_coef2": (1 - abar_prev) * alphas.sqrt() / (1 - abar),
        }
        for name, value in tables.items():
            setattr(self, name, value.float())
        self._float64 = SimpleNamespace(**tables)
        self.timesteps = (torch.arange(self.T) if timesteps is None else torch.as_tensor(timesteps)).long()

    _TABLES = ("betas", "alphas", "alphas_cumprod", "alphas_cumprod_prev", "sqrt_alphas_cumprod",
               "sqrt_one_minus_alphas_cumprod", "sqrt_recip_alphas", "eps_coef", "posterior_variance",
               "posterior_log_variance_clipped", "posterior_mean_coef1", "posterior_mean_coef2", "timesteps")

    @classmethod
    def linear(cls, T: int = COURSE_T, beta_start: float = BETA_RANGE[0], beta_end: float = BETA_RANGE[1]) -> "NoiseSchedule":
        """The course's default schedule."""
        return cls(linear_betas(T, beta_start, beta_end), kind="linear")

    @classmethod
    def cosine(cls, T: int = 1000) -> "NoiseSchedule":
        return cls(cosine_betas(T), kind="cosine")

    @classmethod
    def from_name(cls, name: str, T: int = 1000) -> "NoiseSchedule":
        makers = {"linear": cls.linear, "cosine": cls.cosine}
        if name not in makers:
            raise ValueError(f"schedule must be one of {sorted(makers)}, got {name!r}")
        return makers[name](T)

    @property
    def float64(self) -> SimpleNamespace:
        """The same tables in float64 on the CPU, for formulas whose differences cancel digits (1 − ᾱ_t
        near t = 0). A schedule rebuilt from its float32 tables alone gets them upcast."""
        if "_float64" not in self.__dict__:
            self._float64 = SimpleNamespace(**{k: getattr(self, k).double().cpu() for k in self._TABLES
                                               if k != "timesteps"})
        return self._float64

    @property
    def device(self) -> torch.device:
        return self.betas.device

    def to(self, device: torch.device | str) -> "NoiseSchedule":
        """A copy with every table on `device` (made once, when a sampler is built)."""
        new = copy.copy(self)
        for name in self._TABLES:
            setattr(new, name, getattr(self, name).to(device))
        return new

    def snr(self) -> torch.Tensor:
        """Signal-to-noise ratio ᾱ_t / (1 - ᾱ_t)."""
        return self.alphas_cumprod / (1 - self.alphas_cumprod)

    def check_t(self, t: Timestep, name: str = "t") -> None:
        """Raise ValueError if any timestep lies outside [0, T)."""
        lo, hi = (t, t) if isinstance(t, int) else (int(t.min()), int(t.max()))
        if lo < 0 or hi >= self.T:
            raise ValueError(f"{name} must lie in [0, {self.T}), got values from {lo} to {hi}")

    def respace(self, timesteps: Sequence[int] | torch.Tensor) -> "NoiseSchedule":
        """Rebuild the schedule on a subsequence of timesteps (Lab 5 objective 3).

        Keeps ᾱ at the chosen steps and sets the effective β_i = 1 - ᾱ_{t_i} / ᾱ_{t_{i-1}}, so a
        DDPM chain on the new schedule jumps between exactly those noise levels.
        """
        ts = torch.as_tensor(timesteps).long().cpu().flatten().unique(sorted=True)
        if len(ts) == 0 or int(ts[0]) < 0 or int(ts[-1]) >= self.T:
            raise ValueError(f"timesteps must be a non-empty subset of [0, {self.T}), got {timesteps}")
        abar = self.alphas_cumprod.double().cpu()[ts]
        abar_prev = torch.cat([torch.ones(1, dtype=torch.float64), abar[:-1]])
        orig = self.timesteps.cpu()[ts]
        return NoiseSchedule(1 - abar / abar_prev, timesteps=orig, kind=f"{self.kind}-respaced")

    def __repr__(self) -> str:
        return f"NoiseSchedule(kind={self.kind!r}, T={self.T}, device={self.device})"
