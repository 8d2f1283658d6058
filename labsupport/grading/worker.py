"""The worker: the sandboxed process that runs a student's code for the grader.

    python -m labsupport.grading.worker WORKDIR IN_FD OUT_FD     (started by `sandbox.run.run_probe`)

It runs inside the sandbox with the grading view of the package (view.py): no reference, no
course maths, no checks, no hidden inputs and no secret exist here. It defines the notebook's
code (imports, classes, functions and literal constants; nothing else runs), then does what the
grader asks, one JSON line at a time on IN_FD: describe a graded method, or call it on inputs the
grader sends (wire.py) and write what it returned (codec.py) to WORKDIR/results. When a call runs
"isolated", the piece's other methods that it may use are answered by the grader (a line on
OUT_FD, the answer on IN_FD), computed by the reference in the grader's own process.

Nothing here judges: whatever student code does to this process can only change its own outputs.
"""
from __future__ import annotations

import __future__
import ast
import builtins
import contextlib
import json
import linecache
import os
import random
import re
import sys
import traceback
import types
from pathlib import Path

ANNOTATIONS_FLAG = __future__.annotations.compiler_flag
_PACKAGE = str(Path(__file__).resolve().parents[1])


class CollaboratorError(RuntimeError):
    """The grader's reference collaborator refused the arguments it was given."""


def describe(err: BaseException) -> str:
    """'raised X: msg' and the last line of the student's own code on the way."""
    head = f"raised {type(err).__name__}: {err}".strip()
    frames = [f for f in traceback.extract_tb(err.__traceback__) if f.filename.startswith("<cell")]
    if not frames:
        return head
    f = frames[-1]
    code = (f.line or linecache.getline(f.filename, f.lineno)).strip()
    return f"{head}\nat line {f.lineno} of {f.filename.strip('<>')}, in {f.name}: {code}"


def error_record(err: BaseException, method: str = "") -> dict:
    from .unavailable import Unavailable
    try:
        where = describe(err)
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
    if isinstance(err, Unavailable):
        out["reference"] = True
    return out


def load_student_code(cells: list[dict]) -> tuple[types.ModuleType, list[dict], set[str]]:
    """Define the notebook's imports, classes, functions and literal constants in a fresh module.

    Imports run first (so reordered cells still work), then the rest in notebook order; a statement
    that fails is retried once after the others. Returns (module, errors, the cells' file names).
    """
    from .submission import definitions
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
    pending, failed = imports + others, []
    for _attempt in range(2):
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
                       **error_record(err)})
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


def _unwrap(fn):
    """The function under decorators such as @torch.no_grad() (those that set __wrapped__)."""
    seen = 0
    while fn is not None and hasattr(fn, "__wrapped__") and seen < 20:
        fn, seen = fn.__wrapped__, seen + 1
    return fn


def _find_function(obj, name: str):
    if isinstance(obj, type):
        for klass in obj.__mro__:
            if name in klass.__dict__:
                fn = klass.__dict__[name]
                return _unwrap(getattr(fn, "__func__", fn)), klass
        return None, None
    return _unwrap(getattr(obj, name, None)), None


