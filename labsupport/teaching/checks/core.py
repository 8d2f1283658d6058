"""The generic runner behind every self-check: run the student's code and the reference on generated
cases, compare, name the mistake, and never let the student's exception escape.

A piece (one TODO cell) is described once by a `Piece` holding one `MethodSpec` per method and its
known wrong variants; the per-piece modules (forward_process.py, ddpm_sampler.py, ...) build those and
call `register`, which files the variants in the catalog (catalog.py).
"""
from __future__ import annotations

import contextlib
import linecache
import os
import re
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from ...maths.guard import blocked
from .compare import Comparison, compare
from .catalog import Mistake, find_mistakes, register_mistakes

__all__ = ["Case", "MethodSpec", "Piece", "MethodResult", "Report", "register", "PIECES", "run_piece",
           "run_method", "or_reference", "passed", "last_report", "call_student", "reference_output",
           "describe_exception", "quiet_sampling"]

PASS, FAIL, ERROR, TODO = "pass", "fail", "error", "todo"
_MARK = {PASS: "✓", FAIL: "✗", ERROR: "✗", TODO: "○"}
_PACKAGE_DIR = str(Path(__file__).resolve().parents[2])  # labsupport/


@dataclass(frozen=True)
class Case:
    """One generated input: `label` says in words what is special about it."""
    label: str
    inputs: dict[str, Any]


@dataclass
class MethodSpec:
    """How to check one method: its cases, how to call it, what it should return.

    properties: extra checks run once every case passes; each gets `run(inputs) -> output` (the
    student's method on fresh objects) and returns a failure message or None.
    """
    name: str
    cases: Callable[[], list[Case]]
    call: Callable[[Any, dict], Any]
    reference: Callable[[dict], Any]
    rtol: float = 1e-4
    atol: float = 1e-5
    integer: bool = False
    properties: tuple[Callable[[Callable[[dict], Any]], str | None], ...] = ()
    uses: tuple[str, ...] = ()   # the piece's methods this one builds on (the grader's isolated runs)
    # the labsupport.maths equations this method asks the student to write: they raise while the
    # student's code calls them here, and the grader's sandbox does not contain them
    own_maths: tuple[str, ...] = ()


@dataclass
class Piece:
    """One TODO cell of the contract: its id, what it defines, the references and the methods.

    mistakes: {method: [Mistake, ...]}, the known wrong variants that a failing method is matched against.
    """
    id: str
    defines: tuple[str, ...]
    reference: dict[str, Any]
    methods: list[MethodSpec]
    build: Callable[[Any, dict], Any]
    mistakes: dict[str, list[Mistake]] = field(default_factory=dict)

    def method(self, name: str) -> MethodSpec:
        for spec in self.methods:
            if spec.name == name:
                return spec
        raise KeyError(f"piece {self.id!r} has no method {name!r}; it has {[m.name for m in self.methods]}")


PIECES: dict[str, Piece] = {}

IGNORES_GENERATOR = "ignores the generator"


def honours_generator(make_inputs: Callable[[int], dict]) -> Callable:
    """A property: two different generator seeds must give different results.

    A method that reseeds the global RNG, or draws without `generator=`, gives the same result for
    both. It also names that mistake when a case that draws from the generator fails (score.py).
    """
    def draws_from_its_generator(run) -> str | None:
        """Different generator seeds give different draws."""
        a, b = run(make_inputs(101)), run(make_inputs(202))
        if torch.equal(torch.as_tensor(a), torch.as_tensor(b)):
            return ("two different generator seeds gave the same result, so the noise does not come from "
                    "`generator`: draw it with the generator you are given (self.randn(shape, generator) or "
                    "torch.randn(..., generator=generator)), never with torch.manual_seed or a plain torch.randn")
        return None
    draws_from_its_generator.names_mistake = IGNORES_GENERATOR
    return draws_from_its_generator



def register(piece: Piece) -> Piece:
    """Make `piece` checkable, and its mistakes part of the one catalog (MISTAKES[piece.id] is piece.mistakes)."""
    PIECES[piece.id] = piece
    register_mistakes(piece.id, piece.mistakes)
    return piece


def _piece(piece_id: str) -> Piece:
    if piece_id not in PIECES:
        raise ValueError(f"unknown piece {piece_id!r}; known pieces: {sorted(PIECES)}")
    return PIECES[piece_id]


@dataclass
class MethodResult:
    method: str
    status: str
    cases_run: int = 0
    total_cases: int = 0
    case: Case | None = None
    max_error: float | None = None
    detail: str = ""
    mistakes: list[Mistake] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.status == PASS


