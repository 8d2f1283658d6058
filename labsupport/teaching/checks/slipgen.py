"""One-term slips of a Python function, generated from its syntax tree.

The kinds are the ones students make when they turn a formula into code: a wrong table (ᾱ read as α),
a dropped square root, s and t swapped, t ± 1, a dropped term (or divisor), a flipped sign, ÷ written as ×,
a changed constant, a missing η. `slips(fn_ast)` yields each as a `Slip` holding the changed tree
and a sentence saying what changed. Used twice, on different code: on the maths core's equations,
to derive the catalogue's wrong variants (derived.py), and on the notebooks' solutions, to measure
how many slips the checks catch and name (labsupport.tools.slip_survey).
"""
from __future__ import annotations

import ast
import copy
import itertools
from dataclasses import dataclass
from typing import Iterator

__all__ = ["Slip", "slips", "KINDS", "TABLE_SWAPS"]

# what a table is mistaken for (NoiseSchedule's names)
TABLE_SWAPS = {
    "alphas_cumprod": ("alphas", "alphas_cumprod_prev"),
    "alphas": ("alphas_cumprod",),
    "alphas_cumprod_prev": ("alphas_cumprod",),
    "betas": ("posterior_variance", "alphas"),
    "posterior_variance": ("betas",),
    "sqrt_alphas_cumprod": ("sqrt_one_minus_alphas_cumprod",),
    "sqrt_one_minus_alphas_cumprod": ("sqrt_alphas_cumprod",),
    "posterior_mean_coef1": ("posterior_mean_coef2",),
    "posterior_mean_coef2": ("posterior_mean_coef1",),
}
TIME_NAMES = frozenset({"t", "s", "t_prev", "t_next", "timestep"})
KINDS = ("table", "root", "swap", "index", "drop", "sign", "operator", "constant", "eta")


@dataclass(frozen=True)
class Slip:
    """One changed copy of a function: `kind`, the code `before` and `after`, the whole new tree."""
    kind: str
    before: str
    after: str
    tree: ast.FunctionDef
    line: int

    @property
    def text(self) -> str:
        return f"{_KIND_TEXT[self.kind]}: `{self.before}` became `{self.after}`"


_KIND_TEXT = {"table": "a wrong table", "root": "a square root dropped", "swap": "s and t swapped",
              "index": "the timestep shifted by one", "drop": "a term dropped", "sign": "a sign flipped",
              "operator": "multiplied instead of divided", "constant": "a constant changed", "eta": "η left out"}


