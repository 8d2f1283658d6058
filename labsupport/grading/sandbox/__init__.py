"""Running untrusted notebooks: a sandbox backend, limits, a capped kernel, and the probe's process.

Each submission runs in a fresh temporary folder (cwd, HOME and TMPDIR) with an address-space cap, a
file-size cap, no core dumps, timeouts and an output cap, inside the backend `choose_backend` picks:
bubblewrap where it works (no network, nothing of the machine visible but the system, the
interpreter and the package, all read-only; every process ends with the first), else a subreaper
that kills every leftover process and, when the grader is root, drops to an unprivileged user.
`containment_problems` says, after a trial run, what student code could still reach.
"""
from __future__ import annotations

import functools
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from .backend import Backend, choose_backend, containment_problems
from .execute import ExecResult, execute_notebook
from .limits import Limits, owner_of, sandbox_env, wrap
from .run import ProbeRun, run_probe

__all__ = ["Backend", "choose_backend", "containment_problems", "Limits", "ExecResult", "execute_notebook", "ProbeRun",
           "run_probe", "choose_user", "owner_of", "sandbox_env"]


@functools.lru_cache(maxsize=None)
def choose_user(preferred: str = "nobody") -> tuple[str | None, str]:
    """The user to run student code as, and a sentence saying what was chosen and why (tried once
    per process). Superseded by `choose_backend`, whose `Backend.user` is the one to chown for."""
    if os.geteuid() != 0:
        return None, "student code runs as the grader's own user (not root): no user switch"
    try:
        owner = owner_of(preferred)
    except KeyError:
        return None, f"running as root, but there is no user {preferred!r}: student code runs as root"
    with tempfile.TemporaryDirectory(prefix="labsupport-sandbox-check-") as tmp:
        os.chown(tmp, *owner)
        cmd = wrap([sys.executable, "-c", "import labsupport.grading.probe"], Limits(user=preferred), 120)
        try:
            ok = subprocess.run(cmd, cwd=tmp, env=sandbox_env(Path(tmp)), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, timeout=180).returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            ok = False
    if ok:
        return preferred, f"student code runs as the unprivileged user {preferred!r}"
    return None, (f"running as root, but user {preferred!r} cannot run this Python or import labsupport "
                  "(check the permissions of the interpreter and the package): student code runs as root, "
                  "confined only to its temporary folder by convention")
