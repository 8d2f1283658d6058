"""The reports (labsupport/grading/report.py) from hand-built results: a row per team member, conflicts,
flags, the practice label and the sandbox footer. Nothing is executed; each test runs in milliseconds."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from labsupport.grading.batch import GradeRun, ItemResult, NotebookResult, StudentResult
from labsupport.grading.report import PRACTICE_BANNER, write_reports
from labsupport.grading.rubric import load_rubric
from labsupport.grading.score import MethodOutcome
from labsupport.grading.submission import Submission
from labsupport.grading.teams import assign_members

RUBRIC = load_rubric()
REFERENCE_FLAG = "matches labsupport's reference implementation (DDPMSampler.compute_posterior_mean)"


def student(sid: str, passed: bool = True, flag_first: bool = False) -> StudentResult:
    items = []
    for n, item in enumerate(RUBRIC.items):
        if item.manual:
            items.append(ItemResult(item.id, 0.0, item.points, "manual"))
            continue
        status = "pass" if passed else "fail"
        outcome = MethodOutcome(item.piece, item.method, status,
                                "all hidden cases match" if passed else "values differ", case="" if passed else "t = 0")
        items.append(ItemResult(item.id, item.points if passed else 0.0, item.points, status, outcome, "02.ipynb",
                                flags=[REFERENCE_FLAG] if flag_first and n == 0 else []))
    nb = NotebookResult(f"{sid}/02.ipynb", "ab" * 32, sid, "ok", probe={"status": "ok"})
    return StudentResult(sid, [nb], items, "ok", [])


def grade_run(students: list[StudentResult], **run) -> GradeRun:
    return GradeRun(RUBRIC, students, 1.0, len(students), 0, "no user switch requested", True, [], **run)


def report(tmp_path: Path, run: GradeRun) -> dict:
    write_reports(run, tmp_path, gradescope=True)
    with open(tmp_path / "grades.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return {"rows": rows, "summary": json.loads((tmp_path / "summary.json").read_text(encoding="utf-8")),
            "feedback": {p.stem: p.read_text(encoding="utf-8") for p in (tmp_path / "feedback").glob("*.md")},
            "gradescope": {p.parent.name: json.loads(p.read_text(encoding="utf-8"))
                           for p in (tmp_path / "gradescope").glob("*/results.json")}}


def teams(students: list[StudentResult], declared: dict[str, list[str]]) -> list[str]:
    return assign_members(students, [Submission(Path(sid) / "02.ipynb", "", sid, team=members, team_source="metadata")
                                     for sid, members in declared.items()])


def test_each_team_member_gets_the_teams_row_and_results(tmp_path):
    students = [student("team7"), student("carol", passed=False)]
    run = grade_run(students, team_conflicts=teams(students, {"team7": ["alice", "bob"]}), backend="bwrap")
    out = report(tmp_path, run)
    by_id = {r["student_id"]: r for r in out["rows"]}
    assert [r["student_id"] for r in out["rows"]] == ["alice", "bob", "carol"]
    assert by_id["alice"]["submission"] == by_id["bob"]["submission"] == "team7"
    assert by_id["alice"]["team"] == "alice;bob" and by_id["carol"]["team"] == "carol"
    assert by_id["alice"]["auto_total"] == by_id["bob"]["auto_total"] == str(int(students[0].auto_total))
    assert {r["mode"] for r in out["rows"]} == {"graded"} and by_id["alice"]["status"] == "ok"
    assert set(out["feedback"]) == {"team7", "carol"} and "Team: alice, bob" in out["feedback"]["team7"]
    assert set(out["gradescope"]) == {"alice", "bob", "carol"}
    assert out["gradescope"]["alice"] == out["gradescope"]["bob"]
    assert "Team: alice, bob" in out["gradescope"]["bob"]["output"]
    assert out["summary"]["students"] == 3 and out["summary"]["submissions"] == 2
    assert out["summary"]["grades"][0]["members"] == ["alice", "bob"] and out["summary"]["team_conflicts"] == []
    assert "PRACTICE" not in out["feedback"]["team7"] and "in the bwrap sandbox" in out["feedback"]["team7"]


def test_a_student_claimed_twice_is_flagged_in_every_output(tmp_path):
    students = [student("alice"), student("team7", passed=False)]
    conflicts = teams(students, {"team7": ["alice", "bob"]})
    out = report(tmp_path, grade_run(students, team_conflicts=conflicts))
    alice = [r for r in out["rows"] if r["student_id"] == "alice"]
    assert sorted(r["submission"] for r in alice) == ["alice", "team7"]   # a row for each claim, not one chosen
    assert {r["status"] for r in alice} == {"team conflict"}
    assert all("alice is claimed by 2 submissions" in r["flags"] and "status of submission" in r["flags"]
               for r in alice)
    bob = next(r for r in out["rows"] if r["student_id"] == "bob")
    assert bob["status"] == "ok" and "team conflict" in bob["flags"]   # bob's grade stands, the flag shows why
    assert out["summary"]["team_conflicts"] == conflicts and out["summary"]["conflicted_students"] == ["alice"]
    assert all("team conflict" in g["flags"][0] for g in out["summary"]["grades"])
    assert "alice" not in out["gradescope"] and "bob" in out["gradescope"]   # nothing to upload until settled
    assert "Team conflict" in out["feedback"]["team7"] and "Team conflict" in out["feedback"]["alice"]


def test_practice_runs_are_labelled_everywhere(tmp_path):
    out = report(tmp_path, grade_run([student("alice")], mode="practice", backend="subreaper", secret_id="3f2a9c"))
    assert out["rows"][0]["mode"] == "practice"
    assert out["feedback"]["alice"].startswith(f"> **{PRACTICE_BANNER}.**")
    assert out["summary"]["mode"] == "practice" and out["summary"]["secret_id"] == "3f2a9c"
    assert out["gradescope"]["alice"]["output"].startswith(f"**{PRACTICE_BANNER}.**")
    assert "Mode: practice (not valid grades); student code ran in the subreaper sandbox." in out["feedback"]["alice"]


@pytest.mark.parametrize("backend, trusted, words", [
    ("none", True, "not contained by a sandbox (graded with --trust-submissions; backend none)"),
    ("none", False, "student code ran without a sandbox"),
])
def test_trusted_and_backend_in_summary_and_footer(tmp_path, backend, trusted, words):
    out = report(tmp_path, grade_run([student("alice")], backend=backend, trusted=trusted))
    assert (out["summary"]["backend"], out["summary"]["trusted"]) == (backend, trusted)
    assert words in out["feedback"]["alice"].split("---")[-1]


def test_item_flags_and_similar_code_reach_the_instructor(tmp_path):
    s = student("alice", flag_first=True)
    s.flags.append("TODO code matches bob's (ddpm_sampler)")
    similar = [{"students": ["alice", "bob"], "piece": "ddpm_sampler", "method": "ast", "why": "same code"}]
    out = report(tmp_path, grade_run([s, student("bob")], similar=similar))
    first = RUBRIC.items[0]
    alice = next(r for r in out["rows"] if r["student_id"] == "alice")
    assert alice["flags"] == f"TODO code matches bob's (ddpm_sampler); {first.id}: {REFERENCE_FLAG}"
    line = next(x for x in out["feedback"]["alice"].splitlines() if f"**{first.title}**" in x)
    assert line.endswith(f"⚠ {REFERENCE_FLAG}")
    assert out["summary"]["similar"] == similar and out["summary"]["grades"][0]["flags"][1].endswith(REFERENCE_FLAG)
    assert "matches bob" not in out["feedback"]["alice"]   # a copy flag names another student: not for students


def test_bonus_items_are_off_by_default_and_extra_credit_when_on(tmp_path):
    from labsupport.grading.rubric import DEFAULT_RUBRIC, load_rubric
    off = load_rubric()
    assert off.total == 100 and not any(c.bonus for c in off.categories)
    assert "07" not in off.notebooks and "classifier_guidance" not in off.notebooks["05"]
    text = DEFAULT_RUBRIC.read_text().replace("bonus = false", "bonus = true", 1)
    (tmp_path / "rubric.toml").write_text(text)
    on = load_rubric(tmp_path / "rubric.toml")
    bonus = [i for i in on.items if on.is_bonus(i)]
    assert on.total == 100 and sum(i.points for i in bonus) == 10
    assert {i.piece for i in bonus} == {"classifier_guidance", "few_step_solver"}
    assert on.notebooks["07"] == ("few_step_solver",)