def _num(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and type(node.value) in (int, float)


def _is_root(node: ast.AST) -> ast.AST | None:
    """The radicand when `node` is x.sqrt(), torch.sqrt(x), math.sqrt(x) or x ** 0.5."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "sqrt":
        if not node.args and not node.keywords:
            return node.func.value
        if len(node.args) == 1 and isinstance(node.func.value, ast.Name) and node.func.value.id in ("torch", "math"):
            return node.args[0]
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Pow) and _num(node.right) and node.right.value == 0.5:
        return node.left
    return None


def _pair(a: str, b: str) -> bool:
    """Names a student swaps: t and s, or two names that differ only there (a_t, a_s), cond and uncond."""
    if {a, b} in ({"t", "s"}, {"t", "t_prev"}):
        return True
    for x, y in (("_t", "_s"), ("_t", "_prev"), ("cond", "uncond")):
        if a.replace(y, x) == b.replace(y, x) and a != b and (y in a or y in b):
            return True
    return False


def _shift(node: ast.expr, by: int) -> ast.expr:
    return ast.BinOp(copy.deepcopy(node), ast.Add() if by > 0 else ast.Sub(), ast.Constant(abs(by)))


def _replacements(node: ast.AST, parent: ast.AST | None) -> Iterator[tuple[str, ast.AST]]:
    """(kind, replacement) for every one-term slip of `node` itself."""
    if isinstance(node, ast.Attribute) and node.attr in TABLE_SWAPS and isinstance(node.ctx, ast.Load):
        for alt in TABLE_SWAPS[node.attr]:
            yield "table", ast.Attribute(copy.deepcopy(node.value), alt, ast.Load())
    radicand = _is_root(node)
    if radicand is not None:
        yield "root", copy.deepcopy(radicand)
    if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
        if node.id in TIME_NAMES and isinstance(parent, (ast.Call, ast.Subscript)):
            yield "index", _shift(node, -1)
            yield "index", _shift(node, +1)
        if node.id == "eta":
            yield "eta", ast.Constant(1.0)
    if isinstance(node, ast.BinOp):
        op = node.op
        if isinstance(op, (ast.Add, ast.Sub)):
            yield "drop", copy.deepcopy(node.left)
            if isinstance(op, ast.Add):
                yield "drop", copy.deepcopy(node.right)
            yield "sign", ast.BinOp(copy.deepcopy(node.left), ast.Sub() if isinstance(op, ast.Add) else ast.Add(),
                                    copy.deepcopy(node.right))
        elif isinstance(op, ast.Div):
            yield "drop", copy.deepcopy(node.left)
            yield "operator", ast.BinOp(copy.deepcopy(node.left), ast.Mult(), copy.deepcopy(node.right))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        yield "sign", copy.deepcopy(node.operand)
    if _num(node) and not isinstance(parent, (ast.Subscript, ast.Slice, ast.keyword)):
        value = node.value
        yield "constant", ast.Constant(2 * value if value else 1)


class _Swap(ast.NodeTransformer):
    def __init__(self, a: str, b: str):
        self.a, self.b = a, b

    def visit_Name(self, node: ast.Name) -> ast.Name:
        if isinstance(node.ctx, ast.Load) and node.id in (self.a, self.b):
            return ast.Name(self.b if node.id == self.a else self.a, ast.Load())
        return node


def _skippable(stmt: ast.stmt) -> bool:
    """Statements whose slips only change an error message or a check: raise, assert, docstrings."""
    if isinstance(stmt, (ast.Raise, ast.Assert)):
        return True
    if isinstance(stmt, ast.If) and stmt.body and all(isinstance(s, ast.Raise) for s in stmt.body) and not stmt.orelse:
        return True
    return isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant)


def _statements(fn: ast.FunctionDef) -> Iterator[ast.stmt]:
    """Every simple statement of fn's body, nested blocks included (not their bodies' own headers)."""
    stack = list(reversed(fn.body))
    while stack:
        stmt = stack.pop()
        if _skippable(stmt):
            continue
        for field in ("body", "orelse", "finalbody"):
            stack.extend(reversed([s for s in getattr(stmt, field, []) if isinstance(s, ast.stmt)]))
        yield stmt


def _own_nodes(stmt: ast.stmt) -> Iterator[tuple[ast.AST, ast.AST]]:
    """(node, parent) within stmt, leaving out nested statements (they are visited on their own)."""
    todo = [(child, stmt) for child in ast.iter_child_nodes(stmt) if not isinstance(child, ast.stmt)]
    while todo:
        node, parent = todo.pop(0)
        yield node, parent
        todo.extend((c, node) for c in ast.iter_child_nodes(node) if not isinstance(c, ast.stmt))


def _replaced(fn: ast.FunctionDef, target: ast.AST, new: ast.AST) -> ast.FunctionDef:
    """A copy of fn with `target` (found by identity in fn) replaced by `new`."""
    marker = id(target)

    class Put(ast.NodeTransformer):
        def generic_visit(self, node):
            if getattr(node, "_slip_id", None) == marker:
                return ast.copy_location(new, node)
            return super().generic_visit(node)

    for node in ast.walk(fn):
        node._slip_id = id(node)
    out = Put().visit(copy.deepcopy(fn))
    return ast.fix_missing_locations(out)


def slips(fn: ast.FunctionDef, lines: range | None = None) -> Iterator[Slip]:
    """Every one-term slip of fn, optionally only of the statements that start in `lines`."""
    for stmt in _statements(fn):
        if lines is not None and stmt.lineno not in lines:
            continue
        for node, parent in _own_nodes(stmt):
            for kind, new in _replacements(node, parent):
                yield Slip(kind, ast.unparse(node), ast.unparse(new), _replaced(fn, node, new), stmt.lineno)
        names = sorted({n.id for n in ast.walk(stmt) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)})
        for a, b in itertools.combinations(names, 2):
            if _pair(a, b):
                new_stmt = _Swap(a, b).visit(copy.deepcopy(stmt))
                yield Slip("swap", ast.unparse(stmt).split("\n")[0], ast.unparse(new_stmt).split("\n")[0],
                           _replaced(fn, stmt, new_stmt), stmt.lineno)
