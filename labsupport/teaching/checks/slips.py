"""Slips that more than one piece's catalog of mistakes is built from.

A wrong variant is written as the course equation of `labsupport.maths` with one visible change: a
schedule whose table holds what the student read (`with_tables`), or a coefficient row of the
DDIM update with one column changed. Used by forward_process.py and trained_model_analyzer.py (the
noising), trained_model_analyzer.py and ddim_sampler.py (x̂0), ddim_sampler.py and
sampling_optimizer.py (DDIM rows), and the later pieces (`gen`).
"""
from __future__ import annotations

import copy
from types import SimpleNamespace
from typing import Callable

import torch

from ...maths.ddim import ddim_coefficients, ddim_sigma
from ...maths.predictions import predict_x0_from_eps
from ...maths.schedule import NoiseSchedule, alpha_bar, extract

__all__ = ["with_tables", "alphas_as_abar", "gen", "TABLES", "NOISING", "noised", "X0_MISTAKES", "x0_formula",
           "unrooted_row", "direction_without_sigma_row", "sigma_row", "eta_squared_row"]


def with_tables(schedule: NoiseSchedule, **tables: torch.Tensor) -> NoiseSchedule:
    """A copy of `schedule` whose named tables are replaced: the maths on it makes exactly that slip."""
    new = copy.copy(schedule)
    for name, value in tables.items():
        if not hasattr(schedule, name):
            raise AttributeError(f"NoiseSchedule has no table {name!r}")
        setattr(new, name, value)
    # the float64 copies that some equations read hold the same slip
    new._float64 = SimpleNamespace(**{**vars(schedule.float64), **{k: v.double().cpu() for k, v in tables.items()}})
    return new


def alphas_as_abar(schedule: NoiseSchedule) -> NoiseSchedule:
    """The schedule with the one-step α_t wherever the cumulative ᾱ_t belongs (α_{−1} = 1 still)."""
    a = schedule.alphas
    return with_tables(schedule, alphas_cumprod=a, sqrt_alphas_cumprod=a.sqrt(), sqrt_one_minus_alphas_cumprod=(1 - a).sqrt())


def gen(seed) -> torch.Generator | None:
    return None if seed is None else torch.Generator().manual_seed(seed)


# -- the noising x_t = √ᾱ_t·x_0 + √(1−ᾱ_t)·ε, with the tables a student might use -------------------
TABLES: dict[str, Callable[[NoiseSchedule], torch.Tensor]] = {
    "sqrt_abar": lambda s: s.sqrt_alphas_cumprod,
    "sqrt_1m_abar": lambda s: s.sqrt_one_minus_alphas_cumprod,
    "abar": lambda s: s.alphas_cumprod,
    "1m_abar": lambda s: 1 - s.alphas_cumprod,
    "sqrt_alpha": lambda s: s.alphas.sqrt(),
    "sqrt_1m_alpha": lambda s: (1 - s.alphas).sqrt(),
    "sqrt_beta": lambda s: s.betas.sqrt(),
    "1m_sqrt_abar": lambda s: 1 - s.sqrt_alphas_cumprod,
    "sqrt_abar_prev": lambda s: s.alphas_cumprod_prev.sqrt(),
    "sqrt_1m_abar_prev": lambda s: (1 - s.alphas_cumprod_prev).sqrt(),
}

# (name, what the student wrote for the x_0 coefficient, for the noise coefficient, explanation)
NOISING = [
    ("alpha_for_abar", "sqrt_alpha", "sqrt_1m_alpha",
     "you used α_t (what one step keeps) where ᾱ_t belongs: the shortcut from x_0 needs ᾱ_t = α_0·α_1·…·α_t, "
     "the product over every step up to t (schedule.alphas_cumprod)"),
    ("missing_sqrt", "abar", "1m_abar",
     "the square roots are missing: x_t = √ᾱ_t·x_0 + √(1−ᾱ_t)·ε; ᾱ_t and 1−ᾱ_t are the variances, the "
     "coefficients are their square roots"),
    ("variance_for_std", "sqrt_abar", "1m_abar",
     "the noise is scaled by the variance 1−ᾱ_t instead of the standard deviation √(1−ᾱ_t)"),
    ("abar_for_sqrt_abar", "abar", "sqrt_1m_abar",
     "x_0 is scaled by ᾱ_t instead of √ᾱ_t"),
    ("one_minus_sqrt", "sqrt_abar", "1m_sqrt_abar",
     "you wrote 1 − √ᾱ_t for the noise coefficient; it is √(1 − ᾱ_t), the square root of the whole difference"),
    ("swapped_coefficients", "sqrt_1m_abar", "sqrt_abar",
     "the two coefficients are swapped: the image keeps √ᾱ_t (close to 1 at small t), the noise gets √(1−ᾱ_t)"),
    ("beta_for_noise", "sqrt_abar", "sqrt_beta",
     "the noise is scaled by √β_t, the noise of ONE step q(x_t | x_{t−1}); jumping straight from x_0 needs the "
     "accumulated √(1−ᾱ_t)"),
    ("off_by_one_timestep", "sqrt_abar_prev", "sqrt_1m_abar_prev",
     "off-by-one timestep: you read ᾱ_{t−1}; in this package index t already is step t (t runs over 0..T−1), "
     "so use alphas_cumprod[t]"),
]


