"""Judging the probe's plain results in the grader's own process.

For every graded (piece, method): the hidden cases and the reference's outputs are computed here,
once per batch; each recorded output is checked for its exact type, dtype and shape, compared with
`labsupport.teaching.checks.compare`, and, when wrong, matched against the catalogue of known mistakes (`labsupport.teaching.checks.catalog`) to name the
mistake, by the self-check's rule: the failing case with the largest error is reported, and a mistake
is named only when it alone explains the outputs of every case. Check properties are replayed from the probe's recorded calls, so their verdict is reached
here too. Feedback never quotes the hidden values: only case labels, shapes, types, error sizes.
"""
from __future__ import annotations

import builtins
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..teaching.checks import PIECES, compare
from ..teaching.checks.catalog import explained_mistakes, sole_explanation
from ..teaching.checks.core import quiet_sampling
from .codec import decode, fingerprint
from .hidden import derive_seed, hidden_cases
from .sandbox.run import apply_state

__all__ = ["MethodOutcome", "Judge", "PASS", "collect", "strict_mismatch"]

PASS = "pass"
# what each status of a method says in the feedback
STATUS_WORDS = {
    "pass": "correct",
    "fail": "wrong result",
    "error": "raised an exception",
    "todo": "not attempted",
    "timeout": "timed out",
    "crash": "crashed",
    "missing": "missing",
    "not own": "not written in the notebook",
    "reference": "calls the reference",
    "tampered": "inputs altered",
    "not run": "not run",
}


@dataclass
class MethodOutcome:
    piece: str
    method: str
    status: str
    detail: str = ""
    case: str = ""
    mistakes: list[tuple[str, str]] = field(default_factory=list)
    mode: str = ""

    @property
    def passed(self) -> bool:
        return self.status == PASS


class _Raised(Exception):
    """A recorded student exception, re-raised while replaying a property."""

    def __init__(self, error: dict):
        super().__init__(error.get("where") or error.get("type"))
        self.error = error


def _lab_errors() -> dict[tuple[str, str], type]:
    from ..tools.generation import NonFiniteError
    from ..tools.speedups import OptimizationUnavailable
    from .unavailable import Unavailable
    return {(cls.__module__, cls.__qualname__): cls for cls in (NonFiniteError, OptimizationUnavailable, Unavailable)}


_LAB_ERRORS = _lab_errors()


def _reraise(error: dict) -> BaseException:
    """The recorded exception as one a check property can catch by type.

    Builtin exception types and those of labsupport (e.g. generation.NonFiniteError) are rebuilt; any
    other type (the student's own) becomes `_Raised`. Either way `_grader_error` holds the record.
    """
    if not isinstance(error, dict):
        return _Raised({"where": "raised an exception the grader cannot read"})
    module, name = str(error.get("module", "")), str(error.get("qualname", ""))
    cls = None
    if module == "builtins":
        cls = getattr(builtins, name, None)
    elif (module, name) in _LAB_ERRORS:  # a fixed table: a record must never make the grader import anything
        cls = _LAB_ERRORS[(module, name)]
    if not (isinstance(cls, type) and issubclass(cls, Exception)):
        return _Raised(error)
    try:
        err = cls(error.get("message", ""))
    except Exception:  # noqa: BLE001 - a constructor that wants other arguments
        return _Raised(error)
    err._grader_error = error
    return err


class _Diverged(Exception):
    """The replayed property asked for a call the probe did not record (or with other inputs)."""


_DECIMAL = re.compile(r"-?\d+\.\d+(?:e[-+]?\d+)?|-?\d+e[-+]?\d+|\bnan\b|-?\binf\b")


def _no_values(message: str) -> str:
    """A comparison message without the numbers that would reveal hidden inputs or outputs."""
    return _DECIMAL.sub("…", message)


def _describe_enc(enc: dict) -> str:
    kind = enc.get("t")
    if kind in ("tensor", "ndarray"):
        return f"a {enc.get('cls')} of dtype {enc.get('dtype')} and shape {tuple(enc.get('shape', ()))}"
    return f"a {enc.get('cls') or kind}"


