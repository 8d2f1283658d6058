"""Known wrong variants of notebooks 04-06's pieces, merged into `mistakes.MISTAKES` (one catalog).

Same format as mistakes.py: `fn(**inputs)` recomputes the wrong version (None where it does not
apply), `test(output, inputs)` spots the mistakes that cannot be recomputed. The inputs:

    stochasticity_controller  model, schedule, then
                              compute_stochastic_variance: t, s, eta
                              analyze_eta_effects: shape, eta_values, num_steps, x_T, seed
    cfg_guidance              guided_noise: eps_cond, eps_uncond, guidance_scale
                              sample_with_guidance: model, schedule, labels, guidance_scale, num_steps,
                                                    x_T, seed, image_shape
    sampling_optimizer        model, schedule, then
                              cached_noise_schedule_sampling: shape, num_steps, eta, x_T, seed
                              batch_sampling_with_memory_management: total_samples, batch_size,
                                                    num_steps, eta, seed, image_shape, memory_budget
"""
from __future__ import annotations

from typing import Any, Callable

import torch

from ...maths.guidance import cfg_blend
from ...tools.speedups import chunk_size_for_memory, sample_generators
from ...samplers.ddim import DDIMSampler, timestep_schedule
from .compare import as_tensor
from .mistakes import Mistake

__all__ = ["MISTAKES_LATER"]


def _gen(seed) -> torch.Generator | None:
    return None if seed is None else torch.Generator().manual_seed(seed)


def _abar(schedule, k, *, wrap: bool = False) -> torch.Tensor:
    """ᾱ_k with ᾱ_{-1} = 1, or, with wrap=True, Python's reading of alphas_cumprod[-1] (the last entry)."""
    table = schedule.alphas_cumprod
    if torch.is_tensor(k):
        k = k.long()
        padded = torch.cat([table[-1:] if wrap else torch.ones(1), table])
        return padded[k + 1]
    return table[k] if (k >= 0 or wrap) else torch.ones(())


# -- stochasticity_controller: compute_stochastic_variance -----------------------------------------
def _variance(kind: str):
    def fn(schedule, t, s, eta, **_):
        a_t, a_s = _abar(schedule, t), _abar(schedule, s, wrap=kind == "s_minus_one_wraps")
        if kind == "alpha_for_abar":
            alphas = torch.cat([torch.ones(1), schedule.alphas])
            a_t, a_s = alphas[torch.as_tensor(t) + 1], alphas[torch.as_tensor(s) + 1]
        if kind == "s_minus_one_wraps" and not bool(torch.as_tensor(s).eq(-1).any()):
            return None
        core = (1 - a_s) / (1 - a_t) * (1 - a_t / a_s)
        return {
            "eta_not_squared": eta * core,
            "returned_sigma": eta * core.clamp(min=0).sqrt(),
            "missing_eta": core,
            "ratio_flipped": eta ** 2 * (1 - a_t) / (1 - a_s) * (1 - a_t / a_s),
            "abar_ratio_flipped": eta ** 2 * (1 - a_s) / (1 - a_t) * (1 - a_s / a_t),
            "missing_second_factor": eta ** 2 * (1 - a_s) / (1 - a_t),
            "s_minus_one_wraps": eta ** 2 * core,
            "alpha_for_abar": eta ** 2 * core,
        }[kind]
    return fn


def _one_step_variance(schedule, t, s, eta, **_):
    return eta ** 2 * schedule.posterior_variance[torch.as_tensor(t).long()]


