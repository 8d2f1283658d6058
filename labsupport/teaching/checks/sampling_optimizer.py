"""Check of notebook 06's piece `sampling_optimizer`: a cached DDIM loop and chunked generation.

Its known mistakes get the inputs  model, schedule, then
cached_noise_schedule_sampling: shape, num_steps, eta, x_T, seed;
batch_sampling_with_memory_management: total_samples, batch_size, num_steps, eta, seed, image_shape, memory_budget.
"""
from __future__ import annotations

import torch

from ...tools.generation import NonFiniteError, chunk_size_for_memory, sample_generators
from ...lab5.sampling_optimizer import SamplingOptimizer
from ...maths.ddim import adds_noise, ddim_coefficients, ddim_step_given_eps
from ...samplers.ddim import DDIMSampler, timestep_schedule
from .cases import CallCounter, NaNAtTheEnd, noise, short_schedule, toy_model
from .catalog import Mistake
from .core import Case, MethodSpec, Piece, Report, register, run_piece
from .slips import direction_without_sigma_row, eta_squared_row, gen, unrooted_row

__all__ = ["sampling_optimizer"]

TOY_SHAPE = (1, 6, 6)


def _ctx() -> dict:
    return {"model": toy_model(), "schedule": short_schedule()}


def _build(cls, i: dict):
    return cls(i["model"], i["schedule"])


def _cached_cases() -> list[Case]:
    rows = [("6 steps, η=0, given x_T", 6, 0.0, True, None), ("10 steps, η=0.5, given x_T, seed 1", 10, 0.5, True, 1),
            ("x_T drawn from the generator (seed 2), 4 steps, η=1", 4, 1.0, False, 2),
            ("1 step (straight to x̂0)", 1, 0.0, True, None), ("all 30 steps, η=0", 30, 0.0, True, None)]
    shape = (2, *TOY_SHAPE)
    return [Case(label, {**_ctx(), "shape": shape, "num_steps": n, "eta": eta,
                         "x_T": noise(shape, 400 + k) if given else None, "seed": seed})
            for k, (label, n, eta, given, seed) in enumerate(rows)]


def _call_cached(obj, i):
    g = torch.Generator().manual_seed(i["seed"]) if i.get("seed") is not None else None
    return obj.cached_noise_schedule_sampling(DDIMSampler(i["model"], i["schedule"]), i["shape"], i["num_steps"],
                                              eta=i["eta"], x_T=i.get("x_T"), generator=g)


def _toy_budget(chunk: int) -> int:
    """A memory budget (bytes) under which the toy model's chunk is `chunk` samples."""
    one = chunk_size_for_memory(toy_model(), 10 ** 9, TOY_SHAPE)
    per_sample = 10 ** 9 / one
    return int(per_sample * chunk + per_sample / 2)


def _batch_cases() -> list[Case]:
    rows = [("7 samples in chunks of 3, η=0.5", 7, 3, 0.5, None),
            ("5 samples, one chunk of 5, η=0", 5, 5, 0.0, None),
            ("6 samples in chunks of 4, η=1", 6, 4, 1.0, None),
            ("5 samples, batch_size 4 but a memory budget that fits 2", 5, 4, 0.3, 2)]
    return [Case(label, {**_ctx(), "total_samples": n, "batch_size": b, "num_steps": 4, "eta": eta, "seed": 11 + k,
                         "image_shape": TOY_SHAPE, "memory_budget": None if fit is None else _toy_budget(fit)})
            for k, (label, n, b, eta, fit) in enumerate(rows)]


def _call_batch(obj, i):
    kwargs = {} if i.get("memory_budget") is None else {"memory_budget": i["memory_budget"]}
    return obj.batch_sampling_with_memory_management(i["total_samples"], i["batch_size"], num_steps=i["num_steps"],
                                                     eta=i["eta"], seed=i["seed"], image_shape=i["image_shape"],
                                                     **kwargs)


def _cached_matches_sampler(run) -> str | None:
    i = {**_ctx(), "shape": (2, *TOY_SHAPE), "num_steps": 7, "eta": 0.0, "x_T": noise((2, *TOY_SHAPE), 5), "seed": None}
    out = run(i)
    ref = DDIMSampler(i["model"], i["schedule"]).sample(i["shape"], num_steps=7, x_T=i["x_T"], progress=False)
    if not torch.allclose(torch.as_tensor(out).float(), ref, rtol=1e-4, atol=1e-4):
        return "the cached loop must give the same samples as ddim_sampler.sample with the same arguments"
    return None


def _same_whatever_the_chunk(run) -> str | None:
    i = {**_ctx(), "total_samples": 6, "num_steps": 3, "eta": 0.8, "seed": 5, "image_shape": TOY_SHAPE}
    a, b = run({**i, "batch_size": 6}), run({**i, "batch_size": 2})
    if not torch.allclose(torch.as_tensor(a), torch.as_tensor(b), atol=1e-5):
        return ("the samples change with the chunk size (batch_size 6 vs 2, same seed): give every sample its own "
                "generator, sample_generators(seed, range(start, stop))")
    return None


