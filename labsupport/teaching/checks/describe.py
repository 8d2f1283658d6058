"""What the comparison shows when no known mistake explains a failure: a fact, never a guess.

Each finding holds on every failing case: the output is the reference times one constant (the sign
flipped when it is −1), or the reference computed one timestep off, or only some kinds of case fail.
"""
from __future__ import annotations

from typing import Any, Callable

import torch

from .compare import as_tensor, compare

__all__ = ["describe_failure"]


def _factor(out: Any, exp: Any) -> float | None:
    """k when out = k·expected elementwise (to a part in a thousand), else None."""
    o, e = as_tensor(out), as_tensor(exp)
    if o is None or e is None or o.shape != e.shape or not e.is_floating_point():
        return None
    o, e = o.detach().double().cpu().flatten(), e.detach().double().cpu().flatten()
    if not (torch.isfinite(o).all() and torch.isfinite(e).all()) or float(e.abs().max()) == 0:
        return None
    k = float((o * e).sum() / (e * e).sum())
    return k if bool(((o - k * e).abs() <= 1e-3 * e.abs().max()).all()) else None


def _constant_factor(failing) -> str | None:
    ks = [_factor(out, exp) for out, _, exp in failing]
    if not ks or any(k is None for k in ks) or max(ks) - min(ks) > 1e-3 * max(1.0, abs(ks[0])):
        return None
    k = ks[0]
    if abs(k + 1) < 1e-3:
        return "on every failing case your output is exactly minus the reference: a sign is flipped"
    return (f"on every failing case your output is {k:.4g} × the reference: a constant factor is missing or extra "
            "(a coefficient, a square root of a constant, a 2?)")


def _shifted(failing, reference: Callable[[dict], Any], rtol: float, atol: float) -> str | None:
    """The output is the reference at t − 1 (or t + 1) on every failing case that has an int t."""
    for delta, word in ((-1, "t − 1"), (1, "t + 1")):
        hits = 0
        for out, inputs, _ in failing:
            t = inputs.get("t")
            if type(t) is not int:
                return None
            try:
                moved = reference({**inputs, "t": t + delta})
            except Exception:
                break
            if not compare(out, moved, rtol=10 * rtol, atol=10 * atol).ok:
                break
            hits += 1
        else:
            if hits:
                return (f"on every failing case your output equals the reference's at {word}: a timestep is read "
                        "one step off (t already is the step; tables are indexed by t)")
    return None


def describe_failure(runs: list[tuple[Any, dict, Any, str, bool]], reference: Callable[[dict], Any],
                     rtol: float, atol: float) -> list[str]:
    """Facts about a failure that no mistake explains; `runs` holds (output, inputs, expected, label, fails)."""
    failing = [(o, i, e) for o, i, e, _, bad in runs if bad]
    if not failing:
        return []
    found = [f for f in (_constant_factor(failing), _shifted(failing, reference, rtol, atol)) if f]
    passing = [label for *_, label, bad in runs if not bad]
    if passing:
        bad = [label for *_, label, fails in runs if fails]
        found.append(f"it fails on {len(bad)} of {len(runs)} cases: {'; '.join(bad[:4])}"
                     f"{' …' if len(bad) > 4 else ''} (and passes the others, so look at what those cases have in "
                     "common)")
    return found