class Worker:
    def __init__(self, workdir: Path, in_fd: int, out_fd: int):
        self.workdir = workdir
        self.results = workdir / "results"
        self.results.mkdir(exist_ok=True)
        self.inbox = os.fdopen(in_fd, "r", encoding="utf-8")
        self.outbox = os.fdopen(out_fd, "w", encoding="utf-8")
        self.module = None
        self.files: set[str] = set()

    # -- the line protocol ---------------------------------------------------------------------
    def send(self, **message) -> None:
        from .codec import dumps
        self.outbox.write(dumps(message) + "\n")
        self.outbox.flush()

    def receive(self) -> dict:
        line = self.inbox.readline()
        if not line:
            raise SystemExit(0)  # the grader closed the channel
        return json.loads(line)

    def serve(self) -> None:
        while True:
            request = self.receive()
            op = request.get("op")
            if op == "load":
                self.inputs = Path(request["inbox"])
                self.module, errors, self.files = load_student_code(request["cells"])
                self.send(ev="loaded", errors=errors)
            elif op == "inspect":
                self.send(ev="inspected", **self.inspect(request))
            elif op == "call":
                self.send(ev="result", key=request["key"], **self.call(request))
            elif op == "exit":
                return

    # -- what the student wrote ------------------------------------------------------------------
    def student_object(self, defines: list[str], method: str):
        ns = self.module.__dict__
        if len(defines) == 1:
            name = defines[0]
            if name not in ns:
                return None, [name]
            # a class is its own namespace; a lone function is looked up by name like a namespace's
            return (ns[name] if isinstance(ns[name], type) else types.SimpleNamespace(**{name: ns[name]})), []
        if method in defines and method not in ns:
            return None, [method]
        return types.SimpleNamespace(**{n: ns[n] for n in defines if n in ns}), []

    def inspect(self, request: dict) -> dict:
        """Is `method` there and written in the notebook, and which of `others` did the student write?"""
        defines, method, others = request["defines"], request["method"], request["others"]
        obj, missing = self.student_object(defines, method)
        if obj is None:
            return {"status": "missing", "names": missing}
        fn, owner = _find_function(obj, method)
        if fn is None:
            return {"status": "no method", "names": [getattr(obj, "__name__", defines[0])]}
        code = getattr(fn, "__code__", None)
        if code is None or code.co_filename not in self.files:
            where = f"{owner.__module__}.{owner.__qualname__}" if owner is not None else getattr(fn, "__module__", "?")
            return {"status": "not own", "names": [str(where)]}
        names = _code_names(fn)
        if not isinstance(obj, type):
            wrote = sorted(n for n in others if n in names)
        else:
            wrote = [n for n in others
                     if getattr(getattr(_find_function(obj, n)[0], "__code__", None), "co_filename", None) in self.files]
        return {"status": "ok", "names": [], "wrote": wrote}

    # -- one call --------------------------------------------------------------------------------
    def _collaborator(self, name: str):
        """A stand-in for the student's `name` whose answers come from the grader's reference."""
        from . import wire

        def remote(*args, **kwargs):
            memo, prefix = wire.Memo(), f"collab_{os.getpid()}_{id(args)}"
            sent = wire.encode_student({"args": list(args), "kwargs": kwargs}, self.results, prefix, memo)
            self.send(ev="collab", name=name, value=sent)
            reply = self.receive()
            if "error" in reply:
                raise CollaboratorError(str(reply["error"]))
            for ref, state in (reply.get("generators") or {}).items():
                g = memo.objects.get(int(ref))
                if g is not None:
                    wire.set_generator_state(g, wire.decode(state, self.inputs, rich=True))
            return wire.decode(reply["out"], self.inputs, rich=True)
        remote.__name__ = name
        return remote

    def _remote_network(self, ref: int, num_classes: int, null_class: int):
        """A network whose every call is answered by the grader (which counts the calls itself)."""
        import torch
        from torch import nn

        from . import wire
        worker, calls = self, [0]

        class RemoteNetwork(nn.Module):
            def __init__(self):
                super().__init__()
                self.anchor = nn.Parameter(torch.zeros(1))   # device and dtype, as a real network has
                self.num_classes, self.null_class = num_classes, null_class

            def forward(self, x_t, t, y=None):
                calls[0] += 1
                memo = wire.Memo()
                sent = wire.encode_student({"args": [x_t, t, y]}, worker.results, f"net{ref}_{calls[0]}", memo)
                worker.send(ev="model", ref=ref, value=sent)
                reply = worker.receive()
                if "error" in reply:
                    raise RuntimeError(f"the network refused its input: {reply['error']}")
                return wire.decode(reply["out"], worker.inputs, rich=True)
        return RemoteNetwork()

    @contextlib.contextmanager
    def _isolated(self, names: list[str]):
        saved = {n: self.module.__dict__.get(n) for n in names}
        for n in names:
            self.module.__dict__[n] = self._collaborator(n)
        try:
            yield
        finally:
            self.module.__dict__.update(saved)

    def call(self, request: dict) -> dict:
        import numpy as np
        import torch

        from . import codec, wire
        seed = int(request.get("seed", 0))
        torch.manual_seed(seed)
        random.seed(seed)
        np.random.seed(seed % 2 ** 32)
        memo = wire.Memo()
        method, target = request["method"], request["target"]
        collaborators = list(request.get("collaborators", []))
        try:
            obj, _ = self.student_object(target["defines"], method)
            if obj is None:
                raise NameError(f"{method} is not defined")
            value = wire.decode(request["value"], self.inputs, rich=True, memo=memo, remote=self._remote_network)
            with torch.no_grad(), (self._isolated(collaborators) if collaborators and not isinstance(obj, type)
                                   else contextlib.nullcontext()):
                if target["kind"] == "class":
                    obj = obj(*value["init_args"], **value["init_kwargs"])
                    for name in collaborators:
                        setattr(obj, name, self._collaborator(name))
                fn = getattr(obj, request["attr"])
                out = fn(*value["args"], **value["kwargs"])
            result = {"out": codec.encode(out, self.results, str(request["prefix"]))}
        except BaseException as err:  # noqa: BLE001 - everything the student raises is their result
            result = {"error": error_record(err, method)}
        try:
            result["state"] = _module_state(memo)
        except BaseException:  # noqa: BLE001 - a module whose attributes misbehave
            result["state"] = {}
        return result


def _module_state(memo) -> dict:
    """Public list attributes of the networks handed to the call (e.g. a call counter's batch sizes)."""
    import torch
    out = {}
    for ref, obj in memo.objects.items():
        if isinstance(obj, torch.nn.Module):
            lists = {a: list(v) for a, v in vars(obj).items()
                     if not a.startswith("_") and type(v) in (list, tuple) and len(v) <= 10_000
                     and all(type(x) in (int, float, bool, str) for x in v)}
            if lists:
                out[str(ref)] = lists
    return out


def main(argv: list[str]) -> int:
    workdir = Path(argv[1]).resolve()
    os.chdir(workdir)
    in_fd, out_fd = int(argv[2]), int(argv[3])
    devnull = open(os.devnull, "w")
    sys.stdout = devnull  # what student code prints goes nowhere; the channel is OUT_FD alone
    import torch
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    Worker(workdir, in_fd, out_fd).serve()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