_VARIANCE = [
    Mistake("eta_not_squared", "the variance carries η², not η: σ² = η²·(1−ᾱ_s)/(1−ᾱ_t)·(1−ᾱ_t/ᾱ_s) "
            "(σ itself is η times the square root)", _variance("eta_not_squared")),
    Mistake("returned_sigma", "you returned σ, the standard deviation; the method returns the variance σ² "
            "(the sampler takes the square root)", _variance("returned_sigma")),
    Mistake("missing_eta", "η is missing: without it every step adds the full DDPM-like noise, whatever η is",
            _variance("missing_eta")),
    Mistake("ratio_flipped", "the first fraction is upside down: it is (1−ᾱ_s)/(1−ᾱ_t), the target's noise "
            "variance over the current one (smaller than 1, since s < t)", _variance("ratio_flipped")),
    Mistake("abar_ratio_flipped", "the second factor is 1 − ᾱ_t/ᾱ_s (the current ᾱ over the target's); with "
            "ᾱ_s/ᾱ_t it turns negative", _variance("abar_ratio_flipped")),
    Mistake("missing_second_factor", "the factor (1 − ᾱ_t/ᾱ_s) is missing; it is the variance one jump t → s "
            "adds in the forward process", _variance("missing_second_factor")),
    Mistake("s_minus_one_wraps", "for s = −1 you read alphas_cumprod[−1], which Python takes as the LAST entry; "
            "ᾱ_{−1} = 1 (use self.alpha_bar(s)), and then σ² = 0", _variance("s_minus_one_wraps")),
    Mistake("alpha_for_abar", "you used the one-step α where the cumulative ᾱ belongs (schedule.alphas_cumprod, "
            "or self.alpha_bar)", _variance("alpha_for_abar")),
    Mistake("one_step_variance", "that is η²·β̃_t, DDPM's one-step variance; it is right only when s = t − 1. "
            "A DDIM jump t → s needs ᾱ_t and ᾱ_s", _one_step_variance),
]


# -- stochasticity_controller: analyze_eta_effects -------------------------------------------------
def _eta_runs(*, fresh_start_per_eta=False, spread="ok", transpose=False):
    def fn(model, schedule, shape, eta_values, num_steps, x_T=None, seed=None, schedule_type="uniform", **_):
        if fresh_start_per_eta and x_T is not None:
            return None
        sampler = DDIMSampler(model, schedule)
        g = _gen(seed)
        start = None if fresh_start_per_eta else sampler.initial_noise((1, *shape[1:]), x_T, g)
        out = []
        for eta in eta_values:
            s0 = sampler.randn((1, *shape[1:]), g) if fresh_start_per_eta else start
            out.append(sampler.sample(shape, eta=float(eta), num_steps=num_steps, schedule_type=schedule_type,
                                      x_T=s0.expand(shape).contiguous(), generator=g, progress=False))
        samples = torch.stack(out)
        value = {"ok": lambda: samples.std(dim=1).mean(dim=(1, 2, 3)),
                 "variance": lambda: samples.var(dim=1).mean(dim=(1, 2, 3)),
                 "biased": lambda: samples.std(dim=1, unbiased=False).mean(dim=(1, 2, 3)),
                 "over_pixels": lambda: samples.flatten(2).std(dim=2).mean(dim=1)}[spread]()
        if transpose:
            samples = samples.transpose(0, 1)
        return {"eta": torch.tensor([float(e) for e in eta_values]), "samples": samples, "spread": value}
    return fn


def _spread_at_eta0(output, inputs) -> bool:
    """The runs do not start from one x_T: they already spread at η = 0."""
    if not isinstance(output, dict) or "samples" not in output:
        return False
    etas = [float(e) for e in inputs["eta_values"]]
    samples = as_tensor(output["samples"])
    if 0.0 not in etas or samples is None or samples.ndim != 5 or samples.shape[0] != len(etas):
        return False
    return float(samples[etas.index(0.0)].std(dim=0).mean()) > 1e-4


