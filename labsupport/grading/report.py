"""What the grader writes into OUT:

    grades.csv                 one row per student (each member of a team gets the team's row): id,
                               submission, team, each rubric item, totals, status, mode, flags, issues
    feedback/<submission>.md   what passed, what failed and why (named mistakes in plain words)
    summary.json               counts, pass rates per item, timing, sandbox, mode, team conflicts,
                               similar code, the integrity check
    gradescope/<student>/results.json   with --gradescope: Gradescope's autograder format, per member
    executed/<id>/<file>.ipynb     the executed notebooks, for grading the written answers

A practice run (graded without the course secret) says so in every one of them. A student claimed by
two submissions (teams.py) has a row for each, with status "team conflict", and no Gradescope result.
"""
from __future__ import annotations

import csv
import hashlib
import json
from collections import Counter
from pathlib import Path

from .batch import GradeRun, ItemResult, StudentResult, read_events
from .score import STATUS_WORDS
from .teams import CONFLICT, conflicted_members, members_of

__all__ = ["write_reports", "feedback_markdown", "gradescope_results", "write_csv", "PRACTICE_BANNER"]

_MARK = {"pass": "✓", "todo": "○", "manual": "✎"}
PRACTICE_BANNER = "PRACTICE RUN: graded without the course secret; these scores are not valid grades"


def _fmt(x: float) -> str:
    return f"{x:g}"


def _flags(s: StudentResult, *extra: str) -> list[str]:
    """The submission's flags, `extra`, then each item's flags, named by the item."""
    return [*s.flags, *extra, *(f"{r.id}: {flag}" for r in s.items for flag in r.flags)]


def write_csv(run: GradeRun, path: Path) -> None:
    """One row per member of each submission, sorted by student id (a student claimed twice: two rows)."""
    items = run.rubric.items
    conflicted = conflicted_members(run.students)
    rows = sorted(((m, s) for s in run.students for m in members_of(s)),
                  key=lambda ms: (ms[0].casefold(), ms[1].student_id))
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["student_id", "submission", "team", "files", "status"] + [i.id for i in items]
                   + ["auto_total", "auto_max", "manual_pending", "mode", "flags", "issues"])
        for member, s in rows:
            cells = ["pending" if r.status == "manual" else _fmt(r.points) for r in s.items]
            status, flags = s.status, _flags(s)
            if member.casefold() in conflicted:   # the submission's own status stays readable in flags
                status, flags = CONFLICT, _flags(s, f"status of submission {s.student_id}: {s.status}")
            w.writerow([member, s.student_id, ";".join(members_of(s)), ";".join(nb.file for nb in s.notebooks), status]
                       + cells + [_fmt(s.auto_total), _fmt(s.auto_max), _fmt(s.manual_pending), run.mode,
                                  "; ".join(flags), "; ".join(s.issues)])


def _item_line(r: ItemResult, title: str) -> list[str]:
    if r.status == "manual":
        why = f" ({r.pending_reason})" if r.pending_reason else ""
        return [f"- ✎ **{title}** ({_fmt(r.max_points)} points): graded by hand, pending{why}"]
    o = r.outcome
    mark = _MARK.get(r.status, "✗")
    head = f"- {mark} **{title}** ({_fmt(r.points)}/{_fmt(r.max_points)}): "
    method = f"`{o.piece}.{o.method}`" if o else ""
    warn = "".join(f" ⚠ {flag}" for flag in r.flags)
    if r.status == "pass":
        return [head + f"{method}: {o.detail}" + warn]
    where = f"case “{o.case}”: " if o and o.case else ""
    detail = (o.detail if o else "").replace("\n", "; ")   # an exception's message, then its line
    lines = [head + f"{method} {STATUS_WORDS.get(r.status, r.status)}: {where}{detail}".rstrip() + warn]
    for name, explanation in (o.mistakes if o else [])[:2]:
        lines.append(f"  - Known mistake *{name}*: {explanation}")
    if r.status == "fail" and o and not o.mistakes and "values differ" in o.detail:
        lines.append("  - No catalogued mistake matches; compare your code with the docstring's formula term by term.")
    return lines


