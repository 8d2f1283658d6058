"""The self-checks name the slips students make in their own words: each test takes a notebook's
solution, makes exactly one edit a student would make, and reads what the check prints.

Also: a failing method is reported on its worst case, a mistake is named only when it explains every
case, a failure that comes from a method it uses says which one to fix first, and a table indexed
with a tensor t points to lab.extract.
"""
from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest
import torch

import labsupport as lab
import labsupport.teaching.checks as check
from labsupport.samplers import SamplerBase
from labsupport.teaching import plots
from labsupport.teaching.checks.catalog import explained_mistakes, mistakes_for

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"

# the lines of the notebooks' solutions that the slips below edit
RENOISE = "x_s = a_s.sqrt() * x0_hat + (1 - a_s - sigma ** 2).sqrt() * eps"
SIGMA = "sigma = eta * ((1 - a_s) / (1 - a_t) * (1 - a_t / a_s)).sqrt()"
NOISE_GATE = "if eta > 0 and s >= 0:"
X0_LOOKUP = "abar = lab.extract(self.schedule.alphas_cumprod, t, x_t.shape)"
SLIPS = {
    "direction_missing_sqrt": [(RENOISE, "x_s = a_s.sqrt() * x0_hat + (1 - a_s - sigma ** 2) * eps")],
    "sigma_without_eta": [(SIGMA, "sigma = ((1 - a_s) / (1 - a_t) * (1 - a_t / a_s)).sqrt()")],
    "eta_ignored": [(SIGMA, "sigma = ((1 - a_s) / (1 - a_t) * (1 - a_t / a_s)).sqrt()"), (NOISE_GATE, "if s >= 0:")],
    "tensor_t_indexing": [(X0_LOOKUP, "abar = self.schedule.alphas_cumprod[t]")],
    "final_step_to_zero": [("targets = ts[1:] + [-1]", "targets = ts[1:] + [0]")],
}


def _solution(piece: str) -> tuple[str, str]:
    for path in sorted(NOTEBOOKS.glob("0*.ipynb")):
        for cell in json.loads(path.read_text())["cells"]:
            meta = cell["metadata"].get("labsupport", {})
            if "todo" in cell["metadata"].get("tags", []) and meta.get("piece") == piece:
                return "".join(cell["source"]), meta["defines"][0]
    raise KeyError(piece)


def student(piece: str, *edits: tuple[str, str]):
    """The notebook's solution of `piece` with each (old, new) replacement; `old` must occur exactly once."""
    source, name = _solution(piece)
    for old, new in edits:
        assert source.count(old) == 1, old
        source = source.replace(old, new)
    ns = {"torch": torch, "lab": lab, "SamplerBase": SamplerBase, "plots": plots}
    exec(compile(source, "student_cell.py", "exec"), ns)
    return ns[name]


def ddim_student(*slips: str):
    return student("ddim_sampler", *(e for slip in slips for e in SLIPS[slip]))


def run_quiet(piece: str, obj, methods=None) -> tuple[check.Report, str]:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        report = check.run_piece(piece, obj, methods=methods)
    return report, buf.getvalue()


def line_of(text: str, method: str) -> str:
    return next(line for line in text.splitlines() if f" {method} " in line)


def block_of(text: str, method: str) -> str:
    """The method's line and the indented lines under it."""
    lines = text.splitlines()
    i = lines.index(line_of(text, method))
    out = [lines[i]]
    for line in lines[i + 1:]:
        if not line.startswith("      "):
            break
        out.append(line)
    return "\n".join(out)


def explanation(piece: str, method: str, name: str) -> str:
    return next(m.explanation for m in mistakes_for(piece, method) if m.name == name)


def case_comparisons(piece: str, method: str, obj) -> list[check.Comparison]:
    """The student's output against the reference's on every case of `method`, computed here."""
    spec = check.PIECES[piece].method(method)
    return [check.compare(check.call_student(piece, method, obj, c.inputs),
                          check.reference_output(piece, method, c.inputs), rtol=spec.rtol, atol=spec.atol)
            for c in spec.cases()]


