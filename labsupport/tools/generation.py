"""Many samples, reproducibly and within a memory budget (notebook 06, Lab 5 part 5; `labsupport evaluate`).

- `generate`: N samples in chunks, each sample seeded by (seed, i), so the chunk size never
  changes a sample; a memory budget picks the chunk, and CUDA out-of-memory halves it.
- `sample_generators`: the per-sample generators; `bytes_per_sample` / `chunk_size_for_memory`:
  the memory estimate that picks the chunk.
- `check_finite`: the health check run on every chunk.
"""
from __future__ import annotations

import hashlib
import math
import warnings
from typing import Sequence

import torch
from torch import nn

__all__ = ["generate", "sample_generators", "bytes_per_sample", "chunk_size_for_memory", "MNIST_SHAPE", "check_finite",
           "NonFiniteError"]

MNIST_SHAPE = (1, 28, 28)


class NonFiniteError(RuntimeError):
    """A tensor that should hold numbers holds NaN or inf."""


# -- health check --------------------------------------------------------------------------------
def check_finite(x: torch.Tensor, where: str = "tensor") -> torch.Tensor:
    """Return `x` if all its values are finite, else raise NonFiniteError saying where and how many.

    One host sync: call it on a finished chunk, not inside a sampling loop.
    """
    if bool(torch.isfinite(x).all()):
        return x
    n_nan, n_inf = int(torch.isnan(x).sum()), int(torch.isinf(x).sum())
    raise NonFiniteError(
        f"{where}: {n_nan} NaN and {n_inf} inf among {x.numel()} values of a {tuple(x.shape)} tensor. "
        "Usual causes: float16 overflow under autocast (use bfloat16 or float32), a very large "
        "guidance scale, or a schedule whose ᾱ reaches 0; rerun in float32 to find the step.")


# -- chunked generation --------------------------------------------------------------------------
def sample_generators(seed: int, indices: Sequence[int], device: torch.device | str = "cpu") -> list[torch.Generator]:
    """One generator per sample, seeded from (seed, i) alone: sample i's noise in any chunk.

    Sample i gets seed (hash(seed) + i) mod 2**32: the CPU generator (Mersenne Twister) reads only
    32 bits of its seed, and this keeps the seeds of one run distinct while runs with different
    `seed` start at unrelated places.
    """
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    base = int.from_bytes(hashlib.blake2b(str(seed).encode(), digest_size=4).digest(), "little")
    return [torch.Generator(device=device).manual_seed((base + int(i)) % 2 ** 32) for i in indices]


def bytes_per_sample(model: nn.Module, image_shape: Sequence[int] = MNIST_SHAPE, *, guided: bool = False) -> int:
    """Estimated working memory of one sample in a sampling run, in bytes.

    Conservative: every leaf layer's output of one forward counted as if all were alive at once
    (a forward under inference mode frees most of them early), doubled for guidance (a 2B batch),
    plus six copies of x_t for the sampler's own tensors.
    """
    total = 0

    def count(_module, _inputs, output):
        nonlocal total
        if torch.is_tensor(output):
            total += output.numel() * output.element_size()

    leaves = [m for m in model.modules() if next(m.children(), None) is None]
    handles = [m.register_forward_hook(count) for m in leaves]
    param = next(model.parameters())
    try:
        with torch.inference_mode():
            model(torch.zeros((1, *image_shape), device=param.device, dtype=param.dtype), 0)
    finally:
        for h in handles:
            h.remove()
    return total * (2 if guided else 1) + 6 * math.prod(image_shape) * param.element_size()


def chunk_size_for_memory(model: nn.Module, budget_bytes: int, image_shape: Sequence[int] = MNIST_SHAPE, *,
                          guided: bool = False) -> int:
    """Largest chunk whose estimated working memory (`bytes_per_sample`) fits `budget_bytes`; at least 1."""
    if budget_bytes <= 0:
        raise ValueError(f"budget_bytes must be positive, got {budget_bytes}")
    return max(1, int(budget_bytes // bytes_per_sample(model, image_shape, guided=guided)))


def generate(sampler, n: int, *, chunk_size: int | None = None, memory_budget: int | None = None, seed: int = 0,
             image_shape: Sequence[int] = MNIST_SHAPE, y: torch.Tensor | None = None, check: bool = True,
             **sample_kwargs) -> torch.Tensor:
    """`n` samples (n, C, H, W) on the CPU, made `chunk_size` at a time (notebook 06).

    Sample i's x_T and every step's noise come from its own generator seeded by (seed, i), so the
    samples are the same whatever the chunk size (up to the last bits of float rounding, since
    some kernels choose their algorithm by batch size). `memory_budget` (bytes) picks the chunk
    when `chunk_size` is not given. On CUDA out-of-memory the chunk is halved and the run goes on,
    with a warning. `y` holds one label per sample; other keywords go to `sampler.sample`.
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    if y is not None and tuple(y.shape) != (n,):
        raise ValueError(f"y must hold one label per sample, shape ({n},), got {tuple(y.shape)}")
    if chunk_size is None:
        guided = sample_kwargs.get("guidance_scale") is not None
        chunk_size = n if memory_budget is None else chunk_size_for_memory(
            sampler.model, memory_budget, image_shape, guided=guided)
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be at least 1, got {chunk_size}")
    sample_kwargs.setdefault("progress", False)
    chunks, start = [], 0
    while start < n:
        stop = min(n, start + chunk_size)
        try:
            x = _sample_chunk(sampler, range(start, stop), image_shape, seed, y, sample_kwargs)
        except torch.cuda.OutOfMemoryError:
            if stop - start == 1:
                raise
            chunk_size = (stop - start) // 2
            warnings.warn(f"CUDA out of memory with a chunk of {stop - start} samples; "
                          f"retrying with chunks of {chunk_size}", RuntimeWarning, stacklevel=2)
            torch.cuda.empty_cache()
            continue
        chunks.append(check_finite(x, f"samples {start}..{stop - 1}") if check else x)
        start = stop
    return torch.cat(chunks)


def _sample_chunk(sampler, indices: range, image_shape, seed: int, y, sample_kwargs: dict) -> torch.Tensor:
    generators = sample_generators(seed, indices, sampler.device)
    y_chunk = None if y is None else y[indices.start:indices.stop]
    shape = (len(indices), *image_shape)
    return sampler.sample(shape, generator=generators, y=y_chunk, **sample_kwargs).cpu()
