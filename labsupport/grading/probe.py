"""The probe: the process that calls a student's functions on the grader's hidden inputs.

    python -m labsupport.grading.probe WORKDIR     (started by `sandbox.run_probe`, under the limits)

It reads WORKDIR/plan.json, rebuilds the hidden cases (`hidden.hidden_cases`), defines the student's
code (imports, classes, functions and literal constants of every code cell; nothing else runs), and
calls each graded method through the check's own `build` and `call`. Every result goes to
WORKDIR/results/events.jsonl as plain JSON plus `.npy` files (`codec.encode`). It judges nothing:
comparison and scoring happen in the grader's process, so whatever the student's code does here can
only change its own outputs.

Each method runs in up to two modes: "own" (the student's object as it is) and "isolated", where
the piece's other graded methods that the student wrote are the reference's, so one mistake is not
counted twice. While a piece is graded, calls into labsupport's reference class of that piece raise
`ReferenceUnavailable`.
"""
from __future__ import annotations

import __future__
import ast
import builtins
import contextlib
import functools
import inspect
import json
import linecache
import os
import random
import re
import sys
import time
import types
from pathlib import Path

import numpy as np
import torch

from ..checks import PIECES, describe_exception
from .codec import dumps, encode, fingerprint
from .hidden import derive_seed, hidden_cases
from .submission import definitions

ANNOTATIONS_FLAG = __future__.annotations.compiler_flag


class ReferenceUnavailable(RuntimeError):
    """Raised when graded code calls labsupport's reference implementation of a graded method."""


_ALLOWED = [0]      # > 0 while the grader itself calls a reference collaborator
_ACTIVE = [None]    # the piece whose methods are being graded


def _guard(fn, qualname: str, piece_id: str):
    """`fn` that refuses to run while `piece_id` is graded, unless the grader itself calls it."""
    @functools.wraps(fn)
    def guarded(*args, **kwargs):
        if _ACTIVE[0] == piece_id and not _ALLOWED[0]:
            raise ReferenceUnavailable(f"{qualname} is labsupport's reference implementation; graded code must "
                                       "compute this itself")
        return fn(*args, **kwargs)
    return guarded


def _collaborator(fn):
    def call(*args, **kwargs):
        _ALLOWED[0] += 1
        try:
            return fn(*args, **kwargs)
        finally:
            _ALLOWED[0] -= 1
    return call


def _err(err: BaseException, method: str = "") -> dict:
    try:
        where = describe_exception(err)
    except Exception:  # noqa: BLE001 - a student's exception whose str() fails
        where = f"raised {type(err).__name__}"
    try:
        message = str(err)
    except Exception:  # noqa: BLE001
        message = ""
    out = {"type": type(err).__name__, "module": type(err).__module__, "qualname": type(err).__qualname__,
           "message": message[:400], "where": where[:900]}
    if isinstance(err, NotImplementedError):
        m = re.search(r"TODO: ([\w.]+)", message)
        out["todo"] = m.group(1) if m else method
    if isinstance(err, ReferenceUnavailable):
        out["reference"] = True
    return out


def load_student_code(cells: list[dict]) -> tuple[types.ModuleType, list[dict], set[str]]:
    """Define the notebook's imports, classes, functions and literal constants in a fresh module.

    Imports run first (so reordered cells still work), then the rest in notebook order; a statement
    that fails is retried once after the others. Returns (module, errors, the cells' file names).
    """
    module = types.ModuleType("submission")
    module.__dict__["__builtins__"] = builtins
    sys.modules["submission"] = module
    imports, others, errors, files = [], [], [], set()
    for cell in cells:
        filename = f"<cell {cell['index']}{': ' + cell['piece'] if cell.get('piece') else ''}>"
        files.add(filename)
        source = cell["source"]
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        try:
            nodes = definitions(source, filename)
        except (SyntaxError, ValueError, RecursionError, MemoryError) as err:
            errors.append({"cell": cell["index"], "piece": cell.get("piece"), "type": type(err).__name__,
                           "message": f"{getattr(err, 'msg', err)} (line {getattr(err, 'lineno', '?')})"})
            continue
        for node in nodes:
            (imports if isinstance(node, (ast.Import, ast.ImportFrom)) else others).append((cell, filename, node))
    pending = imports + others
    for attempt in range(2):
        failed = []
        for cell, filename, node in pending:
            try:
                code = compile(ast.Module(body=[node], type_ignores=[]), filename, "exec",
                               flags=ANNOTATIONS_FLAG, dont_inherit=True)
                exec(code, module.__dict__)
            except BaseException as err:  # noqa: BLE001 - SystemExit included: it is the student's
                failed.append((cell, filename, node, err))
        if not failed or len(failed) == len(pending):
            break
        pending = [f[:3] for f in failed]
    for cell, _filename, node, err in failed:
        errors.append({"cell": cell["index"], "piece": cell.get("piece"), "line": getattr(node, "lineno", None),
                       **_err(err)})
    return module, errors, files


