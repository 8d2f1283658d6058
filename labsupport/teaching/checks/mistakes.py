"""The one catalog of known wrong variants, shared by the self-checks and the grader.

    MISTAKES[piece][method] -> [Mistake(name, explanation, fn | test), ...]
    find_mistake(piece, method, output, inputs) -> the first Mistake the output matches, or None

A Mistake's `fn(**inputs)` computes the wrong version of `method` on the same inputs (None where the
variant does not apply, or cannot be told apart from the right answer). A few mistakes cannot be
recomputed because they involve noise the student drew; those carry `test(output, inputs)` instead.

`inputs` is one dict holding what the object is built from and what the method is called with, under
the names the assignment uses (extra keys are ignored):

    forward_process         schedule; add_noise: x_start, t, noise
                            demonstrate_forward_trajectory: x_start, timesteps, noise
    trained_model_analyzer  model, schedule, x_clean, timesteps, noise
    ddpm_sampler            model, schedule, variance_type, clip_x0, then
                            compute_posterior_mean: x_t, t, predicted_noise
                            compute_posterior_variance: t
                            ddpm_step: x_t, t, noise          sample: shape, x_T, seed
    ddim_sampler            model, schedule, clip_x0, then
                            predict_x0_from_eps: x_t, eps, t
                            ddim_step: x_t, t, s, eta, noise  create_timestep_schedule: num_steps, schedule_type
                            sample: shape, timesteps, eta, x_T, seed, num_steps, schedule_type

`seed` stands for `generator=torch.Generator().manual_seed(seed)`. Notebooks 04-06 add their pieces here.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch

from ...samplers.guidance import guided_eps
from ...samplers.ddim import DDIMSampler, timestep_schedule
from ...samplers.ddpm import DDPMSampler
from .compare import as_tensor, compare

__all__ = ["Mistake", "MISTAKES", "mistakes_for", "find_mistake", "find_mistakes"]


@dataclass(frozen=True)
class Mistake:
    """A known wrong variant of one method and what went wrong, in plain words."""
    name: str
    explanation: str
    fn: Callable[..., Any] | None = None
    test: Callable[[Any, dict], bool] | None = None

    def __repr__(self) -> str:
        return f"Mistake({self.name!r})"


# -- helpers ---------------------------------------------------------------------------------------
def _at(values: torch.Tensor, t, like: torch.Tensor) -> torch.Tensor:
    """values[t] shaped to broadcast over `like`. Python indexing on purpose: t = -1 wraps, as a student's would."""
    values = values.to(like.device)
    if isinstance(t, int):
        return values[t].to(like.dtype)
    v = values[t.to(like.device).long().reshape(-1)]
    return v.reshape((-1,) + (1,) * (like.ndim - 1)).to(like.dtype)


def _pick(values: torch.Tensor, t) -> torch.Tensor:
    return values[t] if isinstance(t, int) else values[t.long()]


def _eps(model, schedule, x_t, t) -> torch.Tensor:
    """ε_θ(x_t, t) exactly as SamplerBase.predict_eps calls it."""
    return guided_eps(model, x_t, schedule.timesteps.to(x_t.device)[t])


def _shift(t, by: int):
    return t + by


# -- forward_process -------------------------------------------------------------------------------
_TABLES: dict[str, Callable] = {
    "sqrt_abar": lambda s: s.alphas_cumprod.sqrt(),
    "sqrt_1m_abar": lambda s: (1 - s.alphas_cumprod).sqrt(),
    "abar": lambda s: s.alphas_cumprod,
    "1m_abar": lambda s: 1 - s.alphas_cumprod,
    "sqrt_alpha": lambda s: s.alphas.sqrt(),
    "sqrt_1m_alpha": lambda s: (1 - s.alphas).sqrt(),
    "sqrt_beta": lambda s: s.betas.sqrt(),
    "1m_sqrt_abar": lambda s: 1 - s.alphas_cumprod.sqrt(),
    "sqrt_abar_prev": lambda s: s.alphas_cumprod_prev.sqrt(),
    "sqrt_1m_abar_prev": lambda s: (1 - s.alphas_cumprod_prev).sqrt(),
}