def _respects_memory_budget(run) -> str | None:
    counter = CallCounter(toy_model())
    run({"model": counter, "schedule": short_schedule(), "total_samples": 5, "batch_size": 5, "num_steps": 2,
         "eta": 0.0, "seed": 0, "image_shape": TOY_SHAPE, "memory_budget": _toy_budget(2)})
    if not counter.batches:
        return "the network was never called: sample through self.model (the sampler you build calls it)"
    if max(counter.batches) > 2:
        return (f"memory_budget fits 2 samples per chunk, but the network saw batches of {max(counter.batches)}: "
                "lower the chunk to min(batch_size, chunk_size_for_memory(self.model, memory_budget, image_shape))")
    return None


def _stops_on_nan(run) -> str | None:
    try:
        run({"model": NaNAtTheEnd(), "schedule": short_schedule(), "total_samples": 4, "batch_size": 2,
             "num_steps": 3, "eta": 0.0, "seed": 0, "image_shape": TOY_SHAPE})
    except NonFiniteError:
        return None
    return ("a network that returns NaN went unnoticed: run the health check check_finite(x, ...) on every chunk, "
            "so that the run stops with a clear message")


# -- known mistakes: cached_noise_schedule_sampling ------------------------------------------------
def _cached_loop(*, row=ddim_coefficients, last="ok", use_x_T=True):
    """DDIM over uniform steps (ddim_step_given_eps) on the table of rows `row(schedule, t, s, eta)`, its last
    row (t → −1) read at s = 0 (last="zero") or at alphas_cumprod[−1] (last="wrap")."""
    def fn(model, schedule, shape, num_steps, eta=0.0, x_T=None, seed=None, **_):
        if not use_x_T and (x_T is None or seed is None):
            return None
        d = DDIMSampler(model, schedule)
        g = gen(seed)
        x = x_T.clone() if use_x_T and x_T is not None else d.randn(shape, g)
        ts = timestep_schedule(schedule.T, num_steps).tolist()
        if last == "zero" and ts[-1] == 0:
            return None
        for t, s in zip(ts, ts[1:] + [-1]):
            if s == -1 and last == "zero":
                coefs = ddim_coefficients(d.schedule, t, 0, eta)
            elif s == -1 and last == "wrap":  # ᾱ_{T−1}: σ's root of a negative number, clamped, is 0
                coefs = ddim_coefficients(d.schedule, t, d.T - 1, 0.0)
            else:
                coefs = row(d.schedule, t, s, eta)
            eps = d.predict_eps(x, t)
            noise = d.randn(x.shape, g) if adds_noise(eta, s) else None
            x = ddim_step_given_eps(d.schedule, x, t, s, eps, eta, noise, coefficients=coefs)[0]
        return x
    return fn


_CACHED = [
    Mistake("s_minus_one_wraps", "the last row of your table reads alphas_cumprod[−1], the noisiest level; the final "
            "jump goes to s = −1 with ᾱ_{−1} = 1 (ddim_sampler.alpha_bar(-1))", _cached_loop(last="wrap")),
    Mistake("final_step_to_zero", "the last jump goes to s = 0 (ᾱ_0) instead of s = −1 (ᾱ = 1), so the result is "
            "not the clean estimate x̂0", _cached_loop(last="zero")),
    Mistake("direction_ignores_sigma", "the direction coefficient must be √(1−ᾱ_s−σ²); you precomputed √(1−ᾱ_s)",
            _cached_loop(row=direction_without_sigma_row)),
    Mistake("eta_squared", "σ = η·√(…), not η²·√(…)", _cached_loop(row=eta_squared_row)),
    Mistake("missing_sqrt", "the table holds ᾱ_s and 1−ᾱ_s−σ² where their square roots belong",
            _cached_loop(row=lambda schedule, t, s, eta: unrooted_row(schedule, t, s, eta, clamp=True))),
    Mistake("ignored_x_T", "the given x_T was not used: start from ddim_sampler.initial_noise(shape, x_T, generator)",
            _cached_loop(use_x_T=False)),
]


# -- known mistakes: batch_sampling_with_memory_management -----------------------------------------
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


PIECE = register(Piece(
    id="sampling_optimizer",
    defines=("SamplingOptimizer",),
    reference={"SamplingOptimizer": SamplingOptimizer},
    build=_build,
    methods=[
        MethodSpec("cached_noise_schedule_sampling", _cached_cases, _call_cached,
                   lambda i: _call_cached(_build(SamplingOptimizer, i), i), atol=1e-4,
                   properties=(_cached_matches_sampler,),
                   own_maths=("ddim_step_given_eps", "ddim_coefficients", "ddim_sigma"),
                   derive_from=("lab5.sampling_optimizer.SamplingOptimizer.cached_noise_schedule_sampling",
                                "lab5.sampling_optimizer.ddim_coefficient_table", "predict_x0_from_eps",
                                "alpha_bar")),
        MethodSpec("batch_sampling_with_memory_management", _batch_cases, _call_batch,
                   lambda i: _call_batch(_build(SamplingOptimizer, i), i), atol=1e-4,
                   properties=(_same_whatever_the_chunk, _respects_memory_budget, _stops_on_nan),
                   derive_from=("lab5.sampling_optimizer.SamplingOptimizer.batch_sampling_with_memory_management",)),
    ],
    mistakes={"cached_noise_schedule_sampling": _CACHED, "batch_sampling_with_memory_management": _BATCH},
))


def sampling_optimizer(obj) -> Report:
    """Check SamplingOptimizer (notebook 06) and print ✓ or a precise ✗ per method."""
    return run_piece("sampling_optimizer", obj)