def _code_names(fn) -> set[str]:
    """Every attribute and global name a function's code (and its nested code) mentions."""
    code = getattr(fn, "__code__", None)
    names, stack = set(), [code] if code is not None else []
    while stack:
        c = stack.pop()
        names.update(c.co_names)
        stack.extend(k for k in c.co_consts if isinstance(k, types.CodeType))
    return names


def _find_function(obj, name: str):
    if isinstance(obj, type):
        for klass in obj.__mro__:
            if name in klass.__dict__:
                fn = klass.__dict__[name]
                return _unwrap(getattr(fn, "__func__", fn)), klass
        return None, None
    return _unwrap(getattr(obj, name, None)), None


def _unwrap(fn):
    """The function under decorators such as @torch.no_grad() (those that set __wrapped__)."""
    try:
        return inspect.unwrap(fn) if fn is not None else None
    except ValueError:  # a __wrapped__ cycle
        return fn


def _plain(value, depth: int = 0) -> bool:
    if value is None or type(value) in (bool, int, float, str):
        return True
    return depth < 3 and type(value) in (list, tuple) and len(value) <= 10_000 and all(_plain(v, depth + 1) for v in value)


def _input_state(inputs: dict) -> dict:
    """Public list attributes of the modules among a call's inputs (e.g. a call counter's batch sizes).

    A check property may judge them after the call; the grader replays the property with them.
    """
    out = {}
    for key, value in inputs.items():
        if isinstance(value, torch.nn.Module):
            out[key] = {a: list(v) for a, v in vars(value).items()
                        if not a.startswith("_") and type(v) in (list, tuple) and _plain(v)}
    return out


