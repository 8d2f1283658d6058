"""What every notebook starts with: a seeded session, the fast-mode switch, timers and progress bars,
and `team(...)`, which records who worked on a Lab 5 submission (docs/grading.md).

LABSUPPORT_FAST=1 shrinks sample counts (CI speed); the defaults also run in minutes on a laptop CPU.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, TypeVar

import torch
from tqdm.auto import tqdm

from ..device import get_device
from ..tools.timing import synchronize
# the grader's own reading rules, so that what team() accepts is exactly what the grader reads back
from ..grading.submission import MAX_TEAM, TEAM_FILE, _clean_id, split_team

__all__ = ["setup", "fast_mode", "pick", "timer", "progress", "team"]

T = TypeVar("T")


def fast_mode() -> bool:
    """True when $LABSUPPORT_FAST is set to 1 (smaller runs for CI)."""
    return os.environ.get("LABSUPPORT_FAST", "0") == "1"


def pick(default: T, fast: T) -> T:
    """`fast` in fast mode, else `default`: the one place a notebook's run size is chosen."""
    return fast if fast_mode() else default


def setup(seed: int = 0) -> torch.device:
    """Seed torch, choose the device (labsupport.get_device) and say what was chosen."""
    torch.manual_seed(seed)
    device = get_device()
    print(f"device: {device} · seed {seed} · fast mode {'on' if fast_mode() else 'off'}")
    return device


@dataclass
class Timer:
    seconds: float = 0.0


class timer:
    """`with timer() as tm: ...` then `tm.seconds` (waits for the GPU, if there is one, before reading the clock).

    One run of a block; to time a call, with warm-up and the median of repeats, use
    `labsupport.tools.timing.median_time`.
    """

    def __enter__(self) -> Timer:
        synchronize()
        self._t0 = time.perf_counter()
        self.result = Timer()
        return self.result

    def __exit__(self, *exc) -> None:
        synchronize()
        self.result.seconds = time.perf_counter() - self._t0


def progress(iterable: Iterable[T], desc: str, total: int | None = None) -> Iterable[T]:
    """A progress bar (a widget in notebooks, text elsewhere); off when $LABSUPPORT_PROGRESS=0."""
    return tqdm(iterable, desc=desc, total=total, leave=False,
                disable=os.environ.get("LABSUPPORT_PROGRESS", "1") == "0")


def team(*ids: str) -> None:
    """Record a Lab 5 team: `team("alice", "bob")` writes team.txt into the current folder.

    In Jupyter the current folder is the notebook's, where the grader looks for it. List every member,
    yourself included, by the id the course uses. Submit team.txt together with the notebooks.
    """
    members: list[str] = []
    for raw in ids:
        if not isinstance(raw, str):
            raise TypeError(f"team() takes student ids as strings, got {raw!r}; write team('alice', 'bob')")
        if "#" in raw:   # team.txt reads '#' as the start of a comment
            raise ValueError(f"{raw!r} is not a student id: ids have no '#'")
        for tok in split_team(raw):
            if _clean_id(tok) != tok:
                raise ValueError(f"{tok!r} is not a student id: ids use letters, digits, '.', '-' and '@' only, "
                                 "and do not start or end with '.' or '-'; write it as the class list does")
            if tok in members:
                raise ValueError(f"{tok!r} is listed twice; name each member once")
            members.append(tok)
    if not members:
        raise ValueError("team() needs the members' student ids, yourself included: team('alice', 'bob')")
    if len(members) > MAX_TEAM:
        raise ValueError(f"a Lab 5 team has at most {MAX_TEAM} members, got {len(members)}: {', '.join(members)}")
    path = Path.cwd() / TEAM_FILE
    before = split_team(path.read_text(encoding="utf-8", errors="replace")) if path.is_file() else []
    path.write_text("# Lab 5 team, written by labsupport.teaching.notebook.team(): submit this file with your notebooks\n"
                    + "\n".join(members) + "\n", encoding="utf-8")
    print(f"team: {', '.join(members)}, recorded in {path}"
          + (f" (it named {', '.join(before)} before)" if before and before != members else ""))
    print(f"Submit {TEAM_FILE} together with your notebook(s): the grader reads the team from it, "
          "and each member listed receives the submission's grade.")
