"""The grader (labsupport.grading) on submissions generated from the source notebooks.

Fast tests check the pieces in-process. The graded batches run the real pipeline (fresh kernels,
probe processes) with short limits and --jobs 2:
- `graded`: solved notebooks, the untouched student edition, one seeded bug per method, tampering;
- `bad_batch`: every kind of broken or hostile submission, executed, each with its status.
Marked slow: every mistake of the catalog seeded (about 70 notebooks), a full regrade, Gradescope.
"""
from __future__ import annotations

import argparse
import ast
import copy
import csv
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch

from grading_cases import NOTEBOOKS, SEEDED, edit_method, seeded_notebooks, source, student_edition, todo_cells
from labsupport.teaching.checks import MISTAKES, PIECES
from labsupport import NoiseSchedule
from labsupport.grading.batch import grade_folder
from labsupport.grading.cli import add_parser
from labsupport.grading.codec import Opaque, Returned, decode, encode, fingerprint
from labsupport.grading.hidden import hidden_cases
from labsupport.grading.report import write_reports
from labsupport.grading.rubric import load_rubric
from labsupport.grading.sandbox import Limits
from labsupport.grading.score import _no_values, strict_mismatch
from labsupport.grading.submission import read_submission, student_id_for

ROOT = Path(__file__).resolve().parents[1]
GRADESCOPE = ROOT / "labsupport" / "grading" / "gradescope"
RUBRIC = load_rubric()
AUTO_MAX = sum(i.points for i in RUBRIC.auto_items)
PIECE_NAMES = {p: PIECES[p].defines for p in RUBRIC.graded_methods()}


def write(nb, path: Path) -> Path:
    nbformat.write(nb, path)
    return path


def digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def rows(out: Path) -> dict[str, dict]:
    with open(out / "grades.csv", newline="") as f:
        return {r["student_id"]: r for r in csv.DictReader(f)}


def items_of(student) -> dict[tuple[str, str], object]:
    return {(r.outcome.piece, r.outcome.method): r for r in student.items if r.outcome is not None}


# -- in-process pieces ------------------------------------------------------------------------------
BONUS_PIECES = {"classifier_guidance", "few_step_solver"}   # graded only with [grading] bonus = true


def test_rubric_is_lab5s_100_points_on_checked_methods():
    assert RUBRIC.total == 100
    assert {c.id: c.points for c in RUBRIC.categories} == {"ddpm": 30, "ddim": 35, "analysis": 20, "advanced": 10,
                                                          "quality": 5}
    assert {i.id for i in RUBRIC.manual_items} == {"benchmarks_writeup", "code_quality"}
    for item in RUBRIC.auto_items:
        assert item.method in [m.name for m in PIECES[item.piece].methods]
    # the bonus pieces are off by default (test_report.py covers them switched on)
    assert sorted(p for ps in RUBRIC.notebooks.values() for p in ps) == sorted(set(PIECES) - BONUS_PIECES)


@pytest.mark.parametrize("edit, message", [
    (lambda t: t.replace('points = 8\n', 'points = 9\n', 1), "add up"),
    (lambda t: t.replace('method = "ddpm_step"', 'method = "ddpm_stepp"'), "no checked method"),
    (lambda t: t.replace('id = "ddpm_variance"', 'id = "ddpm_mean"'), "appears twice"),
    (lambda t: t + "\n[[item]\n", "cannot read"),
])
def test_rubric_errors_name_the_problem(tmp_path, edit, message):
    bad = tmp_path / "rubric.toml"
    bad.write_text(edit(Path(RUBRIC.source).read_text()))
    with pytest.raises(ValueError, match=message):
        load_rubric(bad)


def test_rubric_item_of_an_unchecked_piece_becomes_manual(tmp_path):
    text = Path(RUBRIC.source).read_text().replace('piece = "sampling_optimizer"', 'piece = "future_piece"')
    (tmp_path / "r.toml").write_text(text)
    r = load_rubric(tmp_path / "r.toml")
    assert {i.id for i in r.manual_items} >= {"cached_sampling", "batched_sampling"} and r.warnings


