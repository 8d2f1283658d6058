"""Making copying visible: TODO code that matches labsupport's reference, or another student's.

    normalized(fn)              one function's canonical form (an `ast.dump` of its body)
    reference_forms()           (piece, method) -> the forms of labsupport's reference implementation
    student_forms(sub)          (piece, method) -> the form of what the student wrote
    copied_from_reference(sub)  (piece, method) -> why it is flagged
    similar_pairs(forms)        pairs of students whose forms of one method are identical

Two functions have the same form when they differ only in layout, comments, docstrings, type
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
import textwrap
from pathlib import Path

from .submission import Submission, probe_cells

__all__ = ["normalized", "reference_forms", "student_forms", "copied_from_reference", "reference_copies",
           "similar_pairs", "substantial", "form_size", "MIN_STATEMENTS", "MIN_NODES", "SAME_NAMES"]

# A form counts when its body, guard clauses (`if ...: raise ...`) left out, has at least this many
# statements and nodes; see `substantial` for what falls under it.
MIN_STATEMENTS = 3
MIN_NODES = 40
SAME_NAMES = "up to formatting, comments and names"

_PREFIXES = ("lab", "labsupport")
_PACKAGE = Path(__file__).resolve().parents[1]
_CONTEXTS = {"Load", "Store", "Del"}
_STATEMENTS = {name for name in dir(ast) if isinstance(getattr(ast, name), type)
               and issubclass(getattr(ast, name), ast.stmt) and getattr(ast, name) is not ast.stmt}


def _module_names(paths) -> frozenset[str]:
    names = {p.stem if p.suffix == ".py" else p.name for p in paths if p.suffix == ".py" or p.is_dir()}
    return frozenset(names - {"__init__", "__main__", "__pycache__"})


@functools.lru_cache(maxsize=1)
def _submodules() -> frozenset[str]:
    """Names of labsupport's modules and subpackages, at any depth (read from the files, nothing imported)."""
    return _module_names(_PACKAGE.rglob("*"))


def _bound_names(fn: ast.AST) -> set[str]:
    """Arguments and local variables of `fn` and of everything nested in it (not `global` ones)."""
    bound, declared = set(), set()
    for node in ast.walk(fn):
        if isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
            bound.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node is not fn:
            bound.add(node.name)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bound.add(node.name)
        elif isinstance(node, (ast.MatchAs, ast.MatchStar)) and node.name:
            bound.add(node.name)
        elif isinstance(node, ast.MatchMapping) and node.rest:
            bound.add(node.rest)
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            declared.update(node.names)
    return bound - declared


class _Message(ast.NodeTransformer):
    """An error message's text is like a comment: a pasted `raise` with reworded text still matches."""

    def visit_JoinedStr(self, node: ast.JoinedStr):
        return ast.Constant(value="...")

    def visit_Constant(self, node: ast.Constant):
        return ast.Constant(value="...") if isinstance(node.value, str) else node


class _Canonical(ast.NodeTransformer):
    """Drops docstrings, annotations and decorators, strips labsupport prefixes, renames locals.

    Visits in field order (depth first), so `vN` numbers follow the first occurrence in the code.
    """

    def __init__(self, bound: set[str]):
        self.bound = bound
        self.names: dict[str, str] = {}

    def _rename(self, name: str) -> str:
        if name not in self.bound:
            return name
        return self.names.setdefault(name, f"v{len(self.names)}")

    def visit_Expr(self, node: ast.Expr):
        if isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            return None  # a docstring, or a string used as a comment
        return self.generic_visit(node)

    def visit_AnnAssign(self, node: ast.AnnAssign):
        if node.value is None:
            return None
        return self.visit(ast.Assign(targets=[node.target], value=node.value))

    def visit_Raise(self, node: ast.Raise):
        if node.exc is not None:
            node.exc = _Message().visit(node.exc)
        return self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant):
        node.kind = None
        return node

    def visit_Name(self, node: ast.Name):
        node.id = self._rename(node.id)
        return node

    def visit_arg(self, node: ast.arg):
        node.arg, node.annotation, node.type_comment = self._rename(node.arg), None, None
        return node

    def _visit_def(self, node):
        node.name = self._rename(node.name)
        node.decorator_list = []
        if not isinstance(node, ast.ClassDef):
            node.returns = None
        return self.generic_visit(node)

    visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = _visit_def

    def _visit_binding(self, node):
        """except ... as name, and the names a `match` pattern binds."""
        for attr in ("name", "rest"):
            if getattr(node, attr, None):
                setattr(node, attr, self._rename(getattr(node, attr)))
        return self.generic_visit(node)

    visit_ExceptHandler = visit_MatchAs = visit_MatchStar = visit_MatchMapping = _visit_binding

    def visit_Attribute(self, node: ast.Attribute):
        parts, root = [], node
        while isinstance(root, ast.Attribute):
            parts.append(root.attr)
            root = root.value
        parts.reverse()
        if isinstance(root, ast.Name) and root.id not in self.bound and (
                root.id in _PREFIXES or root.id in _submodules()):
            if root.id not in _PREFIXES:
                parts.insert(0, root.id)  # `plots.noise_predictions` after `from labsupport.teaching import plots`
            while len(parts) > 1 and parts[0] in _submodules():
                parts.pop(0)
            out: ast.expr = ast.Name(id=parts[0], ctx=ast.Load())
            for attr in parts[1:]:
                out = ast.Attribute(value=out, attr=attr, ctx=ast.Load())
            out.ctx = node.ctx
            return out
        return self.generic_visit(node)


