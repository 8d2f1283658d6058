"""The one catalog of known wrong variants, shared by the self-checks and the grader.

    MISTAKES[piece][method] -> [Mistake(name, explanation, fn | test), ...]
    find_mistake(piece, method, output, inputs) -> the first Mistake the output matches, or None

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

from .compare import compare

__all__ = ["Mistake", "MISTAKES", "register_mistakes", "mistakes_for", "find_mistake", "find_mistakes", "describe"]


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


def register_mistakes(piece: str, by_method: dict[str, list[Mistake]]) -> dict[str, list[Mistake]]:
    """File `piece`'s wrong variants, {method: [Mistake, ...]}, under MISTAKES[piece] (the same dict)."""
    MISTAKES[piece] = by_method
    return by_method


def mistakes_for(piece: str, method: str) -> list[Mistake]:
    """The catalogued wrong variants of `piece`.`method` (empty when none are known)."""
    return list(MISTAKES.get(piece, {}).get(method, []))


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
        try:
            if m.test is not None:
                hit = bool(m.test(output, inputs))
            else:
                wrong = m.fn(**inputs)
                if wrong is None:
                    continue
                near = compare(output, wrong, rtol=10 * rtol, atol=10 * atol)
                if expected is None:
                    hit = near.ok
                else:
                    apart = compare(wrong, expected, rtol=rtol, atol=atol)
                    hit = near.ok and not apart.ok and near.max_error <= 0.1 * apart.max_error
        except Exception:  # a variant that cannot run on these inputs does not match
            continue
        if hit:
            found.append(m)
    return found


def find_mistake(piece: str, method: str, output: Any, inputs: dict, *, expected: Any = None,
                 rtol: float = 1e-4, atol: float = 1e-5) -> Mistake | None:
    """The first catalogued mistake that `output` matches, or None."""
    found = find_mistakes(piece, method, output, inputs, expected=expected, rtol=rtol, atol=atol)
    return found[0] if found else None


def describe(pieces: list[str] | None = None) -> dict[str, dict[str, list[str]]]:
    """{piece: {method: [mistake names]}} of `pieces` (default: all), for the documentation and the tests."""
    return {p: {m: [x.name for x in ms] for m, ms in MISTAKES[p].items()}
            for p in (MISTAKES if pieces is None else pieces)}