def strict_mismatch(enc: dict, expected: Any, path: str = "") -> str | None:
    """Why the returned value's type, dtype or shape is not exactly the reference's (None when it is)."""
    where = f"{path}: " if path else ""
    kind = enc.get("t")
    if torch.is_tensor(expected):
        if kind != "tensor" or enc.get("cls") != "torch.Tensor":
            return f"{where}expected a torch.Tensor, got {_describe_enc(enc)}"
        if enc.get("dtype") != str(expected.dtype):
            return f"{where}expected dtype {expected.dtype}, got {enc.get('dtype')}"
        if list(enc.get("shape", [])) != list(expected.shape):
            return f"{where}expected shape {tuple(expected.shape)}, got {tuple(enc.get('shape', []))}"
        return None
    if isinstance(expected, dict):
        if kind != "dict":
            return f"{where}expected a dict, got {_describe_enc(enc)}"
        got = dict((k, v) for k, v in enc.get("items", []))
        for key, value in expected.items():
            if key not in got:
                return f"{where}the returned dict lacks the key {key!r}"
            msg = strict_mismatch(got[key], value, f"{path}[{key!r}]")
            if msg:
                return msg
        return None
    if isinstance(expected, (tuple, list)):
        if kind not in ("tuple", "list"):
            return f"{where}expected a {type(expected).__name__}, got {_describe_enc(enc)}"
        items = enc.get("items", [])
        if len(items) != len(expected):
            return f"{where}expected {len(expected)} items, got {len(items)}"
        for i, (e, x) in enumerate(zip(items, expected)):
            msg = strict_mismatch(e, x, f"{path}[{i}]")
            if msg:
                return msg
        return None
    for py_type in (bool, int, float, str):
        if type(expected) is py_type and kind != py_type.__name__:
            return f"{where}expected a Python {py_type.__name__}, got {_describe_enc(enc)}"
    return None


def _error_outcome(piece: str, method: str, error: dict, label: str, mode: str) -> MethodOutcome:
    if error.get("todo"):
        todo = str(error["todo"])
        detail = ("not done yet (still raises NotImplementedError)" if todo.split(".")[-1] == method
                  else f"not done yet: it calls {todo}, which is still a TODO")
        return MethodOutcome(piece, method, "todo", detail, label, mode=mode)
    if error.get("reference"):
        return MethodOutcome(piece, method, "reference", "it calls labsupport's reference implementation "
                             f"({error.get('message', '').split(' is ')[0]}); only your own code counts", label, mode=mode)
    return MethodOutcome(piece, method, "error", error.get("where") or f"raised {error.get('type')}", label, mode=mode)