def noised(signal: str = "sqrt_abar", noise_coef: str = "sqrt_1m_abar"):
    """x_t written out with the tables TABLES[signal] on x_0 and TABLES[noise_coef] on ε (the defaults: q_sample)."""
    def fn(schedule, x_start, t, noise, **_):
        if noise is None:
            return None
        schedule.check_t(t)
        a, b = (extract(TABLES[k](schedule), t, x_start.shape).to(x_start) for k in (signal, noise_coef))
        return a * x_start + b * noise
    return fn


# -- x̂0 = (x_t − √(1−ᾱ_t)·ε) / √ᾱ_t, written wrong -------------------------------------------------
X0_MISTAKES = [
    ("alpha_for_abar", "you used α_t where ᾱ_t belongs: x̂0 = (x_t − √(1−ᾱ_t)·ε) / √ᾱ_t inverts the closed-form "
                       "shortcut, which uses the cumulative ᾱ_t"),
    ("missing_sqrt_divisor", "you divided by ᾱ_t instead of √ᾱ_t (missing square root)"),
    ("missing_sqrt_noise", "the noise is scaled by 1−ᾱ_t instead of √(1−ᾱ_t) (missing square root)"),
    ("multiplied", "you multiplied by √ᾱ_t; undoing x_t = √ᾱ_t·x_0 + … means dividing by √ᾱ_t"),
    ("plus_sign", "sign error: the noise is subtracted, x̂0 = (x_t − √(1−ᾱ_t)·ε) / √ᾱ_t"),
    ("parentheses", "only the noise term was divided by √ᾱ_t; the whole difference x_t − √(1−ᾱ_t)·ε is divided "
                    "(mind the parentheses)"),
    ("beta_for_noise", "the noise is scaled by √β_t (one step's noise) instead of √(1−ᾱ_t)"),
    ("off_by_one_timestep", "off-by-one timestep: you read ᾱ_{t−1}; index t of the tables already is step t"),
]

# the x̂0 slips that read a wrong table: predict_x0_from_eps on a schedule holding it
_X0_TABLES: dict[str, Callable[[NoiseSchedule], dict]] = {
    "missing_sqrt_divisor": lambda s: {"sqrt_alphas_cumprod": s.alphas_cumprod},
    "missing_sqrt_noise": lambda s: {"sqrt_one_minus_alphas_cumprod": 1 - s.alphas_cumprod},
    "plus_sign": lambda s: {"sqrt_one_minus_alphas_cumprod": -s.sqrt_one_minus_alphas_cumprod},
    "beta_for_noise": lambda s: {"sqrt_one_minus_alphas_cumprod": s.betas.sqrt()},
    "off_by_one_timestep": lambda s: {"sqrt_alphas_cumprod": TABLES["sqrt_abar_prev"](s),
                                      "sqrt_one_minus_alphas_cumprod": TABLES["sqrt_1m_abar_prev"](s)},
}


def x0_formula(kind: str):
    """x̂0 from (x_t, ε, t) the way a student might write it; 'ok' is predict_x0_from_eps itself."""
    def fn(schedule, x_t, eps, t):
        if kind == "ok":
            return predict_x0_from_eps(schedule, x_t, t, eps)
        if kind == "alpha_for_abar":
            return predict_x0_from_eps(alphas_as_abar(schedule), x_t, t, eps)
        read = with_tables(schedule, **_X0_TABLES[kind](schedule)) if kind in _X0_TABLES else schedule
        sqrt_abar = extract(read.sqrt_alphas_cumprod, t, x_t.shape).to(x_t)
        sqrt_1m_abar = extract(read.sqrt_one_minus_alphas_cumprod, t, x_t.shape).to(x_t)
        if kind in _X0_TABLES:
            return (x_t - sqrt_1m_abar * eps) / sqrt_abar
        if kind == "multiplied":
            return (x_t - sqrt_1m_abar * eps) * sqrt_abar
        if kind == "parentheses":
            return x_t - sqrt_1m_abar * eps / sqrt_abar
        raise ValueError(kind)
    return fn


# -- rows (√ᾱ_s, √(1−ᾱ_s−σ²), σ) of a DDIM jump t → s, for ddim_step_given_eps(..., coefficients=row) --
def unrooted_row(schedule, t, s, eta, *, clamp: bool = False) -> torch.Tensor:
    """(ᾱ_s, 1−ᾱ_s−σ², σ): both square roots missing (clamp: the difference clamped at 0 first)."""
    a_s, sigma = alpha_bar(schedule, s), ddim_sigma(schedule, t, s, eta)
    rest = 1 - a_s - sigma ** 2
    return torch.stack([a_s, rest.clamp(min=0) if clamp else rest, sigma])


def direction_without_sigma_row(schedule, t, s, eta) -> torch.Tensor:
    """The right row with √(1−ᾱ_s) as the direction's coefficient: σ² left out of it."""
    row = ddim_coefficients(schedule, t, s, eta).clone()
    row[1] = (1 - alpha_bar(schedule, s)).sqrt()
    return row


def sigma_row(sigma: Callable):
    """The row of ddim_coefficients with σ = sigma(schedule, t, s, eta) (the direction follows it)."""
    def row(schedule, t, s, eta) -> torch.Tensor:
        return ddim_coefficients(schedule, t, s, eta, sigma=sigma(schedule, t, s, eta))
    return row


# σ = η²·√(…): η applied twice, η·ddim_sigma(η)
eta_squared_row = sigma_row(lambda schedule, t, s, eta: eta * ddim_sigma(schedule, t, s, eta))