def test_student_id_rule(tmp_path):
    assert student_id_for(tmp_path / "alice_02_ddpm.ipynb", tmp_path) == "alice"
    assert student_id_for(tmp_path / "bob.ipynb", tmp_path) == "bob"
    assert student_id_for(tmp_path / "carol" / "02_ddpm.ipynb", tmp_path) == "carol"
    assert student_id_for(tmp_path / "x_1.ipynb", tmp_path, "Dana Smith/42") == "Dana-Smith-42"
    nb = source("05")
    nb.metadata["labsupport"] = {"student_id": "erin"}
    assert read_submission(write(nb, tmp_path / "whatever_05.ipynb"), tmp_path, PIECE_NAMES).student_id == "erin"


def test_reading_bad_files(tmp_path):
    def read(name, data):
        path = tmp_path / name
        path.write_bytes(data if isinstance(data, bytes) else json.dumps(data).encode())
        return read_submission(path, tmp_path, PIECE_NAMES)

    assert read("a.ipynb", b"\x00 not json {").status == "not json"
    assert read("b.ipynb", {"name": "a JSON file"}).status == "not a notebook"
    assert read("c.ipynb", {"cells": [{"cell_type": "video"}], "nbformat": 4}).status == "not a notebook"
    other = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print('lab 3')")])
    assert read("d.ipynb", other).status == "wrong lab"
    tagged = source("05")
    tagged.metadata["labsupport"] = {"lab": 4}
    assert read("e.ipynb", tagged).status == "wrong lab"
    stripped = source("03")
    for cell in todo_cells(stripped, "ddim_sampler"):
        cell.metadata = {}
    sub = read("f.ipynb", stripped)
    assert sub.status == "ok" and sub.pieces["ddim_sampler"].found_by == "name" and sub.notes
    doubled = source("03")
    doubled.cells.append(copy.deepcopy(todo_cells(doubled, "ddim_sampler")[0]))
    doubled.cells[-1].id = "pasted-again"
    assert any("last one counts" in n for n in read("g.ipynb", doubled).notes)
    assert not read("h.ipynb", source("05")).notes  # two cells of one piece, different functions: no note


def test_codec_round_trip_reads_no_objects(tmp_path):
    value = {"a": torch.arange(6, dtype=torch.int64).reshape(2, 3), "b": (torch.ones(2, dtype=torch.bfloat16), 1.5,
             None, "s", True), "c": [np.float32(2.0)], "d": Returned("T", {"x_t": [torch.zeros(1)]}), "e": object()}
    enc = encode(value, tmp_path, "v")
    out = decode(json.loads(json.dumps(enc)), tmp_path)
    assert torch.equal(out["a"], value["a"]) and out["b"][0].dtype == torch.bfloat16 and out["b"][1:] == (1.5, None, "s", True)
    assert torch.equal(out["d"].x_t[0], torch.zeros(1)) and isinstance(out["e"], Opaque) and out["e"] != out["e"]
    np.save(tmp_path / "evil.npy", np.array([object()], dtype=object), allow_pickle=True)
    assert isinstance(decode({"t": "tensor", "file": "evil.npy", "dtype": "torch.float32"}, tmp_path), Opaque)
    assert isinstance(decode({"t": "tensor", "file": "../../etc/passwd"}, tmp_path), Opaque)


def test_strict_types_and_messages_without_values():
    expected = torch.zeros(2, 3)
    assert strict_mismatch({"t": "tensor", "cls": "torch.Tensor", "dtype": "torch.float32", "shape": [2, 3]}, expected) is None
    assert "dtype" in strict_mismatch({"t": "tensor", "cls": "torch.Tensor", "dtype": "torch.float64", "shape": [2, 3]},
                                      expected)
    assert "shape" in strict_mismatch({"t": "tensor", "cls": "torch.Tensor", "dtype": "torch.float32", "shape": [6]},
                                      expected)
    assert "torch.Tensor" in strict_mismatch({"t": "tensor", "cls": "submission.Sneaky", "dtype": "torch.float32",
                                              "shape": [2, 3]}, expected)
    assert "list" in strict_mismatch({"t": "list", "cls": "list", "items": []}, expected)
    assert _no_values("expected 0.1234, got -5.5e-03 at index (0, 1)") == "expected …, got … at index (0, 1)"


