"""Wrong variants derived from the package's own code: each of its one-term slips, as a Mistake.

A method's check lists where its answer comes from (`MethodSpec.own_maths`, the equations of
labsupport.maths it asks for, and `derive_from`, reference code such as a sampler's loop). Every
one-term slip of that code (slipgen.py) becomes a variant: the reference run with the slipped copy
patched in, and an explanation generated from the change. They join the hand-written mistakes in the
catalogue, which names one only when it alone explains every case.
"""
from __future__ import annotations

import ast
import contextlib
import importlib
import inspect
import sys
import textwrap
from typing import Any, Callable, Iterator

from .catalog import Mistake
from .slipgen import slips

__all__ = ["derived_mistakes", "patched", "resolve"]


def resolve(path: str) -> tuple[Any, str, Any]:
    """(owner, attribute, object) of a dotted path under labsupport: 'maths.ddim.ddim_sigma',
    'samplers.ddim.DDIMSampler.sample'; a bare name is looked up in labsupport.maths."""
    parts = ("maths." + path if "." not in path else path).split(".")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            owner: Any = importlib.import_module("labsupport." + ".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for name in parts[cut:-1]:
            owner = getattr(owner, name)
        if isinstance(owner, type) or hasattr(owner, parts[-1]):
            return owner, parts[-1], inspect.getattr_static(owner, parts[-1]) if isinstance(owner, type) else getattr(owner, parts[-1])
    raise ValueError(f"cannot find labsupport.{path}")


_HOLDERS: dict[tuple[int, int], list[tuple[Any, str]]] = {}


def _holders(obj: Any) -> list[tuple[Any, str]]:
    """Every (module, name) of labsupport whose global `name` is `obj` (its home and its importers).

    Looked up once per object and number of loaded modules: a variant runs on every case of a check.
    """
    key = (id(obj), len(sys.modules))
    if key not in _HOLDERS:
        _HOLDERS[key] = [(m, k) for name, m in list(sys.modules.items()) if name.startswith("labsupport")
                         and m is not None for k, v in list(vars(m).items()) if v is obj]
    return _HOLDERS[key]


@contextlib.contextmanager
def patched(owner: Any, attr: str, original: Any, replacement: Any) -> Iterator[None]:
    """Within the block, `replacement` stands wherever labsupport refers to `original`."""
    places = [(owner, attr)] if isinstance(owner, type) else _holders(original)
    for place, name in places:
        setattr(place, name, replacement)
    try:
        yield
    finally:
        for place, name in places:
            setattr(place, name, original)


def _compile(fn_ast: ast.FunctionDef, original: Any, home: dict) -> Callable | None:
    """The slipped function, compiled with the original's globals (None when it does not compile)."""
    fn_ast = ast.fix_missing_locations(fn_ast)
    fn_ast.decorator_list = [d for d in fn_ast.decorator_list if ast.unparse(d) not in ("equation",)]
    module = ast.Module([fn_ast], type_ignores=[])
    ns: dict = {}
    try:
        exec(compile(module, f"<slip of {fn_ast.name}>", "exec"), dict(home), ns)
    except Exception:
        return None
    new = ns.get(fn_ast.name)
    return staticmethod(new) if isinstance(original, staticmethod) and not isinstance(new, staticmethod) else new


def _source_ast(obj: Any) -> ast.FunctionDef:
    fn = obj.__func__ if isinstance(obj, (staticmethod, classmethod)) else obj
    tree = ast.parse(textwrap.dedent(inspect.getsource(inspect.unwrap(fn))))
    return tree.body[0]


def _variant(run_reference: Callable[[dict], Any], owner, attr, original, replacement) -> Callable[..., Any]:
    def fn(**inputs):
        with patched(owner, attr, original, replacement):
            return run_reference(inputs)
    return fn


def derived_mistakes(sources: tuple[str, ...], run_reference: Callable[[dict], Any]) -> list[Mistake]:
    """A Mistake for every one-term slip of every source, each computing `run_reference` on the slipped code."""
    out: list[Mistake] = []
    for path in sources:
        owner, attr, original = resolve(path)
        fn = original.__func__ if isinstance(original, (staticmethod, classmethod)) else original
        home = inspect.unwrap(fn).__globals__
        counts: dict[str, int] = {}
        for slip in slips(_source_ast(original)):
            new = _compile(slip.tree, original, home)
            if new is None:
                continue
            counts[slip.kind] = counts.get(slip.kind, 0) + 1
            where = attr if not isinstance(owner, type) else f"{owner.__name__}.{attr}"
            out.append(Mistake(f"{where}: {slip.kind} {counts[slip.kind]}",
                               f"your result is what labsupport's {where} gives with {slip.text}",
                               _variant(run_reference, owner, attr, original, new)))
    return out
