"""Run a submitted notebook top to bottom in a fresh, limited kernel (nbclient).

The kernel runs in the submission's temporary folder with HOME there, under the address-space,
file-size and CPU limits of `Limits`, inside the sandbox `backend.choose_backend` picked (bubblewrap:
no network, so the kernel's ZMQ sockets are ipc sockets in that folder). Timeouts per cell and for
the whole notebook, and a cap on what it prints, stop runaway notebooks; the executed copy (with
outputs) is kept for the person who grades the written answers. Scores never come from here: the
worker (`labsupport.grading.worker`, driven by `sandbox/run.py`) calls the graded functions in another process.
"""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import nbformat
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient
from nbclient.exceptions import CellTimeoutError, DeadKernelError

from .backend import Backend, choose_backend
from . import cgroup
from .limits import Limits, owner_of, sandbox_env

__all__ = ["ExecResult", "execute_notebook"]

MB = 2 ** 20
_OUTPUT_MSGS = ("stream", "display_data", "execute_result", "error", "update_display_data")


@dataclass
class ExecResult:
    """How the notebook ran. status: ok | errors | memory limit | cell timeout | total timeout |
    output limit | kernel died | kernel failed to start."""
    status: str
    seconds: float
    cells_run: int = 0
    errors: list[dict] = field(default_factory=list)   # {"cell", "piece", "error"} per failing cell
    output_mb: float = 0.0
    detail: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


class _SandboxKernelManager(AsyncKernelManager):
    """Starts `python -m ipykernel_launcher` in the sandbox, whatever kernelspec the notebook names,
    talking over ipc sockets in `workdir` (bound at the same path inside bubblewrap, which has no
    network)."""

    def __init__(self, *, backend: Backend, workdir: Path, limits: Limits, **kw):
        super().__init__(kernel_name="python3", transport="ipc", ip=str(workdir / ".kernel-ipc"),
                         connection_file=str(workdir / ".kernel.json"), **kw)
        self._backend, self._workdir, self._limits = backend, workdir, limits
        self._owner = owner_of(backend.user)

    def format_kernel_cmd(self, extra_arguments=None):
        conn = os.path.realpath(self.connection_file)
        if self._owner:  # the unprivileged kernel must read its connection file
            os.chown(conn, *self._owner)
        kernel = [sys.executable, "-m", "ipykernel_launcher", "-f", conn] + list(extra_arguments or [])
        return self._backend.command(kernel, self._workdir, self._limits, self._limits.total_timeout)


def _size(content: dict) -> int:
    if "text" in content:
        return len(content["text"])
    if "data" in content:
        return sum(len(v) if isinstance(v, str) else len(str(v)) for v in content["data"].values())
    return sum(len(line) for line in content.get("traceback", ())) + len(str(content.get("evalue", "")))


def _out_of_memory(error: str) -> bool:
    return error.startswith("MemoryError") or ("allocate" in error and "memory" in error.lower())


def _kill_group(pgid: int | None) -> None:
    """SIGKILL the kernel's launcher and its group: under bwrap that ends the whole PID namespace
    (--die-with-parent); under the reaper its keeper, out of this group, then kills the rest."""
    if pgid:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


class _CappedClient(NotebookClient):
    """Drops every output past `cap` bytes and kills the kernel the moment the cap is crossed."""

    def __init__(self, nb, *, cap: int, **kw):
        super().__init__(nb, **kw)
        self.cap, self.printed, self.overflow, self.pgid = cap, 0, False, None
        self.errors: list[dict] = []
        self.on_notebook_start = self._started
        self.on_cell_error = self._cell_error
        # no emulation of Output widgets: with store_widget_state=False nbclient's emulation raises
        # KeyError on the widget's comm id (and it can stall a cell, nbclient#312); without it, what a
        # cell prints into an Output widget lands in the cell's own outputs
        self.comm_open_handlers = {"jupyter.widget": lambda msg: None}

    def _started(self, notebook) -> None:
        self.pgid = getattr(self.km.provisioner, "pgid", None)

    def _cell_error(self, cell, cell_index, execute_reply) -> None:
        c = execute_reply["content"]
        piece = cell.get("metadata", {}).get("labsupport", {}).get("piece")
        self.errors.append({"cell": cell_index, "piece": piece,
                            "error": f"{c.get('ename', 'Error')}: {str(c.get('evalue', ''))[:300]}"})

    def process_message(self, msg, cell, cell_index):
        if msg["msg_type"] in _OUTPUT_MSGS:
            self.printed += _size(msg["content"])
            if self.printed > self.cap:
                if not self.overflow:
                    self.overflow = True
                    _kill_group(self.pgid)
                return None
        return super().process_message(msg, cell, cell_index)