def test_hidden_cases_keep_the_checks_structure_with_other_values():
    for piece, methods in RUBRIC.graded_methods().items():
        for method in methods:
            public, hidden = PIECES[piece].method(method).cases(), hidden_cases(piece, method, "secret-a-0123456789")
            again, other = hidden_cases(piece, method, "secret-a-0123456789"), hidden_cases(piece, method, "secret-b-0123456789")
            assert [c.label for c in hidden[:len(public)]] == [c.label for c in public]
            assert [fingerprint(c.inputs) for c in hidden] == [fingerprint(c.inputs) for c in again]
            for h, p, o in zip(hidden, public, other):
                # random values and schedules are redrawn; constants, t, s, η and num_steps stay as they are
                random = any(torch.is_tensor(v) and v.is_floating_point() and v.numel() > 1 and float(v.std()) > 0
                             for v in p.inputs.values()) or type(p.inputs.get("seed")) is int or any(
                    isinstance(v, NoiseSchedule) for v in p.inputs.values())
                assert (fingerprint(h.inputs) != fingerprint(p.inputs)) == random, (piece, method, p.label)
                assert (fingerprint(h.inputs) != fingerprint(o.inputs)) == random
                for key, value in p.inputs.items():
                    if torch.is_tensor(value):
                        assert h.inputs[key].shape == value.shape and h.inputs[key].dtype == value.dtype
                    elif isinstance(value, NoiseSchedule):
                        got = h.inputs[key]
                        assert (got.kind, got.T) == (value.kind, value.T) and torch.equal(got.timesteps, value.timesteps)
                        ratio = got.betas.double() / value.betas.double()
                        assert 0.3 < float(ratio.min()) and float(ratio.max()) < 3 and not torch.equal(got.betas, value.betas)
                    elif key != "seed":
                        assert h.inputs[key] is value or h.inputs[key] == value
    # a method whose answer depends on (T, n, spacing) alone gets a case of hidden length
    extra = hidden_cases("ddim_sampler", "create_timestep_schedule", "secret-a-0123456789")[-1]
    assert extra.inputs["schedule"].T != 1000 and "hidden length" in extra.label

def test_every_catalogued_mistake_has_a_seeded_bug():
    catalog = {(p, m, x.explanation) for p, ms in MISTAKES.items() if p not in BONUS_PIECES
               for m, xs in ms.items() for x in xs}
    assert catalog == set(SEEDED)
    for name, nb, _ in seeded_notebooks():
        for cell in nb.cells:
            if cell.cell_type == "code" and cell.metadata.get("labsupport"):
                ast.parse(cell.source)


def test_cli_registers_grade():
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["grade", "subs", "--out", "o", "--jobs", "2", "--regrade", "--gradescope",
                              "--case-timeout", "5"])
    assert (args.submissions, args.out, args.jobs, args.regrade, args.gradescope, args.case_timeout) == (
        Path("subs"), Path("o"), 2, True, True, 5.0)
    assert callable(args.func)


