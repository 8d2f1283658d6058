"""Check of notebook 06's piece `sampling_optimizer`: a cached DDIM loop and chunked generation."""
from __future__ import annotations

import torch


from ...tools.speedups import NonFiniteError, chunk_size_for_memory
from ...lab5.sampling_optimizer import SamplingOptimizer
from ...samplers.ddim import DDIMSampler
from .cases import CallCounter, NaNAtTheEnd, noise, short_schedule, toy_model
from .core import Case, MethodSpec, Piece, register, run_piece

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


PIECE = register(Piece(
    id="sampling_optimizer",
    defines=("SamplingOptimizer",),
    reference={"SamplingOptimizer": SamplingOptimizer},
    build=_build,
    methods=[
        MethodSpec("cached_noise_schedule_sampling", _cached_cases, _call_cached,
                   lambda i: _call_cached(_build(SamplingOptimizer, i), i), atol=1e-4,
                   properties=(_cached_matches_sampler,)),
        MethodSpec("batch_sampling_with_memory_management", _batch_cases, _call_batch,
                   lambda i: _call_batch(_build(SamplingOptimizer, i), i), atol=1e-4,
                   properties=(_same_whatever_the_chunk, _respects_memory_budget, _stops_on_nan)),
    ],
))


def sampling_optimizer(obj) -> "Report":  # noqa: F821
    """Check SamplingOptimizer (notebook 06) and print ✓ or a precise ✗ per method."""
    return run_piece("sampling_optimizer", obj)