_ETA_EFFECTS = [
    Mistake("runs_do_not_share_x_T", "the B runs do not start from the same x_T (they differ even at η = 0): draw ONE "
            "(1, C, H, W) starting point and repeat it, x_T.expand(shape), for every run", test=_spread_at_eta0),
    Mistake("new_x_T_per_eta", "a new x_T was drawn for every η: all η must start from the same x_T, or the spread "
            "mixes two effects", _eta_runs(fresh_start_per_eta=True)),
    Mistake("spread_as_variance", "spread is the standard deviation across runs, not the variance "
            "(samples.std(dim=1), then the mean over pixels)", _eta_runs(spread="variance")),
    Mistake("spread_biased_std", "use the default (unbiased, n − 1) standard deviation, samples.std(dim=1)",
            _eta_runs(spread="biased")),
    Mistake("spread_over_pixels", "you measured how much the pixels of ONE image vary; spread is how much the "
            "same pixel varies across the runs: std over dim 1 (the runs), then the mean", _eta_runs(spread="over_pixels")),
    Mistake("samples_transposed", "samples must be stacked as (K, B, C, H, W), one entry per η first: "
            "torch.stack(list_of_runs_per_eta)", _eta_runs(transpose=True)),
]


# -- cfg_guidance: guided_noise --------------------------------------------------------------------
_BLENDS: dict[str, Callable] = {
    "swapped_roles": lambda c, u, w: c + w * (u - c),
    "paper_convention": lambda c, u, w: c + w * (c - u),
    "missing_base": lambda c, u, w: w * (c - u),
    "scale_on_cond_only": lambda c, u, w: u + w * c,
    "sign_flipped": lambda c, u, w: u - w * (c - u),
    "normalized_average": lambda c, u, w: (u + w * c) / (1 + w),
}
_BLEND_TEXT = {
    "swapped_roles": "the roles are swapped: start from the UNconditional prediction and add w times the "
                     "difference ε_c − ε_u (ε̃ = ε_u + w·(ε_c − ε_u))",
    "paper_convention": "that is the paper's convention (1 + w)·ε_c − w·ε_u; this lab's w is the paper's w + 1, "
                        "so write ε_u + w·(ε_c − ε_u) (w = 1 must give ε_c)",
    "missing_base": "the unconditional prediction ε_u is missing in front: ε̃ = ε_u + w·(ε_c − ε_u)",
    "scale_on_cond_only": "w scales the DIFFERENCE ε_c − ε_u, not ε_c alone",
    "sign_flipped": "sign error: guidance adds w·(ε_c − ε_u), pushing toward the condition",
    "normalized_average": "a weighted average never extrapolates; guidance goes beyond ε_c when w > 1: "
                          "ε̃ = ε_u + w·(ε_c − ε_u)",
}


def _blend(kind: str):
    def fn(eps_cond, eps_uncond, guidance_scale, **_):
        return _BLENDS[kind](eps_cond, eps_uncond, guidance_scale)
    return fn


_GUIDED_NOISE = [Mistake(k, _BLEND_TEXT[k], _blend(k)) for k in _BLENDS]


# -- cfg_guidance: sample_with_guidance ------------------------------------------------------------
def _guided_loop(*, blend=cfg_blend, null="null", final=True, use_x_T=True, loop_index_as_t=False):
    def fn(model, schedule, labels, guidance_scale, num_steps, x_T=None, seed=None, image_shape=(1, 28, 28), **_):
        if not use_x_T and (x_T is None or seed is None):  # fresh global-RNG noise cannot be recomputed
            return None
        d = DDIMSampler(model, schedule)
        shape = tuple(x_T.shape) if x_T is not None else (len(labels), *image_shape)
        x = x_T.clone() if use_x_T and x_T is not None else d.randn(shape, _gen(seed))
        y_null = {"null": torch.full_like(labels, model.null_class), "zero": torch.zeros_like(labels)}[null]
        ts = timestep_schedule(schedule.T, num_steps).tolist()
        pairs = list(zip(ts, ts[1:] + [-1]))
        if not final:
            pairs = pairs[:-1]
        for i, (t, s) in enumerate(pairs):
            tt = i if loop_index_as_t else schedule.timesteps[t]
            eps = blend(model(x, tt, labels), model(x, tt, y_null), guidance_scale)
            x0 = d.predict_x0_from_eps(x, eps, t)
            a_s = d.alpha_bar(s)
            x = a_s.sqrt() * x0 + (1 - a_s).sqrt() * eps
        return x
    return fn


