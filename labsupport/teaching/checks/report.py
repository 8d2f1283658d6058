"""What a self-check found: one MethodResult per method and the Report that prints them.

A failing method shows its worst case (the largest error), how many cases fail, the known mistakes
that explain its output (one, or none when two different ones would), what the comparison shows when
none does, or, when it only fails through a method it uses, which one to fix first.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .catalog import Mistake

if TYPE_CHECKING:
    from .core import Case

__all__ = ["PASS", "FAIL", "ERROR", "TODO", "MethodResult", "Report"]

PASS, FAIL, ERROR, TODO = "pass", "fail", "error", "todo"
_MARK = {PASS: "✓", FAIL: "✗", ERROR: "✗", TODO: "○"}


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
    failed_cases: int = 0             # how many cases fail; `case` is the worst of them
    inherited: tuple[str, ...] = ()   # the used methods whose failure alone makes this one fail
    findings: list[str] = field(default_factory=list)   # what the comparison shows when no mistake is named

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
    where = ""
    if r.case is not None:
        worst = f", the worst of {r.failed_cases} failing cases" if r.failed_cases > 1 else ""
        where = f"case {r.cases_run} of {r.total_cases} [{r.case.label}]{worst}: "
    return where + r.detail.split("\n")[0]


def _details(r: MethodResult) -> list[str]:
    out = r.detail.split("\n")[1:]
    for m in r.mistakes[:1]:
        out.append(f"Known mistake ({m.name}): {m.explanation}")
    if r.status == FAIL and not r.mistakes:
        out.extend(f"What the comparison shows: {f}" for f in r.findings)
    if (r.status == FAIL and r.case is not None and not r.mistakes and not r.inherited
            and r.max_error not in (None, float("inf"))):
        out.append("No single known mistake explains every case; compare your code with the docstring's formula "
                   "term by term.")
    return out