def _function_node(source: str) -> ast.FunctionDef | ast.AsyncFunctionDef:
    tree = ast.parse(textwrap.dedent(source))
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            return node
    raise ValueError("the source defines no function at its top level")


def normalized(fn_node_or_source: ast.FunctionDef | ast.AsyncFunctionDef | str) -> str:
    """The canonical form of one function (this module's docstring says what it ignores).

    Takes a `def` node or source text whose first top-level statement of that kind is the function
    (indented source, as `inspect.getsource` gives for a method, is fine).
    """
    fn = fn_node_or_source
    if isinstance(fn, str):
        fn = _function_node(fn)
    if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
        raise TypeError(f"normalized() takes a function's def node or source, got {type(fn).__name__}")
    fn = copy.deepcopy(fn)
    canon = _Canonical(_bound_names(fn))
    body = [out for out in (canon.visit(stmt) for stmt in fn.body) if out is not None]
    form = ast.dump(ast.Module(body=body, type_ignores=[]))
    _remember(form, _size(body))
    return form


# -- size ------------------------------------------------------------------------------------------
_SIZES: dict[str, tuple[int, int]] = {}   # form -> form_size, filled by normalized()
_MAX_SIZES = 100_000


def _remember(form: str, size: tuple[int, int]) -> None:
    if len(_SIZES) >= _MAX_SIZES:
        _SIZES.clear()
    _SIZES[form] = size


def _is_guard(stmt: ast.stmt) -> bool:
    """`if ...: raise ...`: an input check, often given by the skeleton."""
    return (isinstance(stmt, ast.If) and not stmt.orelse and len(stmt.body) == 1
            and isinstance(stmt.body[0], ast.Raise))


def _size(body: list[ast.stmt]) -> tuple[int, int]:
    statements = nodes = 0
    for stmt in body:
        if _is_guard(stmt):
            continue
        for node in ast.walk(stmt):
            if not isinstance(node, ast.expr_context):
                nodes += 1
                statements += isinstance(node, ast.stmt)
    return statements, nodes


def _dumped(node: ast.expr, name: str) -> bool:
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == name


def _size_of_dump(form: str) -> tuple[int, int]:
    """`_size` read back from the dump: every node is written `Name(...)`; parsed, never evaluated."""
    try:
        tree = ast.parse(form, mode="eval").body
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return MIN_STATEMENTS, MIN_NODES  # too deep to parse again: large
    body = next((k.value for k in getattr(tree, "keywords", []) if k.arg == "body"), None)
    statements = nodes = 0
    for stmt in body.elts if isinstance(body, ast.List) else []:
        fields = {k.arg: k.value for k in stmt.keywords} if isinstance(stmt, ast.Call) else {}
        inner, orelse = fields.get("body"), fields.get("orelse")
        if (_dumped(stmt, "If") and isinstance(inner, ast.List) and len(inner.elts) == 1
                and _dumped(inner.elts[0], "Raise") and not (isinstance(orelse, ast.List) and orelse.elts)):
            continue
        for node in ast.walk(stmt):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id not in _CONTEXTS:
                nodes += 1
                statements += node.func.id in _STATEMENTS
    return statements, nodes


def form_size(form: str) -> tuple[int, int]:
    """(statements, nodes) of a form, guard clauses (`if ...: raise ...`) left out; nodes are AST
    nodes other than Load/Store/Del, nested statements count."""
    size = _SIZES.get(form)
    if size is None:  # a form made in another process (read from a cache)
        size = _size_of_dump(form)
        _remember(form, size)
    return size


def substantial(form: str) -> bool:
    """Large enough that two people would not write it the same way by chance.

    At least MIN_STATEMENTS statements and MIN_NODES nodes once guard clauses are left out.
    """
    statements, nodes = form_size(form)
    return statements >= MIN_STATEMENTS and nodes >= MIN_NODES


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