class Probe:
    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.plan = json.loads((workdir / "plan.json").read_text())
        self.out = workdir / "results"
        self.out.mkdir(exist_ok=True)
        self.log = open(self.out / "events.jsonl", "a", encoding="utf-8")
        self.skip = set(self.plan.get("skip", []))
        self.skip_groups = set(self.plan.get("skip_groups", []))

    def emit(self, **event) -> None:
        self.log.write(dumps(event) + "\n")
        self.log.flush()

    def seed(self, key: str) -> None:
        s = derive_seed(self.plan["seed"], key)
        torch.manual_seed(s)
        random.seed(s)
        np.random.seed(s % 2 ** 32)

    def run(self) -> None:
        torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
        methods = [(m["piece"], m["method"]) for m in self.plan["methods"]]
        cases = {(p, m): hidden_cases(p, m, self.plan["seed"]) for p, m in methods}
        self._poison({p for p, _ in methods})
        self.emit(ev="loading")
        module, errors, files = load_student_code(self.plan["cells"])
        self.emit(ev="loaded", errors=errors)
        for piece_id, method in methods:
            self.run_method(PIECES[piece_id], method, cases[(piece_id, method)], module, files)
        self.emit(ev="finished")

    @staticmethod
    def _poison(piece_ids) -> None:
        """Guard the reference classes' graded methods (functions stay: samplers call them internally)."""
        for piece_id in piece_ids:
            piece = PIECES[piece_id]
            for ref in piece.reference.values():
                if not isinstance(ref, type):
                    continue
                for spec in piece.methods:
                    if spec.name in ref.__dict__ and callable(ref.__dict__[spec.name]):
                        setattr(ref, spec.name, _guard(ref.__dict__[spec.name], f"{ref.__name__}.{spec.name}", piece_id))

    def _student_object(self, piece, method: str, module):
        """The object the check's `build` expects, and the names it needs that are missing."""
        ns = module.__dict__
        if len(piece.defines) == 1:
            name = piece.defines[0]
            return (ns[name], []) if name in ns else (None, [name])
        # a piece of several functions: each method is one of them, the others may be absent
        if method in piece.defines and method not in ns:
            return None, [method]
        return types.SimpleNamespace(**{n: ns[n] for n in piece.defines if n in ns}), []

    def run_method(self, piece, method: str, cases, module, files: set[str]) -> None:
        spec = piece.method(method)
        head = {"ev": "method", "piece": piece.id, "method": method}
        obj, missing = self._student_object(piece, method, module)
        if obj is None:
            self.emit(**head, status="missing", names=missing)
            return
        fn, owner = _find_function(obj, method)
        if fn is None:
            self.emit(**head, status="no method", names=[getattr(obj, "__name__", piece.defines[0])])
            return
        code = getattr(fn, "__code__", None)
        if code is None or code.co_filename not in files:
            where = f"{owner.__module__}.{owner.__qualname__}" if owner is not None else getattr(fn, "__module__", "?")
            self.emit(**head, status="not own", names=[where])
            return
        names = _code_names(fn)
        reference = piece.reference.get(method)
        if reference is not None and not isinstance(reference, type) and reference.__name__ in names:
            self.emit(**head, status="reference", names=[f"{reference.__module__}.{reference.__name__}"])
            return
        collaborators = self._collaborators(piece, method, obj, names, files)
        modes = ["isolated", "own"] if collaborators else ["own"]
        self.emit(**head, status="ok", modes=modes, collaborators=collaborators)
        _ACTIVE[0] = piece.id
        try:
            for mode in modes:
                group = f"{piece.id}.{method}.{mode}"
                if group in self.skip_groups:
                    continue
                isolate = self._isolation(piece, collaborators, obj, module) if mode == "isolated" else None
                for k, case in enumerate(cases):
                    self._call(f"{group}.c{k}", spec, piece, obj, case.inputs, method, isolate)
                for j, prop in enumerate(spec.properties):
                    self._property(f"{group}.p{j}", spec, piece, obj, prop, method, isolate)
        finally:
            _ACTIVE[0] = None

    @staticmethod
    def _collaborators(piece, method: str, obj, names: set[str], files: set[str]) -> list[str]:
        """The piece's other graded methods that the student wrote and `method` may call.

        For a class every one of them counts, because a call can be indirect (a helper that calls it);
        for a piece of functions, those whose names the function's code mentions.
        """
        others = [s.name for s in piece.methods if s.name != method]
        if not isinstance(obj, type):
            return sorted(n for n in others if n in names)
        out = []
        for name in others:
            fn, _ = _find_function(obj, name)
            if getattr(getattr(fn, "__code__", None), "co_filename", None) in files:
                out.append(name)
        return out

    def _isolation(self, piece, collaborators, obj, module):
        """A context manager factory: the reference's versions of `collaborators` stand in for the student's.

        For a class, they are set on the instance the check builds; for a piece of functions, they
        replace the student's module globals during the call.
        """
        @contextlib.contextmanager
        def isolated(inputs):
            if isinstance(obj, type):
                ref_cls = piece.reference.get(obj.__name__, next(iter(piece.reference.values())))
                _ALLOWED[0] += 1
                try:
                    ref = piece.build(ref_cls, inputs)
                finally:
                    _ALLOWED[0] -= 1

                def build(cls, i):
                    inst = piece.build(cls, i)
                    for name in collaborators:
                        setattr(inst, name, _collaborator(getattr(ref, name)))
                    return inst
                yield build
                return
            saved = {n: module.__dict__.get(n) for n in collaborators}
            for name in collaborators:
                module.__dict__[name] = _collaborator(piece.reference[name])
            try:
                yield piece.build
            finally:
                module.__dict__.update(saved)
        return isolated

    def _invoke(self, spec, piece, obj, inputs, isolate):
        fresh = {k: v.clone() if torch.is_tensor(v) else v for k, v in inputs.items()}
        with torch.no_grad(), (isolate(fresh) if isolate else contextlib.nullcontext(piece.build)) as build:
            return spec.call(build(obj, fresh), fresh)

    def _record(self, out, prefix: str) -> dict:
        try:
            return {"out": encode(out, self.out, prefix)}
        except BaseException as err:  # noqa: BLE001 - an object whose attributes misbehave
            return {"out": {"t": "opaque", "cls": type(out).__name__, "why": f"could not be read ({type(err).__name__})"}}

    def _call(self, key: str, spec, piece, obj, inputs: dict, method: str, isolate) -> None:
        if key in self.skip:
            return
        fp = fingerprint(inputs)
        self.emit(ev="start", key=key)
        self.seed(key)
        t0 = time.perf_counter()
        try:
            result = self._record(self._invoke(spec, piece, obj, inputs, isolate), key.replace(".", "_"))
        except BaseException as err:  # noqa: BLE001
            result = {"error": _err(err, method)}
        self.emit(ev="done", key=key, fp=fp, seconds=round(time.perf_counter() - t0, 4), **result)

    def _property(self, key: str, spec, piece, obj, prop, method: str, isolate) -> None:
        """Run a check property, recording each call so the grader can replay the property's verdict."""
        if key in self.skip:
            return
        self.emit(ev="start", key=key)
        self.seed(key)
        calls = []

        def run(inputs):
            n = len(calls)
            calls.append(n)
            fp = fingerprint(inputs)
            before = _input_state(inputs)
            allowed, _ALLOWED[0] = _ALLOWED[0], 0  # the student's code runs unprivileged
            try:
                out = self._invoke(spec, piece, obj, inputs, isolate)
            except BaseException as err:  # noqa: BLE001
                self.emit(ev="run", key=key, n=n, fp=fp, error=_err(err, method))
                raise
            finally:
                _ALLOWED[0] = allowed
            after = _input_state(inputs)
            changed = {k: {a: v for a, v in attrs.items() if before.get(k, {}).get(a) != v} for k, attrs in after.items()}
            self.emit(ev="run", key=key, n=n, fp=fp, state={k: v for k, v in changed.items() if v},
                      **self._record(out, f"{key.replace('.', '_')}_{n}"))
            return out

        _ALLOWED[0] += 1  # the property's own code may use the reference
        try:
            prop(run)
        except BaseException:  # noqa: BLE001 - the verdict is the grader's, from the recorded calls
            pass
        finally:
            _ALLOWED[0] -= 1
        self.emit(ev="done", key=key, runs=len(calls))


def main(argv: list[str]) -> int:
    workdir = Path(argv[1]).resolve()
    os.chdir(workdir)
    Probe(workdir).run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
