"""Grading a folder of submissions: find the notebooks, run each once, score, write the reports.

Every `*.ipynb` under SUBMISSIONS_DIR is read (hidden folders and checkpoints skipped); the
notebooks of one student (see `submission.student_id_for`) are graded together as one submission.
Each readable notebook is copied into a fresh temporary folder, executed in a limited kernel
(`sandbox.execute_notebook`), then probed in a separate limited process (`sandbox.run_probe`). What
both gave is kept in OUT/.cache (`cache.Cache`), under keys that hash the notebook (or the code the probe
defines), what is probed and the package's code, so a second run skips notebooks already graded
(unless `regrade`) and scores them again from the cache, which gives the same scores. The
submissions folder is hashed before and after.
"""
from __future__ import annotations

import hashlib
import os
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import nbformat

from ..teaching.checks import PIECES
from . import similarity
from .cache import Cache, plan_methods, private_dir, sandbox_owner
from .rubric import Rubric, load_rubric
from .sandbox import Limits, execute_notebook
from .sandbox import cgroup
from .sandbox.backend import Backend, choose_backend, containment_problems
from .sandbox.run import parse_events
from .score import Judge, MethodOutcome, collect
from .secret import read_secret, secret_id
from .submission import Submission, probe_cells, read_submission
from .teams import assign_members

__all__ = ["grade_folder", "GradeRun", "NotebookResult", "StudentResult", "ItemResult", "read_events",
           "NotContained"]



@dataclass
class NotebookResult:
    """One notebook file: what reading, executing and probing it gave (JSON in the cache)."""
    file: str
    sha256: str
    student_id: str
    status: str
    detail: str = ""
    pieces: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)
    execution: dict | None = None
    probe: dict | None = None
    probe_key: str = ""         # OUT/.cache/probes/<probe_key>/ holds the probe's events and arrays
    seconds: float = 0.0


@dataclass
class ItemResult:
    id: str
    points: float
    max_points: float
    status: str                 # pass | fail | ... (score.STATUS_WORDS) | manual
    outcome: MethodOutcome | None = None
    file: str = ""
    pending_reason: str = ""
    flags: list[str] = field(default_factory=list)   # e.g. "matches labsupport's reference implementation"
    bonus: bool = False                              # extra credit: adds to the total, not to the maximum


@dataclass
class StudentResult:
    student_id: str
    notebooks: list[NotebookResult]
    items: list[ItemResult]
    status: str
    issues: list[str]
    members: list[str] = field(default_factory=list)   # the team this submission speaks for (teams.py)
    flags: list[str] = field(default_factory=list)     # for the instructor: copies, team conflicts

    @property
    def auto_total(self) -> float:
        return sum(i.points for i in self.items if i.status != "manual")

    @property
    def auto_max(self) -> float:
        return sum(i.max_points for i in self.items if i.status != "manual" and not i.bonus)

    @property
    def manual_pending(self) -> float:
        return sum(i.max_points for i in self.items if i.status == "manual")


@dataclass
class GradeRun:
    rubric: Rubric
    students: list[StudentResult]
    seconds: float
    graded_now: int
    from_cache: int
    sandbox_note: str
    submissions_unchanged: bool
    changed_files: list[str]
    mode: str = "graded"             # "practice" when graded without the course secret (--practice)
    backend: str = ""                # the sandbox that ran student code: bwrap | subreaper | none
    trusted: bool = False            # --trust-submissions: graded although no sandbox could contain them
    secret_id: str = ""              # a short hash naming the course secret (never the secret)
    team_conflicts: list[str] = field(default_factory=list)
    similar: list[dict] = field(default_factory=list)   # pairs of students whose TODO code matches


