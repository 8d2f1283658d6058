"""Start the probe under the limits, watch its progress, and restart it past a call that hangs or crashes.

The probe appends one JSON line per event to results/events.jsonl. A call that runs longer than
`case_timeout` is killed and recorded as "timeout"; one during which the process dies (os._exit, a
segfault, the memory limit) as "crash". The probe then restarts without that method's remaining
calls in the same mode, so one runaway method costs its own points only.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from .limits import Limits, owner_of, sandbox_env, wrap

__all__ = ["ProbeRun", "run_probe"]

MAX_RESTARTS = 12
MAX_EVENTS_BYTES = 64 * 2 ** 20


@dataclass
class ProbeRun:
    status: str = "ok"          # ok | load timeout | load crash | probe timeout | too many restarts
    detail: str = ""
    events: list[dict] = field(default_factory=list)
    failures: dict[str, dict] = field(default_factory=dict)   # key -> {"kind": timeout|crash|skipped, ...}
    restarts: int = 0
    seconds: float = 0.0


class _Tail:
    """Reads whole lines appended to a file since the last call."""

    def __init__(self, path: Path):
        self.path, self.offset, self.buffer = path, 0, b""

    def read(self) -> list[dict]:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                chunk = f.read(MAX_EVENTS_BYTES - self.offset if self.offset < MAX_EVENTS_BYTES else 0)
        except FileNotFoundError:
            return []
        self.offset += len(chunk)
        lines = (self.buffer + chunk).split(b"\n")
        self.buffer = lines.pop()
        return parse_events(lines)


def parse_events(lines: list[bytes]) -> list[dict]:
    """The JSON objects among the probe's event lines; torn, malformed or non-object lines are skipped."""
    out = []
    for line in lines:
        try:
            event = json.loads(line)
        except (ValueError, RecursionError):
            continue
        if isinstance(event, dict):
            out.append(event)
    return out


def _kill(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


def _describe_exit(rc: int) -> str:
    if rc < 0:
        name = signal.Signals(-rc).name if -rc in signal.Signals._value2member_map_ else str(-rc)
        return f"the process was killed by {name}" + (" (a crash)" if name in ("SIGSEGV", "SIGBUS", "SIGABRT") else "")
    return f"the process exited with code {rc} (os._exit or sys.exit outside a call?)"


def _last_words(log: Path) -> str:
    """The end of the probe's stderr (a traceback when the harness itself could not start)."""
    try:
        with open(log, "rb") as f:
            f.seek(max(0, log.stat().st_size - 600))
            text = f.read().decode("utf-8", "replace").strip()
    except OSError:
        return ""
    return f"; its last words: …{text.splitlines()[-1][-300:]}" if text else ""


def run_probe(workdir: Path, plan: dict, limits: Limits) -> ProbeRun:
    """Run the probe in `workdir` (a fresh folder) until every planned call has a result."""
    workdir = Path(workdir)
    results = workdir / "results"
    results.mkdir(exist_ok=True)
    owner = owner_of(limits.user)
    if owner:
        for p in (workdir, results):
            os.chown(p, *owner)
    run = ProbeRun()
    tail = _Tail(results / "events.jsonl")
    start = time.monotonic()
    done: set[str] = set()
    skip_groups: set[str] = set()
    while True:
        (workdir / "plan.json").write_text(json.dumps({**plan, "skip": sorted(done | set(run.failures)),
                                                       "skip_groups": sorted(skip_groups)}))
        remaining = limits.probe_timeout - (time.monotonic() - start)
        cmd = wrap([sys.executable, "-m", "labsupport.grading.probe", str(workdir)], limits, max(remaining, 1))
        with open(workdir / "probe.log", "ab") as log:
            proc = subprocess.Popen(cmd, cwd=workdir, env=sandbox_env(workdir, limits.threads), stdin=subprocess.DEVNULL,
                                    stdout=subprocess.DEVNULL, stderr=log, start_new_session=True)
        loaded, current, since, finished, launched = False, None, time.monotonic(), False, time.monotonic()
        stop = ""
        while True:
            alive = proc.poll() is None
            for event in tail.read():
                run.events.append(event)
                ev = event.get("ev")
                if ev == "loaded":
                    loaded = True
                elif ev == "start":
                    current, since = str(event.get("key")), time.monotonic()
                elif ev == "done":
                    done.add(str(event.get("key")))
                    current = None
                elif ev == "finished":
                    finished = True
            if not alive or finished:
                break
            now = time.monotonic()
            if now - start > limits.probe_timeout:
                stop = "probe timeout"
            elif not loaded and now - launched > limits.case_timeout + 60:  # imports get a minute on top
                stop = "load timeout"
            elif current is not None and now - since > limits.case_timeout:
                stop = "case timeout"
            if stop:
                _kill(proc)
                break
            time.sleep(0.05)
        if proc.poll() is None:
            _kill(proc)
        for event in tail.read():  # what was written just before the end
            run.events.append(event)
            if event.get("ev") == "done":
                done.add(str(event.get("key")))
                current = None if event.get("key") == current else current
            finished = finished or event.get("ev") == "finished"
        if finished:
            break
        if stop == "probe timeout":
            run.status, run.detail = "probe timeout", f"the graded calls took longer than {limits.probe_timeout:g} s in all"
            break
        if not loaded:
            run.status = "load timeout" if stop else "load crash"
            run.detail = ("defining the notebook's classes and functions did not finish in time" if stop else
                          "the process ended while the notebook's classes and functions were being defined: "
                          + _describe_exit(proc.returncode) + _last_words(workdir / "probe.log"))
            break
        if current is None:  # died between calls: nothing to blame, nothing more to learn
            run.status, run.detail = "load crash", "the probe ended unexpectedly: " + _describe_exit(proc.returncode)
            break
        kind = "timeout" if stop == "case timeout" else "crash"
        detail = (f"did not finish within {limits.case_timeout:g} s (an endless loop?)" if kind == "timeout"
                  else _describe_exit(proc.returncode))
        run.failures[current] = {"kind": kind, "detail": detail}
        skip_groups.add(current.rsplit(".", 1)[0])
        run.restarts += 1
        if run.restarts > MAX_RESTARTS:
            run.status, run.detail = "too many restarts", f"gave up after {MAX_RESTARTS} timeouts or crashes"
            break
    run.seconds = round(time.monotonic() - start, 2)
    return run