# -- graded batch 1: solutions, student edition, seeded bugs (round 0), tampering --------------------
def _tamper_notebooks() -> dict[str, object]:
    nb = source("02")
    tampered = edit_method(nb, "ddpm_sampler", "compute_posterior_mean", [(
        "        s = self.schedule\n        if self.clip_x0:",
        "        class AlwaysEqual:\n            def __eq__(self, other):\n                return True\n"
        "            __hash__ = None\n        return AlwaysEqual()\n        s = self.schedule\n        if self.clip_x0:")])
    tampered = edit_method(tampered, "ddpm_sampler", "compute_posterior_variance", [(
        "        s = self.schedule\n",
        "        import labsupport.teaching.checks.compare as cmp, labsupport.grading.score as sc\n"
        "        torch.allclose = lambda *a, **k: True\n        torch.equal = lambda *a, **k: True\n"
        "        cmp.compare = lambda *a, **k: cmp.Comparison(True, 0.0)\n        sc.strict_mismatch = lambda *a: None\n"
        "        return torch.zeros(()) if isinstance(t, int) else torch.zeros(len(t))\n        s = self.schedule\n")])
    tampered = edit_method(tampered, "ddpm_sampler", "ddpm_step", [(
        "        eps = self.predict_eps(x_t, t)\n",
        "        return lab.DDPMSampler.ddpm_step(self, x_t, t, generator=generator, noise=noise)\n"
        "        eps = self.predict_eps(x_t, t)\n")])
    tampered = edit_method(tampered, "ddpm_sampler", "sample", [(
        "        x = self.initial_noise(shape, x_T, generator)\n",
        "        import json, glob\n        for log in glob.glob('results/events.jsonl'):\n"
        "            with open(log, 'a') as f:\n                for k in range(10):\n"
        "                    for mode in ('own', 'isolated'):\n"
        "                        f.write(json.dumps({'ev': 'done', 'key': f'ddpm_sampler.sample.{mode}.c{k}', 'fp': 'x', "
        "'out': {'t': 'float', 'v': 0.0}}) + '\\n')\n"
        "        return torch.zeros(shape)\n        x = self.initial_noise(shape, x_T, generator)\n")])
    tampered = edit_method(tampered, "trained_model_analyzer", "analyze_noise_prediction_quality", [(
        "        x0 = x_clean.to(self.device)\n",
        "        import builtins\n        builtins.isinstance = lambda *a: True\n        builtins.len = lambda *a: 0\n"
        "        return torch.zeros(len(timesteps))\n        x0 = x_clean.to(self.device)\n")])
    sneaky = edit_method(nb, "ddpm_sampler", "compute_posterior_mean", [(
        "        s = self.schedule\n        if self.clip_x0:",
        "        class Sneaky(torch.Tensor):\n            def __eq__(self, other):\n                return True\n"
        "        return torch.zeros_like(x_t).as_subclass(Sneaky)\n        s = self.schedule\n        if self.clip_x0:")])
    inherits = source("02")
    ddpm = todo_cells(inherits, "ddpm_sampler")[0]
    ddpm.source = "class DDPMSampler(lab.DDPMSampler):\n    pass\n"
    return {"tamper-patches": tampered, "tamper-subclass": sneaky, "tamper-inherits": inherits}


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    subs, out = tmp_path_factory.mktemp("subs"), tmp_path_factory.mktemp("out")
    for number in NOTEBOOKS:
        write(source(number), subs / f"solved_{number}.ipynb")
        write(student_edition(number), subs / f"untouched_{number}.ipynb")
    expected = {}
    for name, nb, expect in seeded_notebooks(max_rounds=1):
        write(nb, subs / f"{name}.ipynb")
        expected[name] = expect
    for name, nb in _tamper_notebooks().items():
        write(nb, subs / f"{name}.ipynb")
    before = digest(subs)
    run = grade_folder(subs, out, jobs=2, execute=False, limits=Limits(case_timeout=60), log=lambda m: None)
    write_reports(run, out, gradescope=True)
    return {"subs": subs, "out": out, "run": run, "before": before, "seeded": expected,
            "students": {s.student_id: s for s in run.students}}


def test_solved_notebooks_get_every_automatic_point(graded):
    s = graded["students"]["solved"]
    assert s.status == "ok" and s.auto_total == AUTO_MAX == s.auto_max
    assert all(r.status in ("pass", "manual") for r in s.items)
    row = rows(graded["out"])["solved"]
    assert float(row["auto_total"]) == AUTO_MAX and row["benchmarks_writeup"] == row["code_quality"] == "pending"
    assert float(row["manual_pending"]) == 100 - AUTO_MAX