# (name, what the student wrote for the x_0 coefficient, for the noise coefficient, explanation)
_NOISING = [
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


def _noised(signal: str, noise_coef: str):
    def fn(schedule, x_start, t, noise, **_):
        if noise is None:
            return None
        return _at(_TABLES[signal](schedule), t, x_start) * x_start + _at(_TABLES[noise_coef](schedule), t, x_start) * noise
    return fn


def _residual_ignores_noise(x_t: torch.Tensor, x_start, t, noise, schedule) -> bool:
    """True when x_t looks like √ᾱ x_0 + √(1−ᾱ) ε' for some fresh ε' that is not the given noise."""
    sd = _at(_TABLES["sqrt_1m_abar"](schedule), t, x_start).expand_as(x_start)
    resid = (x_t.double() - (_at(_TABLES["sqrt_abar"](schedule), t, x_start) * x_start).double()) / sd.double()
    keep = sd > 0.2
    if int(keep.sum()) < 50:
        return False
    r, n = resid[keep], noise.double()[keep]
    cos = float((r * n).sum() / (r.norm() * n.norm() + 1e-12))
    return 0.7 < float(r.std()) < 1.3 and cos < 0.5


def _add_noise_ignores_noise(output, inputs) -> bool:
    out = as_tensor(output)
    if out is None or inputs.get("noise") is None or tuple(out.shape) != tuple(inputs["x_start"].shape):
        return False
    return _residual_ignores_noise(out, inputs["x_start"], inputs["t"], inputs["noise"], inputs["schedule"])


def _trajectory_ignores_noise(output, inputs) -> bool:
    out = as_tensor(output) if not isinstance(output, (list, tuple)) else None
    ts = [int(t) for t in inputs["timesteps"]]
    if out is None or inputs.get("noise") is None or tuple(out.shape) != (len(ts), *inputs["x_start"].shape):
        return False
    noisy = [k for k, t in enumerate(ts) if float(1 - inputs["schedule"].alphas_cumprod[t]) > 0.2]
    return bool(noisy) and all(_residual_ignores_noise(out[k], inputs["x_start"], ts[k], inputs["noise"],
                                                       inputs["schedule"]) for k in noisy)


def _trajectory_of(add_noise_fn):
    def fn(schedule, x_start, timesteps, noise, **_):
        frames = [add_noise_fn(schedule=schedule, x_start=x_start, t=int(t), noise=noise) for t in timesteps]
        return None if any(f is None for f in frames) else torch.stack(frames)
    return fn


def _trajectory_chained(schedule, x_start, timesteps, noise, **_):
    frames, x = [], x_start
    for t in timesteps:
        x = _noised("sqrt_abar", "sqrt_1m_abar")(schedule, x, int(t), noise)
        frames.append(x)
    return torch.stack(frames)


def _trajectory_transposed(schedule, x_start, timesteps, noise, **_):
    return _trajectory_of(_noised("sqrt_abar", "sqrt_1m_abar"))(schedule, x_start, timesteps, noise).transpose(0, 1)


_ADD_NOISE = [Mistake(n, e, _noised(a, b)) for n, a, b, e in _NOISING] + [
    Mistake("ignored_noise_argument",
            "the result does not use the `noise` you were given (fresh noise was drawn instead): when `noise` is "
            "passed, x_t must be built from exactly that ε", test=_add_noise_ignores_noise),
]

_TRAJECTORY = [
    Mistake("chained_frames",
            "each frame was noised from the previous frame instead of from x_start: the closed form jumps from x_0 "
            "straight to every t, so every frame must start from x_start", _trajectory_chained),
    Mistake("stacked_on_wrong_axis",
            "the frames are stacked along dim 1; the trajectory has shape (K, B, C, H, W), timesteps first "
            "(torch.stack(frames) stacks along dim 0)", _trajectory_transposed),
    Mistake("fresh_noise_per_frame",
            "the frames do not share the given ε (new noise per frame?): use one ε for every t, so that only the "
            "noise level changes along the trajectory", test=_trajectory_ignores_noise),
] + [Mistake(m.name, "(in every frame) " + m.explanation, _trajectory_of(m.fn)) for m in _ADD_NOISE if m.fn]


# -- trained_model_analyzer ------------------------------------------------------------------------
def _analyzer_rows(model, schedule, x_clean, timesteps, noise, signal="sqrt_abar", noise_coef="sqrt_1m_abar"):
    for t in timesteps:
        t = int(t)
        x_t = _noised(signal, noise_coef)(schedule, x_clean, t, noise)
        yield t, x_t, _eps(model, schedule, x_t, t)


def _quality(error: str = "mse", target: str = "noise", signal="sqrt_abar", noise_coef="sqrt_1m_abar"):
    def fn(model, schedule, x_clean, timesteps, noise, **_):
        if noise is None:
            return None
        out = []
        for _t, _x_t, eps_pred in _analyzer_rows(model, schedule, x_clean, timesteps, noise, signal, noise_coef):
            diff = eps_pred - (noise if target == "noise" else x_clean)
            out.append({"mse": (diff ** 2).mean(), "rmse": (diff ** 2).mean().sqrt(), "sum": (diff ** 2).sum(),
                        "mae": diff.abs().mean()}[error])
        return torch.stack(out)
    return fn


def _x0_formula(kind: str):
    """x̂0 from (x_t, ε, t) the way a student might write it; 'ok' is the right one."""
    def fn(schedule, x_t, eps, t):
        a = lambda name: _at(_TABLES[name](schedule), t, x_t)  # noqa: E731
        if kind == "ok":
            return (x_t - a("sqrt_1m_abar") * eps) / a("sqrt_abar")
        if kind == "alpha_for_abar":
            return (x_t - a("sqrt_1m_alpha") * eps) / a("sqrt_alpha")
        if kind == "missing_sqrt_divisor":
            return (x_t - a("sqrt_1m_abar") * eps) / a("abar")
        if kind == "missing_sqrt_noise":
            return (x_t - a("1m_abar") * eps) / a("sqrt_abar")
        if kind == "multiplied":
            return (x_t - a("sqrt_1m_abar") * eps) * a("sqrt_abar")
        if kind == "plus_sign":
            return (x_t + a("sqrt_1m_abar") * eps) / a("sqrt_abar")
        if kind == "parentheses":
            return x_t - a("sqrt_1m_abar") * eps / a("sqrt_abar")
        if kind == "beta_for_noise":
            return (x_t - a("sqrt_beta") * eps) / a("sqrt_abar")
        if kind == "off_by_one_timestep":
            return (x_t - a("sqrt_1m_abar_prev") * eps) / a("sqrt_abar_prev")
        raise ValueError(kind)
    return fn


_X0_MISTAKES = [
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


def _visualize(x0_kind: str = "ok", signal="sqrt_abar", noise_coef="sqrt_1m_abar", true_noise: bool = False):
    def fn(model, schedule, x_clean, timesteps, noise, **_):
        if noise is None:
            return None
        rows = {"x_t": [], "eps_pred": [], "x0_hat": []}
        for t, x_t, eps_pred in _analyzer_rows(model, schedule, x_clean, timesteps, noise, signal, noise_coef):
            x0_hat = _x0_formula(x0_kind)(schedule, x_t, noise if true_noise else eps_pred, t)
            for key, value in zip(rows, (x_t, eps_pred, x0_hat)):
                rows[key].append(value)
        return {key: torch.stack(value) for key, value in rows.items()}
    return fn


_NOISING_FOR_ANALYZER = [n for n in _NOISING if n[0] in ("alpha_for_abar", "missing_sqrt", "one_minus_sqrt",
                                                          "swapped_coefficients", "off_by_one_timestep")]
_QUALITY = [
    Mistake("rmse_not_mse", "you returned the root mean squared error; the method returns the mean squared error "
                            "(no square root)", _quality("rmse")),
    Mistake("sum_not_mean", "the squared errors are summed; average them with .mean()", _quality("sum")),
    Mistake("absolute_error", "that is the mean absolute error |ε_θ − ε|; square the differences", _quality("mae")),
    Mistake("compared_with_image", "ε_θ was compared with the clean image; the network predicts the noise, so "
                                   "compare it with the ε that you added", _quality(target="x_clean")),
] + [Mistake(n, "(when noising x_clean) " + e, _quality(signal=a, noise_coef=b)) for n, a, b, e in _NOISING_FOR_ANALYZER]

_VISUALIZE = [
    Mistake("x0_from_true_noise", "x̂0 was computed with the true noise ε, which just gives x_clean back; the point "
                                  "is the model's estimate, so use ε_θ(x_t, t)", _visualize(true_noise=True)),
] + [Mistake(n, "(in x̂0) " + e, _visualize(x0_kind=n)) for n, e in _X0_MISTAKES] + [
    Mistake(n, "(when noising x_clean) " + e, _visualize(signal=a, noise_coef=b)) for n, a, b, e in _NOISING_FOR_ANALYZER]


# -- ddpm_sampler ----------------------------------------------------------------------------------
_MEAN_TABLES: dict[str, Callable] = {
    "recip_sqrt_alpha": lambda s: s.alphas.rsqrt(),
    "recip_sqrt_abar": lambda s: s.alphas_cumprod.rsqrt(),
    "recip_alpha": lambda s: 1 / s.alphas,
    "one": lambda s: torch.ones_like(s.alphas),
    "eps_coef": lambda s: s.betas / (1 - s.alphas_cumprod).sqrt(),
    "eps_coef_abar": lambda s: (1 - s.alphas_cumprod).sqrt(),
    "eps_coef_nosqrt": lambda s: s.betas / (1 - s.alphas_cumprod),
}


def _mean_eps_form(prefactor="recip_sqrt_alpha", eps_coef="eps_coef", sign=-1.0, whole=True, shift=0):
    def fn(schedule, x_t, t, predicted_noise, clip_x0=False, **_):
        if clip_x0:
            return None
        tt = _shift(t, shift)
        a = _at(_MEAN_TABLES[prefactor](schedule), tt, x_t)
        c = _at(_MEAN_TABLES[eps_coef](schedule), tt, x_t)
        return a * (x_t + sign * c * predicted_noise) if whole else x_t + sign * a * c * predicted_noise
    return fn


def _mean_clip_ignored(schedule, x_t, t, predicted_noise, clip_x0=False, **_):
    return _mean_eps_form()(schedule, x_t, t, predicted_noise) if clip_x0 else None


def _mean_clip_swapped(schedule, x_t, t, predicted_noise, clip_x0=False, **_):
    if not clip_x0:
        return None
    x0 = _x0_formula("ok")(schedule, x_t, predicted_noise, t).clamp(-1, 1)
    return _at(schedule.posterior_mean_coef2, t, x_t) * x0 + _at(schedule.posterior_mean_coef1, t, x_t) * x_t


_MEAN = [
    Mistake("abar_in_prefactor", "the prefactor is 1/√α_t, this step's α_t; you used the cumulative ᾱ_t",
            _mean_eps_form(prefactor="recip_sqrt_abar")),
    Mistake("abar_in_noise_numerator", "the noise coefficient is (1−α_t)/√(1−ᾱ_t) = β_t/√(1−ᾱ_t); you wrote 1−ᾱ_t "
            "in the numerator", _mean_eps_form(eps_coef="eps_coef_abar")),
    Mistake("missing_sqrt_denominator", "the noise coefficient divides by √(1−ᾱ_t), not by 1−ᾱ_t (missing square root)",
            _mean_eps_form(eps_coef="eps_coef_nosqrt")),
    Mistake("missing_sqrt_prefactor", "the prefactor is 1/√α_t, not 1/α_t (missing square root)",
            _mean_eps_form(prefactor="recip_alpha")),
    Mistake("missing_prefactor", "the factor 1/√α_t in front of the bracket is missing",
            _mean_eps_form(prefactor="one")),
    Mistake("plus_sign", "sign error: μ = (1/√α_t)·(x_t − (1−α_t)/√(1−ᾱ_t)·ε_θ) subtracts the predicted noise",
            _mean_eps_form(sign=1.0)),
    Mistake("prefactor_on_noise_only", "1/√α_t multiplies the whole bracket (x_t − …), not only the noise term",
            _mean_eps_form(whole=False)),
    Mistake("off_by_one_timestep", "off-by-one timestep: the coefficients were read at t−1; index t of the tables "
            "already is step t", _mean_eps_form(shift=-1)),
    Mistake("x0_not_clipped", "clip_x0 is on but x̂0 was not clipped: form x̂0, clamp it to [−1, 1], then "
            "μ = posterior_mean_coef1·x̂0 + posterior_mean_coef2·x_t", _mean_clip_ignored),
    Mistake("clip_coefficients_swapped", "with clipping, posterior_mean_coef1 multiplies x̂0 and posterior_mean_coef2 "
            "multiplies x_t; yours are the other way round", _mean_clip_swapped),
]


def _variance(kind: str):
    def fn(schedule, t, variance_type="fixed_lower", **_):
        s, lower = schedule, variance_type == "fixed_lower"
        if kind == "upper_for_lower":
            return _pick(s.betas, t) if lower else None
        if kind == "lower_for_upper":
            return None if lower else _pick(s.posterior_variance, t)
        if kind == "std_not_variance":
            return _pick(s.posterior_variance if lower else s.betas, t).sqrt()
        if not lower:
            return None
        b, abar = _pick(s.betas, t), _pick(s.alphas_cumprod, t)
        if kind == "fraction_flipped":
            return b * (1 - abar) / (1 - _pick(s.alphas_cumprod_prev, t))
        if kind == "wraparound_at_t0":
            return b * (1 - _pick(s.alphas_cumprod, _shift(t, -1))) / (1 - abar)
        if kind == "alpha_for_abar":
            return b * (1 - _pick(s.alphas, _shift(t, -1))) / (1 - _pick(s.alphas, t))
        raise ValueError(kind)
    return fn


_VARIANCE = [
    Mistake("upper_for_lower", "variance_type is 'fixed_lower', which is β̃_t = β_t·(1−ᾱ_{t−1})/(1−ᾱ_t); you "
            "returned β_t (the 'fixed_upper' choice)", _variance("upper_for_lower")),
    Mistake("lower_for_upper", "variance_type is 'fixed_upper', which is β_t; you returned β̃_t (the 'fixed_lower' "
            "choice)", _variance("lower_for_upper")),
    Mistake("std_not_variance", "you returned σ_t, a standard deviation; this method returns the variance σ_t²",
            _variance("std_not_variance")),
    Mistake("fraction_flipped", "the fraction is upside down: β̃_t = β_t·(1−ᾱ_{t−1})/(1−ᾱ_t)",
            _variance("fraction_flipped")),
    Mistake("wraparound_at_t0", "at t = 0, alphas_cumprod[t−1] is alphas_cumprod[−1], which Python reads as the LAST "
            "entry (ᾱ_{T−1}, almost 0); ᾱ_{−1} must be 1, so use schedule.alphas_cumprod_prev[t]",
            _variance("wraparound_at_t0")),
    Mistake("alpha_for_abar", "β̃_t uses the cumulative ᾱ_{t−1} and ᾱ_t, not α_{t−1} and α_t", _variance("alpha_for_abar")),
]


def _ref_mean(model, schedule, variance_type, clip_x0, x_t, t, eps):
    return DDPMSampler(model, schedule, variance_type=variance_type, clip_x0=clip_x0).compute_posterior_mean(x_t, t, eps)


def _ddpm_step(mean_fn=None, var_kind=None, *, noise_at_t0=False, scale="std", add_noise=True, return_x0=False):
    def fn(model, schedule, variance_type, clip_x0, x_t, t, noise, **_):
        if noise is None:
            return None
        eps = _eps(model, schedule, x_t, t)
        if return_x0:
            return _x0_formula("ok")(schedule, x_t, eps, t)
        if mean_fn is None:
            mean = _ref_mean(model, schedule, variance_type, clip_x0, x_t, t, eps)
        else:
            mean = mean_fn(schedule=schedule, x_t=x_t, t=t, predicted_noise=eps, clip_x0=clip_x0)
        if mean is None:
            return None
        if var_kind is None:
            var = (schedule.posterior_variance if variance_type == "fixed_lower" else schedule.betas)[t]
        else:
            var = _variance(var_kind)(schedule, t, variance_type)
            if var is None:
                return None
        if (t == 0 and not noise_at_t0) or not add_noise:
            return mean
        return mean + (var.sqrt() if scale == "std" else var) * noise
    return fn


_STEP = [
    Mistake("noise_at_final_step", "noise was added at the final step t = 0; the last step returns the mean μ, "
            "otherwise fresh noise lands in the finished image", _ddpm_step(noise_at_t0=True)),
    Mistake("variance_as_std", "the noise was scaled by the variance σ_t²; x_{t−1} = μ + σ_t·z needs the standard "
            "deviation σ_t = √(σ_t²)", _ddpm_step(scale="var")),
    Mistake("no_noise", "no noise was added for t > 0: a DDPM step samples x_{t−1} ~ N(μ, σ_t²·I), so add σ_t·z",
            _ddpm_step(add_noise=False)),
    Mistake("returned_x0_hat", "you returned x̂0, the model's guess of the clean image; the step returns x_{t−1}",
            _ddpm_step(return_x0=True)),
    Mistake("upper_for_lower", "(σ_t² inside the step) " + _VARIANCE[0].explanation, _ddpm_step(var_kind="upper_for_lower")),
    Mistake("lower_for_upper", "(σ_t² inside the step) " + _VARIANCE[1].explanation, _ddpm_step(var_kind="lower_for_upper")),
    Mistake("std_squared_twice", "σ_t was taken as the square root of a standard deviation (σ_t² is already the "
            "variance; take its square root once)", _ddpm_step(var_kind="std_not_variance")),
] + [Mistake(m.name, "(posterior mean inside the step) " + m.explanation, _ddpm_step(mean_fn=m.fn)) for m in _MEAN]


def _ddpm_loop(*, noise_at_t0=False, stop_before_t0=False, ascending=False, use_x_T=True, add_noise=True):
    def fn(model, schedule, variance_type, clip_x0, shape, x_T, seed, **_):
        ref = DDPMSampler(model, schedule, variance_type=variance_type, clip_x0=clip_x0)
        g = torch.Generator().manual_seed(seed)
        x = x_T.clone() if use_x_T and x_T is not None else ref.randn(shape, g)
        ts = list(range(ref.T)) if ascending else list(range(ref.T - 1, 0 if stop_before_t0 else -1, -1))
        var = ref.schedule.posterior_variance if variance_type == "fixed_lower" else ref.schedule.betas
        for t in ts:
            mean = ref.compute_posterior_mean(x, t, ref.predict_eps(x, t))
            x = mean + var[t].sqrt() * ref.randn(shape, g) if add_noise and (t > 0 or noise_at_t0) else mean
        return x
    return fn


_SAMPLE_DDPM = [
    Mistake("noise_at_final_step", "noise was added at the last step (t = 0); return the mean there",
            _ddpm_loop(noise_at_t0=True)),
    Mistake("skipped_last_step", "the loop stops at t = 1, so the final step t = 0 never runs; loop t = T−1, …, 0",
            _ddpm_loop(stop_before_t0=True)),
    Mistake("ascending_timesteps", "the loop runs t = 0, 1, …, T−1; sampling starts at the noisiest step T−1 and "
            "walks down to 0", _ddpm_loop(ascending=True)),
    Mistake("ignored_x_T", "the given starting noise x_T was not used (fresh noise was drawn); start from x_T when it "
            "is passed, e.g. with self.initial_noise(shape, x_T, generator)", _ddpm_loop(use_x_T=False)),
    Mistake("no_noise", "no noise is added between steps; each step must add σ_t·z for t > 0", _ddpm_loop(add_noise=False)),
]


# -- ddim_sampler ----------------------------------------------------------------------------------
def _ddim_step(*, lookup="ok", renoise_with_t=False, alpha=False, x0_kind="ok", renoise_sqrt=True,
               direction_sigma=True, sigma="ok", add_noise=True, clip="ok", sigma_when_eta0=False):
    def fn(model, schedule, clip_x0, x_t, t, s, eta, noise, **_):
        tab = schedule.alphas if alpha else schedule.alphas_cumprod
        tab = tab.to(x_t.device)

        def abar(k):
            if lookup == "wrap" or k >= 0:
                return tab[k]
            return tab[0] if lookup == "zero" else torch.ones((), device=x_t.device)

        if s >= 0 and lookup != "ok" and not alpha:
            return None  # only s = −1 can tell these lookups apart
        eps = _eps(model, schedule, x_t, t)
        x0 = _x0_formula("alpha_for_abar" if alpha else x0_kind)(schedule, x_t, eps, t)
        a_t, a_s = abar(t), abar(s)
        if clip_x0 and clip != "none":
            x0 = x0.clamp(-1, 1)
            if clip == "ok":
                eps = (x_t - a_t.sqrt() * x0) / (1 - a_t).sqrt()
        if sigma == "ddpm":
            sig = eta * schedule.posterior_variance.to(x_t.device)[t].sqrt()
        elif eta == 0 and not sigma_when_eta0:
            sig = torch.zeros((), device=x_t.device)
        else:  # computed even at η = 0 when sigma_when_eta0, as many students do: 0·√(negative) is NaN
            var = (1 - a_s) / (1 - a_t) * (1 - a_t / a_s)
            sig = {"ok": eta * var.sqrt(), "variance": eta * var, "eta2": eta ** 2 * var.sqrt()}[sigma]
        target = a_t if renoise_with_t else a_s
        if renoise_sqrt:
            coef_x0 = target.sqrt()
            coef_eps = (1 - target - (sig ** 2 if direction_sigma else 0)).sqrt()
        else:
            coef_x0, coef_eps = target, 1 - target - (sig ** 2 if direction_sigma else 0)
        x_s = coef_x0 * x0 + coef_eps * eps
        if eta > 0 and s >= 0 and add_noise:
            if noise is None:
                return None
            x_s = x_s + sig * noise
        return x_s
    return fn


_DDIM_STEP = [
    Mistake("abar_t_for_abar_s", "you used ᾱ_t where ᾱ_s belongs: after estimating x̂0 the update re-noises it to the "
            "TARGET level s, x_s = √ᾱ_s·x̂0 + √(1−ᾱ_s−σ²)·ε", _ddim_step(renoise_with_t=True)),
    Mistake("alpha_for_abar", "you used α where ᾱ belongs: both lines of the DDIM update need the cumulative ᾱ "
            "(schedule.alphas_cumprod)", _ddim_step(alpha=True)),
    Mistake("s_minus_one_wraps", "for s = −1 (the clean image) you read alphas_cumprod[−1], which Python takes as the "
            "LAST entry ᾱ_{T−1} ≈ 0, the noisiest level; ᾱ_{−1} must be 1, so x_s = x̂0 at the final step",
            _ddim_step(lookup="wrap")),
    Mistake("s_minus_one_wraps_nan", "for s = −1 you read alphas_cumprod[−1], Python's LAST entry ᾱ_{T−1} ≈ 0; "
            "then 1 − ᾱ_t/ᾱ_s < 0 and σ's square root gives NaN. ᾱ_{−1} must be 1, so the final jump returns x̂0",
            _ddim_step(lookup="wrap", sigma_when_eta0=True)),
    Mistake("s_minus_one_as_zero", "for s = −1 you used ᾱ_0 instead of 1: the final jump must land exactly on x̂0 "
            "(ᾱ_{−1} = 1)", _ddim_step(lookup="zero")),
    Mistake("missing_sqrt", "the re-noising line is missing its square roots: x_s = √ᾱ_s·x̂0 + √(1−ᾱ_s−σ²)·ε",
            _ddim_step(renoise_sqrt=False)),
    Mistake("direction_ignores_sigma", "the direction term ignores σ²: with η > 0 part of the noise budget goes to "
            "the fresh noise σ·z, so the ε term is √(1−ᾱ_s−σ²)·ε, not √(1−ᾱ_s)·ε",
            _ddim_step(direction_sigma=False)),
    Mistake("sigma_not_square_rooted", "σ was left as a variance: σ = η·√((1−ᾱ_s)/(1−ᾱ_t)·(1−ᾱ_t/ᾱ_s)) needs the "
            "outer square root (what you used is σ², squared twice)", _ddim_step(sigma="variance")),
    Mistake("eta_squared", "σ carries η, not η²: σ = η·√((1−ᾱ_s)/(1−ᾱ_t)·(1−ᾱ_t/ᾱ_s))", _ddim_step(sigma="eta2")),
    Mistake("one_step_sigma", "σ was taken from the one-step DDPM variance β̃_t, but this step jumps from t to s: use "
            "ᾱ_t and ᾱ_s in σ", _ddim_step(sigma="ddpm")),
    Mistake("no_noise", "with η > 0 the step adds fresh noise σ·z (use the `noise` argument when it is given)",
            _ddim_step(add_noise=False)),
    Mistake("x0_not_clipped", "clip_x0 is on but x̂0 was not clipped to [−1, 1]", _ddim_step(clip="none")),
    Mistake("eps_not_recomputed", "after clipping x̂0 you kept the network's ε; recompute ε = (x_t − √ᾱ_t·x̂0)/√(1−ᾱ_t) "
            "so that ε and the clipped x̂0 describe the same x_t", _ddim_step(clip="keep_eps")),
] + [Mistake(n, "(x̂0 inside the step) " + e, _ddim_step(x0_kind=n)) for n, e in _X0_MISTAKES]


def _x0_mistake(kind):
    def fn(schedule, x_t, eps, t, **_):
        return _x0_formula(kind)(schedule, x_t, eps, t)
    return fn


_PREDICT_X0 = [Mistake(n, e, _x0_mistake(n)) for n, e in _X0_MISTAKES]


def _ddim_loop(*, final="ok", use_x_T=True, ignore_timesteps=False):
    def fn(model, schedule, clip_x0, shape, x_T, seed, timesteps=None, eta=0.0, num_steps=50,
           schedule_type="uniform", **_):
        if ignore_timesteps:
            if timesteps is None:
                return None
            ts = timestep_schedule(schedule.T, num_steps, schedule_type).tolist()
        elif timesteps is None:
            ts = timestep_schedule(schedule.T, num_steps, schedule_type).tolist()
        else:
            ts = [int(t) for t in timesteps]
        targets = {"ok": ts[1:] + [-1], "none": ts[1:], "zero": ts[1:] + [0]}[final]
        if final == "zero" and ts[-1] == 0:
            return None
        ref = DDIMSampler(model, schedule, clip_x0=clip_x0)
        g = torch.Generator().manual_seed(seed)
        x = x_T.clone() if use_x_T and x_T is not None else ref.randn(shape, g)
        for t, s in zip(ts, targets):
            x = ref.step(x, t, s, eta, generator=g)[0]
        return x
    return fn


_SAMPLE_DDIM = [
    Mistake("no_final_step", "the loop stops at the last timestep and returns x_t there; finish with one more jump "
            "to s = −1 (ᾱ = 1), which returns x̂0", _ddim_loop(final="none")),
    Mistake("final_step_to_zero", "the last jump goes to s = 0 instead of s = −1: the final step must land on the "
            "clean image (ᾱ_{−1} = 1)", _ddim_loop(final="zero")),
    Mistake("ignored_x_T", "the given starting noise x_T was not used; start from x_T when it is passed "
            "(self.initial_noise(shape, x_T, generator))", _ddim_loop(use_x_T=False)),
    Mistake("ignored_timesteps", "the `timesteps` argument was ignored; only when it is None build the schedule with "
            "self.create_timestep_schedule(num_steps, schedule_type)", _ddim_loop(ignore_timesteps=True)),
]


def _timesteps(kind: str):
    def fn(schedule, num_steps, schedule_type="uniform", **_):
        T, n = schedule.T, num_steps
        uniform = schedule_type in ("uniform", "linspace")
        i = torch.arange(n, dtype=torch.float64)
        if kind == "ascending":
            return timestep_schedule(T, n, schedule_type).flip(0)
        if kind == "n_plus_one" and uniform:
            return torch.linspace(T - 1, 0, n + 1, dtype=torch.float64).round().long()
        if kind == "truncated" and uniform and n > 1:
            return torch.linspace(T - 1, 0, n, dtype=torch.float64).long()
        if kind == "starts_at_T" and uniform and n > 1:
            return torch.linspace(T, 0, n, dtype=torch.float64).round().long()
        if kind == "fixed_stride" and uniform:
            return torch.arange(0, T, max(1, T // n)).flip(0)
        if kind == "dense_at_noisy_end" and schedule_type == "quadratic" and n > 1:
            return ((T - 1) * (1 - (i / (n - 1)) ** 2)).round().long()
        if kind == "from_T" and schedule_type == "quadratic":
            return torch.tensor(sorted({max(0, int(T * (1 - (k / n) ** 2))) for k in range(n)}, reverse=True))
        if kind in ("collisions_kept", "collisions_dropped") and schedule_type == "quadratic" and n > 1:
            ts = ((T - 1) * (i / (n - 1)) ** 2).round().long()
            if kind == "collisions_dropped":
                ts = ts.unique(sorted=True)
            return ts.flip(0)
        if kind == "trailing_no_minus_one" and schedule_type == "trailing":
            return (torch.arange(1, n + 1, dtype=torch.float64) * T / n).round().long().flip(0)
        return None
    return fn


_TIMESTEPS = [
    Mistake("ascending", "the timesteps go up; sampling walks from the noisiest step down, so return them in "
            "decreasing order", _timesteps("ascending")),
    Mistake("n_plus_one", "you made num_steps + 1 timesteps (linspace with num_steps + 1 points); the schedule holds "
            "exactly num_steps network calls", _timesteps("n_plus_one")),
    Mistake("truncated", "the values were truncated (.long() rounds toward zero); round to the nearest integer first",
            _timesteps("truncated")),
    Mistake("starts_at_T", "the schedule starts at T, one past the last valid index T − 1", _timesteps("starts_at_T")),
    Mistake("fixed_stride", "a fixed stride T // num_steps counted from 0 is the 'leading' spacing and never visits "
            "T − 1; 'uniform' spreads the steps evenly from T − 1 down to 0", _timesteps("fixed_stride")),
    Mistake("dense_at_noisy_end", "your quadratic steps crowd near T; they should crowd near t = 0, where the fine "
            "details form: t_i = (T − 1)·(i/(n − 1))², then reverse", _timesteps("dense_at_noisy_end")),
    Mistake("from_T", "this quadratic spacing starts at T (past the last index T − 1), is dense at the noisy end and "
            "loses steps to rounding; see the docstring's formula", _timesteps("from_T")),
    Mistake("collisions_kept", "rounding makes several quadratic steps equal near t = 0; push each step at least one "
            "above the step before it so that all num_steps values differ", _timesteps("collisions_kept")),
    Mistake("collisions_dropped", "duplicates near t = 0 were removed, which leaves fewer than num_steps timesteps; "
            "push each step at least one above the previous one instead", _timesteps("collisions_dropped")),
    Mistake("trailing_no_minus_one", "trailing steps are round(k·T/n) − 1 for k = n, …, 1; without the − 1 the first "
            "step is T, past the last index", _timesteps("trailing_no_minus_one")),
]


MISTAKES: dict[str, dict[str, list[Mistake]]] = {
    "forward_process": {
        "add_noise": _ADD_NOISE,
        "demonstrate_forward_trajectory": _TRAJECTORY,
    },
    "trained_model_analyzer": {
        "analyze_noise_prediction_quality": _QUALITY,
        "visualize_noise_predictions": _VISUALIZE,
    },
    "ddpm_sampler": {
        "compute_posterior_mean": _MEAN,
        "compute_posterior_variance": _VARIANCE,
        "ddpm_step": _STEP,
        "sample": _SAMPLE_DDPM,
    },
    "ddim_sampler": {
        "predict_x0_from_eps": _PREDICT_X0,
        "ddim_step": _DDIM_STEP,
        "sample": _SAMPLE_DDIM,
        "create_timestep_schedule": _TIMESTEPS,
    },
}


def mistakes_for(piece: str, method: str) -> list[Mistake]:
    """The catalogued wrong variants of `piece`.`method` (empty when none are known)."""
    return list(MISTAKES.get(piece, {}).get(method, []))


@torch.no_grad()
def find_mistakes(piece: str, method: str, output: Any, inputs: dict, *, expected: Any = None,
                  rtol: float = 1e-4, atol: float = 1e-5) -> list[Mistake]:
    """Every catalogued mistake whose result equals `output` on `inputs`.

    `output` matches a variant when it lies within the tolerances (widened tenfold for rounding) of the
    variant's result and, when `expected` is given, at least ten times closer to the variant than the
    variant is to `expected`; a variant that agrees with `expected` on these inputs is skipped.
    """
    found = []
    for m in mistakes_for(piece, method):
        try:
            if m.test is not None:
                hit = bool(m.test(output, inputs))
            else:
                wrong = m.fn(**inputs)
                if wrong is None:
                    continue
                near = compare(output, wrong, rtol=10 * rtol, atol=10 * atol)
                if expected is None:
                    hit = near.ok
                else:
                    apart = compare(wrong, expected, rtol=rtol, atol=atol)
                    hit = near.ok and not apart.ok and near.max_error <= 0.1 * apart.max_error
        except Exception:  # a variant that cannot run on these inputs does not match
            continue
        if hit:
            found.append(m)
    return found


def find_mistake(piece: str, method: str, output: Any, inputs: dict, *, expected: Any = None,
                 rtol: float = 1e-4, atol: float = 1e-5) -> Mistake | None:
    """The first catalogued mistake that `output` matches, or None."""
    found = find_mistakes(piece, method, output, inputs, expected=expected, rtol=rtol, atol=atol)
    return found[0] if found else None

from .mistakes_later import MISTAKES_LATER as _LATER; MISTAKES.update(_LATER)  # noqa: E402,E702 notebooks 04-06
