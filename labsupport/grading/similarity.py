"""Making copying visible: TODO code that matches labsupport's reference, or another student's.

    normalized(fn)              one function's canonical form (an `ast.dump` of its body)
    reference_forms()           (piece, method) -> the forms of labsupport's reference implementation
    student_forms(sub)          (piece, method) -> the form of what the student wrote
    copied_from_reference(sub)  (piece, method) -> why it is flagged
    similar_pairs(forms)        pairs of students whose forms of one method are identical

The canonical form is `forms.normalized`. Two functions have the same form when they differ only in layout, comments, docstrings, type
annotations, decorators, their own name and signature, the names of their arguments and local
variables (renamed v0, v1, ... by first occurrence in the body), the text of error messages in
`raise` statements, and `lab.`, `labsupport.` or `labsupport.<module>.` in front of a name (also
`plots.` after `from labsupport.teaching import plots`, for any module of labsupport). Attribute
names, keyword names at call sites, other global names, other constants and the order of statements
must be the same. The signature is left out because a student keeps the skeleton's, which may differ
from the reference's.

Only substantial forms count (`substantial`): short methods that are the lesson's formula written
once (`guided_noise`, `compute_stochastic_variance`) come out the same whoever writes them.
Everything here runs in the grader's process and only parses code; nothing is executed.
"""
from __future__ import annotations

import ast
import copy
import functools
import inspect
import itertools

from .forms import (_PREFIXES, MIN_NODES, MIN_STATEMENTS, SAME_NAMES, _function_node, form_size,
                    normalized, substantial)
from .submission import Submission, probe_cells

__all__ = ["normalized", "reference_forms", "student_forms", "copied_from_reference", "reference_copies",
           "similar_pairs", "substantial", "form_size", "MIN_STATEMENTS", "MIN_NODES", "SAME_NAMES"]

# -- the reference ---------------------------------------------------------------------------------
def _qualname(obj) -> str:
    return f"{obj.__module__}.{obj.__qualname__}"


def _reference_function(piece, method: str):
    """(the function object of `method`'s reference, its qualified name)."""
    ref = piece.reference.get(method)
    if ref is not None and not isinstance(ref, type):
        return inspect.unwrap(ref), _qualname(ref)
    for cls in piece.reference.values():
        if not isinstance(cls, type):
            continue
        owner = next((k for k in cls.__mro__ if method in vars(k)), None)
        if owner is not None:
            fn = vars(owner)[method]
            fn = getattr(fn, "__func__", fn)  # staticmethod, classmethod
            return inspect.unwrap(fn), f"{_qualname(owner)}.{method}"
    raise KeyError(f"piece {piece.id!r} has no reference for {method!r}")


def _helper_call(fn, node: ast.FunctionDef) -> tuple[list[ast.stmt], ast.Call, object] | None:
    """(statements before it, the call, the helper) when `node` ends in `return helper(...)`, helper a
    function of labsupport (by name, or through lab./labsupport.)."""
    if not node.body or not isinstance(node.body[-1], ast.Return) or not isinstance(node.body[-1].value, ast.Call):
        return None
    call = node.body[-1].value
    target = call.func
    while isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name) and target.value.id in _PREFIXES:
        target = ast.Name(id=target.attr, ctx=ast.Load())
    if not isinstance(target, ast.Name):
        return None
    helper = fn.__globals__.get(target.id)
    if not inspect.isfunction(helper) or not helper.__module__.startswith("labsupport."):
        return None
    if any(isinstance(a, ast.Starred) for a in call.args) or any(k.arg is None for k in call.keywords):
        return None
    return node.body[:-1], call, inspect.unwrap(helper)


class _Substitute(ast.NodeTransformer):
    """Replaces the helper's parameters by the caller's argument expressions."""

    def __init__(self, values: dict[str, ast.expr]):
        self.values = values

    def visit_Name(self, node: ast.Name):
        if node.id not in self.values:
            return node
        value = self.values[node.id]
        if isinstance(node.ctx, ast.Load):
            return copy.deepcopy(value)
        if isinstance(value, ast.Name):
            return ast.Name(id=value.id, ctx=node.ctx)
        raise ValueError("assigns to a parameter passed as an expression")


def _inlined(fn, node: ast.FunctionDef) -> tuple[list[ast.FunctionDef], str] | None:
    """`node` with its final `return helper(...)` replaced by the helper's body, two ways (the
    parameters replaced by the arguments, or bound to them by assignments first), and the helper's
    name; None when `node` does not end in a call of a labsupport function."""
    found = _helper_call(fn, node)
    if found is None:
        return None
    before, call, helper = found
    h = _function_node(inspect.getsource(helper))
    params = [a.arg for a in (*h.args.posonlyargs, *h.args.args)]
    if h.args.vararg or h.args.kwarg or len(call.args) > len(params):
        return None
    values = dict(zip(params, call.args))
    values.update({k.arg: k.value for k in call.keywords})
    defaults = dict(zip(reversed(params), reversed(h.args.defaults)))
    defaults.update({a.arg: d for a, d in zip(h.args.kwonlyargs, h.args.kw_defaults) if d is not None})
    for name in (*params, *(a.arg for a in h.args.kwonlyargs)):
        if name not in values:
            if name not in defaults:
                return None
            values[name] = defaults[name]

    def variant(body: list[ast.stmt]) -> ast.FunctionDef:
        out = copy.deepcopy(node)
        out.body = copy.deepcopy(before) + body
        return out

    variants = []
    try:
        variants.append(variant([_Substitute(values).visit(copy.deepcopy(s)) for s in h.body]))
    except ValueError:
        pass
    binds = [ast.Assign(targets=[ast.Name(id=k, ctx=ast.Store())], value=copy.deepcopy(v))
             for k, v in values.items() if not (isinstance(v, ast.Name) and v.id == k)]
    variants.append(variant(binds + copy.deepcopy(h.body)))
    return variants, _qualname(helper)


