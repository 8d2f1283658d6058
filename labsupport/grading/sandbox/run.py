"""Drive the sandboxed worker: the grader asks, the worker answers, the grader keeps the record.

For every graded method the grader starts a worker (`labsupport.grading.worker`) inside the
sandbox with that method's grading view (`grading.view`; methods that share a view share one
worker), has it define the notebook's code, and sends it one call at a time: the hidden inputs
(never their seed), the constructor and the method to call. The reference never leaves this
process: expected outputs are computed by the Judge (score.py), and in "isolated" runs the piece's
methods that the graded one may use (MethodSpec.uses) are answered from here, on the arguments the
student's code passes. Check properties run here too, each `run(inputs)` being one worker call.

A call that runs past `case_timeout` is killed and recorded as "timeout"; one during which the
worker dies (os._exit, a segfault, the memory limit) as "crash". The worker then restarts without
the rest of that method's calls in the same mode, so one runaway method costs its own points only.
Events go to `ProbeRun.events` in this process; the worker's folder only holds its arrays.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..calls import recorded_call
from .channel import WorkerChannel, WorkerDied
from .limits import Limits, owner_of

__all__ = ["ProbeRun", "run_probe", "parse_events", "apply_state", "MAX_RESTARTS"]

MAX_RESTARTS = 12


@dataclass
class ProbeRun:
    status: str = "ok"          # ok | load timeout | load crash | probe timeout | too many restarts
    detail: str = ""
    events: list[dict] = field(default_factory=list)
    failures: dict[str, dict] = field(default_factory=dict)   # key -> {"kind": timeout|crash, "detail"}
    restarts: int = 0
    seconds: float = 0.0


def parse_events(lines: list[bytes]) -> list[dict]:
    """The JSON objects among event lines; torn, malformed or non-object lines are skipped."""
    out = []
    for line in lines:
        try:
            event = json.loads(line)
        except (ValueError, RecursionError):
            continue
        if isinstance(event, dict):
            out.append(event)
    return out


# -- the driver ---------------------------------------------------------------------------------------
class _Driver:
    def __init__(self, workdir: Path, plan: dict, limits: Limits, backend, run: ProbeRun):
        from ...teaching.checks import PIECES
        from ..hidden import derive_seed, hidden_cases
        self.PIECES, self.derive_seed, self.hidden_cases = PIECES, derive_seed, hidden_cases
        self.workdir, self.plan, self.limits, self.backend, self.run = workdir, plan, limits, backend, run
        self.inbox = Path(tempfile.mkdtemp(prefix="labsupport-inbox-"))   # the grader's; read-only in the sandbox
        self.inbox.chmod(0o755)
        self.start = time.monotonic()
        self.worker: WorkerChannel | None = None
        self.view: Path | None = None
        self.loaded_once = False
        self.graded: set[str] = set()       # methods whose calls are over (collaborators may be served)
        self._n = 0

    # -- worker life ---------------------------------------------------------------------------------
    def deadline(self, seconds: float) -> float:
        return min(time.monotonic() + seconds, self.start + self.limits.probe_timeout)

    def ensure_worker(self, view: Path) -> None:
        if self.worker is not None and self.view == view:
            return
        self.stop_worker()
        remaining = max(1.0, self.limits.probe_timeout - (time.monotonic() - self.start))
        self.worker, self.view = WorkerChannel(self.workdir, view, self.inbox, self.limits, self.backend, remaining), view
        self.worker.send({"op": "load", "cells": self.plan["cells"], "inbox": str(self.inbox)})
        try:
            reply = self.worker.receive(self.deadline(self.limits.case_timeout + 60))
        except WorkerDied as err:
            words = self.worker.last_words()
            self.stop_worker()
            kind = "load timeout" if err.kind == "timeout" else "load crash"
            detail = ("defining the notebook's classes and functions did not finish in time" if err.kind == "timeout"
                      else "the process ended while the notebook's classes and functions were being defined: "
                      + err.detail + words)
            raise _Stop(kind, detail) from None
        if not self.loaded_once:
            self.run.events.append({"ev": "loaded", "errors": reply.get("errors", []) if reply.get("ev") == "loaded" else []})
            self.loaded_once = True

    def stop_worker(self) -> None:
        if self.worker is not None:
            self.worker.close()
            self.worker = None

    # -- one call ------------------------------------------------------------------------------------
    def _fresh_inbox(self) -> None:
        for path in self.inbox.iterdir():
            path.unlink()

    def call(self, key: str, piece, spec, inputs: dict, collaborators: list[str], seed: int) -> dict:
        """One call of the student's method on `inputs`; returns the worker's reply (out or error, state)."""
        from .. import wire
        self._fresh_inbox()
        target, attr, value = recorded_call(piece, spec, inputs)
        memo = wire.Memo()
        sent = wire.encode(value, self.inbox, key.replace(".", "_"), memo)
        self._n += 1
        self.worker.send({"op": "call", "key": key, "method": spec.name, "target": target, "attr": attr,
                          "value": sent, "collaborators": collaborators, "seed": seed,
                          "prefix": f"r{self._n}_{key.replace('.', '_')}"})
        deadline = self.deadline(self.limits.case_timeout)
        cap = 4 * max(_numel(inputs), 4096)   # the grader computes nothing much larger than the case
        while True:
            reply = self.worker.receive(deadline)
            if reply.get("ev") == "collab":
                self.worker.send(self.serve_collaborator(piece, reply, inputs, collaborators, key, cap))
                continue
            if reply.get("ev") == "model":
                self.worker.send(self.serve_network(reply, memo, key, cap))
                continue
            if reply.get("ev") == "result" and reply.get("key") == key:
                reply["state"] = {**_state_by_input(reply.get("state"), memo, inputs), **_counted(inputs)}
                return reply
            # anything else is noise student code wrote on the channel: keep waiting for the result

    def serve_collaborator(self, piece, request: dict, inputs: dict, collaborators: list[str], key: str,
                           cap: int) -> dict:
        """The reference's answer for one of the piece's methods that the graded one may use."""
        from ...teaching.checks.core import quiet_sampling
        name = request.get("name")
        if name not in collaborators:
            return {"error": f"{name!r} is not served here"}

        def answer(args, kwargs):
            with quiet_sampling():
                if len(piece.defines) == 1:
                    ref_cls = next(iter(piece.reference.values()))
                    return getattr(piece.build(ref_cls, inputs), name)(*args, **kwargs)
                return piece.reference[name](*args, **kwargs)
        return self._serve(request, key, "collab", cap, answer)

    def serve_network(self, request: dict, memo, key: str, cap: int) -> dict:
        """ε from a network the grader kept (a call counter): it counts the call, then answers."""
        net = memo.objects.get(request.get("ref")) if isinstance(request.get("ref"), int) else None
        if not (isinstance(net, torch.nn.Module) and getattr(net, "counts_calls", False)):
            return {"error": "no such network"}
        return self._serve(request, key, "net", cap, lambda args, kwargs: net(*args[:3]))

    def _serve(self, request: dict, key: str, tag: str, cap: int, compute) -> dict:
        """Decode what student code passed, compute in this process, and write the answer to the inbox.

        Generators travel by state both ways; arguments and answers larger than `cap` numbers are refused.
        """
        from .. import wire
        self._n += 1
        memo = wire.Memo()
        try:
            value = wire.decode(request.get("value", {}), self.workdir / "results", rich=False, memo=memo)
            args, kwargs = list(value.get("args", [])), dict(value.get("kwargs", {}))
            if _numel([args, kwargs]) > cap:
                raise ValueError("arguments far larger than the case's inputs")
            with torch.no_grad():
                out = compute(args, kwargs)
            if _numel(out) > cap:
                raise ValueError("an answer far larger than the case's inputs")
            prefix = f"{key.replace('.', '_')}_{tag}{self._n}"
            generators = {str(ref): wire.encode(g.get_state(), self.inbox, f"{prefix}_g{ref}")
                          for ref, g in memo.objects.items() if isinstance(g, torch.Generator)}
            return {"out": wire.encode(out, self.inbox, prefix), "generators": generators}
        except Exception as err:  # noqa: BLE001 - the student passed arguments the reference refuses
            return {"error": f"{type(err).__name__}: {err}"[:300]}

    # -- a method ------------------------------------------------------------------------------------
    def grade_method(self, piece_id: str, method: str) -> None:
        from ..view import view_dir
        piece = self.PIECES[piece_id]
        spec = piece.method(method)
        _, folder = view_dir(piece_id, method)
        self.ensure_worker(folder / "labsupport")
        head = {"ev": "method", "piece": piece_id, "method": method}
        others = [s.name for s in piece.methods if s.name != method]
        self.worker.send({"op": "inspect", "method": method, "defines": list(piece.defines), "others": others})
        try:
            info = self.worker.receive(self.deadline(self.limits.case_timeout))
        except WorkerDied as err:
            self.stop_worker()
            self.run.events.append({**head, "status": "missing", "names": [f"(the worker {err.kind}ed)"]})
            return
        if info.get("status") != "ok":
            self.run.events.append({**head, "status": info.get("status", "missing"), "names": info.get("names", [])})
            return
        # the reference answers only for methods the graded one builds on, and only once their own
        # grading is over: an answer can then help nothing that is still to be graded
        uses = set(spec.uses)
        collaborators = sorted(n for n in info.get("wrote", []) if n in uses and (
            f"{piece_id}.{n}" in self.graded or n not in self.plan_methods(piece_id)))
        modes = ["own", "isolated"] if collaborators else ["own"]
        self.run.events.append({**head, "status": "ok", "modes": modes, "collaborators": collaborators})
        cases = self.hidden_cases(piece_id, method, self.plan["seed"])
        for mode in modes:
            group = f"{piece_id}.{method}.{mode}"
            served = collaborators if mode == "isolated" else []
            try:
                for k, case in enumerate(cases):
                    seed = self.derive_seed(self.plan["seed"], f"{piece_id}.{method}.own.c{k}")
                    self.one_case(f"{group}.c{k}", piece, spec, case.inputs, served, seed)
                for j, prop in enumerate(spec.properties):
                    self.one_property(f"{group}.p{j}", piece, spec, prop, served)
            except WorkerDied as err:
                self.failed(err)
        self.graded.add(f"{piece_id}.{method}")

    def plan_methods(self, piece_id: str) -> set[str]:
        return {m["method"] for m in self.plan["methods"] if m["piece"] == piece_id}

    def failed(self, err: WorkerDied) -> None:
        key = self.current
        detail = (f"did not finish within {self.limits.case_timeout:g} s (an endless loop?)" if err.kind == "timeout"
                  else err.detail)
        self.run.failures[key] = {"kind": err.kind, "detail": detail}
        self.stop_worker()
        self.run.restarts += 1
        if time.monotonic() - self.start > self.limits.probe_timeout:
            raise _Stop("probe timeout", f"the graded calls took longer than {self.limits.probe_timeout:g} s in all")
        if self.run.restarts > MAX_RESTARTS:
            raise _Stop("too many restarts", f"gave up after {MAX_RESTARTS} timeouts or crashes")
        self.ensure_worker(self.view_of_current)

    def one_case(self, key: str, piece, spec, inputs: dict, served: list[str], seed: int) -> None:
        from ..codec import fingerprint
        self.current, self.view_of_current = key, self.view
        t0 = time.perf_counter()
        reply = self.call(key, piece, spec, inputs, served, seed)
        event = {"ev": "done", "key": key, "fp": fingerprint(inputs), "seconds": round(time.perf_counter() - t0, 4)}
        event.update({k: reply[k] for k in ("out", "error") if k in reply})
        self.run.events.append(event)

    def one_property(self, key: str, piece, spec, prop, served: list[str]) -> None:
        from ..codec import decode, fingerprint
        from ..score import _reraise
        from ...teaching.checks.core import quiet_sampling
        self.current, self.view_of_current = key, self.view
        runs = [0]

        def run(inputs: dict):
            n = runs[0]
            runs[0] += 1
            seed = self.derive_seed(self.plan["seed"], f"{key}.{n}")
            reply = self.call(key, piece, spec, inputs, served, seed)
            event = {"ev": "run", "key": key, "n": n, "fp": fingerprint(inputs), "state": reply.get("state", {})}
            event.update({k: reply[k] for k in ("out", "error") if k in reply})
            self.run.events.append(event)
            apply_state(inputs, event["state"])
            if "error" in reply:
                raise _reraise(reply["error"])
            return decode(reply.get("out", {}), self.workdir / "results")

        try:
            with quiet_sampling():
                prop(run)
        except WorkerDied:
            raise
        except BaseException:  # noqa: BLE001 - the verdict is reached from the record (score.py)
            pass
        self.run.events.append({"ev": "done", "key": key, "runs": runs[0]})


def _numel(value, depth: int = 0) -> int:
    """How many numbers a (nested) value holds."""
    if torch.is_tensor(value):
        return value.numel()
    if depth < 6 and isinstance(value, (list, tuple)):
        return sum(_numel(v, depth + 1) for v in value)
    if depth < 6 and isinstance(value, dict):
        return sum(_numel(v, depth + 1) for v in value.values())
    return 1


class _Stop(Exception):
    def __init__(self, status: str, detail: str):
        super().__init__(detail)
        self.status, self.detail = status, detail


def _counted(inputs: dict) -> dict:
    """What the grader's own call counters among `inputs` recorded (the record a property is judged on)."""
    return {k: {"batches": list(v.batches)} for k, v in inputs.items()
            if isinstance(v, torch.nn.Module) and getattr(v, "counts_calls", False)}


