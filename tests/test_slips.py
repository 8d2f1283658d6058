"""The generated one-term slips, the variants derived from them, the one-name rule and the survey."""
from __future__ import annotations

import ast

import pytest
import torch

from labsupport.maths.schedule import NoiseSchedule
from labsupport.teaching.checks import core
from labsupport.teaching.checks.catalog import Mistake, derived_for, mistakes_for, sole_explanation
from labsupport.teaching.checks.derived import derived_mistakes, patched, resolve
from labsupport.teaching.checks.describe import describe_failure
from labsupport.teaching.checks.slipgen import slips
from labsupport.tools import slip_survey

SOURCE = '''
def f(schedule, x, eps, t, s, eta):
    a_t = schedule.alphas_cumprod[t]
    a_s = schedule.alphas_cumprod[s]
    sigma = eta * ((1 - a_s) / (1 - a_t)).sqrt()
    return (x - (1 - a_t).sqrt() * eps) / a_t.sqrt() + sigma
'''


def _slips():
    return list(slips(ast.parse(SOURCE).body[0]))


def _changes(kind):
    return {(s.before, s.after) for s in _slips() if s.kind == kind}


def test_every_kind_of_slip_is_generated():
    assert ("schedule.alphas_cumprod", "schedule.alphas") in _changes("table")
    assert ("a_t.sqrt()", "a_t") in _changes("root")
    assert ("t", "t - 1") in _changes("index") and ("s", "s + 1") in _changes("index")
    assert ("eta", "1.0") in _changes("eta")
    assert ("1 - a_t", "1 + a_t") in _changes("sign")
    assert ("1 - a_t", "1") in _changes("drop")
    assert ("1", "2") in _changes("constant")
    swaps = {after for _, after in _changes("swap")}
    assert "sigma = eta * ((1 - a_t) / (1 - a_s)).sqrt()" in swaps


def test_a_slip_changes_exactly_one_place_and_compiles():
    original = ast.unparse(ast.parse(SOURCE).body[0])
    for slip in _slips():
        text = ast.unparse(slip.tree)
        assert text != original, slip
        compile(ast.Module([slip.tree], type_ignores=[]), "<slip>", "exec")
        assert slip.after in text


def test_slips_can_be_limited_to_lines():
    fn = ast.parse(SOURCE).body[0]
    only = list(slips(fn, range(5, 6)))   # the sigma line
    assert only and all(s.line == 5 for s in only)


def test_a_derived_variant_runs_the_reference_on_the_slipped_equation():
    schedule = NoiseSchedule.linear()
    x0, eps = torch.randn(2, 1, 4, 4, generator=torch.Generator().manual_seed(0)), torch.zeros(2, 1, 4, 4)
    from labsupport.maths import forward   # the reference reads it from its module, where the slip is patched in
    q_sample = forward.q_sample
    variants = derived_mistakes(("q_sample",), lambda i: forward.q_sample(i["schedule"], i["x0"], i["t"], i["noise"]))
    root = next(m for m in variants
                if "`schedule.float64.alphas_cumprod` became `schedule.float64.alphas`" in m.explanation)
    inputs = {"schedule": schedule, "x0": x0, "t": 500, "noise": eps}
    wrong = root.fn(**inputs)
    # α_t read for ᾱ_t: with ε = 0, x_t = √α_t·x0, computed independently
    expected = (1 - torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)[500]).sqrt().float() * x0
    assert torch.allclose(wrong, expected, atol=1e-6)
    assert torch.allclose(q_sample(schedule, x0, 500, eps), schedule.sqrt_alphas_cumprod[500] * x0)  # restored


def test_patched_restores_every_importer():
    owner, attr, original = resolve("ddim_sigma")
    import labsupport.maths.ddim as ddim_module
    with patched(owner, attr, original, lambda *a, **k: "slipped"):
        assert ddim_module.ddim_sigma() == "slipped"
    assert ddim_module.ddim_sigma is original


def test_derived_variants_are_catalogued_after_the_hand_written_ones():
    hand = mistakes_for("ddim_sampler", "ddim_step", derived=False)
    every = mistakes_for("ddim_sampler", "ddim_step")
    assert every[: len(hand)] == hand and len(every) > len(hand) + 20
    assert derived_for("ddim_sampler", "ddim_step") == every[len(hand):]


def _const(value):
    return Mistake(f"c{value}", "", lambda **_: torch.tensor([value, value]))


def test_one_name_only_when_one_variant_explains():
    runs = [(torch.tensor([2.0, 2.0]), {}, torch.tensor([1.0, 1.0]))]
    same = [_const(2.0), Mistake("again", "", lambda **_: torch.tensor([2.0, 2.0]))]
    assert sole_explanation(same, runs).name == "c2.0"                # one variant written twice
    assert sole_explanation([_const(2.0), _const(3.0)], runs) is None  # two different ones: no name
    judged = Mistake("judged", "", test=lambda out, inputs: True)
    assert sole_explanation([judged, _const(2.0)], runs).name == "c2.0"  # a recomputed variant outranks a test
    assert sole_explanation([judged], runs) is judged
    assert sole_explanation([], runs) is None


def test_the_comparison_is_described_when_nothing_is_named():
    exp = torch.tensor([1.0, -2.0, 3.0])
    runs = [(2 * exp, {}, exp, "case a", True), (2 * exp, {}, exp, "case b", True)]
    assert any("2 × the reference" in f for f in describe_failure(runs, None, 1e-4, 1e-5))
    assert any("minus the reference" in f for f in describe_failure([(-exp, {}, exp, "a", True)], None, 1e-4, 1e-5))
    table = torch.linspace(0, 1, 10)
    ref = lambda i: table[i["t"]] * torch.ones(3)                    # noqa: E731
    moved = [(ref({"t": 4}), {"t": 5}, ref({"t": 5}), "t=5", True), (ref({"t": 2}), {"t": 3}, ref({"t": 3}), "t=3", True),
             (ref({"t": 7}), {"t": 7}, ref({"t": 7}), "t=7 (passes)", False)]
    found = describe_failure(moved, ref, 1e-4, 1e-5)
    assert any("at t − 1" in f for f in found) and any("fails on 2 of 3 cases" in f for f in found)


@pytest.mark.parametrize("piece", ["forward_process"])
def test_survey_of_a_piece_catches_every_slip_and_names_none_wrongly(piece):
    outcomes = slip_survey.survey([piece])
    summary = slip_survey.summarize(outcomes)["total"]
    assert summary["tried"] >= 10
    assert summary["caught"] == summary["tried"]
    assert summary.get("wrong", 0) == 0
    named = {o.change: o.names for o in outcomes if o.names}
    # the table slip ᾱ → α is named by the hand-written lesson, not by its derived twin
    assert named["self.schedule.alphas_cumprod  ->  self.schedule.alphas"] == ["add_noise:alpha_for_abar"]


def test_survey_outcome_of_a_broken_cell_is_caught_not_crashing():
    outcome = slip_survey._one("forward_process", ("ForwardProcessImpl",), "add_noise",
                               next(iter(slips(ast.parse(SOURCE).body[0]))), "raise RuntimeError('x')", {})
    assert outcome.caught and outcome.raised and not outcome.names
    assert core.PIECES["forward_process"]  # registered