def _digest_tree(root: Path) -> dict[str, str]:
    out = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink():
            out[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def _find_notebooks(root: Path) -> list[Path]:
    """Every notebook file under `root`; links are left out (one could name any file of the machine)."""
    real = root.resolve()
    return sorted(p for p in root.rglob("*.ipynb")
                  if not p.is_symlink() and p.is_file() and p.resolve().is_relative_to(real)
                  and not any(part.startswith(".") for part in p.relative_to(root).parts))


class NotContained(RuntimeError):
    """No sandbox can keep student code from writing the grader's files (see sandbox/backend.py)."""


def _grade_notebook(sub: Submission, root: Path, out: Path, cache: Cache) -> NotebookResult:
    """Execute and probe one readable notebook; everything student code touches is a temporary copy."""
    start = time.monotonic()
    limits = cache.limits
    result = NotebookResult(str(sub.path.relative_to(root)), sub.sha256, sub.student_id, sub.status, sub.detail,
                            {p: {"cells": s.cells, "found_by": s.found_by, "defines": s.defines,
                                 "syntax_error": s.syntax_error} for p, s in sub.pieces.items()},
                            list(sub.notes))
    if cache.execute:
        owner = sandbox_owner(cache.backend)
        with private_dir(owner) as run_dir:
            nb_copy = run_dir / "submission.ipynb"
            nbformat.write(sub.nb, nb_copy)   # the parsed copy, made valid where editors left gaps
            if owner:
                os.chown(nb_copy, *owner)
            executed = out / "executed" / sub.student_id / sub.path.name
            executed.parent.mkdir(parents=True, exist_ok=True)
            result.execution = execute_notebook(nb_copy, executed, limits, backend=cache.backend).to_dict()
    # the probe runs in a new folder made after the kernel was killed: the run cannot have prepared it
    plan = {"cells": probe_cells(sub), "methods": plan_methods(cache.rubric, sub)}
    result.probe_key = cache.probe_key(plan["cells"], plan["methods"])
    result.probe = cache.probe(result.probe_key, plan)
    result.seconds = round(time.monotonic() - start, 2)
    return result


def read_events(folder: Path) -> list[dict]:
    """The probe's events recorded in `folder` (OUT/.cache/probes/<key>)."""
    path = folder / "events.jsonl"
    return parse_events(path.read_bytes().split(b"\n")) if path.is_file() else []


def _failures(nb: NotebookResult) -> list[dict]:
    return list(((nb.probe or {}).get("failures") or {}).values())


def _issues(notebooks: list[NotebookResult], rubric: Rubric, missing: dict[str, list[str]]) -> list[str]:
    issues = []
    for nb in notebooks:
        if nb.status != "ok":
            issues.append(f"{nb.file}: {nb.status}")
            continue
        ex, pr = nb.execution or {}, nb.probe or {}
        if ex.get("status") not in (None, "ok"):
            issues.append(f"{nb.file}: {'cells raised errors' if ex['status'] == 'errors' else ex['status']}")
        if pr.get("status") not in (None, "ok"):
            issues.append(f"{nb.file}: {pr['status']}")
        for kind, words in (("timeout", "timed out"), ("crash", "crashed")):
            n = sum(f["kind"] == kind for f in _failures(nb))
            if n:
                issues.append(f"{nb.file}: {n} graded call{'s' if n > 1 else ''} {words}")
        issues += [f"{nb.file}: syntax error in the {p} cell" for p, src in nb.pieces.items() if src.get("syntax_error")]
        if missing.get(nb.file):
            issues.append(f"{nb.file}: missing {', '.join(missing[nb.file])}")
    found = {p for nb in notebooks if nb.status == "ok" for p in nb.pieces}
    absent = [n for n, pieces in sorted(rubric.notebooks.items()) if not found & set(pieces)]
    if absent and found:
        issues.append(f"not submitted: notebook{'s' if len(absent) > 1 else ''} {', '.join(absent)}")
    return issues


# a student's status, the most important condition first (docs/grading.md)
_EXEC_STATUS = ("kernel failed to start", "kernel died", "memory limit", "output limit", "total timeout", "cell timeout")
_PROBE_STATUS = ("load crash", "load timeout", "probe timeout", "too many restarts")
_UNREADABLE = ("not json", "not a notebook", "too large", "wrong lab", "grader error")


def _student_status(notebooks: list[NotebookResult], items: list[ItemResult], missing: dict[str, list[str]]) -> str:
    usable = [nb for nb in notebooks if nb.status == "ok"]
    if not usable:
        return next((s for s in _UNREADABLE if any(nb.status == s for nb in notebooks)), "no notebook")
    present = [i for i in items if i.status not in ("manual", "missing")]
    if present and all(i.status == "todo" for i in present):
        return "not attempted"
    for status in _EXEC_STATUS:
        if any((nb.execution or {}).get("status") == status for nb in usable):
            return status
    for status in _PROBE_STATUS:
        if any((nb.probe or {}).get("status") == status for nb in usable):
            return status
    for kind in ("timeout", "crash"):
        if any(f["kind"] == kind for nb in usable for f in _failures(nb)):
            return kind
    if any(src.get("syntax_error") for nb in usable for src in nb.pieces.values()):
        return "syntax error"
    if any(missing.values()):
        return "missing pieces"
    if any((nb.execution or {}).get("status") == "errors" for nb in usable):
        return "ran with errors"
    return "ok"


def _missing_pieces(nb: NotebookResult, rubric: Rubric, items: list[ItemResult]) -> list[str]:
    """What a submitted notebook lacks: pieces of its lab notebook(s), classes, functions or methods."""
    expected = {p for pieces in rubric.notebooks.values() if set(pieces) & set(nb.pieces) for p in pieces}
    out = sorted(expected - set(nb.pieces))
    out += sorted({f"{i.outcome.piece}.{i.outcome.method}" for i in items
                   if i.status == "missing" and i.file == nb.file and i.outcome is not None})
    return out


def _score_student(sid: str, notebooks: list[NotebookResult], rubric: Rubric, judge: Judge, cache_root: Path
                   ) -> StudentResult:
    usable = [nb for nb in notebooks if nb.status == "ok"]
    probes = {}
    for nb in usable:
        folder = cache_root / "probes" / nb.probe_key
        probes[nb.file] = (collect(read_events(folder), (nb.probe or {}).get("failures", {}),
                                   (nb.probe or {}).get("status", "ok"), (nb.probe or {}).get("detail", "")), folder)
    items = []
    for item in rubric.items:
        if item.manual:
            items.append(ItemResult(item.id, 0.0, item.points, "manual", pending_reason=item.pending_reason))
            continue
        holders = [nb for nb in usable if item.piece in nb.pieces]
        if not holders:
            outcome = MethodOutcome(item.piece, item.method, "missing",
                                    f"no submitted notebook contains the piece {item.piece!r} "
                                    f"({', '.join(PIECES[item.piece].defines)})")
            items.append(ItemResult(item.id, 0.0, item.points, "missing", outcome))
            continue
        nb = holders[-1]  # several notebooks with the same piece: the last file counts (noted in the report)
        probe, folder = probes[nb.file]
        try:
            outcome = judge.judge_method(item.piece, item.method, probe, folder)
        except Exception as err:  # noqa: BLE001 - what a hostile worker recorded must not stop the batch
            outcome = MethodOutcome(item.piece, item.method, "error", "the grader could not use what your code "
                                    f"returned ({type(err).__name__}); return the types the docstring asks for")
        items.append(ItemResult(item.id, item.points if outcome.passed else 0.0, item.points, outcome.status,
                                outcome, nb.file))
    for r, item in zip(items, rubric.items):
        r.bonus = rubric.is_bonus(item)
    missing = {nb.file: _missing_pieces(nb, rubric, items) for nb in usable}
    return StudentResult(sid, notebooks, items, _student_status(notebooks, items, missing),
                         _issues(notebooks, rubric, missing))


def _mark_copies(students: list[StudentResult], subs_by_student: dict[str, list[Submission]], rubric: Rubric
                 ) -> list[dict]:
    """Flag TODO methods that match the reference (scored as the rubric says) and pairs of students."""
    forms: dict[str, dict[tuple[str, str], str]] = {}
    for s in students:
        for sub in subs_by_student.get(s.student_id, []):
            forms.setdefault(s.student_id, {}).update(similarity.student_forms(sub))
        copied = similarity.reference_copies(forms.get(s.student_id, {}))
        for r in s.items:
            why = copied.get((r.outcome.piece, r.outcome.method)) if r.outcome is not None else None
            if not why:
                continue
            r.flags.append(why)
            if rubric.reference_copy == "manual":
                r.status, r.points, r.pending_reason = "manual", 0.0, why
            else:
                r.points = 0.0
    return similarity.similar_pairs(forms)


def _secret_seed(secret: str | None, practice: bool, rubric: Rubric) -> tuple[int | str, str, str]:
    """(seed of the hidden inputs, its cache name, mode): the course secret, or the public rubric seed
    when practising."""
    if practice and secret is None:
        return rubric.seed, f"practice:{rubric.seed}", "practice"
    secret = read_secret() if secret is None else secret   # SecretMissing says how to create one
    return secret, "secret:" + secret_id(secret), "graded"


def grade_folder(submissions: str | Path, out: str | Path, *, secret: str | None = None, practice: bool = False,
                 trust_submissions: bool = False, jobs: int = 1, regrade: bool = False, execute: bool = True,
                 limits: Limits | None = None, rubric: Rubric | str | Path | None = None,
                 sandbox_user: str | None = "nobody", backend: Backend | None = None,
                 log: Callable[[str], None] = print) -> GradeRun:
    """Grade every notebook under `submissions` and return the per-student results (see report.py).

    secret: the course secret the hidden inputs come from (default: `secret.read_secret()`);
    practice=True grades without one, on the public seed, and every output says so. Refuses to run
    student code (NotContained) when no sandbox can keep it from writing the submissions, the
    output or the grader's files, unless trust_submissions=True.
    """
    start = time.monotonic()
    root, out = Path(submissions).resolve(), Path(out).resolve()
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a folder of submissions")
    if out == root or root in out.parents:
        raise ValueError(f"--out {out} must lie outside the submissions folder {root}")
    rubric = rubric if isinstance(rubric, Rubric) else load_rubric(rubric)
    for warning in rubric.warnings:
        log(f"rubric: {warning}")
    seed, seed_id, mode = _secret_seed(secret, practice, rubric)
    backend = backend or choose_backend(sandbox_user or "nobody")
    problems = containment_problems(backend, protect=[root, out, Path(__file__).resolve().parents[1]])
    if problems and not trust_submissions:
        raise NotContained("refusing to run student code: " + " ".join(problems)
                           + " (or pass --trust-submissions to grade anyway; every output then says so)")
    note = (backend.note + "; " + cgroup.note()
            + (" NOT CONTAINED (--trust-submissions): " + " ".join(problems) if problems else ""))
    limits = replace(limits or Limits(), user=None)
    before = _digest_tree(root)
    pieces = {p: PIECES[p].defines for p in rubric.graded_methods()}
    cache = Cache(out / ".cache", rubric, execute, regrade, limits, seed=seed, seed_id=seed_id, backend=backend)
    all_subs: list[Submission] = []
    notebooks: dict[str, NotebookResult] = {}
    todo: dict[str, list[Submission]] = {}   # run key -> identical files, graded once
    cached_count = 0
    for path in _find_notebooks(root):
        sub = read_submission(path, root, pieces)
        all_subs.append(sub)
        rel = str(path.relative_to(root))
        if not sub.readable:
            notebooks[rel] = NotebookResult(rel, sub.sha256, sub.student_id, sub.status, sub.detail, notes=sub.notes)
            continue
        key = cache.run_key(sub)
        cached = None if regrade or key in todo else cache.load_run(key)
        if cached is not None:
            notebooks[rel] = replace(cached, file=rel, student_id=sub.student_id, notes=list(sub.notes))
            cached_count += 1
        else:
            todo.setdefault(key, []).append(sub)
    log(f"{len(notebooks) + sum(map(len, todo.values()))} notebooks: {len(todo)} to run, {cached_count} graded before "
        f"({note})")
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = {pool.submit(_grade_notebook, subs[0], root, out, cache): key for key, subs in todo.items()}
        for n, future in enumerate(as_completed(futures), 1):
            key = futures[future]
            try:
                result = future.result()
            except Exception as err:  # noqa: BLE001 - one notebook must not stop the batch; not cached
                sub = todo[key][0]
                result = NotebookResult(str(sub.path.relative_to(root)), sub.sha256, sub.student_id, "grader error",
                                        f"{type(err).__name__}: {err}")
            else:
                cache.save_run(key, result)
            log(f"[{n}/{len(todo)}] {result.file}: "
                + (f"GRADER ERROR {result.detail}" if result.status == "grader error" else
                   f"run {(result.execution or {}).get('status', 'skipped')}, probe {(result.probe or {}).get('status')} "
                   f"({result.seconds:.1f} s)"))
            for sub in todo[key]:
                rel = str(sub.path.relative_to(root))
                notebooks[rel] = replace(result, file=rel, student_id=sub.student_id, notes=list(sub.notes))

    judge = Judge(seed, rubric.strict_types)
    by_student: dict[str, list[NotebookResult]] = {}
    for rel in sorted(notebooks):
        by_student.setdefault(notebooks[rel].student_id, []).append(notebooks[rel])
    students = [_score_student(sid, nbs, rubric, judge, cache.root) for sid, nbs in sorted(by_student.items())]
    readable: dict[str, list[Submission]] = {}
    for sub in all_subs:
        if sub.readable:
            readable.setdefault(sub.student_id, []).append(sub)
    similar = _mark_copies(students, readable, rubric)
    conflicts = assign_members(students, all_subs)
    cgroup.release_idle()
    cgroup.sweep_stale()
    after = _digest_tree(root)
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    return GradeRun(rubric, students, round(time.monotonic() - start, 2), len(todo), cached_count, note,
                    not changed, changed, mode=mode, backend=backend.name, trusted=bool(problems),
                    secret_id=seed_id.split(":", 1)[-1] if mode == "graded" else "", team_conflicts=conflicts,
                    similar=similar)