def _notebook_lines(s: StudentResult) -> list[str]:
    lines = []
    for nb in s.notebooks:
        lines.append(f"- `{nb.file}` (SHA-256 {nb.sha256[:12]}…)")
        if nb.status != "ok":
            lines.append(f"  - not graded: **{nb.status}**. {nb.detail}")
            continue
        ex = nb.execution
        if ex is None:
            lines.append("  - the notebook was not executed this time (only its graded pieces were called)")
        else:
            words = {"ok": "ran from top to bottom without errors",
                     "errors": f"ran to the end; {len(ex['errors'])} cell(s) raised errors"}
            lines.append(f"  - execution: {words.get(ex['status'], '**' + ex['status'] + '**: ' + ex.get('detail', ''))} "
                         f"({ex['seconds']:.0f} s)")
            for e in ex["errors"][:5]:
                piece = f" ({e['piece']})" if e.get("piece") else ""
                lines.append(f"    - cell {e['cell']}{piece}: {e['error']}")
        pr = nb.probe or {}
        if pr.get("status") not in (None, "ok"):
            lines.append(f"  - calling the graded pieces: **{pr['status']}**: {pr.get('detail', '')}")
        for note in nb.notes:
            lines.append(f"  - note: {note}")
    return lines


def _load_error_lines(s: StudentResult, cache_root: Path) -> list[str]:
    lines = []
    for nb in s.notebooks:
        if nb.status != "ok" or not nb.probe_key:
            continue
        loaded = next((e for e in read_events(cache_root / "probes" / nb.probe_key) if e.get("ev") == "loaded"), None)
        for e in (loaded or {}).get("errors", [])[:6]:
            piece = f" ({e['piece']})" if e.get("piece") else ""
            lines.append(f"- `{nb.file}`, cell {e['cell']}{piece}: {e.get('type')}: {e.get('message', '')[:200]}")
    return lines


def _team_lines(s: StudentResult, run: GradeRun) -> list[str]:
    members = members_of(s)
    lines = []
    if members != [s.student_id]:
        lines.append(f"Team: {', '.join(members)}; each member receives these scores.")
    clash = sorted(m for m in members if m.casefold() in conflicted_members(run.students))
    if clash:   # the other submission is not named: it belongs to other students
        lines.append(f"⚠ Team conflict: {', '.join(clash)} {'is' if len(clash) == 1 else 'are'} also named by "
                     "another submission. The course staff will settle which submission counts; check your "
                     "team declaration (team.txt or the notebook's metadata).")
    return lines + [""] if lines else []


def _footer(run: GradeRun) -> list[str]:
    if run.trusted:
        where = ("student code was not contained by a sandbox (graded with --trust-submissions; "
                 f"backend {run.backend or 'none'})")
    elif run.backend == "none":
        where = "student code ran without a sandbox"
    else:
        where = f"student code ran in the {run.backend} sandbox" if run.backend else "sandbox not recorded"
    mode = "practice (not valid grades)" if run.mode == "practice" else run.mode
    return ["---", f"Mode: {mode}; {where}.", ""]


def feedback_markdown(s: StudentResult, run: GradeRun, cache_root: Path) -> str:
    titles = {i.id: i.title for i in run.rubric.items}
    lines = [f"> **{PRACTICE_BANNER}.**", ""] if run.mode == "practice" else []
    lines += [f"# Lab 5 feedback: {s.student_id}", "", *_team_lines(s, run),
             f"**Automatic score: {_fmt(s.auto_total)} / {_fmt(s.auto_max)}**"
             + (f"; {_fmt(s.manual_pending)} more points are graded by hand." if s.manual_pending else "."),
             f"Status: {s.status}.", "",
             "Each method was called in a separate process on hidden inputs (the same kinds of cases as the "
             "notebook's checks, with other numbers) and compared with the reference.", ""]
    for cat in run.rubric.categories:
        rows = [r for r in s.items if next(i for i in run.rubric.items if i.id == r.id).category == cat.id]
        got = sum(r.points for r in rows if r.status != "manual")
        auto_max = sum(r.max_points for r in rows if r.status != "manual")
        pending = sum(r.max_points for r in rows if r.status == "manual")
        score = f"{_fmt(got)}/{_fmt(auto_max)}" if auto_max else "pending"
        lines.append(f"## {cat.title}: {score}" + (f" (+{_fmt(pending)} by hand)" if pending and auto_max else ""))
        for r in rows:
            lines.extend(_item_line(r, titles[r.id]))
        lines.append("")
    errors = _load_error_lines(s, cache_root)
    if errors:
        lines += ["## Problems while defining your code", *errors, ""]
    lines += ["## Your notebooks", *_notebook_lines(s), ""]
    lines += _footer(run)
    return "\n".join(lines)