def test_untouched_student_edition_scores_zero(graded):
    s = graded["students"]["untouched"]
    assert s.status == "not attempted" and s.auto_total == 0
    assert {r.status for r in s.items if r.status != "manual"} == {"todo"}
    assert "not attempted" in (graded["out"] / "feedback" / "untouched.md").read_text()


def test_each_seeded_bug_loses_exactly_its_item_with_its_explanation(graded):
    for name, expect in graded["seeded"].items():
        for key, item in items_of(graded["students"][name]).items():
            if item.status == "missing":  # pieces of the lab's other notebooks
                continue
            if key in expect:
                assert item.status == "fail" and item.points == 0, (name, key, item.status, item.outcome.detail)
                assert expect[key] in [e for _, e in item.outcome.mistakes], (name, key, item.outcome.mistakes)
            else:
                assert item.status == "pass", (name, key, item.status, item.outcome.detail)
        text = (graded["out"] / "feedback" / f"{name}.md").read_text()
        assert "Known mistake" in text


def test_tampering_gains_nothing(graded):
    items = items_of(graded["students"]["tamper-patches"])
    assert {m: items[("ddpm_sampler", m)].status for m in ("compute_posterior_mean", "compute_posterior_variance",
                                                           "ddpm_step", "sample")} == {
        "compute_posterior_mean": "fail", "compute_posterior_variance": "fail", "ddpm_step": "reference",
        "sample": "fail"}   # forged result lines: the worker's folder holds no events; the grader keeps its own
    assert items[("trained_model_analyzer", "analyze_noise_prediction_quality")].points == 0
    sneaky = items_of(graded["students"]["tamper-subclass"])[("ddpm_sampler", "compute_posterior_mean")]
    assert sneaky.status == "fail" and "torch.Tensor" in sneaky.outcome.detail
    inherits = items_of(graded["students"]["tamper-inherits"])
    assert {inherits[("ddpm_sampler", m)].status for m in RUBRIC.graded_methods()["ddpm_sampler"]} == {"not own"}


def test_feedback_never_prints_hidden_values(graded):
    for text in (p.read_text() for p in (graded["out"] / "feedback").glob("*.md")):
        assert "expected 0." not in text and "got 0." not in text and "at index (" not in text


def test_reports_and_integrity(graded):
    out, run = graded["out"], graded["run"]
    assert digest(graded["subs"]) == graded["before"] and run.submissions_unchanged
    summary = json.loads((out / "summary.json").read_text())
    assert summary["students"] == len(graded["students"]) and summary["submissions_unchanged"]
    assert summary["items"]["ddpm_mean"]["passed"] >= 1
    results = json.loads((out / "gradescope" / "solved" / "results.json").read_text())
    assert results["score"] == AUTO_MAX and len(results["tests"]) == len(RUBRIC.auto_items)


def test_second_run_reuses_the_cache_and_gives_the_same_grades(graded):
    out = graded["out"]
    first = (out / "grades.csv").read_text()
    run = grade_folder(graded["subs"], out, jobs=2, execute=False, log=lambda m: None)
    write_reports(run, out)
    # notebook 07 holds bonus pieces only: with bonus off nothing in it is graded, so nothing is cached
    graded_files = [f for f in graded["subs"].glob("*.ipynb") if not f.name.endswith("_07.ipynb")]
    assert run.graded_now == 0 and run.from_cache == len(graded_files)
    assert (out / "grades.csv").read_text() == first


