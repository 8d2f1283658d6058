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

from ..checks import PIECES, Case

__all__ = ["hidden_cases", "derive_seed"]


def derive_seed(*parts: Any) -> int:
    """A 31-bit seed from any printable parts, the same on every machine and process."""
    return int.from_bytes(hashlib.sha256("/".join(map(str, parts)).encode()).digest()[:4], "little") >> 1


def _redraw(value: Any, g: torch.Generator) -> Any:
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
    return out
