"""What the grading view (view.py) puts where a reference or a piece of the course's maths was.

Standard library only: it is imported by the stubs of the view, in the worker's sandbox.
"""
from __future__ import annotations

__all__ = ["Unavailable", "missing_attribute"]


class Unavailable(RuntimeError):
    """Raised by every reference and course function that the grading view leaves out."""

    def __init__(self, name: str):
        super().__init__(f"{name} is labsupport's reference implementation (or course code that computes the same "
                         "thing); it is not available while your code is graded: write this part yourself")
        self.name = name


class _Stub:
    """Stands for a name of a left-out module: using it in any way raises `Unavailable`."""

    def __init__(self, name: str):
        object.__setattr__(self, "_name", name)

    def __call__(self, *args, **kwargs):
        raise Unavailable(self._name)

    def __getattr__(self, attr: str):
        if attr.startswith("__") and attr.endswith("__"):
            raise AttributeError(attr)
        raise Unavailable(f"{self._name}.{attr}")

    def __getitem__(self, key):
        raise Unavailable(self._name)

    def __iter__(self):
        raise Unavailable(self._name)

    def __mro_entries__(self, bases):
        raise Unavailable(self._name)

    def __repr__(self) -> str:
        return f"<{self._name}: not available while grading>"


def missing_attribute(module: str, name: str):
    """The module-level `__getattr__` of a left-out module."""
    if name.startswith("__") and name.endswith("__"):
        raise AttributeError(f"module {module!r} has no attribute {name!r}")
    return _Stub(f"{module}.{name}")