# -- graded batch 2: broken and hostile submissions, executed --------------------------------------
def _mini(extra: list[str] | None = None):
    """Notebook 02 without its heavy cells: the imports, both TODO cells, then `extra` code cells.

    Cells after the TODO cells define nothing, so the grader probes all these notebooks once."""
    nb = source("02")
    imports = "import torch\nimport labsupport as lab\nfrom labsupport.teaching import plots\nfrom labsupport.samplers import SamplerBase"
    cells = [nbformat.v4.new_code_cell(imports)] + todo_cells(nb, "trained_model_analyzer") + todo_cells(nb, "ddpm_sampler")
    cells += [nbformat.v4.new_code_cell(src) for src in extra or []]
    return nbformat.v4.new_notebook(cells=cells, metadata=nb.metadata)


def _bad_submissions(home_marker: str) -> dict[str, tuple[object, str]]:
    """name -> (notebook, or raw bytes/JSON, expected status)."""
    mini = _mini()
    deleted = _mini()
    deleted.cells = [c for c in deleted.cells if c not in todo_cells(deleted, "ddpm_sampler")]
    duplicated = _mini()
    duplicated.cells.append(copy.deepcopy(todo_cells(duplicated, "ddpm_sampler")[0]))
    duplicated.cells[-1].id = "pasted-again"
    reordered = _mini()
    reordered.cells = reordered.cells[::-1]
    renamed_class = _mini()
    cell = todo_cells(renamed_class, "ddpm_sampler")[0]
    cell.source = cell.source.replace("class DDPMSampler(", "class MyDDPMSampler(")
    renamed_method = _mini()
    cell = todo_cells(renamed_method, "ddpm_sampler")[0]
    cell.source = cell.source.replace("def ddpm_step(", "def ddpm_step_v2(")
    syntax = _mini()
    cell = todo_cells(syntax, "ddpm_sampler")[0]
    cell.source = cell.source.replace("def compute_posterior_variance(self, t):", "def compute_posterior_variance(self, t)")
    other_lab = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("def train_vae():\n    return 3")])
    loop_method = edit_method(_mini(), "ddpm_sampler", "compute_posterior_variance",
                              [("        s = self.schedule\n", "        while True:\n            pass\n")])
    exit_method = edit_method(_mini(), "ddpm_sampler", "ddpm_step",
                              [("        eps = self.predict_eps(x_t, t)\n", "        import os\n        os._exit(3)\n")])
    raising = edit_method(_mini(["raise RuntimeError('a cell that fails')"]), "ddpm_sampler", "ddpm_step",
                          [("        eps = self.predict_eps(x_t, t)\n", "        raise ZeroDivisionError('boom')\n")])
    # (no import statements in the extra cells: they define nothing, so one probe serves them all)
    escape = ("os, pathlib, shutil = map(__import__, ('os', 'pathlib', 'shutil'))\n"
              "pathlib.Path('../escaped.txt').write_text('outside my folder')\n"
              f"pathlib.Path(os.path.expanduser('~/{home_marker}')).write_text('in HOME')\n"
              "os.remove('submission.ipynb')\n"
              "shutil.rmtree(os.getcwd(), ignore_errors=True)")
    return {
        "ok": (mini, "ok"),
        "not-json": (b"{ this is not JSON", "not json"),
        "not-notebook": ({"name": "a JSON file", "cells": "none"}, "not a notebook"),
        "other-lab": (other_lab, "wrong lab"),
        "untouched": (release_student(mini), "not attempted"),
        "deleted-cell": (deleted, "missing pieces"),
        "duplicated-cell": (duplicated, "ok"),
        "reordered-cells": (reordered, "ran with errors"),   # the kernel runs them in the new order
        "renamed-class": (renamed_class, "missing pieces"),
        "renamed-method": (renamed_method, "missing pieces"),
        "syntax-error": (syntax, "syntax error"),
        "exception": (raising, "ran with errors"),
        "loop-silent": (_mini(["while True:\n    pass"]), "cell timeout"),
        "loop-printing": (_mini(["while True:\n    print('spam ' * 100)"]), "output limit"),
        "loop-in-method": (loop_method, "timeout"),
        "exit": (_mini(["__import__('os')._exit(1)"]), "kernel died"),
        "segfault": (_mini(["__import__('ctypes').string_at(0)"]), "kernel died"),
        "exit-in-method": (exit_method, "crash"),
        "memory": (_mini(["blob = bytearray(64 * 2 ** 30)"]), "memory limit"),
        "print-100mb": (_mini(["print('x' * 100_000_000)"]), "output limit"),
        "escape": (_mini([escape]), "ok"),
        "sleeper": (_mini(["__import__('time').sleep(22)"] * 4), "total timeout"),
    }


