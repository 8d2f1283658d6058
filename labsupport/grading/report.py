"""What the grader writes into OUT:

    grades.csv                 one row per student: id, each rubric item, auto total, manual pending, status
    feedback/<id>.md           what passed, what failed and why (named mistakes in plain words)
    summary.json               counts, pass rates per item, timing, sandbox notes, the integrity check
    gradescope/<id>/results.json   with --gradescope: Gradescope's autograder format
    executed/<id>/<file>.ipynb     the executed notebooks, for grading the written answers
"""
from __future__ import annotations

import csv
import hashlib
import json
from collections import Counter
from pathlib import Path

from .batch import GradeRun, ItemResult, StudentResult, read_events
from .score import STATUS_WORDS

__all__ = ["write_reports", "feedback_markdown", "gradescope_results", "write_csv"]

_MARK = {"pass": "✓", "todo": "○", "manual": "✎"}


def _fmt(x: float) -> str:
    return f"{x:g}"


def write_csv(run: GradeRun, path: Path) -> None:
    items = run.rubric.items
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["student_id", "files", "status"] + [i.id for i in items]
                   + ["auto_total", "auto_max", "manual_pending", "issues"])
        for s in run.students:
            cells = ["pending" if r.status == "manual" else _fmt(r.points) for r in s.items]
            w.writerow([s.student_id, ";".join(nb.file for nb in s.notebooks), s.status] + cells
                       + [_fmt(s.auto_total), _fmt(s.auto_max), _fmt(s.manual_pending), "; ".join(s.issues)])


def _item_line(r: ItemResult, title: str) -> list[str]:
    if r.status == "manual":
        why = f" ({r.pending_reason})" if r.pending_reason else ""
        return [f"- ✎ **{title}** ({_fmt(r.max_points)} points): graded by hand, pending{why}"]
    o = r.outcome
    mark = _MARK.get(r.status, "✗")
    head = f"- {mark} **{title}** ({_fmt(r.points)}/{_fmt(r.max_points)}): "
    method = f"`{o.piece}.{o.method}`" if o else ""
    if r.status == "pass":
        return [head + f"{method}: {o.detail}"]
    where = f"case “{o.case}”: " if o and o.case else ""
    detail = (o.detail if o else "").replace("\n", "; ")   # an exception's message, then its line
    lines = [head + f"{method} {STATUS_WORDS.get(r.status, r.status)}: {where}{detail}".rstrip()]
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


def feedback_markdown(s: StudentResult, run: GradeRun, cache_root: Path) -> str:
    titles = {i.id: i.title for i in run.rubric.items}
    lines = [f"# Lab 5 feedback: {s.student_id}", "",
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
    output = (f"Automatic part: {_fmt(s.auto_total)} / {_fmt(s.auto_max)}. "
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
    return {
        "students": len(run.students),
        "notebooks": sum(len(s.notebooks) for s in run.students),
        "graded_now": run.graded_now, "from_cache": run.from_cache,
        "statuses": dict(Counter(s.status for s in run.students)),
        "auto_max": run.rubric.total - sum(i.points for i in run.rubric.manual_items),
        "mean_auto_total": round(sum(s.auto_total for s in run.students) / max(1, len(run.students)), 3),
        "items": per_item,
        "identical_submissions": sorted(sorted(ids) for ids in by_hash.values() if len(ids) > 1),
        "submissions_unchanged": run.submissions_unchanged, "changed_files": run.changed_files,
        "sandbox": run.sandbox_note,
        "rubric": {"file": run.rubric.source,
                   "sha256": hashlib.sha256(Path(run.rubric.source).read_bytes()).hexdigest() if run.rubric.source else "",
                   "warnings": list(run.rubric.warnings)},
        "seconds": run.seconds,
        "seconds_per_notebook_run": round(sum(seconds) / len(seconds), 2) if seconds else None,
        "grades": [{"student_id": s.student_id, "status": s.status, "auto_total": s.auto_total,
                    "items": {r.id: (r.points if r.status != "manual" else None) for r in s.items}}
                   for s in run.students],
    }


def write_reports(run: GradeRun, out: str | Path, *, gradescope: bool = False) -> dict[str, Path]:
    """Write grades.csv, feedback/*.md, summary.json (and gradescope/*/results.json) into `out`."""
    out = Path(out)
    (out / "feedback").mkdir(parents=True, exist_ok=True)
    paths = {"csv": out / "grades.csv", "summary": out / "summary.json", "feedback": out / "feedback"}
    write_csv(run, paths["csv"])
    for s in run.students:
        (out / "feedback" / f"{s.student_id}.md").write_text(feedback_markdown(s, run, out / ".cache"), encoding="utf-8")
        if gradescope:
            folder = out / "gradescope" / s.student_id
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "results.json").write_text(json.dumps(gradescope_results(s, run), indent=1, ensure_ascii=False),
                                                 encoding="utf-8")
    if gradescope:
        paths["gradescope"] = out / "gradescope"
    paths["summary"].write_text(json.dumps(_summary(run), indent=1, ensure_ascii=False), encoding="utf-8")
    return paths