@dataclass
class Report:
    """What one check found; printed as it runs, kept for `or_reference` and the tests."""
    piece: str
    name: str
    results: list[MethodResult]

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    @property
    def done(self) -> bool:
        """No method is still a bare TODO."""
        return all(r.status != TODO for r in self.results)

    def result(self, method: str) -> MethodResult:
        return next(r for r in self.results if r.method == method)

    def text(self) -> str:
        width = max(len(r.method) for r in self.results) + 2
        lines = [f"Checking {self.name} ({self.piece}) against the reference:"]
        for r in self.results:
            lines.append(f"  {_MARK[r.status]} {r.method:<{width}}{_summary(r)}")
            lines.extend("      " + extra for extra in _details(r))
        n_ok = sum(r.passed for r in self.results)
        if self.passed:
            lines.append(f"All {len(self.results)} methods match the reference. Well done!")
        else:
            todo = sum(r.status == TODO for r in self.results)
            failing = len(self.results) - n_ok - todo
            text = f"{n_ok} of {len(self.results)} methods pass" + (f", {todo} not done yet." if todo else ".")
            lines.append(text + (" Fix the ✗ lines first, then run this cell again." if failing
                                 else " Fill in the TODOs, then run this cell again."))
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<Report {self.piece}: {sum(r.passed for r in self.results)}/{len(self.results)} methods pass>"

    def _ipython_display_(self) -> None:
        """Already printed while checking; a notebook cell ending in a check shows nothing more."""


def _summary(r: MethodResult) -> str:
    if r.status == PASS:
        err = f" (largest error {r.max_error:.1e})" if r.max_error else ""
        return f"{r.total_cases} cases match{err}"
    if r.status == TODO:
        return r.detail or "not done yet (still raises NotImplementedError)"
    where = f"case {r.cases_run} of {r.total_cases} [{r.case.label}]: " if r.case is not None else ""
    return where + r.detail.split("\n")[0]


def _details(r: MethodResult) -> list[str]:
    out = r.detail.split("\n")[1:]
    for m in r.mistakes[:2]:
        out.append(f"Known mistake ({m.name}): {m.explanation}")
    if r.status == FAIL and r.case is not None and not r.mistakes and r.max_error not in (None, float("inf")):
        out.append("No known mistake matches; compare your code with the docstring's formula term by term.")
    return out


# -- running student code --------------------------------------------------------------------------
def _is_package_frame(filename: str) -> bool:
    return (filename.startswith(_PACKAGE_DIR) or "site-packages" in filename or "dist-packages" in filename
            or filename.startswith(sys.prefix) or filename.startswith(sys.base_prefix) or filename.startswith("<frozen"))


def describe_exception(err: BaseException) -> str:
    """'ValueError: msg' and where in the student's code it happened (the last frame outside labsupport/torch)."""
    frames = traceback.extract_tb(err.__traceback__)
    own = [f for f in frames if not _is_package_frame(f.filename)]
    head = f"raised {type(err).__name__}: {err}".strip()
    if not own:
        return head
    f = own[-1]
    code = (f.line or linecache.getline(f.filename, f.lineno)).strip()
    cell = "your cell" if re.search(r"ipykernel_|<ipython-input", f.filename) else Path(f.filename).name
    return f"{head}\nat line {f.lineno} of {cell}, in {f.name}: {code}"


def _todo_detail(err: NotImplementedError, method: str) -> str:
    m = re.search(r"TODO: ([\w.]+)", str(err))
    other = m.group(1) if m else None
    if other and other.split(".")[-1] != method:
        return f"not done yet: it calls {other}, which is still a TODO"
    return "not done yet (still raises NotImplementedError)"


def _signature_hint(err: TypeError) -> str:
    if re.search(r"unexpected keyword argument|positional argument|required", str(err)):
        return " (keep the method's signature exactly as the skeleton gives it)"
    return ""


@contextlib.contextmanager
def quiet_sampling():
    """No progress bars, no change to the notebook's random state, no autograd while checking."""
    old = os.environ.get("LABSUPPORT_PROGRESS")
    os.environ["LABSUPPORT_PROGRESS"] = "0"
    try:
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            yield
    finally:
        if old is None:
            os.environ.pop("LABSUPPORT_PROGRESS", None)
        else:
            os.environ["LABSUPPORT_PROGRESS"] = old


def call_student(piece_id: str, method: str, obj: Any, inputs: dict) -> Any:
    """Build the student's object from `inputs` and call `method` on it (exceptions propagate)."""
    piece = _piece(piece_id)
    return piece.method(method).call(piece.build(obj, inputs), inputs)


def reference_output(piece_id: str, method: str, inputs: dict) -> Any:
    """What the reference returns for `inputs`."""
    return _piece(piece_id).method(method).reference(inputs)