def _state_by_input(state: Any, memo, inputs: dict) -> dict:
    """The worker's report of what a call did to the networks it got, keyed by the input's name."""
    if not isinstance(state, dict):
        return {}
    names = {id(v): k for k, v in inputs.items() if isinstance(v, torch.nn.Module)}
    out = {}
    for ref, attrs in state.items():
        try:
            obj = memo.objects.get(int(ref))
        except (TypeError, ValueError):
            continue
        if id(obj) in names and isinstance(attrs, dict):
            out[names[id(obj)]] = attrs
    return out


def apply_state(inputs: dict, state) -> None:
    """Set the list attributes a call changed on the networks among `inputs` (what the worker reported)."""
    if not isinstance(state, dict):
        return
    for key, attrs in state.items():
        target = inputs.get(key)
        if isinstance(target, torch.nn.Module) and isinstance(attrs, dict):
            for name, value in attrs.items():
                if (isinstance(name, str) and not name.startswith("_") and isinstance(value, list)
                        and isinstance(getattr(target, name, None), list)):
                    setattr(target, name, value)


def _dependencies_first(methods: list[dict], pieces) -> list[tuple[str, str]]:
    """The planned methods, each after the ones it builds on (MethodSpec.uses), else in plan order:
    an isolated run may then stand the reference in for every one of them."""
    planned = [(m["piece"], m["method"]) for m in methods]
    order: list[tuple[str, str]] = []

    def visit(key: tuple[str, str], depth: int = 0) -> None:
        if key in order or depth > 20:
            return
        for used in pieces[key[0]].method(key[1]).uses:
            if (key[0], used) in planned:
                visit((key[0], used), depth + 1)
        order.append(key)
    for key in planned:
        visit(key)
    return order


def run_probe(workdir: Path, plan: dict, limits: Limits, backend=None) -> ProbeRun:
    """Grade every planned method of one notebook in `workdir` (a fresh folder).

    plan: {"seed": the hidden inputs' seed (from the course secret), "cells": probe_cells(...),
    "methods": [{"piece", "method"}, ...]}.
    """
    from .backend import choose_backend
    workdir = Path(workdir)
    backend = backend or choose_backend()
    (workdir / "results").mkdir(exist_ok=True)
    owner = owner_of(backend.user) if backend.name == "subreaper" and backend.user else None
    if owner:  # the unprivileged worker writes its arrays there
        os.chown(workdir / "results", *owner)
    run = ProbeRun()
    driver = _Driver(workdir, plan, limits, backend, run)
    try:
        for piece, method in _dependencies_first(plan["methods"], driver.PIECES):
            driver.grade_method(piece, method)
    except _Stop as stop:
        run.status, run.detail = stop.status, stop.detail
    finally:
        driver.stop_worker()
        shutil.rmtree(driver.inbox, ignore_errors=True)
    run.seconds = round(time.monotonic() - driver.start, 2)
    return run
