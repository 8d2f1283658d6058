"""Resource limits for the processes that run student code: a kernel or a probe.

Run as a script (standard library only, so it starts in milliseconds):

    python limits.py '<json limits>' COMMAND ARG...

sets the limits on itself, optionally drops root to an unprivileged user, then replaces itself
with COMMAND, which inherits all of it. Used as a prefix because `preexec_fn` is unsafe in a
parent that runs threads (zmq does). The sandbox backends (`backend.py`) put it behind bubblewrap or
the reaper (`reaper.py`, which imports `apply_limits`).

Imported, it gives `Limits` (the numbers) and `sandbox_env` (the environment of the child).
"""
from __future__ import annotations

import json
import os
import resource
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Limits", "sandbox_env", "owner_of", "apply_limits", "LIMITS_SCRIPT"]

LIMITS_SCRIPT = Path(__file__).resolve()
MB = 2 ** 20
# the grader's settings that notebooks need (where MNIST is, CI's fast mode); nothing else is inherited
PASSED_THROUGH = ("LABSUPPORT_DATA", "LABSUPPORT_FAST")


@dataclass(frozen=True)
class Limits:
    """Budgets of one submission. Times in seconds, sizes in MiB."""
    cell_timeout: float = 120.0     # one notebook cell
    total_timeout: float = 900.0    # the whole notebook
    case_timeout: float = 60.0      # one call of a student's method by the probe
    probe_timeout: float = 600.0    # all probe calls of one submission
    memory_mb: int = 6144           # address space (RLIMIT_AS); importing torch alone maps ~3.4 GiB
    output_mb: float = 20.0         # text and images the notebook may print before it is stopped
    file_mb: int = 256              # largest file student code may write (RLIMIT_FSIZE)
    threads: int = 1                # torch/OpenMP threads in the child
    user: str | None = None         # drop root to this user in `wrap` (the backends use `Backend.user` instead)

    def rlimits(self, cpu_seconds: float) -> dict:
        """What the wrapper applies: address space, file size, no core dumps, a CPU-time backstop."""
        return {"as": int(self.memory_mb * MB), "fsize": int(self.file_mb * MB), "cpu": int(cpu_seconds) + 30,
                "user": self.user}


def sandbox_env(workdir: Path, threads: int = 1, *, kernel: bool = False) -> dict[str, str]:
    """A small environment: HOME and every cache inside `workdir`, nothing of the grader's own
    except PASSED_THROUGH. The package stays importable through PYTHONPATH even when not installed.
    Figures go nowhere (Agg), except in a kernel.
    """
    pkg_root = str(Path(__file__).resolve().parents[3])
    n = str(max(1, threads))
    env = {
        "PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",   # not the grader's own PATH
        "HOME": str(workdir), "TMPDIR": str(workdir), "PWD": str(workdir),
        "PYTHONPATH": pkg_root, "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1",
        "MPLBACKEND": "Agg", "MPLCONFIGDIR": str(workdir / ".config" / "matplotlib"),
        "IPYTHONDIR": str(workdir / ".ipython"), "JUPYTER_RUNTIME_DIR": str(workdir / ".jupyter"),
        "XDG_CACHE_HOME": str(workdir / ".cache"), "TORCH_HOME": str(workdir / ".cache" / "torch"),
        "OMP_NUM_THREADS": n, "MKL_NUM_THREADS": n, "OPENBLAS_NUM_THREADS": n,
        "LABSUPPORT_PROGRESS": "0", "LABSUPPORT_DEVICE": "cpu", "CUDA_VISIBLE_DEVICES": "",
        "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "PYTHONIOENCODING": "utf-8",
    }
    env.update({k: os.environ[k] for k in PASSED_THROUGH if k in os.environ})
    if kernel:  # a kernel keeps ipykernel's inline backend, so the executed copy shows the figures
        del env["MPLBACKEND"]
    return env


def owner_of(user: str | None) -> tuple[int, int] | None:
    """(uid, gid) of `user` when the grader can switch to it (it runs as root), else None."""
    if not user or os.geteuid() != 0:
        return None
    import pwd
    entry = pwd.getpwnam(user)
    return entry.pw_uid, entry.pw_gid


def apply_limits(spec: dict) -> None:
    """Set the rlimits of `Limits.rlimits` on this process, put `spec["pythonpath"]` (when given) in
    the environment the command will inherit, and drop root to `spec["user"]` (when given)."""
    for name, key in (("as", resource.RLIMIT_AS), ("fsize", resource.RLIMIT_FSIZE), ("cpu", resource.RLIMIT_CPU)):
        if spec.get(name):
            resource.setrlimit(key, (spec[name], spec[name]))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    # a write past RLIMIT_FSIZE then fails with an OSError the student sees, instead of killing silently
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    if spec.get("pythonpath"):
        os.environ["PYTHONPATH"] = spec["pythonpath"]
    if spec.get("user") and os.geteuid() == 0:
        import pwd
        entry = pwd.getpwnam(spec["user"])
        os.setgroups([])
        os.setgid(entry.pw_gid)
        os.setuid(entry.pw_uid)


if __name__ == "__main__":
    apply_limits(json.loads(sys.argv[1]))
    os.execvp(sys.argv[2], sys.argv[2:])
