"""Check of notebook 02's piece `ddpm_sampler`: posterior mean and variance, one step, the full loop.

Its known mistakes get the inputs  model, schedule, variance_type, clip_x0, then
compute_posterior_mean: x_t, t, predicted_noise;  compute_posterior_variance: t;
ddpm_step: x_t, t, noise;  sample: shape, x_T, seed.
"""
from __future__ import annotations

import torch

from ...maths.ddpm import ddpm_step_given_eps, posterior_mean_from_eps, posterior_mean_from_x0, posterior_variance
from ...maths.predictions import predict_x0_from_eps
from ...maths.schedule import extract
from ...samplers.ddpm import DDPMSampler
from .cases import noise, schedule, short_schedule, toy_model
from .catalog import Mistake
from .core import Case, MethodSpec, Piece, Report, honours_generator, register, run_piece
from .slips import with_tables

__all__ = ["ddpm_sampler"]


def _gen(i: dict) -> dict:
    return {"generator": torch.Generator().manual_seed(i["seed"])} if i.get("seed") is not None else {}


def _ctx(kind="linear", variance_type="fixed_lower", clip_x0=False) -> dict:
    return {"model": toy_model(), "schedule": schedule(kind) if kind != "short" else short_schedule(),
            "variance_type": variance_type, "clip_x0": clip_x0}


def _build(cls, i: dict):
    return cls(i["model"], i["schedule"], variance_type=i["variance_type"], clip_x0=i["clip_x0"])


def _ref(i: dict) -> DDPMSampler:
    return _build(DDPMSampler, i)


def _mean_cases() -> list[Case]:
    rows = [("t=500", "linear", False, 500), ("t=1", "linear", False, 1), ("t=0 (the last step)", "linear", False, 0),
            ("t=999 (pure noise)", "linear", False, 999), ("t as a (B,) tensor [0, 37, 999]", "linear", False,
                                                              torch.tensor([0, 37, 999])),
            ("cosine schedule, t=300", "cosine", False, 300), ("clip_x0=True, t=900", "linear", True, 900),
            ("clip_x0=True, t=20", "linear", True, 20)]
    out = []
    for k, (label, kind, clip, t) in enumerate(rows):
        shape = (3, 1, 8, 8)
        x_t = 1.5 * noise(shape, 60 + k)
        eps = toy_model()(x_t, t)
        out.append(Case(label, {**_ctx(kind, clip_x0=clip), "x_t": x_t, "t": t, "predicted_noise": eps}))
    return out


def _variance_cases() -> list[Case]:
    rows = [("fixed_lower, t=1", "linear", "fixed_lower", 1), ("fixed_lower, t=0", "linear", "fixed_lower", 0),
            ("fixed_lower, t=500", "linear", "fixed_lower", 500),
            ("fixed_lower, t as a tensor [0, 1, 999]", "linear", "fixed_lower", torch.tensor([0, 1, 999])),
            ("fixed_upper, t=500", "linear", "fixed_upper", 500), ("fixed_upper, t=0", "linear", "fixed_upper", 0),
            ("cosine schedule, fixed_lower, t=999", "cosine", "fixed_lower", 999)]
    return [Case(label, {**_ctx(kind, vt), "t": t}) for label, kind, vt, t in rows]


def _step_cases() -> list[Case]:
    rows = [("fixed_lower, t=500", "linear", "fixed_lower", False, 500),
            ("fixed_lower, t=0 (the last step)", "linear", "fixed_lower", False, 0),
            ("fixed_upper, t=0 (the last step)", "linear", "fixed_upper", False, 0),
            ("fixed_upper, t=700", "linear", "fixed_upper", False, 700),
            ("clip_x0=True, t=900", "linear", "fixed_lower", True, 900),
            ("cosine schedule, t=10", "cosine", "fixed_lower", False, 10),
            # at t = 1, β̃_t is about half of β_t: the one step where the two variance types differ clearly
            ("fixed_upper, t=1", "linear", "fixed_upper", False, 1),
            # near the end of the cosine schedule β_t is large, so 1/√α_t is far from 1 and tells apart
            # a missing prefactor from one on the noise term only
            ("cosine schedule, t=985", "cosine", "fixed_lower", False, 985)]
    shape = (2, 1, 8, 8)
    cases = [Case(label, {**_ctx(kind, vt, clip), "x_t": 1.3 * noise(shape, 80 + k), "t": t, "noise": noise(shape, 90 + k)})
             for k, (label, kind, vt, clip, t) in enumerate(rows)]
    # z from the generator: compared with the reference's draw from an equally seeded one
    return cases + [Case("noise=None, t=300: z drawn from the generator", {**_ctx(), "x_t": 1.3 * noise(shape, 97),
                                                                           "t": 300, "noise": None, "seed": 5})]


