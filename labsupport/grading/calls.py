"""A check's constructor and method call, turned into data the worker can replay.

The checks build and call the student's object in their own words (`piece.build(cls, inputs)`,
`spec.call(obj, inputs)`); the grader runs them on recorders that stand for the student's class,
so what reaches the worker is only the recorded constructor arguments, method name and arguments.
"""
from __future__ import annotations

__all__ = ["recorded_call"]


class _Pending:
    """What a recorded call returns: the real value comes from the worker."""


class _Instance:
    def __init__(self, init_args, init_kwargs):
        self.init = (list(init_args), dict(init_kwargs))
        self.calls: list[tuple[str, list, dict]] = []

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)

        def record(*args, **kwargs):
            self.calls.append((name, list(args), dict(kwargs)))
            return _Pending()
        return record


class _Class:
    """Stands for the student's class while the check's `build` runs: it records the constructor."""

    def __init__(self, name: str):
        self.__name__ = name
        self.instance: _Instance | None = None

    def __call__(self, *args, **kwargs):
        self.instance = _Instance(args, kwargs)
        return self.instance


def recorded_call(piece, spec, inputs: dict) -> tuple[dict, str, dict]:
    """(target, attribute, value) of `spec.call(piece.build(student, inputs), inputs)`, as data.

    The check builds and calls as it always does; a recorder stands for the student's object.
    """
    cls = _Class(piece.defines[0])
    built = piece.build(cls, inputs) if len(piece.defines) == 1 else cls
    if built is cls:  # several functions, or a lone one that the check calls as it is: looked up by name
        holder = _Instance((), {})
        built, kind = piece.build(holder, inputs), "functions"
    else:
        holder, kind = (built if isinstance(built, _Instance) else None), "class"
    if not isinstance(built, _Instance):
        raise TypeError(f"the check of {piece.id} does not build through its argument")
    spec.call(built, inputs)
    if len(built.calls) != 1:
        raise TypeError(f"the check of {piece.id}.{spec.name} makes {len(built.calls)} calls; the grader needs one")
    attr, args, kwargs = built.calls[0]
    init_args, init_kwargs = holder.init if kind == "class" else ([], {})
    value = {"init_args": init_args, "init_kwargs": init_kwargs, "args": args, "kwargs": kwargs}
    return {"kind": kind, "defines": list(piece.defines)}, attr, value