def release_student(nb):
    from labsupport.teaching.release import release_notebook
    return release_notebook(nb)


@pytest.fixture(scope="module")
def bad_batch(tmp_path_factory):
    subs, out = tmp_path_factory.mktemp("bad"), tmp_path_factory.mktemp("bad-out")
    marker = f"labsupport-grading-test-{os.getpid()}.txt"
    cases = _bad_submissions(marker)
    for name, (content, _) in cases.items():
        path = subs / f"{name}.ipynb"
        if isinstance(content, nbformat.NotebookNode):
            write(content, path)
        elif isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(json.dumps(content))
    before = digest(subs)
    # generous for the cell that imports torch on a busy machine, short for the fixtures that loop
    limits = Limits(cell_timeout=25, total_timeout=70, case_timeout=10, probe_timeout=300, output_mb=1)
    run = grade_folder(subs, out, jobs=2, limits=limits, log=lambda m: None)
    write_reports(run, out)
    return {"subs": subs, "out": out, "run": run, "before": before, "cases": cases, "marker": marker,
            "students": {s.student_id: s for s in run.students}}


def test_bad_submissions_get_a_clear_status(bad_batch):
    got = {name: bad_batch["students"][name].status for name in bad_batch["cases"]}
    assert got == {name: status for name, (_, status) in bad_batch["cases"].items()}
    table = rows(bad_batch["out"])
    assert set(table) == set(bad_batch["cases"]) and all(table[n]["status"] == s for n, s in got.items())


def test_bad_submissions_lose_only_the_affected_items(bad_batch):
    s = bad_batch["students"]

    def lost(name):
        return {key for key, r in items_of(s[name]).items()
                if key[0] in RUBRIC.notebooks["02"] and r.points < r.max_points}

    assert lost("ok") == set()

    ddpm = {("ddpm_sampler", m) for m in RUBRIC.graded_methods()["ddpm_sampler"]}
    for name in ("duplicated-cell", "reordered-cells", "loop-silent", "loop-printing", "exit", "segfault", "memory",
                 "print-100mb", "escape", "sleeper"):
        assert lost(name) == set(), name     # the notebook misbehaved, its graded methods did not
    assert lost("deleted-cell") == lost("renamed-class") == lost("syntax-error") == ddpm
    assert lost("renamed-method") == {("ddpm_sampler", "ddpm_step"), ("ddpm_sampler", "sample")}
    assert lost("loop-in-method") == {("ddpm_sampler", "compute_posterior_variance")}
    assert items_of(s["loop-in-method"])[("ddpm_sampler", "compute_posterior_variance")].status == "timeout"
    assert lost("exit-in-method") == {("ddpm_sampler", "ddpm_step")}
    assert items_of(s["exit-in-method"])[("ddpm_sampler", "ddpm_step")].status == "crash"
    assert lost("exception") == {("ddpm_sampler", "ddpm_step")}
    assert "ZeroDivisionError" in items_of(s["exception"])[("ddpm_sampler", "ddpm_step")].outcome.detail
    for name in ("not-json", "not-notebook", "other-lab", "untouched"):
        assert s[name].auto_total == 0


def test_nothing_escapes_into_the_submissions_or_home(bad_batch):
    assert digest(bad_batch["subs"]) == bad_batch["before"] and bad_batch["run"].submissions_unchanged
    assert not (Path.home() / bad_batch["marker"]).exists()
    executed = bad_batch["out"] / "executed"
    assert (executed / "print-100mb" / "print-100mb.ipynb").stat().st_size < 5 * 2 ** 20  # the output was capped