def _sample_cases() -> list[Case]:
    rows = [("30-step schedule, fixed_lower", "fixed_lower", False), ("30-step schedule, fixed_upper", "fixed_upper", False),
            ("30-step schedule, clip_x0=True", "fixed_lower", True)]
    shape = (2, 1, 6, 6)
    return [Case(label, {**_ctx("short", vt, clip), "shape": shape, "x_T": noise(shape, 100 + k), "seed": k})
            for k, (label, vt, clip) in enumerate(rows)]


def _call_step(obj, i):
    return obj.ddpm_step(i["x_t"], i["t"], noise=i.get("noise"), **_gen(i))


def _call_sample(obj, i):
    kwargs = {"return_trajectory": True} if i.get("return_trajectory") else {}
    return obj.sample(i["shape"], x_T=i.get("x_T"), **_gen(i), **kwargs)


def _reference_sample(i):
    kwargs = {"return_trajectory": True} if i.get("return_trajectory") else {}
    return _ref(i).sample(i["shape"], x_T=i.get("x_T"), progress=False, **_gen(i), **kwargs)


def _step_uses_generator(run) -> str | None:
    i = {**_ctx(), "x_t": noise((2, 1, 8, 8), 5), "t": 400, "noise": None, "seed": 11}
    a, b = run(i), run(i)
    if not torch.equal(torch.as_tensor(a), torch.as_tensor(b)):
        return ("with noise=None, equally seeded generators gave different steps: draw z with "
                "self.randn(x_t.shape, generator)")
    return None


def _sample_reproducible(run) -> str | None:
    i = {**_ctx("short"), "shape": (2, 1, 6, 6), "x_T": None, "seed": 21}
    a, b = run(i), run(i)
    if not torch.equal(torch.as_tensor(a), torch.as_tensor(b)):
        return ("without x_T, two runs with equally seeded generators differ: draw every noise through `generator` "
                "(self.initial_noise(shape, x_T, generator), and pass generator to ddpm_step)")
    return None


def _sample_trajectory(run) -> str | None:
    i = {**_ctx("short"), "shape": (2, 1, 6, 6), "x_T": noise((2, 1, 6, 6), 33), "seed": 4, "return_trajectory": True}
    out = run(i)
    if not (isinstance(out, tuple) and len(out) == 2):
        return "with return_trajectory=True, return a pair (x_0, trajectory)"
    x0, traj = out
    expected = _reference_sample({**i, "return_trajectory": False})
    if not torch.allclose(torch.as_tensor(x0).float(), expected, rtol=1e-4, atol=1e-4):
        return "with return_trajectory=True the sample differs from the one returned without it"
    if not (hasattr(traj, "x_t") and hasattr(traj, "x0_hat") and len(traj.x_t) >= 2 and len(traj.x0_hat) == len(traj.x_t)):
        return f"the trajectory must be a labsupport Trajectory with x_t and x0_hat recorded at several steps, got {traj!r}"[:300]
    if not torch.allclose(traj.x_t[0].float(), i["x_T"]):
        return "the trajectory's first x_t should be the starting noise x_T (record before taking the step)"
    return None


# -- known mistakes: the posterior mean ------------------------------------------------------------
# (x_t − (1−α_t)/√(1−ᾱ_t)·ε)/√α_t written wrong, in x_t, ε, α_t, ᾱ_t, as the notebook's code has them
# (in float32, 1 − α_t and β_t differ in their last digits: the variant computes what that code computes)
_MEAN_FORMULAS = {
    "abar_in_prefactor": lambda x, e, a, ab: (x - (1 - a) / (1 - ab).sqrt() * e) / ab.sqrt(),
    "abar_in_noise_numerator": lambda x, e, a, ab: (x - (1 - ab) / (1 - ab).sqrt() * e) / a.sqrt(),
    "missing_sqrt_denominator": lambda x, e, a, ab: (x - (1 - a) / (1 - ab) * e) / a.sqrt(),
    "missing_sqrt_prefactor": lambda x, e, a, ab: (x - (1 - a) / (1 - ab).sqrt() * e) / a,
    "missing_prefactor": lambda x, e, a, ab: x - (1 - a) / (1 - ab).sqrt() * e,
    "plus_sign": lambda x, e, a, ab: (x + (1 - a) / (1 - ab).sqrt() * e) / a.sqrt(),
    "prefactor_on_noise_only": lambda x, e, a, ab: x - (1 - a) / (1 - ab).sqrt() * e / a.sqrt(),
    # read at t−1: index -1 (Python's last entry) at t = 0, as a student's tables[t - 1] would
    "off_by_one_timestep": lambda x, e, a, ab: (x - (1 - a) / (1 - ab).sqrt() * e) / a.sqrt(),
}


