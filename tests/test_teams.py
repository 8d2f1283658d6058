"""Teams (labsupport/grading/teams.py, submission.py, notebook.team): declared three ways, members assigned,
conflicts flagged. Built from tiny notebooks and hand-made results; nothing is executed."""
from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from labsupport.grading.batch import StudentResult
from labsupport.grading.submission import Submission, read_submission, split_team
from labsupport.grading.teams import CONFLICT, assign_members, conflicted_members
from labsupport.teaching.notebook import team

PIECES = {"ddpm_sampler": ("DDPMSampler",)}


def notebook(path: Path, **labsupport_meta) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_code_cell("class DDPMSampler:\n    pass\n"))
    if labsupport_meta:
        nb.metadata["labsupport"] = labsupport_meta
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def result(sid: str) -> StudentResult:
    return StudentResult(sid, notebooks=[], items=[], status="ok", issues=[])


def declared(sid: str, members: list[str], source: str = "metadata", name: str = "02.ipynb") -> Submission:
    return Submission(path=Path(sid) / name, sha256="", student_id=sid, team=members, team_source=source)


# -- declaring -------------------------------------------------------------------------------------
def test_split_team_reads_commas_spaces_newlines_and_comments():
    assert split_team("alice, bob;carol\n  dana  # our pair\n# only a comment\n") == ["alice", "bob", "carol", "dana"]


def test_team_from_notebook_metadata(tmp_path):
    sub = read_submission(notebook(tmp_path / "team7" / "02.ipynb", team=["alice", "Bob Smith"]), tmp_path, PIECES)
    assert sub.readable and sub.student_id == "team7"
    assert (sub.team, sub.team_source) == (["alice", "Bob-Smith"], "metadata")
    bad = read_submission(notebook(tmp_path / "x" / "02.ipynb", team={"a": 1}), tmp_path, PIECES)
    assert bad.team == [] and any("list of student ids" in n for n in bad.notes)


def test_team_from_team_txt_in_the_folder_or_above(tmp_path):
    (tmp_path / "team7").mkdir()
    (tmp_path / "team7" / "team.txt").write_text("# Lab 5\nalice, bob\n")
    sub = read_submission(notebook(tmp_path / "team7" / "lab" / "02.ipynb"), tmp_path, PIECES)
    assert (sub.student_id, sub.team, sub.team_source) == ("team7", ["alice", "bob"], "team7/team.txt")
    broken = tmp_path / "team7" / "05.ipynb"
    broken.write_text("{not json")
    assert read_submission(broken, tmp_path, PIECES).team == ["alice", "bob"]   # a broken notebook keeps its team


def test_team_txt_at_the_root_is_ignored_and_metadata_counts_over_team_txt(tmp_path):
    (tmp_path / "team.txt").write_text("alice bob")
    root_level = read_submission(notebook(tmp_path / "carol_02.ipynb"), tmp_path, PIECES)
    assert root_level.team == [] and any("ignored" in n for n in root_level.notes)
    (tmp_path / "pair").mkdir()
    (tmp_path / "pair" / "team.txt").write_text("alice bob")
    sub = read_submission(notebook(tmp_path / "pair" / "02.ipynb", team=["alice", "erin"]), tmp_path, PIECES)
    assert (sub.team, sub.team_source) == (["alice", "erin"], "metadata") and any("differ" in n for n in sub.notes)


def test_an_explicit_student_id_joins_its_declared_team(tmp_path):
    sub = read_submission(notebook(tmp_path / "upload" / "02.ipynb", student_id="alice", team=["bob"]), tmp_path,
                          PIECES)
    assert sub.student_id == "alice" and sub.team == ["bob", "alice"]


def test_team_helper_writes_team_txt_the_grader_reads(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "alice"
    folder.mkdir()
    monkeypatch.chdir(folder)
    team("alice", "bob")
    assert "team.txt" in capsys.readouterr().out
    sub = read_submission(notebook(folder / "02.ipynb"), tmp_path, PIECES)
    assert (sub.team, sub.team_source) == (["alice", "bob"], "alice/team.txt")


@pytest.mark.parametrize("ids, message", [
    ((), "needs the members"),
    (("a", "b", "c", "d", "e"), "at most 4"),
    (("alice!",), "not a student id"),
    (("al#ice",), "no '#'"),
    (("alice", "alice"), "twice"),
])
def test_team_helper_refuses_bad_teams(tmp_path, monkeypatch, ids, message):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=message):
        team(*ids)
    assert not (tmp_path / "team.txt").exists()


# -- assigning -------------------------------------------------------------------------------------
def test_members_are_the_declared_team_not_the_folder_name():
    students = [result("team7"), result("carol")]
    assert assign_members(students, [declared("team7", ["alice", "bob"], "team7/team.txt")]) == []
    assert [s.members for s in students] == [["alice", "bob"], ["carol"]]
    assert not any(s.flags for s in students)


def test_a_student_claimed_twice_is_flagged_on_both_submissions():
    students = [result("alice"), result("team7"), result("dana")]
    messages = assign_members(students, [declared("team7", ["Alice", "bob"], "team7/team.txt")])
    assert len(messages) == 1 and "alice is claimed by 2 submissions" in messages[0]
    assert "alice (its own submission)" in messages[0] and "team7 (team Alice, bob in team7/team.txt)" in messages[0]
    assert students[0].flags == students[1].flags == [f"{CONFLICT}: {messages[0]}"] and students[2].flags == []
    assert conflicted_members(students) == {"alice"}


def test_notebooks_declaring_different_teams_and_oversized_teams_are_flagged():
    students = [result("team7"), result("crowd")]
    messages = assign_members(students, [declared("team7", ["alice", "bob"]),
                                         declared("team7", ["alice", "carol"], "team7/team.txt", "05.ipynb"),
                                         declared("crowd", ["p1", "p2", "p3", "p4", "p5"])])
    assert students[0].members == ["alice", "bob", "carol"] and "declare different teams" in students[0].flags[0]
    assert students[1].members == ["p1", "p2", "p3", "p4", "p5"] and "at most 4" in students[1].flags[0]
    assert len(messages) == 2
    assign_members(students, [])   # a second call starts again from the declarations
    assert students[0].members == ["team7"]