def _no_guidance(model, schedule, labels, guidance_scale, num_steps, x_T=None, seed=None, image_shape=(1, 28, 28), **_):
    return _guided_loop(blend=lambda c, u, w: c)(model, schedule, labels, guidance_scale, num_steps, x_T, seed, image_shape)


def _uncond_only(model, schedule, labels, guidance_scale, num_steps, x_T=None, seed=None, image_shape=(1, 28, 28), **_):
    return _guided_loop(blend=lambda c, u, w: u)(model, schedule, labels, guidance_scale, num_steps, x_T, seed, image_shape)


_SAMPLE_GUIDED = [
    Mistake("guidance_ignored", "the samples are plain conditional DDIM (as if w = 1): blend the two predictions "
            "with guided_noise(eps_cond, eps_uncond, guidance_scale) at every step", _no_guidance),
    Mistake("unconditional_only", "only the unconditional prediction was used (as if w = 0): use the guided blend",
            _uncond_only),
    Mistake("halves_swapped", "the two halves of the 2B output were swapped: with the batch [x; x] and labels "
            "[labels; null], the FIRST half is ε_c and the second ε_u", _guided_loop(blend=_BLENDS["swapped_roles"])),
    Mistake("paper_convention", "(in the blend) " + _BLEND_TEXT["paper_convention"],
            _guided_loop(blend=_BLENDS["paper_convention"])),
    Mistake("label_zero_as_null", "the unconditional half used label 0 (the digit zero); the null label is "
            "model.null_class (10): torch.full_like(labels, model.null_class)", _guided_loop(null="zero")),
    Mistake("no_final_step", "the loop stops at the last timestep; finish with the jump to s = −1 (ᾱ = 1), "
            "which returns x̂0", _guided_loop(final=False)),
    Mistake("ignored_x_T", "the given x_T was not used; start from x_T when it is passed", _guided_loop(use_x_T=False)),
    Mistake("loop_index_as_t", "the network got the loop index i instead of the timestep t: pass t (from the "
            "timestep schedule) to the model", _guided_loop(loop_index_as_t=True)),
]


# -- sampling_optimizer: cached_noise_schedule_sampling --------------------------------------------
def _cached_loop(*, last="ok", direction_sigma=True, eta_power=1, renoise_sqrt=True, use_x_T=True):
    def fn(model, schedule, shape, num_steps, eta=0.0, x_T=None, seed=None, **_):
        if not use_x_T and (x_T is None or seed is None):
            return None
        d = DDIMSampler(model, schedule)
        g = _gen(seed)
        x = x_T.clone() if use_x_T and x_T is not None else d.randn(shape, g)
        ts = timestep_schedule(schedule.T, num_steps).tolist()
        targets = ts[1:] + [{"ok": -1, "zero": 0, "wrap": -1}[last]]
        if last == "zero" and ts[-1] == 0:
            return None
        for i, (t, s) in enumerate(zip(ts, targets)):
            a_t = schedule.alphas_cumprod[t]
            a_s = _abar(schedule, s, wrap=last == "wrap")
            sigma = eta ** eta_power * ((1 - a_s) / (1 - a_t) * (1 - a_t / a_s)).clamp(min=0).sqrt()
            eps = d.predict_eps(x, t)
            x0 = (x - (1 - a_t).sqrt() * eps) / a_t.sqrt()
            c_x0 = a_s.sqrt() if renoise_sqrt else a_s
            c_eps = (1 - a_s - (sigma ** 2 if direction_sigma else 0)).clamp(min=0)
            x = c_x0 * x0 + (c_eps.sqrt() if renoise_sqrt else c_eps) * eps
            if eta > 0 and i < len(ts) - 1:
                x = x + sigma * d.randn(x.shape, g)
        return x
    return fn


