"""Hidden inputs: the self-check's cases with every number redrawn from the grader's seed.

The checks' cases are public (students run them), so the grader keeps their structure (which
timesteps, which edge cases, which shapes and options) and replaces the values: each float tensor
by fresh noise of the same shape and scale, each generator seed by a derived one. The same function
runs in the grader and in the probe, and both compare fingerprints of the result.
"""
from __future__ import annotations

import hashlib
from typing import Any

import torch

from ..teaching.checks import PIECES, Case
from ..maths.schedule import NoiseSchedule

__all__ = ["hidden_cases", "derive_seed"]


def derive_seed(*parts: Any) -> int:
    """A 31-bit seed from any printable parts, the same on every machine and process."""
    return int.from_bytes(hashlib.sha256("/".join(map(str, parts)).encode()).digest()[:4], "little") >> 1


def _perturbed(schedule: NoiseSchedule, g: torch.Generator) -> NoiseSchedule:
    """The same kind of schedule with every β_t moved by a random factor in about [0.7, 1.4].

    Without it a method whose cases hold no float tensor (a variance at given t, say) would be
    graded on public inputs: its answers could be tabulated at home from the reference.
    """
    factor = (0.2 * torch.randn(schedule.T, generator=g, dtype=torch.float64)).exp()
    betas = (schedule.betas.double().cpu() * factor).clamp(1e-6, 0.999)
    return NoiseSchedule(betas, timesteps=schedule.timesteps, kind=schedule.kind)


def _redraw(value: Any, g: torch.Generator) -> Any:
    if isinstance(value, NoiseSchedule):
        return _perturbed(value, g)
    if not (torch.is_tensor(value) and value.is_floating_point()) or value.numel() == 0:
        return value
    v = value.detach().double()
    std, mean = float(v.std()) if v.numel() > 1 else 0.0, float(v.mean())
    if std == 0.0:
        return value  # constants (zeros, a fixed level) carry meaning; keep them
    z = torch.randn(value.shape, generator=g, dtype=torch.float64)
    if float(v.abs().max()) <= 1.0:  # image-like: stays in [-1, 1], saturated in places like the checks' images
        out = (2.5 * z).tanh()
    else:
        out = z * std + mean
    return out.to(value.dtype)


def hidden_cases(piece: str, method: str, seed: int) -> list[Case]:
    """The cases of `piece`.`method` with redrawn values; deterministic in (piece, method, seed)."""
    out = []
    for k, case in enumerate(PIECES[piece].method(method).cases()):
        g = torch.Generator().manual_seed(derive_seed(seed, piece, method, k))
        inputs = {}
        for key, value in case.inputs.items():
            if key == "seed" and type(value) is int:
                inputs[key] = int(torch.randint(0, 2 ** 31 - 1, (1,), generator=g))
            else:
                inputs[key] = _redraw(value, g)
        out.append(Case(case.label, inputs))
    return out + _extra_cases(piece, method, seed)


def _extra_cases(piece: str, method: str, seed) -> list[Case]:
    """Cases that exist only in grading, where the public cases leave too few possible inputs."""
    if (piece, method) != ("ddim_sampler", "create_timestep_schedule"):
        return []
    # the output depends on (T, n, type) alone: a hidden length T makes a table of answers impossible
    g = torch.Generator().manual_seed(derive_seed(seed, piece, method, "extra"))
    T = int(torch.randint(60, 1500, (1,), generator=g))
    n = int(torch.randint(2, T // 2, (1,), generator=g))
    kind = ("uniform", "quadratic", "leading", "trailing")[int(torch.randint(0, 4, (1,), generator=g))]
    base = PIECES[piece].method(method).cases()[0].inputs
    return [Case(f"a schedule of hidden length T, {kind} spacing", {**base, "schedule": NoiseSchedule(
        torch.full((T,), 0.01, dtype=torch.float64), kind="hidden"), "num_steps": n, "schedule_type": kind})]