# -- the slips of ddim_step, named ---------------------------------------------------------------
@pytest.mark.parametrize("slip", ["direction_missing_sqrt", "sigma_without_eta", "eta_ignored"])
def test_ddim_step_slip_is_named(slip):
    report, text = run_quiet("ddim_sampler", ddim_student(slip), methods=["ddim_step"])
    result = report.result("ddim_step")
    assert result.status == "fail"
    assert [m.name for m in result.mistakes] == [slip], text
    assert f"Known mistake ({slip}): {explanation('ddim_sampler', 'ddim_step', slip)}" in text
    assert "No single known mistake explains" not in text


def test_missing_root_is_reported_on_its_worst_case_not_its_first():
    cls = ddim_student("direction_missing_sqrt")
    compared = case_comparisons("ddim_sampler", "ddim_step", cls)
    errors = [c.max_error for c in compared]
    assert not compared[0].ok and errors[0] < 1e-4 < max(errors)  # the first case alone looks like rounding
    report, text = run_quiet("ddim_sampler", cls, methods=["ddim_step"])
    result = report.result("ddim_step")
    worst = errors.index(max(errors))
    assert result.cases_run == worst + 1 and result.max_error == pytest.approx(max(errors))
    assert result.case.label == check.cases("ddim_sampler", "ddim_step")[worst].label
    assert result.failed_cases == sum(not c.ok for c in compared) > 1
    line = line_of(text, "ddim_step")
    assert f"case {worst + 1} of {len(errors)}" in line and f"the worst of {result.failed_cases} failing cases" in line
    assert "3.6e-05" not in line and "3.62e-05" not in line


def test_a_method_with_two_slips_names_neither():
    # each variant explains some cases but not all of them: naming either would mislead
    report, text = run_quiet("ddim_sampler", ddim_student("direction_missing_sqrt", "sigma_without_eta"),
                             methods=["ddim_step"])
    assert report.result("ddim_step").mistakes == []
    assert "No single known mistake explains" in text


def test_a_variant_contradicted_by_a_passing_case_is_not_named():
    case = check.cases("ddim_sampler", "ddim_step")
    mistake = next(m for m in mistakes_for("ddim_sampler", "ddim_step") if m.name == "direction_missing_sqrt")
    runs = []
    for k, c in enumerate(case):
        expected = check.reference_output("ddim_sampler", "ddim_step", c.inputs)
        wrong = mistake.fn(**c.inputs)
        # the slip on the first three cases only, right answers elsewhere
        runs.append((wrong if k < 3 and wrong is not None else expected, c.inputs, expected))
    assert mistake not in explained_mistakes("ddim_sampler", "ddim_step", runs)
    assert mistake in explained_mistakes("ddim_sampler", "ddim_step",
                                         [(mistake.fn(**i) if mistake.fn(**i) is not None else e, i, e)
                                          for _, i, e in runs])


# -- a failure inherited from a method it uses ---------------------------------------------------
@pytest.mark.parametrize("slip", ["direction_missing_sqrt", "sigma_without_eta"])
def test_sample_failing_through_ddim_step_says_fix_ddim_step_first(slip):
    report, text = run_quiet("ddim_sampler", ddim_student(slip))
    sample = report.result("sample")
    assert not sample.passed and sample.inherited == ("ddim_step",)
    block = block_of(text, "sample")
    assert "fix ddim_step first" in block and "No single known mistake explains" not in block
    # checked alone, sample finds out about ddim_step by itself
    alone, text = run_quiet("ddim_sampler", ddim_student(slip), methods=["sample"])
    assert alone.result("sample").inherited == ("ddim_step",) and "fix ddim_step first" in text


