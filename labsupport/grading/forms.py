"""One function's canonical form, and whether it is big enough to count (for `similarity`).

Two functions have the same form when they differ only in what `similarity`'s docstring lists
(layout, comments, docstrings, names of locals, labsupport prefixes, ...). Only parses code.
"""
from __future__ import annotations

import ast
import copy
import functools
import textwrap
from pathlib import Path

__all__ = ["normalized", "substantial", "form_size", "MIN_STATEMENTS", "MIN_NODES", "SAME_NAMES"]

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