def _mean_variant(kind: str):
    def fn(schedule, x_t, t, predicted_noise, clip_x0=False, **_):
        if clip_x0:
            return None
        shift = 1 if kind == "off_by_one_timestep" else 0
        a, ab = (extract(table.roll(shift), t, x_t.shape).to(x_t) for table in (schedule.alphas, schedule.alphas_cumprod))
        return _MEAN_FORMULAS[kind](x_t, predicted_noise, a, ab)
    return fn


def _mean_clip_ignored(schedule, x_t, t, predicted_noise, clip_x0=False, **_):
    return posterior_mean_from_eps(schedule, x_t, t, predicted_noise) if clip_x0 else None


def _mean_clip_swapped(schedule, x_t, t, predicted_noise, clip_x0=False, **_):
    if not clip_x0:
        return None
    x0 = predict_x0_from_eps(schedule, x_t, t, predicted_noise).clamp(-1, 1)
    swapped = with_tables(schedule, posterior_mean_coef1=schedule.posterior_mean_coef2,
                          posterior_mean_coef2=schedule.posterior_mean_coef1)
    return posterior_mean_from_x0(swapped, x_t, t, x0)


_MEAN = [
    Mistake("abar_in_prefactor", "the prefactor is 1/√α_t, this step's α_t; you used the cumulative ᾱ_t",
            _mean_variant("abar_in_prefactor")),
    Mistake("abar_in_noise_numerator", "the noise coefficient is (1−α_t)/√(1−ᾱ_t) = β_t/√(1−ᾱ_t); you wrote 1−ᾱ_t "
            "in the numerator", _mean_variant("abar_in_noise_numerator")),
    Mistake("missing_sqrt_denominator", "the noise coefficient divides by √(1−ᾱ_t), not by 1−ᾱ_t (missing square root)",
            _mean_variant("missing_sqrt_denominator")),
    Mistake("missing_sqrt_prefactor", "the prefactor is 1/√α_t, not 1/α_t (missing square root)",
            _mean_variant("missing_sqrt_prefactor")),
    Mistake("missing_prefactor", "the factor 1/√α_t in front of the bracket is missing",
            _mean_variant("missing_prefactor")),
    Mistake("plus_sign", "sign error: μ = (1/√α_t)·(x_t − (1−α_t)/√(1−ᾱ_t)·ε_θ) subtracts the predicted noise",
            _mean_variant("plus_sign")),
    Mistake("prefactor_on_noise_only", "1/√α_t multiplies the whole bracket (x_t − …), not only the noise term",
            _mean_variant("prefactor_on_noise_only")),
    Mistake("off_by_one_timestep", "off-by-one timestep: the coefficients were read at t−1; index t of the tables "
            "already is step t", _mean_variant("off_by_one_timestep")),
    Mistake("x0_not_clipped", "clip_x0 is on but x̂0 was not clipped: form x̂0, clamp it to [−1, 1], then "
            "μ = posterior_mean_coef1·x̂0 + posterior_mean_coef2·x_t", _mean_clip_ignored),
    Mistake("clip_coefficients_swapped", "with clipping, posterior_mean_coef1 multiplies x̂0 and posterior_mean_coef2 "
            "multiplies x_t; yours are the other way round", _mean_clip_swapped),
]


# -- known mistakes: the posterior variance --------------------------------------------------------
def _pick(values: torch.Tensor, t) -> torch.Tensor:
    """values[t], Python indexing on purpose: t − 1 = −1 wraps to the last entry, as a student's would."""
    return values[t] if isinstance(t, int) else values[t.long()]


