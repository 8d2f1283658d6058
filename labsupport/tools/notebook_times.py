"""How long each notebook's code takes, top to bottom in a fresh kernel, in full and in fast mode.

    python -m labsupport.tools.notebook_times [--fast-only] [--out times.json] [notebooks ...]

For the notebooks' "Time:" lines and the README: run it on a quiet machine, since every other
process on the CPU lengthens the times. It prints one row per notebook and mode, with the machine.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

__all__ = ["time_notebook", "main"]

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


def time_notebook(path: Path, *, fast: bool, timeout: int = 1800) -> float:
    """Seconds to execute `path` in a fresh kernel (LABSUPPORT_FAST set as asked); raises if a cell fails."""
    nb = nbformat.read(path, as_version=4)
    env = {**os.environ, "LABSUPPORT_FAST": "1" if fast else "0", "LABSUPPORT_PROGRESS": "0"}
    old = os.environ.copy()
    os.environ.update(env)   # the kernel inherits this process's environment
    try:
        start = time.perf_counter()
        NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}},
                       ).execute()
        return time.perf_counter() - start
    finally:
        os.environ.clear()
        os.environ.update(old)


def _machine() -> str:
    import torch
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, " \
           f"{torch.get_num_threads()} threads"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("notebooks", nargs="*", help="default: every notebooks/0*.ipynb")
    p.add_argument("--fast-only", action="store_true")
    p.add_argument("--out", help="also write the times to this JSON file")
    a = p.parse_args(argv)
    paths = [Path(n) for n in a.notebooks] or sorted(NOTEBOOKS.glob("0*.ipynb"))
    rows = []
    print(f"machine: {_machine()}")
    for path in paths:
        for fast in ((True,) if a.fast_only else (False, True)):
            seconds = time_notebook(path, fast=fast)
            rows.append({"notebook": path.stem, "mode": "fast" if fast else "full", "seconds": round(seconds, 1)})
            print(f"{path.stem:<28} {'fast' if fast else 'full'}  {seconds:7.1f} s", flush=True)
    if a.out:
        Path(a.out).write_text(json.dumps({"machine": _machine(), "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
