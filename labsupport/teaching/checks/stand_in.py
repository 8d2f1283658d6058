"""The student's class with some of its methods answered by labsupport's reference.

A method that builds on others (a MethodSpec's `uses`: `sample` calls `ddim_step`) fails whenever
one of those fails. Re-running its cases on `with_reference(cls, reference, failing)` tells the two
apart: when it passes there, the failure is inherited and the student should fix the other method
first. The reference object is built from the same constructor arguments as the student's, so it
sees the same network, schedule and options; everything else stays the student's own code.
"""
from __future__ import annotations

from typing import Iterable

__all__ = ["with_reference"]

_ATTR = "_labsupport_reference"


def _delegate(name: str):
    def method(self, *args, **kwargs):
        return getattr(getattr(self, _ATTR), name)(*args, **kwargs)
    method.__name__ = method.__qualname__ = name
    return method


def with_reference(cls: type, reference: type, methods: Iterable[str]) -> type:
    """A subclass of `cls` whose `methods` are the reference's, run on a reference object built alongside."""
    def __init__(self, *args, **kwargs):
        cls.__init__(self, *args, **kwargs)
        object.__setattr__(self, _ATTR, reference(*args, **kwargs))

    namespace = {"__init__": __init__, **{name: _delegate(name) for name in methods}}
    return type(cls.__name__, (cls,), namespace)