def _check_integer(out: Any) -> str | None:
    if torch.is_tensor(out) and (out.is_floating_point() or out.is_complex()):
        return f"the timesteps must be integers (torch.long), got dtype {out.dtype}; convert with .long() after rounding"
    return None


def run_method(piece: Piece, spec: MethodSpec, obj: Any) -> MethodResult:
    """Every case of one method; stops at the first case that fails."""
    try:
        cases = spec.cases()
    except Exception as err:  # our bug, not the student's
        return MethodResult(spec.name, ERROR, detail=f"internal error while building cases ({err!r}); please report it")
    worst = 0.0
    for k, case in enumerate(cases, 1):
        res = MethodResult(spec.name, FAIL, cases_run=k, total_cases=len(cases), case=case)
        try:
            with blocked(spec.own_maths):
                out = spec.call(piece.build(obj, case.inputs), case.inputs)
        except NotImplementedError as err:
            return MethodResult(spec.name, TODO, detail=_todo_detail(err, spec.name))
        except Exception as err:  # report, never raise: the student's code failed
            res.status, res.detail = ERROR, describe_exception(err) + (
                _signature_hint(err) if isinstance(err, TypeError) else "")
            return res
        try:
            expected = spec.reference(case.inputs)
        except Exception as err:
            res.status, res.detail = ERROR, f"internal error in the reference ({err!r}); please report it"
            return res
        c: Comparison = compare(out, expected, rtol=spec.rtol, atol=spec.atol)
        bad_type = _check_integer(out) if spec.integer and c.ok else None
        if not c.ok or bad_type:
            res.detail = bad_type or c.message
            res.max_error = c.max_error
            res.mistakes = find_mistakes(piece.id, spec.name, out, case.inputs, expected=expected,
                                         rtol=spec.rtol, atol=spec.atol)
            return res
        worst = max(worst, c.max_error)
    for prop in spec.properties:
        def run(inputs: dict) -> Any:
            with blocked(spec.own_maths):
                return spec.call(piece.build(obj, inputs), inputs)
        try:
            msg = prop(run)
        except NotImplementedError as err:
            return MethodResult(spec.name, TODO, detail=_todo_detail(err, spec.name))
        except Exception as err:
            return MethodResult(spec.name, ERROR, total_cases=len(cases), detail=describe_exception(err))
        if msg:
            return MethodResult(spec.name, FAIL, cases_run=len(cases), total_cases=len(cases), detail=msg)
    return MethodResult(spec.name, PASS, cases_run=len(cases), total_cases=len(cases), max_error=worst)


_LAST: dict[str, tuple[Any, Report]] = {}


def _name_of(obj: Any, piece: Piece) -> str:
    return getattr(obj, "__name__", type(obj).__name__) if obj is not None else piece.defines[0]


def run_piece(piece_id: str, obj: Any, *, methods: list[str] | None = None, quiet: bool = False) -> Report:
    """Check `obj` (the student's class or function) against the reference; print and return the report."""
    piece = _piece(piece_id)
    specs = [s for s in piece.methods if methods is None or s.name in methods]
    with quiet_sampling():
        results = [run_method(piece, spec, obj) for spec in specs]
    report = Report(piece.id, _name_of(obj, piece), results)
    if methods is None:
        _LAST[piece.id] = (obj, report)
    if not quiet:
        print(report.text())
    return report


def last_report(piece_id: str) -> Report | None:
    entry = _LAST.get(piece_id)
    return entry[1] if entry else None


def passed(piece_id: str) -> bool:
    """Did the most recent full check of this piece pass? (used by the source notebooks' hidden tests)"""
    report = last_report(piece_id)
    return bool(report and report.passed)


def or_reference(obj: Any, piece_id: str) -> Any:
    """The student's object when it passes its check, else labsupport's reference, with a visible notice.

    Later cells build on what this returns, so the notebook runs top to bottom with every TODO open.
    """
    piece = _piece(piece_id)
    name = _name_of(obj, piece)
    reference = piece.reference.get(name) or next(iter(piece.reference.values()))
    entry = _LAST.get(piece.id)
    report = entry[1] if entry and entry[0] is obj else run_piece(piece.id, obj, quiet=True)
    if report.passed:
        print(f"✓ The cells below use your {name}.")
        return obj
    if not report.done:
        todo = [r.method for r in report.results if r.status == TODO]
        print(f"⚠ {name} is not done yet ({', '.join(todo)} still TODO): the cells below use labsupport's "
              f"reference {name}, so you can keep going. Finish the TODO and run its check again to use yours.")
    else:
        bad = [r.method for r in report.results if not r.passed]
        print(f"⚠ Your {name} does not pass its check yet ({', '.join(bad)}): the cells below use labsupport's "
              f"reference {name}. Fix it, run the check again, then re-run from here.")
    return reference