def _variance_variant(kind: str):
    def fn(schedule, t, variance_type="fixed_lower", **_):
        s, lower = schedule, variance_type == "fixed_lower"
        if kind == "upper_for_lower":
            return posterior_variance(s, t, "fixed_upper") if lower else None
        if kind == "lower_for_upper":
            return None if lower else posterior_variance(s, t, "fixed_lower")
        if kind == "std_not_variance":
            return posterior_variance(s, t, variance_type).sqrt()
        if not lower:
            return None
        # β̃_t = β_t·(1−ᾱ_{t−1})/(1−ᾱ_t) written wrong
        b, abar = _pick(s.betas, t), _pick(s.alphas_cumprod, t)
        if kind == "fraction_flipped":
            return b * (1 - abar) / (1 - _pick(s.alphas_cumprod_prev, t))
        if kind == "wraparound_at_t0":
            return b * (1 - _pick(s.alphas_cumprod, t - 1)) / (1 - abar)
        if kind == "alpha_for_abar":
            return b * (1 - _pick(s.alphas, t - 1)) / (1 - _pick(s.alphas, t))
        raise ValueError(kind)
    return fn


_VARIANCE = [
    Mistake("upper_for_lower", "variance_type is 'fixed_lower', which is β̃_t = β_t·(1−ᾱ_{t−1})/(1−ᾱ_t); you "
            "returned β_t (the 'fixed_upper' choice)", _variance_variant("upper_for_lower")),
    Mistake("lower_for_upper", "variance_type is 'fixed_upper', which is β_t; you returned β̃_t (the 'fixed_lower' "
            "choice)", _variance_variant("lower_for_upper")),
    Mistake("std_not_variance", "you returned σ_t, a standard deviation; this method returns the variance σ_t²",
            _variance_variant("std_not_variance")),
    Mistake("fraction_flipped", "the fraction is upside down: β̃_t = β_t·(1−ᾱ_{t−1})/(1−ᾱ_t)",
            _variance_variant("fraction_flipped")),
    Mistake("wraparound_at_t0", "at t = 0, alphas_cumprod[t−1] is alphas_cumprod[−1], which Python reads as the LAST "
            "entry (ᾱ_{T−1}, almost 0); ᾱ_{−1} must be 1, so use schedule.alphas_cumprod_prev[t]",
            _variance_variant("wraparound_at_t0")),
    Mistake("alpha_for_abar", "β̃_t uses the cumulative ᾱ_{t−1} and ᾱ_t, not α_{t−1} and α_t",
            _variance_variant("alpha_for_abar")),
]


# -- known mistakes: one step ----------------------------------------------------------------------
def _step_variant(wrong):
    """wrong(ref, x_t, t, eps, noise) with the reference sampler `ref`; None without a given noise."""
    def fn(model, schedule, variance_type, clip_x0, x_t, t, noise, **_):
        if noise is None:
            return None
        ref = DDPMSampler(model, schedule, variance_type=variance_type, clip_x0=clip_x0)
        return wrong(ref, x_t, t, ref.predict_eps(x_t, t), noise)
    return fn


def _mean_plus(mean, sigma, t, noise):
    """x_{t−1} = μ + σ_t·z, and μ alone at t = 0 (the step itself; the slip is in μ or σ_t)."""
    return None if mean is None else mean if t == 0 else mean + sigma * noise


def _other_variance_type(used: str):
    def wrong(ref, x_t, t, eps, noise):
        if ref.variance_type == used:
            return None
        return ddpm_step_given_eps(ref.schedule, x_t, t, eps, noise, variance_type=used, clip_x0=ref.clip_x0)[0]
    return wrong


def _with_mean(mean_fn):
    def wrong(ref, x_t, t, eps, noise):
        mean = mean_fn(schedule=ref.schedule, x_t=x_t, t=t, predicted_noise=eps, clip_x0=ref.clip_x0)
        return _mean_plus(mean, ref.compute_posterior_variance(t).sqrt(), t, noise)
    return wrong


def _noise_at_final_step(ref, x_t, t, eps, noise):
    return ref.compute_posterior_mean(x_t, t, eps) + ref.compute_posterior_variance(t).sqrt() * noise  # t = 0 too


def _variance_as_std(ref, x_t, t, eps, noise):
    return _mean_plus(ref.compute_posterior_mean(x_t, t, eps), ref.compute_posterior_variance(t), t, noise)


def _std_squared_twice(ref, x_t, t, eps, noise):
    return _mean_plus(ref.compute_posterior_mean(x_t, t, eps), ref.compute_posterior_variance(t).sqrt().sqrt(), t, noise)


