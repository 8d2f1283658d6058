"""OUT/.cache and the folders student code runs in.

`Cache` keeps what a run gave (runs/<key>.json per notebook, probes/<key>/ per distinct graded code)
under keys that hash the package's code, the secret's id and what is graded, so a second run only
grades what changed. `private_dir` makes the fresh folder a sandbox writes in (as root: a
size-limited tmpfs, so student code cannot fill the disk).
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from .codec import read_array
from .rubric import Rubric
from .sandbox import Limits, owner_of, run_probe
from .sandbox.backend import Backend
from .submission import Submission, probe_signature

__all__ = ["Cache", "plan_methods", "private_dir", "sandbox_owner", "write_json", "MAX_RESULTS_MB", "WORKDIR_MB"]

MAX_RESULTS_MB = 64


def plan_methods(rubric: Rubric, sub: Submission) -> list[dict]:
    graded = rubric.graded_methods()
    return [{"piece": p, "method": m} for p in graded if p in sub.pieces for m in graded[p]]


@functools.lru_cache(maxsize=1)
def _code_signature() -> str:
    """A hash of the package's code (checks, references, probe), read once per process: part of every
    cache key, so that results recorded by other code are never scored by this code."""
    pkg = Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    for path in sorted(pkg.rglob("*.py")):
        h.update(str(path.relative_to(pkg)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def _copy_results(src: Path, dest: Path) -> None:
    """Keep the worker's arrays, up to MAX_RESULTS_MB, as plain files only (the events are the grader's)."""
    dest.mkdir(parents=True, exist_ok=True)
    budget = MAX_RESULTS_MB * 2 ** 20
    for path in sorted(src.iterdir()) if src.is_dir() and not src.is_symlink() else []:
        if path.suffix != ".npy":
            continue
        try:  # plain files only: the sandbox could have planted symlinks or FIFOs there
            arr = read_array(src, path.name)
        except Exception:  # noqa: BLE001 - what cannot be read is not kept (it decodes as opaque)
            continue
        if arr.nbytes > budget:
            continue
        budget -= arr.nbytes
        np.save(dest / path.name, arr, allow_pickle=False)


def sandbox_owner(backend: Backend) -> tuple[int, int] | None:
    """Who must own the folders of student code: the unprivileged user of the subreaper backend."""
    return owner_of(backend.user) if backend.name == "subreaper" and backend.user else None


WORKDIR_MB = 1024   # what one sandbox may write in all, where a size-limited tmpfs can be mounted


def _mount_tmpfs(path: Path) -> bool:
    """As root, a size-limited tmpfs on `path`, so student code cannot fill the disk (True if mounted)."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={WORKDIR_MB}m,mode=700,nosuid,nodev", "tmpfs",
                           str(path)], capture_output=True)
    return done.returncode == 0


@contextmanager
def private_dir(owner: tuple[int, int] | None):
    """A fresh temporary folder for student code, owned by the sandbox user; removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix="labsupport-grade-"))
    mounted = _mount_tmpfs(path)
    try:
        if owner:
            os.chown(path, *owner)
        yield path
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(path)], capture_output=True)
        shutil.rmtree(path, ignore_errors=True)


def write_json(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    tmp.replace(path)  # atomic: an interrupted batch leaves no half result


class Cache:
    """OUT/.cache: runs/<key>.json per notebook (its execution), probes/<key>/ per distinct probed code.

    Notebooks whose definitions are the same (they differ in other cells, outputs or text) share one
    probe run; a probe key is probed once per batch even with `regrade`.
    """

    def __init__(self, root: Path, rubric: Rubric, execute: bool, regrade: bool, limits: Limits, *,
                 seed: int | str, seed_id: str, backend: Backend):
        self.root, self.rubric, self.execute, self.regrade, self.limits = root, rubric, execute, regrade, limits
        self.seed, self.seed_id, self.backend = seed, seed_id, backend
        self.code = _code_signature()
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self._fresh: set[str] = set()

    def _key(self, *parts) -> str:
        return hashlib.sha256(json.dumps([self.code, self.seed_id, *parts]).encode()).hexdigest()[:32]

    def run_key(self, sub: Submission) -> str:
        return self._key(sub.sha256, plan_methods(self.rubric, sub), self.execute)

    def probe_key(self, cells: list[dict], methods: list[dict]) -> str:
        return self._key(probe_signature(cells), methods)

    def probe_dir(self, key: str) -> Path:
        return self.root / "probes" / key

    def load_run(self, key: str):
        from .batch import NotebookResult
        try:
            result = NotebookResult(**json.loads((self.root / "runs" / f"{key}.json").read_text()))
        except (OSError, ValueError, TypeError):
            return None
        return result if (self.probe_dir(result.probe_key) / "probe.json").is_file() else None

    def save_run(self, key: str, result) -> None:
        write_json(self.root / "runs" / f"{key}.json", result.__dict__)

    def probe(self, key: str, plan: dict) -> dict:
        """The probe's summary for `key`, running the probe unless this batch or (without regrade) an
        earlier one already did."""
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            summary = self.probe_dir(key) / "probe.json"
            if key in self._fresh or (not self.regrade and summary.is_file()):
                return json.loads(summary.read_text())
            shutil.rmtree(self.probe_dir(key), ignore_errors=True)
            with private_dir(sandbox_owner(self.backend)) as folder:
                run = run_probe(folder, {**plan, "seed": self.seed}, self.limits, self.backend)
                _copy_results(folder / "results", self.probe_dir(key))
            with open(self.probe_dir(key) / "events.jsonl", "w", encoding="utf-8") as f:
                for event in run.events:
                    f.write(json.dumps(event, allow_nan=True) + "\n")
            data = {"status": run.status, "detail": run.detail, "failures": run.failures, "restarts": run.restarts,
                    "seconds": run.seconds}
            write_json(summary, data)
            self._fresh.add(key)
            return data