def test_a_sample_with_its_own_slip_is_still_named_when_ddim_step_fails_too():
    report, text = run_quiet("ddim_sampler", ddim_student("direction_missing_sqrt", "final_step_to_zero"))
    sample = report.result("sample")
    assert sample.inherited == () and [m.name for m in sample.mistakes] == ["final_step_to_zero"]
    block = block_of(text, "sample")
    assert "it also uses ddim_step, which fails its check: fix that first" in block
    assert explanation("ddim_sampler", "sample", "final_step_to_zero") in block


def test_ddpm_failures_point_to_the_method_that_causes_them():
    mean = "return (x_t - (1 - alpha) / (1 - abar).sqrt() * predicted_noise) / alpha.sqrt()"
    cls = student("ddpm_sampler", (mean, "return (x_t + (1 - alpha) / (1 - abar).sqrt() * predicted_noise) / alpha.sqrt()"))
    report, text = run_quiet("ddpm_sampler", cls)
    assert report.result("ddpm_step").inherited == ("compute_posterior_mean",)
    assert "fix compute_posterior_mean first" in block_of(text, "ddpm_step")
    # sample fails through ddpm_step and compute_posterior_mean: only the cause is named
    assert "fix compute_posterior_mean first" in block_of(text, "sample")
    step = student("ddpm_sampler", ("if t == 0:\n            return mean", "if t < 0:\n            return mean"))
    report, text = run_quiet("ddpm_sampler", step, methods=["sample"])
    assert report.result("sample").inherited == ("ddpm_step",) and "fix ddpm_step first" in text


def test_a_passing_method_is_not_blamed_on_what_it_uses():
    report, text = run_quiet("ddim_sampler", ddim_student("final_step_to_zero"))
    assert report.result("ddim_step").passed and report.result("sample").inherited == ()
    assert "fix ddim_step" not in text and "it also uses" not in text


# -- a table indexed with a tensor t ---------------------------------------------------------------
EXTRACT_HINT = "lab.extract(table, t, x.shape)"


def test_tensor_t_indexing_points_to_extract():
    report, text = run_quiet("ddim_sampler", ddim_student("tensor_t_indexing"), methods=["predict_x0_from_eps"])
    result = report.result("predict_x0_from_eps")
    assert result.status == "error" and "RuntimeError" in result.detail and "(B,) tensor" in result.case.label
    assert EXTRACT_HINT in text and "(B, 1, 1, 1)" in text


def test_tensor_t_indexing_in_the_forward_process_points_to_extract():
    cls = student("forward_process", ("abar = lab.extract(self.schedule.alphas_cumprod, t, x_start.shape).to(x_start)",
                                      "abar = self.schedule.alphas_cumprod[t].to(x_start)"))
    report, text = run_quiet("forward_process", cls, methods=["add_noise"])
    assert report.result("add_noise").status == "error" and EXTRACT_HINT in text


def test_a_shape_error_with_an_int_t_gets_no_extract_hint():
    ret = "return (x_t - (1 - abar).sqrt() * eps) / abar.sqrt()"
    report, text = run_quiet("ddim_sampler", student("ddim_sampler", (ret, ret.replace("* eps", "* eps[..., :3]"))),
                             methods=["predict_x0_from_eps"])
    result = report.result("predict_x0_from_eps")
    assert result.status == "error" and result.cases_run == 1 and not torch.is_tensor(result.case.inputs["t"])
    assert EXTRACT_HINT not in text


def test_an_exception_after_a_failing_case_is_noted_with_its_hint():
    # α for ᾱ fails every int-t case; the tensor-t case raises: the worst failure is shown, and the exception too
    cls = student("ddim_sampler", (X0_LOOKUP, "abar = self.schedule.alphas[t]"))
    report, text = run_quiet("ddim_sampler", cls, methods=["predict_x0_from_eps"])
    result = report.result("predict_x0_from_eps")
    assert result.status == "fail" and not torch.is_tensor(result.case.inputs["t"])
    assert "case 4 of 5 [t as a (B,) tensor [3, 400, 998]] raised RuntimeError" in text and EXTRACT_HINT in text
    assert [m.name for m in result.mistakes] == ["alpha_for_abar"]