_STEP = [
    Mistake("noise_at_final_step", "noise was added at the final step t = 0; the last step returns the mean μ, "
            "otherwise fresh noise lands in the finished image", _step_variant(_noise_at_final_step)),
    Mistake("variance_as_std", "the noise was scaled by the variance σ_t²; x_{t−1} = μ + σ_t·z needs the standard "
            "deviation σ_t = √(σ_t²)", _step_variant(_variance_as_std)),
    Mistake("no_noise", "no noise was added for t > 0: a DDPM step samples x_{t−1} ~ N(μ, σ_t²·I), so add σ_t·z",
            _step_variant(lambda ref, x_t, t, eps, noise: ref.compute_posterior_mean(x_t, t, eps))),
    Mistake("returned_x0_hat", "you returned x̂0, the model's guess of the clean image; the step returns x_{t−1}",
            _step_variant(lambda ref, x_t, t, eps, noise: predict_x0_from_eps(ref.schedule, x_t, t, eps))),
    Mistake("upper_for_lower", "(σ_t² inside the step) " + _VARIANCE[0].explanation,
            _step_variant(_other_variance_type("fixed_upper"))),
    Mistake("lower_for_upper", "(σ_t² inside the step) " + _VARIANCE[1].explanation,
            _step_variant(_other_variance_type("fixed_lower"))),
    Mistake("std_squared_twice", "σ_t was taken as the square root of a standard deviation (σ_t² is already the "
            "variance; take its square root once)", _step_variant(_std_squared_twice)),
] + [Mistake(m.name, "(posterior mean inside the step) " + m.explanation, _step_variant(_with_mean(m.fn)))
     for m in _MEAN]


# -- known mistakes: the loop ----------------------------------------------------------------------
def _ddpm_loop(*, noise_at_t0=False, stop_before_t0=False, ascending=False, use_x_T=True, add_noise=True):
    def fn(model, schedule, variance_type, clip_x0, shape, x_T, seed, **_):
        ref = DDPMSampler(model, schedule, variance_type=variance_type, clip_x0=clip_x0)
        g = torch.Generator().manual_seed(seed)
        x = x_T.clone() if use_x_T and x_T is not None else ref.randn(shape, g)
        ts = list(range(ref.T)) if ascending else list(range(ref.T - 1, 0 if stop_before_t0 else -1, -1))
        for t in ts:
            x = ref.step(x, t, generator=g, noise=None if add_noise else torch.zeros_like(x))[0]
            if noise_at_t0 and t == 0:
                x = x + ref.compute_posterior_variance(0).sqrt() * ref.randn(shape, g)
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


PIECE = register(Piece(
    id="ddpm_sampler",
    defines=("DDPMSampler",),
    reference={"DDPMSampler": DDPMSampler},
    build=_build,
    methods=[
        MethodSpec("compute_posterior_mean", _mean_cases,
                   lambda obj, i: obj.compute_posterior_mean(i["x_t"], i["t"], i["predicted_noise"]),
                   lambda i: _ref(i).compute_posterior_mean(i["x_t"], i["t"], i["predicted_noise"]),
                   own_maths=("posterior_mean_from_eps", "posterior_mean_from_x0", "predict_x0_from_eps"),
                   derive_from=("samplers.ddpm.DDPMSampler.compute_posterior_mean",)),
        MethodSpec("compute_posterior_variance", _variance_cases,
                   lambda obj, i: obj.compute_posterior_variance(i["t"]),
                   lambda i: _ref(i).compute_posterior_variance(i["t"]), rtol=1e-3, atol=1e-9,
                   own_maths=("posterior_variance",)),
        MethodSpec("ddpm_step", _step_cases, _call_step, lambda i: _call_step(_ref(i), i),
                   properties=(_step_uses_generator, honours_generator(
                       lambda seed: {**_ctx(), "x_t": noise((2, 1, 8, 8), 6), "t": 400, "noise": None, "seed": seed})),
                   uses=("compute_posterior_mean", "compute_posterior_variance"),
                   own_maths=("ddpm_step_given_eps", "posterior_mean_from_eps")),
        MethodSpec("sample", _sample_cases, _call_sample, _reference_sample, atol=1e-4,
                   properties=(_sample_reproducible, _sample_trajectory, honours_generator(
                       lambda seed: {**_ctx("short"), "shape": (2, 1, 6, 6), "x_T": noise((2, 1, 6, 6), 34),
                                     "seed": seed})),
                   uses=("ddpm_step", "compute_posterior_mean", "compute_posterior_variance"),
                   own_maths=("ddpm_step_given_eps",), derive_from=("samplers.ddpm.DDPMSampler.sample",)),
    ],
    mistakes={"compute_posterior_mean": _MEAN, "compute_posterior_variance": _VARIANCE, "ddpm_step": _STEP,
              "sample": _SAMPLE_DDPM},
))


def ddpm_sampler(obj) -> Report:
    """Check DDPMSampler (notebook 02) and print ✓ or a precise ✗ per method."""
    return run_piece("ddpm_sampler", obj)
