"""The one catalog of known wrong variants, shared by the self-checks and the grader.

    MISTAKES[piece][method] -> [Mistake(name, explanation, fn | test), ...]
    find_mistake(piece, method, output, inputs) -> the first Mistake the output matches, or None
    explained_mistakes(piece, method, runs) -> the Mistakes that explain the outputs of every case

Each piece module (forward_process.py, ddpm_sampler.py, ...) writes its wrong variants next to its
check and hands them to `register` as the `Piece`'s `mistakes`, which puts them here; this module
imports no piece. A Mistake's `fn(**inputs)` computes the wrong version of `method` on the same
inputs (None where the variant does not apply, or cannot be told apart from the right answer). A few
mistakes cannot be recomputed because they involve noise the student drew; those carry
`test(output, inputs)` instead.

`inputs` is one dict holding what the object is built from and what the method is called with, under
the names the assignment uses (extra keys are ignored); each piece module lists its own. `seed`
stands for `generator=torch.Generator().manual_seed(seed)`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch

from .compare import as_tensor, compare

__all__ = ["Mistake", "MISTAKES", "register_mistakes", "register_derived", "derived_for", "mistakes_for",
           "sole_explanation", "find_mistake", "find_mistakes",
           "explained_mistakes", "describe"]


@dataclass(frozen=True)
class Mistake:
    """A known wrong variant of one method and what went wrong, in plain words."""
    name: str
    explanation: str
    fn: Callable[..., Any] | None = None
    test: Callable[[Any, dict], bool] | None = None

    def __repr__(self) -> str:
        return f"Mistake({self.name!r})"


MISTAKES: dict[str, dict[str, list[Mistake]]] = {}
# (piece, method) -> a function that builds the variants derived from the package's code (derived.py),
# called the first time they are needed, and its result
_DERIVED: dict[tuple[str, str], Callable[[], list[Mistake]]] = {}
_DERIVED_BUILT: dict[tuple[str, str], list[Mistake]] = {}


def register_mistakes(piece: str, by_method: dict[str, list[Mistake]]) -> dict[str, list[Mistake]]:
    """File `piece`'s wrong variants, {method: [Mistake, ...]}, under MISTAKES[piece] (the same dict)."""
    MISTAKES[piece] = by_method
    return by_method


def register_derived(piece: str, method: str, build: Callable[[], list[Mistake]]) -> None:
    """File the derived variants of `piece`.`method`; `build()` makes them when first needed."""
    _DERIVED[piece, method] = build
    _DERIVED_BUILT.pop((piece, method), None)


def derived_for(piece: str, method: str) -> list[Mistake]:
    key = (piece, method)
    if key not in _DERIVED_BUILT:
        _DERIVED_BUILT[key] = _DERIVED[key]() if key in _DERIVED else []
    return list(_DERIVED_BUILT[key])


def mistakes_for(piece: str, method: str, *, derived: bool = True) -> list[Mistake]:
    """The catalogued wrong variants of `piece`.`method`: the hand-written ones, then (with `derived`) the
    one-term slips of the code its answer comes from (empty when none are known)."""
    return list(MISTAKES.get(piece, {}).get(method, [])) + (derived_for(piece, method) if derived else [])


def _tells(output: Any, wrong: Any, expected: Any, rtol: float, atol: float) -> bool:
    """`output` is the variant's result `wrong` (tenfold tolerances) and, with `expected` given, ten times
    closer to it than it is to `expected`, which it must differ from."""
    near = compare(output, wrong, rtol=10 * rtol, atol=10 * atol)
    if expected is None:
        return near.ok
    apart = compare(wrong, expected, rtol=rtol, atol=atol)
    return near.ok and not apart.ok and near.max_error <= 0.1 * apart.max_error


def _nonfinite(value: Any) -> bool:
    t = as_tensor(value)
    return t is not None and t.is_floating_point() and not bool(torch.isfinite(t).all())


