"""The generic runner behind every self-check: run the student's code and the reference on generated
cases, compare, name the mistake, and never let the student's exception escape.

A piece (one TODO cell) is described once by a `Piece` holding one `MethodSpec` per method and its
known wrong variants; the per-piece modules (forward_process.py, ddpm_sampler.py, ...) build those and
call `register`, which files the variants in the catalog (catalog.py).

A failing method runs all its cases: the report (report.py) shows the worst one and names a mistake
only if it explains every case; a failure that a used method causes is told apart by re-running on
the reference's version of it (stand_in.py); errors.py describes the student's exceptions.
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from ...maths.guard import blocked
from .compare import Comparison, compare
from .catalog import Mistake, explained_mistakes, register_derived, register_mistakes, sole_explanation
from .describe import describe_failure
from .errors import describe_exception, error_hints, todo_detail
from .report import ERROR, FAIL, PASS, TODO, MethodResult, Report
from .stand_in import with_reference

__all__ = ["Case", "MethodSpec", "Piece", "MethodResult", "Report", "register", "PIECES", "run_piece",
           "run_method", "or_reference", "passed", "last_report", "call_student", "reference_output",
           "describe_exception", "quiet_sampling"]


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
    # reference code (dotted paths under labsupport) whose one-term slips, with those of own_maths,
    # are catalogued as this method's derived mistakes (derived.py)
    derive_from: tuple[str, ...] = ()


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
    for spec in piece.methods:
        sources = spec.own_maths + spec.derive_from
        if sources:
            register_derived(piece.id, spec.name, _deriver(sources, spec.reference))
    return piece


def _deriver(sources: tuple[str, ...], reference: Callable[[dict], Any]) -> Callable[[], list[Mistake]]:
    def build() -> list[Mistake]:
        from .derived import derived_mistakes
        return derived_mistakes(sources, reference)
    return build


def _piece(piece_id: str) -> Piece:
    if piece_id not in PIECES:
        raise ValueError(f"unknown piece {piece_id!r}; known pieces: {sorted(PIECES)}")
    return PIECES[piece_id]


# -- running student code --------------------------------------------------------------------------
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


@dataclass
class _Run:
    """One case: what the student's method returned and the reference's answer, or what it raised."""
    k: int
    case: Case
    out: Any = None
    expected: Any = None
    max_error: float = 0.0
    problem: str | None = None   # why the output is wrong (None: the case passes)
    raised: str | None = None    # the exception, described


def _run_cases(piece: Piece, spec: MethodSpec, obj: Any, cases: list[Case]) -> list[_Run] | MethodResult:
    """Every case's outcome; a MethodResult instead when the method is a TODO or raises before any case failed."""
    runs: list[_Run] = []
    for k, case in enumerate(cases, 1):
        try:
            with blocked(spec.own_maths):
                out = spec.call(piece.build(obj, case.inputs), case.inputs)
        except Exception as err:  # report, never raise: the student's code failed
            todo = isinstance(err, NotImplementedError)
            detail = todo_detail(err, spec.name) if todo else describe_exception(err) + error_hints(err, case.inputs)
            if any(r.problem for r in runs):  # already failing: noted, and the other cases still run
                runs.append(_Run(k, case, raised=detail))
                continue
            if todo:
                return MethodResult(spec.name, TODO, detail=detail)
            return MethodResult(spec.name, ERROR, cases_run=k, total_cases=len(cases), case=case, detail=detail)
        try:
            expected = spec.reference(case.inputs)
        except Exception as err:
            return MethodResult(spec.name, ERROR, cases_run=k, total_cases=len(cases), case=case,
                                detail=f"internal error in the reference ({err!r}); please report it")
        c: Comparison = compare(out, expected, rtol=spec.rtol, atol=spec.atol)
        bad_type = _check_integer(out) if spec.integer and c.ok else None
        runs.append(_Run(k, case, out, expected, c.max_error, bad_type or (None if c.ok else c.message)))
    return runs


def _explained(piece: Piece, spec: MethodSpec, runs: list[_Run]) -> list[Mistake]:
    """[the one known mistake that explains every case], or [] when none or several different ones do."""
    done = [(r.out, r.case.inputs, r.expected) for r in runs if r.raised is None]
    found = explained_mistakes(piece.id, spec.name, done, rtol=spec.rtol, atol=spec.atol)
    sole = sole_explanation(found, done, rtol=spec.rtol, atol=spec.atol)
    return [sole] if sole is not None else []


def _failure(piece: Piece, spec: MethodSpec, runs: list[_Run]) -> MethodResult | None:
    """The worst failing case (largest error; the first of equals), with the mistakes that explain every case."""
    failed = [r for r in runs if r.problem]
    if not failed:
        return None
    worst = max(failed, key=lambda r: r.max_error)
    res = MethodResult(spec.name, FAIL, cases_run=worst.k, total_cases=len(runs), case=worst.case,
                       max_error=worst.max_error, detail=worst.problem, failed_cases=len(failed))
    raised = next((r for r in runs if r.raised), None)
    if raised is not None:
        res.detail += f"\ncase {raised.k} of {len(runs)} [{raised.case.label}] {raised.raised}"
    res.mistakes = _explained(piece, spec, runs)
    if not res.mistakes:
        res.findings = describe_failure([(r.out, r.case.inputs, r.expected, r.case.label, bool(r.problem))
                                         for r in runs if r.raised is None], spec.reference, spec.rtol, spec.atol)
    return res


