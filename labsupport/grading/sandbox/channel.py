"""The line channel to one sandboxed worker: start it, send a request, wait for the answer.

Requests and answers are JSON lines on two pipes; writes never block (the worker may stop
reading) and reads wait at most until a deadline. What the worker writes to stderr is kept in
memory (its last 2 kB), never in a file the sandbox could replace.
"""
from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from . import cgroup
from .limits import Limits, sandbox_env

__all__ = ["WorkerDied", "WorkerChannel", "MAX_LINE"]

MAX_LINE = 8 * 2 ** 20


class WorkerDied(Exception):
    def __init__(self, kind: str, detail: str):
        super().__init__(detail)
        self.kind, self.detail = kind, detail


# -- the channel --------------------------------------------------------------------------------------
class WorkerChannel:
    """One sandboxed worker process, its two pipes, and the tail of what it wrote to stderr.

    Nothing the grader writes or reads lives in the folder the sandbox can write, except the arrays
    of results/ (read as plain files only, codec.read_array): its inputs are in `inbox`, a
    grader-owned folder the sandbox sees read-only, and its stderr comes through a pipe.
    """

    def __init__(self, workdir: Path, view: Path, inbox: Path, limits: Limits, backend, cpu_seconds: float):
        self.workdir = workdir
        to_child_r, self._to_child = os.pipe()
        self._from_child, from_child_w = os.pipe()
        cmd = [sys.executable, "-m", "labsupport.grading.worker", str(workdir), str(to_child_r), str(from_child_w)]
        full = backend.command(cmd, workdir, limits, cpu_seconds, package_view=view, readonly=(inbox,))
        # the limits wrapper that `full` starts with sets PYTHONPATH to where the view is importable
        self.proc = subprocess.Popen(full, cwd=workdir, env=sandbox_env(workdir, limits.threads), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, pass_fds=(to_child_r, from_child_w), start_new_session=True)
        os.close(to_child_r)
        os.close(from_child_w)
        os.set_blocking(self._to_child, False)
        self._buffer = b""
        self.stderr_tail = b""
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        """Keep the last 2 kB the worker wrote to stderr (a traceback when it could not start)."""
        for chunk in iter(lambda: self.proc.stderr.read1(4096), b""):
            self.stderr_tail = (self.stderr_tail + chunk)[-2048:]

    def send(self, message: dict, timeout: float = 60.0) -> None:
        """Write one line; a worker that stops reading cannot block the grader (non-blocking pipe)."""
        from ..codec import dumps
        data, deadline = (dumps(message) + "\n").encode(), time.monotonic() + timeout
        while data:
            if time.monotonic() > deadline:
                raise WorkerDied("timeout", "")
            _, ready, _ = select.select([], [self._to_child], [], 1.0)
            if not ready:
                continue
            try:
                data = data[os.write(self._to_child, data[:1 << 16]):]
            except BlockingIOError:
                continue
            except OSError:
                raise WorkerDied("crash", self._exit_words()) from None

    def receive(self, deadline: float) -> dict:
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise WorkerDied("timeout", "")
            ready, _, _ = select.select([self._from_child], [], [], min(left, 1.0))
            if not ready:
                continue
            chunk = os.read(self._from_child, 1 << 16)
            if not chunk:
                raise WorkerDied("crash", self._exit_words())
            self._buffer += chunk
            if len(self._buffer) > MAX_LINE:
                raise WorkerDied("crash", "the worker wrote an oversized message")
        line, self._buffer = self._buffer.split(b"\n", 1)
        try:
            message = json.loads(line)
        except (ValueError, RecursionError):
            message = None
        return message if isinstance(message, dict) else {"ev": "garbled"}

    def _exit_words(self) -> str:
        try:
            rc = self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            return "the worker stopped answering"
        return _describe_exit(rc)

    def close(self) -> None:
        cgroup.end(self.proc.pid)   # every process of its control group, where there is one
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        for fd in (self._to_child, self._from_child):
            try:
                os.close(fd)
            except OSError:
                pass

    def last_words(self) -> str:
        text = self.stderr_tail.decode("utf-8", "replace").strip()
        return f"; its last words: …{text.splitlines()[-1][-300:]}" if text else ""


def _describe_exit(rc: int) -> str:
    if rc < 0:
        name = signal.Signals(-rc).name if -rc in signal.Signals._value2member_map_ else str(-rc)
        return f"the process was killed by {name}" + (" (a crash)" if name in ("SIGSEGV", "SIGBUS", "SIGABRT") else "")
    return f"the process exited with code {rc} (os._exit or sys.exit outside a call?)"