async def _run(client: _CappedClient, km: _SandboxKernelManager, workdir: Path, limits: Limits) -> tuple[str, str]:
    # the kernel's own stdout/stderr (fd-level writes, crash messages) go nowhere: only outputs count
    task = asyncio.ensure_future(client.async_execute(
        cwd=str(workdir), env=sandbox_env(workdir, limits.threads, kernel=True),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    try:
        # our own deadline: nbclient turns a cancellation into DeadKernelError
        done, _ = await asyncio.wait({task}, timeout=limits.total_timeout)
        if not done:
            _kill_group(client.pgid)
            task.cancel()
            await asyncio.wait({task}, timeout=10)
            if task.done() and not task.cancelled():
                task.exception()  # retrieved, so asyncio does not log it
            return "total timeout", f"the notebook ran longer than {limits.total_timeout:g} s in all"
        err = task.exception()
        if client.overflow:
            return "output limit", f"the notebook printed more than {limits.output_mb:g} MB; it was stopped there"
        if err is None:
            if any(_out_of_memory(e["error"]) for e in client.errors):
                return "memory limit", f"a cell ran out of memory (the limit is {limits.memory_mb} MB)"
            return ("errors" if client.errors else "ok"), ""
        if isinstance(err, CellTimeoutError):
            return "cell timeout", f"a cell ran longer than {limits.cell_timeout:g} s"
        if isinstance(err, DeadKernelError):
            return "kernel died", "the kernel process ended (os._exit, a crash, or the memory limit)"
        if client.pgid is None:
            return "kernel failed to start", f"{type(err).__name__}: {str(err)[:300]}"
        return "kernel died", f"{type(err).__name__}: {str(err)[:300]}"
    finally:
        cgroup.end(client.pgid)   # the launcher leads its session: its pid is the group's id
        _kill_group(client.pgid)
        try:
            await km.shutdown_kernel(now=True)
        except Exception:  # noqa: BLE001 - the kernel may be gone already
            pass
        if client.kc is not None:
            client.kc.stop_channels()


def execute_notebook(nb_path: Path, out_path: Path | None, limits: Limits, backend: Backend | None = None) -> ExecResult:
    """Execute `nb_path` in its own folder (which the sandbox user must own under the subreaper as
    root), in `backend` (default: `choose_backend()`); write the executed copy to `out_path` when given."""
    nb_path = Path(nb_path).resolve()
    workdir = nb_path.parent
    nb = nbformat.read(nb_path, as_version=4)
    km = _SandboxKernelManager(backend=backend or choose_backend(), workdir=workdir, limits=limits)
    # no widget state in the copy: its HTML export then shows each widget's still image (widgets.slider)
    client = _CappedClient(nb, km=km, cap=int(limits.output_mb * MB), timeout=int(limits.cell_timeout),
                           allow_errors=True, startup_timeout=120, iopub_timeout=10, store_widget_state=False,
                           resources={"metadata": {"path": str(workdir)}})
    start = time.monotonic()
    status, detail = asyncio.run(_run(client, km, workdir, limits))
    result = ExecResult(status=status, seconds=round(time.monotonic() - start, 2),
                        cells_run=client.code_cells_executed, errors=client.errors,
                        output_mb=round(client.printed / MB, 3), detail=detail)
    if out_path is not None:
        nbformat.write(nb, out_path)
    return result
