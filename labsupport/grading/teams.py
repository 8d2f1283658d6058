"""Who a submission speaks for: the members of a declared team each get its grade (docs/grading.md).

A submission (the notebooks that share one student id, see submission.py) is graded once. Its members:
- no notebook of it declares a team: its own id, alone;
- a team is declared (`metadata.labsupport.team` or team.txt, read by `submission.read_submission`):
  exactly the declared ids, plus an id set by `metadata.labsupport.student_id`, which names a person
  (submission.py adds it). A folder or file name is not added: it may name the team (`team7/` with
  team.txt "alice bob" speaks for alice and bob) or the upload (`student/` on Gradescope);
- its notebooks declare different teams: every id any of them declares, flagged.

Nothing is resolved silently. A student claimed by two submissions (two teams, or a team and their own
submission; ids compared without case) keeps a row for each claiming submission, with status
"team conflict"; both submissions are flagged and the message goes to `GradeRun.team_conflicts`. A
team larger than `MAX_TEAM` is graded for every member and flagged.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from .submission import MAX_TEAM

if TYPE_CHECKING:  # batch imports this module; a run-time import would be circular
    from .batch import StudentResult
    from .submission import Submission

__all__ = ["assign_members", "members_of", "conflicted_members", "CONFLICT"]

CONFLICT = "team conflict"


def members_of(s: StudentResult) -> list[str]:
    """The students a result is graded for: its members, or its own id when none were assigned."""
    return s.members or [s.student_id]


def _claims(students: Iterable[StudentResult]) -> dict[str, list[StudentResult]]:
    claims: dict[str, list[StudentResult]] = {}
    for s in students:
        for m in dict.fromkeys(x.casefold() for x in members_of(s)):
            claims.setdefault(m, []).append(s)
    return claims


def conflicted_members(students: Iterable[StudentResult]) -> set[str]:
    """Member ids (casefolded) that more than one submission claims."""
    return {m for m, subs in _claims(students).items() if len(subs) > 1}


def _flag(s: StudentResult, message: str) -> None:
    text = f"{CONFLICT}: {message}"
    if text not in s.flags:
        s.flags.append(text)


def assign_members(students: list[StudentResult], submissions: Iterable[Submission]) -> list[str]:
    """Set each result's `members` from the teams its notebooks declare; flag and return the conflicts.

    `students`: one StudentResult per submission id. `submissions`: the `Submission` of every notebook
    read (only `student_id`, `team`, `team_source` and `path` are used), readable or not. Returns the
    messages for `GradeRun.team_conflicts`; each is also in the `flags` of the results it concerns.
    """
    declared: dict[str, list[tuple[str, tuple[str, ...], str]]] = {}
    for sub in submissions:
        if sub.team:
            declared.setdefault(sub.student_id, []).append((sub.path.name, tuple(sub.team), sub.team_source))
    messages: list[str] = []
    how: dict[str, str] = {}   # submission id -> how it claims its members, for the messages
    for s in students:
        decls = declared.get(s.student_id, [])
        if not decls:
            s.members = [s.student_id]
            how[s.student_id] = "its own submission"
            continue
        s.members = list(dict.fromkeys(m for _, team, _ in decls for m in team))
        sources = sorted({source for _, _, source in decls})
        how[s.student_id] = f"team {', '.join(s.members)} in {', '.join(sources)}"
        teams = {team for _, team, _ in decls}
        if len(teams) > 1:
            each = "; ".join(f"{name}: {', '.join(team)} ({source})" for name, team, source in decls)
            messages.append(f"the notebooks of submission {s.student_id} declare different teams ({each}); "
                            f"it is graded for all of them")
            _flag(s, messages[-1])
        if len(s.members) > MAX_TEAM:
            messages.append(f"submission {s.student_id} declares {len(s.members)} members "
                            f"({', '.join(s.members)}); a Lab 5 team has at most {MAX_TEAM}")
            _flag(s, messages[-1])
    for folded, subs in _claims(students).items():
        if len(subs) < 2:
            continue
        key = next(m for m in members_of(subs[0]) if m.casefold() == folded)
        messages.append(f"{key} is claimed by {len(subs)} submissions: "
                        + "; ".join(f"{s.student_id} ({how.get(s.student_id, 'its members')})" for s in subs)
                        + f"; each has a row for {key} with status '{CONFLICT}' until the team is settled")
        for s in subs:
            _flag(s, messages[-1])
    return messages
