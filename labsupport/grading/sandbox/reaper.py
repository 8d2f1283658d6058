"""A launcher that ends every process a student's command starts, for machines without bubblewrap.

    python reaper.py '<json limits>' COMMAND ARG...

Standard library only (it starts in milliseconds). Two processes, so that no signal can stop the
clean-up:

* the *outer* process is what the grader started and may kill (its process group, even with
  SIGKILL). It dies with the grader (PR_SET_PDEATHSIG), forwards SIGTERM/SIGINT to the keeper and
  exits the way the keeper did;
* the *keeper*, in a session of its own (so a signal to the outer process group misses it), is a
  child subreaper (PR_SET_CHILD_SUBREAPER): every orphan below it, a `setsid` or double-forked one
  included, is re-parented to it instead of to init. It forks the command, which applies the limits
  and drops root to the sandbox user (`limits.apply_limits`), waits for it, then kills every
  descendant still alive, and exits with the command's status. When the outer process dies, by any
  signal, the keeper gets SIGTERM (its death signal) and kills the descendants first.

The keeper runs as the grader's user: the student's processes, running as another user, cannot
signal it. Without that switch (the grader is not root) they can, which is why `containment_problems`
reports that setup.
"""
from __future__ import annotations

import ctypes
import json
import os
import resource
import signal
import sys
import time

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
KILL_DEADLINE_S = 10.0    # a fork bomb may keep forking while it is killed; give up after this
_libc = ctypes.CDLL(None, use_errno=True)


def _prctl(option: int, value: int) -> None:
    if _libc.prctl(option, value, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl({option}, {value}): {os.strerror(err)}")


def _processes() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, state letter) of every process in /proc."""
    out = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read().decode("ascii", "replace")
        except OSError:   # ended meanwhile
            continue
        # the command name, in parentheses, may itself hold spaces and parentheses
        fields = stat[stat.rfind(")") + 2:].split()
        if len(fields) >= 2:
            out[int(name)] = (int(fields[1]), fields[0])
    return out


def descendants(root: int) -> list[int]:
    """Live processes whose chain of parents leads to `root` (zombies are skipped, not their children)."""
    procs = _processes()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in procs.items():
        children.setdefault(ppid, []).append(pid)
    found, todo = [], list(children.get(root, ()))
    while todo:
        pid = todo.pop()
        todo.extend(children.get(pid, ()))
        if procs[pid][1] not in "ZX":
            found.append(pid)
    return found


def _reap() -> dict[int, int]:
    """Collect every finished child without waiting: pid -> wait status."""
    done = {}
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return done
        if pid == 0:
            return done
        done[pid] = status


def kill_descendants(root: int) -> None:
    """SIGKILL everything below `root` until nothing is left (a process may fork while its siblings
    are being killed; its orphans come back to the subreaper and are found on the next pass)."""
    deadline = time.monotonic() + KILL_DEADLINE_S
    while True:
        _reap()
        alive = descendants(root)
        if not alive or time.monotonic() > deadline:
            return
        for pid in alive:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        time.sleep(0.005)


def _exit_like(status: int) -> None:
    """End this process the way a child with wait status `status` ended."""
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))   # a re-raised SIGSEGV must not dump the launcher
        signal.signal(sig, signal.SIG_DFL)
        os.kill(os.getpid(), sig)
        time.sleep(1)  # a signal whose default is not to end the process (unlikely) falls through to exit
    os._exit(os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 1)


def _keeper(outer: int, spec: dict, argv: list[str]) -> None:
    me = os.getpid()
    os.setsid()
    _prctl(PR_SET_CHILD_SUBREAPER, 1)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda s, _f: _stop(me, s))
    _prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != outer:   # the outer process died before the death signal was armed
        _stop(me, signal.SIGTERM)
    child = os.fork()
    if child == 0:
        try:
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                signal.signal(sig, signal.SIG_DFL)
            from limits import apply_limits   # the sibling module: this folder is sys.path[0]
            apply_limits(spec)
            _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)   # after the user switch, which clears it
            if os.getppid() != me:
                os._exit(1)
            os.execvp(argv[0], argv)
        except BaseException as err:  # noqa: BLE001 - never return into the keeper's code
            os.write(2, f"reaper: cannot start {argv[0]}: {err}\n".encode())
            os._exit(127)
    status = None
    while status is None:
        try:
            pid, st = os.waitpid(-1, 0)   # orphans come here too; keep the command's status
        except ChildProcessError:
            break
        if pid == child:
            status = st
    kill_descendants(me)
    _exit_like(status if status is not None else 127 << 8)


def _stop(me: int, sig: int) -> None:
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, signal.SIG_IGN)
    kill_descendants(me)
    signal.signal(sig, signal.SIG_DFL)
    os.kill(me, sig)
    os._exit(128 + sig)


def main(argv: list[str]) -> None:
    if len(argv) < 2:
        sys.exit("usage: reaper.py '<json limits>' COMMAND ARG...")
    spec = json.loads(argv[0])
    grader = os.getppid()
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != grader:
        os._exit(1)
    outer = os.getpid()
    keeper = os.fork()
    if keeper == 0:
        _keeper(outer, spec, argv[1:])
        os._exit(1)   # not reached

    def forward(sig, _frame):
        try:
            os.kill(keeper, signal.SIGTERM)
        except ProcessLookupError:
            pass

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    _, status = os.waitpid(keeper, 0)
    _exit_like(status)


if __name__ == "__main__":
    main(sys.argv[1:])
