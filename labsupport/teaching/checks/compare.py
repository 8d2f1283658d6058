"""Compare a student's output with an expected one and say precisely how they differ.

Shared by the self-checks, the mistake catalog and the grader. Tensors, numbers, lists of numbers,
dicts and tuples of those are understood; everything is compared on the CPU in float64.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

__all__ = ["Comparison", "compare", "as_tensor"]


@dataclass(frozen=True)
class Comparison:
    """ok, the largest absolute error (inf when shapes or types differ) and, when not ok, why."""
    ok: bool
    max_error: float
    message: str = ""


def as_tensor(value: Any) -> torch.Tensor | None:
    """A tensor for numbers, numpy arrays and lists of numbers; None for anything else."""
    if torch.is_tensor(value):
        return value
    if isinstance(value, (bool, int, float, np.ndarray, np.number)):
        return torch.as_tensor(value)
    if isinstance(value, (list, tuple)) and all(isinstance(v, (int, float, np.number)) for v in value):
        return torch.as_tensor(value)
    return None


def _describe(value: Any) -> str:
    if torch.is_tensor(value):
        return f"a tensor of shape {tuple(value.shape)}"
    if isinstance(value, (list, tuple)):
        inner = f" of {type(value[0]).__name__}" if value else ""
        return f"a {type(value).__name__} of length {len(value)}{inner}"
    return f"{type(value).__name__} {value!r}"[:80]


def _compare_tensors(out: Any, exp: torch.Tensor, rtol: float, atol: float) -> Comparison:
    got = as_tensor(out)
    if got is None:
        hint = (" (a list of tensors: combine it with torch.stack)"
                if isinstance(out, (list, tuple)) and out and torch.is_tensor(out[0]) else "")
        return Comparison(False, float("inf"), f"expected a tensor of shape {tuple(exp.shape)}, got {_describe(out)}{hint}")
    got = got.detach().cpu()
    exp = exp.detach().cpu()
    if tuple(got.shape) != tuple(exp.shape):
        # a (1,)-shaped answer for a 0-d one (or the like) carries the same numbers
        if got.numel() == exp.numel() and got.squeeze().shape == exp.squeeze().shape:
            got = got.reshape(exp.shape)
        else:
            return Comparison(False, float("inf"), f"expected shape {tuple(exp.shape)}, got {tuple(got.shape)}")
    if got.is_complex() or exp.is_complex():
        got, exp = torch.view_as_real(got.to(torch.complex128)), torch.view_as_real(exp.to(torch.complex128))
    g, e = got.double(), exp.double()
    bad_values = ~torch.isfinite(g) & torch.isfinite(e)
    if bool(bad_values.any()):
        idx = tuple(int(i) for i in bad_values.nonzero()[0])
        return Comparison(False, float("inf"), f"contains {g[idx].item()} at index {idx} where {e[idx].item():.4g} is "
                                               "expected (a square root of a negative number, or a division by zero?)")
    if g.numel() == 0:
        return Comparison(True, 0.0)
    nan_mismatch = torch.isnan(g) != torch.isnan(e)
    if bool(nan_mismatch.any()):
        idx = tuple(int(i) for i in nan_mismatch.nonzero()[0])
        return Comparison(False, float("inf"), f"expected {e[idx].item()} at index {idx}, got {g[idx].item()}")
    err = (g - e).abs().nan_to_num(nan=0.0)
    max_error = float(err.max())
    allowed = atol + rtol * e.abs().nan_to_num(nan=0.0)
    if bool((err <= allowed).all()):
        return Comparison(True, max_error)
    flat = int((err - allowed).argmax())
    idx = tuple(int(i) for i in np.unravel_index(flat, tuple(e.shape))) if e.ndim else ()
    where = f" at index {idx}" if idx else ""
    return Comparison(False, max_error, f"largest error {max_error:.3g}{where}: expected {e[idx].item():.6g}, "
                                        f"got {g[idx].item():.6g}")


def compare(output: Any, expected: Any, *, rtol: float = 1e-4, atol: float = 1e-5) -> Comparison:
    """Elementwise |output − expected| <= atol + rtol·|expected|, recursing into dicts and tuples."""
    if isinstance(expected, dict):
        if not isinstance(output, dict):
            return Comparison(False, float("inf"), f"expected a dict with keys {sorted(expected)}, got {_describe(output)}")
        missing = sorted(set(expected) - set(output))
        if missing:
            return Comparison(False, float("inf"), f"the returned dict lacks the key(s) {missing}")
        worst = 0.0
        for key in expected:
            c = compare(output[key], expected[key], rtol=rtol, atol=atol)
            if not c.ok:
                return Comparison(False, c.max_error, f"[{key!r}] {c.message}")
            worst = max(worst, c.max_error)
        return Comparison(True, worst)
    if isinstance(expected, (tuple, list)) and not all(isinstance(v, (int, float)) for v in expected):
        if not isinstance(output, (tuple, list)) or len(output) != len(expected):
            return Comparison(False, float("inf"), f"expected a tuple of {len(expected)} items, got {_describe(output)}")
        worst = 0.0
        for i, (o, e) in enumerate(zip(output, expected)):
            c = compare(o, e, rtol=rtol, atol=atol)
            if not c.ok:
                return Comparison(False, c.max_error, f"[item {i}] {c.message}")
            worst = max(worst, c.max_error)
        return Comparison(True, worst)
    exp = as_tensor(expected)
    if exp is None:
        ok = output == expected
        return Comparison(bool(ok), 0.0 if ok else float("inf"), "" if ok else f"expected {expected!r}, got {output!r}")
    return _compare_tensors(output, exp, rtol, atol)
