"""Running untrusted notebooks: a sandbox backend, limits, a capped kernel, and the worker's process.

Each submission runs in a fresh temporary folder (cwd, HOME and TMPDIR) with an address-space cap, a
file-size cap, no core dumps, timeouts and an output cap, inside the backend `choose_backend` picks:
bubblewrap where it works (no network, nothing of the machine visible but the system, the
interpreter and the package, all read-only; every process ends with the first), else a subreaper
that kills every leftover process and, when the grader is root, drops to an unprivileged user.
`containment_problems` says, after a trial run, what student code could still reach.
"""
from __future__ import annotations

from .backend import Backend, choose_backend, containment_problems
from .execute import ExecResult, execute_notebook
from .limits import Limits, owner_of, sandbox_env
from .run import ProbeRun, run_probe

__all__ = ["Backend", "choose_backend", "containment_problems", "Limits", "ExecResult", "execute_notebook", "ProbeRun",
           "run_probe", "owner_of", "sandbox_env"]
