"""Keeping the course's own equations away from the TODO that asks for them.

Every equation function is decorated with `equation`. While a self-check runs a student's method,
it blocks the equations that method is asked to write (`blocked`) for callers outside the
package, so a TODO that only calls `labsupport.maths.<its equation>` fails its check with a message that says so, as it would score 0
in the grader, whose sandbox does not contain these functions at all.
"""
from __future__ import annotations

import contextlib
import functools
import sys
from typing import Callable, Iterable, Iterator, TypeVar

__all__ = ["equation", "blocked", "OwnEquationCalled"]

F = TypeVar("F", bound=Callable)
_BLOCKED: frozenset[str] = frozenset()


class OwnEquationCalled(RuntimeError):
    """A student's method called the package's function for the very equation it is asked to write."""


def equation(fn: F) -> F:
    """Mark `fn` as one of the course's equations (callable everywhere except inside its own TODO's check)."""
    name = fn.__name__

    @functools.wraps(fn)
    def guarded(*args, **kwargs):
        # the package's own callers (a reference, a catalogued mistake, a sampler the skeleton inherits) pass
        if name in _BLOCKED and not sys._getframe(1).f_globals.get("__name__", "").startswith("labsupport."):
            raise OwnEquationCalled(
                f"it calls labsupport.maths.{name}, the package's own version of the equation this TODO asks you "
                f"to write; write the formula yourself (the grader gives no points for calling it)")
        return fn(*args, **kwargs)

    return guarded  # type: ignore[return-value]


@contextlib.contextmanager
def blocked(names: Iterable[str]) -> Iterator[None]:
    """Within the block, the equations in `names` raise OwnEquationCalled."""
    global _BLOCKED
    old, _BLOCKED = _BLOCKED, frozenset(names)
    try:
        yield
    finally:
        _BLOCKED = old