def gradescope_results(s: StudentResult, run: GradeRun) -> dict:
    titles = {i.id: i.title for i in run.rubric.items}
    tests = []
    for r in s.items:
        if r.status == "manual":
            continue
        tests.append({"name": titles[r.id], "number": r.id, "score": r.points, "max_score": r.max_points,
                      "status": "passed" if r.status == "pass" else "failed",
                      "output": "\n".join(line.lstrip("- ") for line in _item_line(r, titles[r.id]))})
    output = ((f"**{PRACTICE_BANNER}.**\n\n" if run.mode == "practice" else "")
              + (f"Team: {', '.join(members_of(s))}.\n" if members_of(s) != [s.student_id] else "")
              + f"Automatic part: {_fmt(s.auto_total)} / {_fmt(s.auto_max)}. "
              + (f"{_fmt(s.manual_pending)} points are graded by hand. " if s.manual_pending else "")
              + f"Status: {s.status}." + ("\n" + "\n".join(s.issues) if s.issues else ""))
    return {"score": s.auto_total, "output": output, "output_format": "md", "test_output_format": "md",
            "tests": tests, "visibility": "visible", "stdout_visibility": "hidden"}


def _summary(run: GradeRun) -> dict:
    per_item = {}
    for item in run.rubric.items:
        rows = [r for s in run.students for r in s.items if r.id == item.id]
        per_item[item.id] = {"points": item.points, "manual": item.manual,
                             "passed": sum(r.status == "pass" for r in rows),
                             "statuses": dict(Counter(r.status for r in rows))}
    by_hash: dict[str, set[str]] = {}
    for s in run.students:
        for nb in s.notebooks:
            by_hash.setdefault(nb.sha256, set()).add(s.student_id)
    seconds = [nb.seconds for s in run.students for nb in s.notebooks if nb.seconds]
    conflicted = conflicted_members(run.students)
    return {
        "mode": run.mode,
        "students": len({m.casefold() for s in run.students for m in members_of(s)}),
        "submissions": len(run.students),
        "notebooks": sum(len(s.notebooks) for s in run.students),
        "graded_now": run.graded_now, "from_cache": run.from_cache,
        "statuses": dict(Counter(s.status for s in run.students)),
        "auto_max": run.rubric.total - sum(i.points for i in run.rubric.manual_items),
        "mean_auto_total": round(sum(s.auto_total for s in run.students) / max(1, len(run.students)), 3),
        "items": per_item,
        "identical_submissions": sorted(sorted(ids) for ids in by_hash.values() if len(ids) > 1),
        "submissions_unchanged": run.submissions_unchanged, "changed_files": run.changed_files,
        "sandbox": run.sandbox_note, "backend": run.backend, "trusted": run.trusted, "secret_id": run.secret_id,
        "team_conflicts": list(run.team_conflicts),
        "similar": list(run.similar),
        "rubric": {"file": run.rubric.source,
                   "sha256": hashlib.sha256(Path(run.rubric.source).read_bytes()).hexdigest() if run.rubric.source else "",
                   "warnings": list(run.rubric.warnings)},
        "seconds": run.seconds,
        "seconds_per_notebook_run": round(sum(seconds) / len(seconds), 2) if seconds else None,
        "grades": [{"student_id": s.student_id, "members": members_of(s), "status": s.status,
                    "auto_total": s.auto_total, "flags": _flags(s),
                    "items": {r.id: (r.points if r.status != "manual" else None) for r in s.items}}
                   for s in run.students],
        "conflicted_students": sorted({m for s in run.students for m in members_of(s) if m.casefold() in conflicted}),
    }


def write_reports(run: GradeRun, out: str | Path, *, gradescope: bool = False) -> dict[str, Path]:
    """Write grades.csv, feedback/*.md, summary.json (and gradescope/*/results.json) into `out`."""
    out = Path(out)
    (out / "feedback").mkdir(parents=True, exist_ok=True)
    paths = {"csv": out / "grades.csv", "summary": out / "summary.json", "feedback": out / "feedback"}
    write_csv(run, paths["csv"])
    conflicted = conflicted_members(run.students)
    for s in run.students:
        (out / "feedback" / f"{s.student_id}.md").write_text(feedback_markdown(s, run, out / ".cache"), encoding="utf-8")
        if not gradescope:
            continue
        results = json.dumps(gradescope_results(s, run), indent=1, ensure_ascii=False)
        for member in members_of(s):
            path = out / "gradescope" / member / "results.json"
            if member.casefold() in conflicted:   # no grade to upload until the instructor settles the team
                path.unlink(missing_ok=True)
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(results, encoding="utf-8")
    if gradescope:
        paths["gradescope"] = out / "gradescope"
    paths["summary"].write_text(json.dumps(_summary(run), indent=1, ensure_ascii=False), encoding="utf-8")
    return paths