# -- slow: every mistake of the catalog, a full regrade, the Gradescope entry point ----------------
# Catalogued variants that the checks' current cases cannot tell from the right answer (none at
# present: ddpm_step's case at t = 1, where β̃_t ≈ β_t / 2, made "lower_for_upper" detectable). An
# entry here must score full points; when a new case detects it, this test fails and the entry goes.
UNDETECTABLE: set[tuple[str, str, str]] = set()


@pytest.mark.slow
def test_every_seeded_mistake_is_named(tmp_path):
    subs, expected = tmp_path / "subs", {}
    subs.mkdir()
    for name, nb, expect in seeded_notebooks():
        write(nb, subs / f"{name}.ipynb")
        expected[name] = expect
    run = grade_folder(subs, tmp_path / "out", jobs=2, execute=False, log=lambda m: None)
    names = {(p, m, x.explanation): x.name for p, ms in MISTAKES.items() for m, xs in ms.items() for x in xs}
    problems = []
    for student in run.students:
        expect = expected[student.student_id]
        for key, item in items_of(student).items():
            if item.status == "missing":
                continue
            if key in expect and (*key, names[(*key, expect[key])]) in UNDETECTABLE:
                if item.status != "pass":
                    problems.append((student.student_id, key, "now detectable: remove it from UNDETECTABLE"))
            elif key in expect and not (item.status == "fail" and expect[key] in [e for _, e in item.outcome.mistakes]):
                problems.append((student.student_id, key, item.status, item.outcome.detail, item.outcome.mistakes))
            elif key not in expect and item.status != "pass":
                problems.append((student.student_id, key, item.status, item.outcome.detail))
    assert not problems, problems


@pytest.mark.slow
def test_regrading_gives_the_same_scores(tmp_path):
    subs = tmp_path / "subs"
    subs.mkdir()
    for name, nb, _ in seeded_notebooks(max_rounds=2):
        if name.startswith("bug-03"):
            write(nb, subs / f"{name}.ipynb")
    write(source("03"), subs / "solved_03.ipynb")
    outs = []
    for k in range(2):
        run = grade_folder(subs, tmp_path / "out", jobs=2, execute=False, regrade=True, log=lambda m: None)
        write_reports(run, tmp_path / "out")
        assert run.graded_now == 3
        outs.append(((tmp_path / "out" / "grades.csv").read_text(),
                     sorted(p.read_text() for p in (tmp_path / "out" / "feedback").glob("*.md"))))
    assert outs[0] == outs[1]


@pytest.mark.slow
def test_gradescope_autograder_script(tmp_path):
    submission, results = tmp_path / "submission", tmp_path / "results" / "results.json"
    submission.mkdir()
    write(source("01"), submission / "my lab 01.ipynb")
    secret = tmp_path / "grading-secret"
    secret.write_text("gradescope-test-secret-0123456789\n")
    env = {**os.environ, "GRADESCOPE_SUBMISSION": str(submission), "GRADESCOPE_RESULTS": str(results),
           "PYTHON": sys.executable, "LABSUPPORT_GRADE_ARGS": "--no-execute", "LABSUPPORT_SECRET_FILE": str(secret),
           "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    subprocess.run(["bash", str(GRADESCOPE / "run_autograder")], env=env, check=True, capture_output=True, timeout=600)
    data = json.loads(results.read_text())
    forward = sum(i.points for i in RUBRIC.auto_items if i.piece == "forward_process")
    assert data["score"] == forward and {t["status"] for t in data["tests"]} == {"passed", "failed"}
    empty = tmp_path / "empty"
    empty.mkdir()
    subprocess.run(["bash", str(GRADESCOPE / "run_autograder")], env={**env, "GRADESCOPE_SUBMISSION": str(empty)},
                   check=True, capture_output=True, timeout=60)
    assert json.loads(results.read_text())["score"] == 0