@functools.lru_cache(maxsize=1)
def _reference_index() -> dict[tuple[str, str], dict[str, str]]:
    """(piece, method) -> {form: what it is the form of}."""
    from ..teaching.checks import PIECES

    index: dict[tuple[str, str], dict[str, str]] = {}
    for piece in PIECES.values():
        for spec in piece.methods:
            fn, name = _reference_function(piece, spec.name)
            node = _function_node(inspect.getsource(fn))
            forms = {normalized(node): name}
            inlined = _inlined(fn, node)
            if inlined:
                nodes, helper = inlined
                for variant in nodes:
                    forms.setdefault(normalized(variant), f"{name}, with {helper} written out")
            index[(piece.id, spec.name)] = forms
    return index


def reference_forms() -> dict[tuple[str, str], set[str]]:
    """(piece, graded method) -> the normalized forms of labsupport's reference implementation.

    A reference that ends in `return helper(...)`, helper a labsupport function (add_noise ->
    q_sample, create_timestep_schedule -> timestep_schedule), also gives the forms with the helper's
    body written out in its place. Delegations to other methods (`self.step`) are not expanded.
    """
    return {key: set(forms) for key, forms in _reference_index().items()}


# -- the student's code ----------------------------------------------------------------------------
def _where(piece, method: str) -> str | None:
    """The class that holds `method` in the student's code, or None for a top-level function."""
    ref = piece.reference.get(method)
    if ref is not None and not isinstance(ref, type):
        return None
    for name, cls in piece.reference.items():
        if isinstance(cls, type) and hasattr(cls, method):
            return name
    return piece.defines[0]


def student_forms(sub: Submission) -> dict[tuple[str, str], str]:
    """(piece, graded method) -> the normalized form of what the student wrote, from the piece's cells.

    As in a kernel run from the top: the last definition of a function counts, the last `class`
    statement of a class replaces the earlier ones (a method it lacks has no form), cells that do
    not parse are skipped.
    """
    from ..teaching.checks import PIECES

    if sub.nb is None:
        return {}
    sources = {c["index"]: c["source"] for c in probe_cells(sub)}
    out: dict[tuple[str, str], str] = {}
    for piece_id, where in sub.pieces.items():
        piece = PIECES.get(piece_id)
        if piece is None:
            continue
        top: dict[str, ast.AST] = {}  # last top-level def or class of each name
        for index in sorted(where.cells):
            try:
                tree = ast.parse(sources.get(index, ""))
            except (SyntaxError, ValueError, RecursionError, MemoryError):
                continue
            for node in tree.body:
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    top[node.name] = node
        for spec in piece.methods:
            holder = _where(piece, spec.name)
            if holder is None:
                fn = top.get(spec.name)
                fn = fn if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)) else None
            else:
                cls = top.get(holder)
                fn = None
                if isinstance(cls, ast.ClassDef):
                    for node in cls.body:
                        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == spec.name:
                            fn = node
            if fn is not None:
                try:
                    out[(piece_id, spec.name)] = normalized(fn)
                except (RecursionError, MemoryError):
                    continue
    return out


def copied_from_reference(sub: Submission) -> dict[tuple[str, str], str]:
    """(piece, method) -> why, for every substantial method whose form equals the reference's."""
    return reference_copies(student_forms(sub))


def reference_copies(forms: dict[tuple[str, str], str]) -> dict[tuple[str, str], str]:
    """The same, from forms already made (`student_forms`)."""
    index = _reference_index()
    out = {}
    for key, form in forms.items():
        name = index.get(key, {}).get(form)
        if name is not None and substantial(form):
            out[key] = f"matches labsupport's reference implementation ({name}) {SAME_NAMES}"
    return out


def similar_pairs(forms_by_student: dict[str, dict[tuple[str, str], str]]) -> list[dict]:
    """Pairs of students whose substantial forms of one method are identical, sorted.

    Each: {"students": [a, b], "piece", "method", "why", "reference", "shared_by"}: `reference` says
    that the form is also labsupport's reference (both are then flagged as copies too), `shared_by`
    how many students have it (many: more likely code the skeleton and docstring dictate).
    """
    groups: dict[tuple[str, str, str], list[str]] = {}
    for student, forms in forms_by_student.items():
        for (piece, method), form in forms.items():
            groups.setdefault((piece, method, form), []).append(student)
    index = _reference_index()
    out = []
    for (piece, method, form), students in groups.items():
        if len(students) < 2 or not substantial(form):
            continue
        reference = form in index.get((piece, method), {})
        why = f"identical {SAME_NAMES}" + (" (and to labsupport's reference implementation)" if reference else "")
        students = sorted(set(students))
        for a, b in itertools.combinations(students, 2):
            out.append({"students": [a, b], "piece": piece, "method": method, "why": why, "reference": reference,
                        "shared_by": len(students)})
    out.sort(key=lambda p: (p["piece"], p["method"], p["students"]))
    return out