_CACHED = [
    Mistake("s_minus_one_wraps", "the last row of your table reads alphas_cumprod[−1], the noisiest level; the final "
            "jump goes to s = −1 with ᾱ_{−1} = 1 (ddim_sampler.alpha_bar(-1))", _cached_loop(last="wrap")),
    Mistake("final_step_to_zero", "the last jump goes to s = 0 (ᾱ_0) instead of s = −1 (ᾱ = 1), so the result is "
            "not the clean estimate x̂0", _cached_loop(last="zero")),
    Mistake("direction_ignores_sigma", "the direction coefficient must be √(1−ᾱ_s−σ²); you precomputed √(1−ᾱ_s)",
            _cached_loop(direction_sigma=False)),
    Mistake("eta_squared", "σ = η·√(…), not η²·√(…)", _cached_loop(eta_power=2)),
    Mistake("missing_sqrt", "the table holds ᾱ_s and 1−ᾱ_s−σ² where their square roots belong",
            _cached_loop(renoise_sqrt=False)),
    Mistake("ignored_x_T", "the given x_T was not used: start from ddim_sampler.initial_noise(shape, x_T, generator)",
            _cached_loop(use_x_T=False)),
]


# -- sampling_optimizer: batch_sampling_with_memory_management --------------------------------------
def _chunked(*, seeding="ok", drop_last=False):
    def fn(model, schedule, total_samples, batch_size, num_steps=50, eta=0.0, seed=0, image_shape=(1, 28, 28),
           memory_budget=None, **_):
        chunk = batch_size
        if memory_budget is not None:
            chunk = min(batch_size, chunk_size_for_memory(model, memory_budget, image_shape))
        if drop_last and total_samples % chunk == 0:
            return None
        d = DDIMSampler(model, schedule)
        shared = torch.Generator().manual_seed(seed)
        stop_at = total_samples - total_samples % chunk if drop_last else total_samples
        out = []
        for k, start in enumerate(range(0, stop_at, chunk)):
            idx = range(start, min(start + chunk, total_samples))
            if seeding == "ok":
                g = sample_generators(seed, idx)
            elif seeding == "restart":
                g = sample_generators(seed, range(len(idx)))
            elif seeding == "per_chunk":
                g = torch.Generator().manual_seed(seed + k)
            else:  # one generator for everything
                g = shared
            out.append(d.sample((len(idx), *image_shape), num_steps=num_steps, eta=eta, generator=g, progress=False))
        return torch.cat(out)
    return fn


# An ignored memory_budget changes only the chunking, which per-sample seeds make invisible in the
# samples: the check's property `_respects_memory_budget` watches the batch sizes instead.
_BATCH = [
    Mistake("generator_per_chunk", "one generator per chunk makes each sample depend on the chunk it falls in; give "
            "every sample its own generator, sample_generators(seed, range(start, stop))", _chunked(seeding="per_chunk")),
    Mistake("one_generator_for_all", "one generator shared by all chunks: the noise a sample gets depends on how many "
            "were drawn before it, so the chunk size changes the samples; use sample_generators(seed, indices)",
            _chunked(seeding="shared")),
    Mistake("indices_restart_per_chunk", "every chunk seeded its samples 0, 1, 2, …, so chunks repeat the same "
            "samples; use the samples' global indices range(start, stop)", _chunked(seeding="restart")),
    Mistake("dropped_last_chunk", "the last, smaller chunk is missing: loop start = 0, batch, 2·batch, … while "
            "start < total_samples and cut the last chunk at total_samples", _chunked(drop_last=True)),
]


MISTAKES_LATER: dict[str, dict[str, list[Mistake]]] = {
    "stochasticity_controller": {
        "compute_stochastic_variance": _VARIANCE,
        "analyze_eta_effects": _ETA_EFFECTS,
    },
    "cfg_guidance": {
        "guided_noise": _GUIDED_NOISE,
        "sample_with_guidance": _SAMPLE_GUIDED,
    },
    "sampling_optimizer": {
        "cached_noise_schedule_sampling": _CACHED,
        "batch_sampling_with_memory_management": _BATCH,
    },
}


def describe() -> dict[str, Any]:
    """{piece: {method: [mistake names]}}, for the documentation and the tests."""
    return {p: {m: [x.name for x in ms] for m, ms in methods.items()} for p, methods in MISTAKES_LATER.items()}
