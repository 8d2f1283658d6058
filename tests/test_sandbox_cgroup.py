"""Control groups: all the processes of one sandbox together are capped (where the grader can make groups)."""
from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from labsupport.grading.sandbox import Limits, cgroup, sandbox_env
from labsupport.grading.sandbox.backend import choose_backend

pytestmark = pytest.mark.skipif(not cgroup.available(), reason="needs root and the pids/memory cgroup controllers")

BOMB = r"""
import os, time
n = 0
try:
    for i in range(3 * MAX):
        if os.fork() == 0:
            time.sleep(30)
            os._exit(0)
        n += 1
except OSError:
    pass
print("forked", n, flush=True)
"""


def test_a_fork_bomb_stops_at_the_task_cap_and_leaves_no_group(tmp_path: Path):
    backend = choose_backend()
    cmd = backend.command(["/usr/bin/env", "python3", "-c", BOMB.replace("MAX", str(cgroup.MAX_TASKS))], tmp_path,
                          Limits(memory_mb=1024), 60)
    out = subprocess.run(cmd, cwd=tmp_path, env=sandbox_env(tmp_path), capture_output=True, text=True, timeout=120,
                         start_new_session=True)
    forked = int(out.stdout.split()[-1])
    assert 0 < forked < cgroup.MAX_TASKS, out.stdout
    for _ in range(100):  # the namespace's processes die with its first one; the kernel takes a moment
        cgroup.release_idle()
        if not cgroup._GROUPS:
            break
        time.sleep(0.1)
    assert not cgroup._GROUPS


def test_memory_spread_over_processes_is_capped(tmp_path: Path):
    code = r"""
import os
kids = []
for i in range(4):
    pid = os.fork()
    if pid == 0:
        block = bytearray(200 * 2**20)
        for j in range(0, len(block), 4096):
            block[j] = 1
        __import__("time").sleep(3)   # hold it, so that the four blocks are alive together
        os._exit(0)
    kids.append(pid)
codes = [os.waitpid(p, 0)[1] for p in kids]
print("killed", sum(1 for c in codes if os.WIFSIGNALED(c)), flush=True)
"""
    backend = choose_backend()
    # each child stays under its own address-space limit; together they pass the group's 512 MB
    cmd = backend.command(["/usr/bin/env", "python3", "-c", code], tmp_path, Limits(memory_mb=512), 60)
    out = subprocess.run(cmd, cwd=tmp_path, env=sandbox_env(tmp_path), capture_output=True, text=True, timeout=120,
                         start_new_session=True)
    assert "killed" in out.stdout and int(out.stdout.split()[-1]) >= 1, (out.stdout, out.stderr[-500:])
    cgroup.release_idle()