def _safe(fn: Callable[[], Any]) -> Any:
    """fn(), or None where it cannot run on these inputs (a variant that cannot run does not match)."""
    try:
        return fn()
    except Exception:
        return None


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
        if m.test is not None:
            hit = _safe(lambda: bool(m.test(output, inputs)))
        else:
            wrong = _safe(lambda: m.fn(**inputs))
            hit = wrong is not None and _safe(lambda: _tells(output, wrong, expected, rtol, atol))
        if hit:
            found.append(m)
    return found


@torch.no_grad()
def explained_mistakes(piece: str, method: str, runs: list[tuple[Any, dict, Any]], *, rtol: float = 1e-4,
                       atol: float = 1e-5) -> list[Mistake]:
    """The catalogued mistakes that explain what a method returned on every case, passing or failing.

    `runs` holds (output, inputs, expected) of each case that returned. A variant (`fn`) is named when on
    every case where it applies (its result is not None) the output is its result: on a failing case
    as `find_mistakes` matches it, on a passing case within the tenfold tolerances; and it must apply
    to at least one failing case. So a slip that shows only on some cases is named from those, but a
    variant that a passing case contradicts, or that leaves a failing case it applies to unexplained,
    is not. A case whose output holds NaN or inf where the variant's does not is left out: the package
    avoids some of those (0·√(negative) at η = 0) that a student's code meets. A `test` mistake, which
    judges a wrong output alone, is named when it holds on some failing case.
    """
    found = []
    failing = [not compare(out, exp, rtol=rtol, atol=atol).ok for out, _, exp in runs]
    for m in mistakes_for(piece, method):
        hits, consistent = 0, True
        for (out, inputs, exp), fails in zip(runs, failing):
            if m.test is not None:
                hits += bool(fails and _safe(lambda: bool(m.test(out, inputs))))
                continue
            wrong = _safe(lambda: m.fn(**inputs))
            if wrong is None or (_nonfinite(out) and not _nonfinite(wrong)):
                continue   # a NaN the package's code avoids (0·√(negative) at η = 0, say) tells nothing either way
            if not _safe(lambda: _tells(out, wrong, exp if fails else None, rtol, atol)):
                consistent = False
                break
            hits += fails
        if consistent and hits:
            found.append(m)
    return found


@torch.no_grad()
def sole_explanation(found: list[Mistake], runs: list[tuple[Any, dict, Any]], *, rtol: float = 1e-4,
                     atol: float = 1e-5) -> Mistake | None:
    """The one variant among `found` that explains `runs`, or None when two different ones do.

    Variants that give the same result on every case where both apply are one variant written twice (a hand-written
    mistake and the slip it describes, say): the first of them, hand-written ones first, stands for all.
    A variant that reproduces the output outranks a `test` mistake, which only judges the output (a
    wrong coefficient also makes x_t look as if it ignored its noise); two `test` mistakes are two.
    """
    computed = [m for m in found if m.test is None]
    if not computed:
        return found[0] if len(found) == 1 else None
    first = computed[0]
    for other in computed[1:]:
        for _, inputs, _ in runs:
            a, b = _safe(lambda: first.fn(**inputs)), _safe(lambda: other.fn(**inputs))
            # told apart where both apply, by the check's own tolerances
            if a is not None and b is not None and not _safe(lambda: compare(a, b, rtol=rtol, atol=atol).ok):
                return None
    return first


def find_mistake(piece: str, method: str, output: Any, inputs: dict, *, expected: Any = None,
                 rtol: float = 1e-4, atol: float = 1e-5) -> Mistake | None:
    """The first catalogued mistake that `output` matches, or None."""
    found = find_mistakes(piece, method, output, inputs, expected=expected, rtol=rtol, atol=atol)
    return found[0] if found else None


def describe(pieces: list[str] | None = None) -> dict[str, dict[str, list[str]]]:
    """{piece: {method: [mistake names]}} of `pieces` (default: all), for the documentation and the tests."""
    return {p: {m: [x.name for x in ms] for m, ms in MISTAKES[p].items()}
            for p in (MISTAKES if pieces is None else pieces)}
