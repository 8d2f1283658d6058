"""A control group per sandbox, where the grader may make one: caps on all its processes together.

The rlimits of limits.py hold per process; a fork bomb, or memory spread over many processes, would
still take the machine. As root, with the `pids` and `memory` controllers mounted (cgroup v1 or a v2
root that offers them), every sandboxed command starts inside a fresh group capped at
`MAX_TASKS` tasks and `Limits.memory_mb` of memory for all its processes together:

    python cgjoin.py GROUP_DIR... -- COMMAND ARG...     (joins, then becomes COMMAND)

`release_idle()` kills what is left in finished groups and removes them. Without the controllers
(an ordinary user, most containers) nothing changes and `note()` says so.
"""
from __future__ import annotations

import atexit
import functools
import os
import signal
import sys
import threading
import time
import uuid
from pathlib import Path

__all__ = ["available", "join_prefix", "end", "release_idle", "note", "MAX_TASKS", "JOIN_SCRIPT"]

MAX_TASKS = 512   # processes and threads of one sandbox (a kernel has about 20)
JOIN_SCRIPT = Path(__file__).with_name("cgjoin.py")
V1 = Path("/sys/fs/cgroup")
_GROUPS: list[list[Path]] = []
_LOCK = threading.Lock()


@functools.lru_cache(maxsize=1)
def _layout() -> dict[str, Path] | None:
    """Where to make groups: {"pids": dir, "memory": dir} and the file names, or None."""
    if os.geteuid() != 0:
        return None
    v1 = {c: V1 / c for c in ("pids", "memory")}
    if all((d / "cgroup.procs").is_file() and os.access(d, os.W_OK) for d in v1.values()):
        return v1
    controllers = V1 / "cgroup.controllers"
    if controllers.is_file() and {"pids", "memory"} <= set(controllers.read_text().split()):
        try:
            (V1 / "cgroup.subtree_control").write_text("+pids +memory")
            return {"v2": V1}
        except OSError:
            return None
    return None


def available() -> bool:
    return _layout() is not None


def note() -> str:
    return (f"each sandbox in its own control group (at most {MAX_TASKS} tasks and its memory limit for all its "
            "processes together)" if available() else
            "no control groups here (not root, or no pids/memory controllers): the limits hold per process")


def _make(memory_bytes: int) -> list[Path]:
    layout = _layout()
    name = f"labsupport-{uuid.uuid4().hex[:12]}"
    if "v2" in layout:
        group = layout["v2"] / name
        group.mkdir()
        (group / "pids.max").write_text(str(MAX_TASKS))
        (group / "memory.max").write_text(str(memory_bytes))
        return [group]
    pids, memory = layout["pids"] / name, layout["memory"] / name
    pids.mkdir()
    memory.mkdir()
    (pids / "pids.max").write_text(str(MAX_TASKS))
    (memory / "memory.limit_in_bytes").write_text(str(memory_bytes))
    return [pids, memory]


def join_prefix(memory_mb: int) -> list[str]:
    """The prefix that starts a command inside a new group ([] where there are no groups)."""
    if not available():
        return []
    try:
        groups = _make(int(memory_mb) * 2 ** 20)
    except OSError:
        return []
    with _LOCK:
        _GROUPS.append(groups)
    return [sys.executable, "-E", "-S", str(JOIN_SCRIPT), *map(str, groups), "--"]


def _pids(group: Path) -> list[int]:
    try:
        return [int(p) for p in (group / "cgroup.procs").read_text().split()]
    except (OSError, ValueError):
        return []


def _empty(groups: list[Path]) -> None:
    for _ in range(50):  # processes may fork while being killed
        left = {p for g in groups for p in _pids(g)}
        if not left:
            break
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
    for g in groups:
        for _ in range(20):  # a task just killed may take a moment to leave
            try:
                g.rmdir()
                break
            except FileNotFoundError:
                break
            except OSError:
                time.sleep(0.05)


def end(pid: int | None) -> None:
    """Kill every process of the group that `pid` (a sandboxed command still alive) was started in."""
    if not pid or not available():
        return
    try:
        lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    except OSError:
        return
    names = {line.rsplit("/", 1)[-1] for line in lines if "/labsupport-" in line}
    with _LOCK:
        mine = [g for g in _GROUPS if g and g[0].name in names]
        for groups in mine:
            _empty(groups)
            _GROUPS.remove(groups)


def release_idle(*, force: bool = False) -> None:
    """Remove the groups with no process left (force=True, at exit: empty every group first)."""
    with _LOCK:
        keep = []
        for groups in _GROUPS:
            if force or not any(_pids(g) for g in groups):
                _empty(groups)
            else:
                keep.append(groups)
        _GROUPS[:] = keep


def sweep_stale(min_age_s: float = 300.0) -> None:
    """Remove empty groups that graders left behind (killed before they could), older than `min_age_s`
    (a younger empty group may be one that another grader is about to join)."""
    layout = _layout()
    if layout is None:
        return
    for root in layout.values():
        for g in root.glob("labsupport-*"):
            try:
                if time.time() - g.stat().st_mtime > min_age_s and not _pids(g):
                    g.rmdir()
            except OSError:
                pass


atexit.register(release_idle, force=True)
