"""The bonus pieces (notebook 05's classifier guidance, notebook 07's DPM-Solver++) graded end to end.

With `[grading] bonus = true` they are graded like Lab 5's pieces: in the sandbox, on hidden inputs,
from a view of the package that does not hold their references. One batch: the solved notebooks and
one seeded mistake per bonus method that the check knows by name.
"""
from __future__ import annotations


import pytest

from grading_cases import edit_method, source
from labsupport.grading.batch import grade_folder
from labsupport.grading.rubric import DEFAULT_RUBRIC, load_rubric
from labsupport.grading.sandbox import Limits
from labsupport.grading.view import view_for
from labsupport.teaching.checks import MISTAKES

BONUS_METHODS = {("classifier_guidance", "classifier_guided_noise"), ("few_step_solver", "dpm_solver_step"),
                 ("few_step_solver", "sample")}
# (notebook, piece, method, mistake name, edit of the solution)
SEEDED = [
    ("05", "classifier_guidance", "classifier_guided_noise", "sign_flipped",
     ("    return eps - guidance_scale * (1 - abar_t).sqrt() * grad",
      "    return eps + guidance_scale * (1 - abar_t).sqrt() * grad")),
    ("07", "few_step_solver", "dpm_solver_step", "missing_half",
     ("            D = (1 + 1 / (2 * r)) * x0_hat - (1 / (2 * r)) * x0_prev",
      "            D = (1 + 1 / r) * x0_hat - (1 / r) * x0_prev")),
]


def explanation(piece: str, method: str, name: str) -> str:
    return next(m.explanation for m in MISTAKES[piece][method] if m.name == name)


def test_bonus_views_keep_no_reference_of_the_graded_equations():
    for piece, method in BONUS_METHODS:
        parts = view_for(piece, method)
        assert not parts.get("maths/solvers") and not parts.get("samplers/dpm_solver"), (piece, method)
        assert not parts.get("samplers/classifier_guidance"), (piece, method)
        assert not parts.get("maths/guidance", {}).get("classifier_guided_eps"), (piece, method)
    assert view_for("few_step_solver", "sample")["samplers/ddim"]["timestep_schedule"] is True


@pytest.fixture(scope="module")
def bonus_graded(tmp_path_factory):
    root = tmp_path_factory.mktemp("bonus")
    subs, out = root / "subs", root / "out"
    subs.mkdir()
    rubric = root / "rubric.toml"
    rubric.write_text(DEFAULT_RUBRIC.read_text().replace("bonus = false", "bonus = true", 1))
    for number in ("05", "07"):
        (subs / f"solved_{number}.ipynb").write_text(_dump(source(number)))
    for number, piece, method, _, edit in SEEDED:
        (subs / f"bug-{method.replace('_', '-')}_{number}.ipynb").write_text(_dump(edit_method(source(number), piece, method, [edit])))
    run = grade_folder(subs, out, jobs=2, execute=False, limits=Limits(case_timeout=60), rubric=load_rubric(rubric),
                       log=lambda m: None)
    return {s.student_id: s for s in run.students}


def _dump(nb) -> str:
    import nbformat
    return nbformat.writes(nb)


def _items(student) -> dict:
    return {(r.outcome.piece, r.outcome.method): r for r in student.items if r.outcome is not None}


def test_solved_bonus_pieces_get_their_points(bonus_graded):
    items = _items(bonus_graded["solved"])
    for key in BONUS_METHODS:
        assert items[key].status == "pass" and items[key].bonus, (key, items[key].status, items[key].outcome.detail)
        assert items[key].points == items[key].max_points > 0


@pytest.mark.parametrize("seeded", SEEDED, ids=[s[2] for s in SEEDED])
def test_a_seeded_bonus_mistake_loses_its_item_and_is_named(bonus_graded, seeded):
    number, piece, method, name, _ = seeded
    items = _items(bonus_graded[f"bug-{method.replace('_', '-')}"])
    item = items[(piece, method)]
    assert item.status == "fail" and item.points == 0, (item.status, item.outcome.detail)
    assert explanation(piece, method, name) in [e for _, e in item.outcome.mistakes], item.outcome.mistakes
    others = [k for k in BONUS_METHODS if k in items and k != (piece, method) and k[0] == piece]
    assert all(items[k].status == "pass" for k in others), {k: items[k].status for k in others}