class Judge:
    """Scores recorded probe results against references computed here (cached for the whole batch)."""

    def __init__(self, seed: int, strict_types: bool = True):
        self.seed, self.strict = seed, strict_types
        self._cases: dict[tuple[str, str], list] = {}
        self._expected: dict[tuple[str, str, int], Any] = {}
        self._fps: dict[tuple[str, str, int], str] = {}

    def cases(self, piece: str, method: str) -> list:
        if (piece, method) not in self._cases:
            self._cases[(piece, method)] = hidden_cases(piece, method, self.seed)
        return self._cases[(piece, method)]

    def expected(self, piece: str, method: str, k: int) -> Any:
        key = (piece, method, k)
        if key not in self._expected:
            inputs = self.cases(piece, method)[k].inputs
            torch.manual_seed(derive_seed(self.seed, f"{piece}.{method}.own.c{k}"))
            with quiet_sampling():
                self._expected[key] = PIECES[piece].method(method).reference(inputs)
            self._fps[key] = fingerprint(inputs)
        return self._expected[key]

    def input_fingerprint(self, piece: str, method: str, k: int) -> str:
        self.expected(piece, method, k)
        return self._fps[(piece, method, k)]

    # -- one mode of one method ----------------------------------------------------------------
    def _judge_case(self, piece, method, mode, k, event, folder: Path) -> tuple[MethodOutcome | None, Any, float]:
        """(the outcome, None when the case passes; the decoded output, None when there is none; its largest error)."""
        spec = PIECES[piece].method(method)
        case = self.cases(piece, method)[k]
        if event.get("fp") != self.input_fingerprint(piece, method, k):
            return MethodOutcome(piece, method, "tampered", "the inputs your code received differ from the grader's: "
                                 "something in the notebook changed how test inputs are made", case.label,
                                 mode=mode), None, 0.0
        if "error" in event:
            return _error_outcome(piece, method, event["error"], case.label, mode), None, 0.0
        enc = event.get("out", {})
        out = decode(enc, folder)
        expected = self.expected(piece, method, k)
        c = compare(out, expected, rtol=spec.rtol, atol=spec.atol)
        detail = strict_mismatch(enc, expected) if self.strict else None
        if detail is None and c.ok and spec.integer and torch.is_tensor(out) and (out.is_floating_point()
                                                                                 or out.is_complex()):
            detail = f"the timesteps must be integers (torch.long), got {out.dtype}"
        if detail is None and c.ok:
            return None, out, c.max_error
        if detail is None:
            detail = (f"the values differ from the reference (largest error {c.max_error:.2g})"
                      if c.max_error != float("inf") else _no_values(c.message))
        return MethodOutcome(piece, method, "fail", detail, case.label, mode=mode), out, c.max_error

    def _named(self, piece, method, judged: list[tuple[int, Any]]) -> list[tuple[str, str]]:
        """The one catalogued mistake that explains the outputs of every case, as the self-check names it."""
        spec = PIECES[piece].method(method)
        runs = [(out, self.cases(piece, method)[k].inputs, self.expected(piece, method, k)) for k, out in judged]
        try:
            with quiet_sampling():
                found = explained_mistakes(piece, method, runs, rtol=spec.rtol, atol=spec.atol)
                sole = sole_explanation(found, runs, rtol=spec.rtol, atol=spec.atol)
        except Exception:  # noqa: BLE001 - a catalog entry that cannot run on these outputs names nothing
            sole = None
        return [(sole.name, sole.explanation)] if sole is not None else []

    def _judge_property(self, piece, method, mode, j, prop, runs: list[dict], folder: Path) -> MethodOutcome | None:
        label = (prop.__doc__ or prop.__name__).strip().split("\n")[0]
        queue = sorted(runs, key=lambda e: e.get("n", 0))

        def replay(inputs):
            if not queue:
                raise _Diverged("the property asked for more calls than were recorded")
            event = queue.pop(0)
            if event.get("fp") != fingerprint(inputs):
                raise _Diverged("a recorded call had other inputs than the property asks for")
            if "error" in event:
                raise _reraise(event["error"])
            apply_state(inputs, event.get("state"))   # e.g. a call counter's batches, for the property to judge
            return decode(event.get("out", {}), folder)

        try:
            with quiet_sampling():
                msg = prop(replay)
        except _Raised as err:
            return _error_outcome(piece, method, err.error, f"property: {label}", mode)
        except _Diverged as err:
            return MethodOutcome(piece, method, "tampered", f"the recorded calls do not match the check ({err})",
                                 f"property: {label}", mode=mode)
        except Exception as err:  # noqa: BLE001 - the property could not read what the student returned
            if hasattr(err, "_grader_error"):
                return _error_outcome(piece, method, err._grader_error, f"property: {label}", mode)
            return MethodOutcome(piece, method, "fail", f"the returned value could not be used ({type(err).__name__}: "
                                 f"{_no_values(str(err))[:200]})", f"property: {label}", mode=mode)
        if msg:
            return MethodOutcome(piece, method, "fail", msg, f"property: {label}", mode=mode)
        return None

    def _property_mistakes(self, piece, method, mode, done: dict, runs: dict, folder: Path) -> list[tuple[str, str]]:
        """A mistake that a property names (e.g. a generator ignored), for a case that failed unnamed."""
        spec = PIECES[piece].method(method)
        for j, prop in enumerate(spec.properties):
            name = getattr(prop, "names_mistake", None)
            key = f"{piece}.{method}.{mode}.p{j}"
            if name and key in done:
                bad = self._judge_property(piece, method, mode, j, prop, runs.get(key, []), folder)
                if bad is not None and bad.status == "fail" and "could not be used" not in bad.detail:
                    return [(name, bad.detail)]
        return []

    def judge_mode(self, piece, method, mode, done: dict, runs: dict, failures: dict, folder: Path) -> MethodOutcome:
        spec = PIECES[piece].method(method)
        group = f"{piece}.{method}.{mode}"
        n = len(self.cases(piece, method))
        failing: list[tuple[float, MethodOutcome]] = []   # (largest error, outcome) of each failing case
        judged: list[tuple[int, Any]] = []   # (case, decoded output) of every case that returned
        stop: MethodOutcome | None = None    # a case that did not return a value (said as it is, unless others fail)
        for k in range(n):
            key = f"{group}.c{k}"
            label = self.cases(piece, method)[k].label
            if key in failures:
                f = failures[key]
                stop = MethodOutcome(piece, method, f["kind"], f["detail"], label, mode=mode)
                break
            if key not in done:
                stop = MethodOutcome(piece, method, "not run", "this case was not run (an earlier case of this method "
                                     "timed out or crashed, or the grader's time ran out)", label, mode=mode)
                break
            bad, out, error = self._judge_case(piece, method, mode, k, done[key], folder)
            if bad is not None and bad.status != "fail":
                if bad.status == "tampered" or not failing:
                    return bad
                continue   # already failing: the wrong values are the feedback
            judged.append((k, out))
            if bad is not None:
                failing.append((error, bad))
        if stop is not None and not failing:
            return stop
        if failing:
            # the worst case (the largest error; the first of equals), named as the self-check names it
            worst = max(failing, key=lambda pair: pair[0])[1]
            if len(failing) > 1:
                worst.detail += f" (the worst of {len(failing)} failing cases)"
            worst.mistakes = (self._named(piece, method, judged)
                              or self._property_mistakes(piece, method, mode, done, runs, folder))
            return worst
        for j, prop in enumerate(spec.properties):
            key = f"{group}.p{j}"
            if key in failures:
                f = failures[key]
                return MethodOutcome(piece, method, f["kind"], f["detail"], f"property {j + 1}", mode=mode)
            if key not in done:
                return MethodOutcome(piece, method, "not run", "a property check was not run", f"property {j + 1}", mode=mode)
            bad = self._judge_property(piece, method, mode, j, prop, runs.get(key, []), folder)
            if bad is not None:
                return bad
        props = len(spec.properties)
        return MethodOutcome(piece, method, PASS, f"{n} hidden cases"
                             + (f" and {props} {'property' if props == 1 else 'properties'}" if props else "")
                             + " match", mode=mode)

    def judge_method(self, piece: str, method: str, probe: dict, folder: Path) -> MethodOutcome:
        """The outcome of one method from a notebook's recorded probe run (see `batch`)."""
        head = probe["methods"].get(f"{piece}.{method}")
        if head is None:
            return MethodOutcome(piece, method, "not run", probe.get("detail") or "the probe did not reach this method")
        status = head.get("status")
        names = head.get("names", [])
        if status == "missing":
            return MethodOutcome(piece, method, "missing", f"{', '.join(names)} is not defined after running the "
                                 "notebook's definitions (renamed, deleted, or its cell failed: see the errors above)")
        if status == "no method":
            return MethodOutcome(piece, method, "missing", f"{names[0] if names else 'the class'} has no method {method}")
        if status == "not own":
            return MethodOutcome(piece, method, "not own", f"{method} is not written in the notebook: it comes from "
                                 f"{names[0] if names else 'elsewhere'}")
        by_mode = {mode: self.judge_mode(piece, method, mode, probe["done"], probe["runs"], probe["failures"], folder)
                   for mode in head.get("modes", ["own"])}
        if "own" in by_mode and by_mode["own"].passed:
            return by_mode["own"]
        isolated = by_mode.get("isolated")
        if isolated is not None and isolated.passed:
            isolated.detail += (" with labsupport's " + ", ".join(head.get("collaborators", []))
                                + " standing in for yours (a mistake there is counted there, not twice)")
        return isolated or by_mode["own"]


def collect(events: list[dict], failures: dict, status: str = "ok", detail: str = "") -> dict:
    """The probe's event log arranged for `Judge.judge_method` (first record of each key wins)."""
    probe = {"methods": {}, "done": {}, "runs": {}, "failures": dict(failures), "status": status, "detail": detail,
             "load_errors": []}
    for e in events:
        ev = e.get("ev")
        if ev == "method":
            probe["methods"].setdefault(f"{e.get('piece')}.{e.get('method')}", e)
        elif ev == "done":
            probe["done"].setdefault(str(e.get("key")), e)
        elif ev == "run":
            runs = probe["runs"].setdefault(str(e.get("key")), [])
            if all(r.get("n") != e.get("n") for r in runs):
                runs.append(e)
        elif ev == "loaded" and not probe["load_errors"]:
            probe["load_errors"] = list(e.get("errors", []))
    return probe