def _names(methods: list[str]) -> str:
    return methods[0] if len(methods) == 1 else ", ".join(methods[:-1]) + " and " + methods[-1]


def _inherited(piece: Piece, spec: MethodSpec, obj: Any, cases: list[Case], res: MethodResult,
               known: dict[str, MethodResult]) -> MethodResult:
    """Tell a failure of `spec` caused by a method it uses (which fails its own check) from its own.

    Its cases run again on the student's class with labsupport's reference in place of each failing
    used method: passing there, the failure is inherited ("fix ddim_step first"); failing there too,
    the mistakes are named from that run, where the catalogue's variants (built on the reference) apply.
    """
    ref = piece.reference.get(getattr(obj, "__name__", "")) or next(iter(piece.reference.values()), None)
    if not (spec.uses and isinstance(obj, type) and isinstance(ref, type)):
        return res
    failing = []
    for name in (u for u in spec.uses if u != spec.name):
        if name not in known:
            known[name] = run_method(piece, piece.method(name), obj, known=known)
        if not known[name].passed:
            failing.append(name)
    if not failing:
        return res
    # name the causes only: ddpm_step failing through compute_posterior_mean is not one of its own
    roots = [u for u in failing if not set(known[u].inherited) & set(failing)] or failing
    names, one = _names(roots), len(roots) == 1
    runs = _run_cases(piece, spec, with_reference(obj, ref, failing), cases)
    if isinstance(runs, list) and not any(r.problem or r.raised for r in runs):
        res.inherited, res.mistakes, res.findings = tuple(failing), [], []
        res.detail += (f"\n{spec.name} fails only because {names} {'fails its' if one else 'fail their'} check: fix "
                       f"{names} first (with labsupport's {names} in place of yours, your {spec.name} matches the "
                       "reference on every case)")
        return res
    if isinstance(runs, list) and any(r.problem for r in runs):
        res.mistakes = _explained(piece, spec, runs) or res.mistakes
    res.detail += (f"\nit also uses {names}, which {'fails its' if one else 'fail their'} check: fix "
                   f"{'that' if one else 'those'} first, then run this check again")
    return res


def run_method(piece: Piece, spec: MethodSpec, obj: Any, *, known: dict[str, MethodResult] | None = None) -> MethodResult:
    """Every case of one method, then its properties.

    When cases fail, the result shows the worst of them (the largest error) and names a known mistake
    only if it explains the output on every case; a failure that comes from a method of `spec.uses`
    says to fix that method first. `known` holds the results of the piece's other methods so far.
    """
    known = {} if known is None else known
    try:
        cases = spec.cases()
    except Exception as err:  # our bug, not the student's
        return MethodResult(spec.name, ERROR, detail=f"internal error while building cases ({err!r}); please report it")
    runs = _run_cases(piece, spec, obj, cases)
    if isinstance(runs, MethodResult):
        return _inherited(piece, spec, obj, cases, runs, known) if runs.status == ERROR else runs
    bad = _failure(piece, spec, runs)
    if bad is not None:
        return _inherited(piece, spec, obj, cases, bad, known)
    for prop in spec.properties:
        def run(inputs: dict) -> Any:
            with blocked(spec.own_maths):
                return spec.call(piece.build(obj, inputs), inputs)
        try:
            msg = prop(run)
        except NotImplementedError as err:
            return MethodResult(spec.name, TODO, detail=todo_detail(err, spec.name))
        except Exception as err:
            return MethodResult(spec.name, ERROR, total_cases=len(cases), detail=describe_exception(err))
        if msg:
            return MethodResult(spec.name, FAIL, cases_run=len(cases), total_cases=len(cases), detail=msg)
    return MethodResult(spec.name, PASS, cases_run=len(cases), total_cases=len(cases),
                        max_error=max((r.max_error for r in runs), default=0.0))


_LAST: dict[str, tuple[Any, Report]] = {}


def _name_of(obj: Any, piece: Piece) -> str:
    return getattr(obj, "__name__", type(obj).__name__) if obj is not None else piece.defines[0]


def run_piece(piece_id: str, obj: Any, *, methods: list[str] | None = None, quiet: bool = False) -> Report:
    """Check `obj` (the student's class or function) against the reference; print and return the report."""
    piece = _piece(piece_id)
    specs = [s for s in piece.methods if methods is None or s.name in methods]
    known: dict[str, MethodResult] = {}   # also what a method's check learnt about the methods it uses
    with quiet_sampling():
        for spec in specs:
            if spec.name not in known:
                known[spec.name] = run_method(piece, spec, obj, known=known)
    results = [known[spec.name] for spec in specs]
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
