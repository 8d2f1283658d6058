"""The self-checks: every catalogued mistake is caught and named, the solutions pass, the student's
exceptions and unfinished TODOs are reported instead of raised, and the fallback picks the reference."""
from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest
import torch

import labsupport as lab
import labsupport.teaching.checks as check
from labsupport.teaching import plots
from labsupport.lab5.trained_model_analyzer import TrainedModelAnalyzer
from labsupport.teaching.checks.catalog import MISTAKES, Mistake, find_mistake, find_mistakes, mistakes_for
from labsupport.lab5.forward_process import ForwardProcessImpl
from labsupport.teaching.release import release_source
from labsupport.samplers import SamplerBase

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
REFERENCE = {"forward_process": ForwardProcessImpl, "trained_model_analyzer": TrainedModelAnalyzer,
             "ddpm_sampler": lab.DDPMSampler, "ddim_sampler": lab.DDIMSampler}
PIECES = list(REFERENCE)  # notebooks 01-03; later notebooks test their own pieces


def run_quiet(piece: str, obj, methods=None) -> tuple[check.Report, str]:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        report = check.run_piece(piece, obj, methods=methods)
    return report, buf.getvalue()


# -- a "student" class that makes exactly one catalogued mistake ----------------------------------
def _seed_of(generator) -> int:
    return 0 if generator is None else generator.initial_seed()


def _fresh_noise_add_noise(self, x_start, t, noise=None, generator=None):
    return ForwardProcessImpl.add_noise(self, x_start, t, noise=torch.randn_like(x_start))


def _fresh_noise_trajectory(self, x_start, timesteps, noise=None, generator=None):
    return torch.stack([ForwardProcessImpl.add_noise(self, x_start, int(t), torch.randn_like(x_start))
                        for t in timesteps])


_NOISE_TESTS = {("forward_process", "ignored_noise_argument"): _fresh_noise_add_noise,
                ("forward_process", "fresh_noise_per_frame"): _fresh_noise_trajectory}


def wrong_class(piece: str, method: str, mistake: Mistake) -> type:
    """The reference class with `method` replaced by the mistake's wrong variant."""
    base = REFERENCE[piece]
    if mistake.fn is None:
        return type(base.__name__, (base,), {method: _NOISE_TESTS[(piece, mistake.name)]})

    def ctx(self) -> dict:
        out = {"schedule": self.given_schedule}
        for key in ("model", "variance_type", "clip_x0"):
            if hasattr(self, key):
                out[key] = getattr(self, key)
        return out

    def wrong(self, *args, **kwargs):
        inputs = {**ctx(self), **_bind(piece, method, self, args, kwargs)}
        out = mistake.fn(**inputs)
        return getattr(base, method)(self, *args, **kwargs) if out is None else out

    def init(self, *args, **kwargs):
        base.__init__(self, *args, **kwargs)
        self.given_schedule = args[0] if piece == "forward_process" else args[1]

    return type(base.__name__, (base,), {method: wrong, "__init__": init})


def _bind(piece: str, method: str, obj, args, kwargs) -> dict:
    """The method's arguments under the names the piece modules document for their mistakes."""
    names = {"add_noise": ["x_start", "t", "noise"], "demonstrate_forward_trajectory": ["x_start", "timesteps", "noise"],
             "analyze_noise_prediction_quality": ["x_clean", "timesteps", "noise"],
             "visualize_noise_predictions": ["x_clean", "timesteps", "noise"],
             "compute_posterior_mean": ["x_t", "t", "predicted_noise"], "compute_posterior_variance": ["t"],
             "ddpm_step": ["x_t", "t"], "predict_x0_from_eps": ["x_t", "eps", "t"],
             "ddim_step": ["x_t", "t", "s", "eta"], "create_timestep_schedule": ["num_steps", "schedule_type"]}
    if method == "sample":
        names_ = ["shape", "timesteps", "eta"] if piece == "ddim_sampler" else ["shape"]
        bound = dict(zip(names_, args))
        bound.update({k: v for k, v in kwargs.items() if k not in ("generator", "progress", "return_trajectory")})
        bound["seed"] = _seed_of(kwargs.get("generator"))
        return bound
    bound = dict(zip(names[method], args))
    bound.update({k: v for k, v in kwargs.items() if k not in ("generator", "show", "progress")})
    if method in ("ddpm_step", "ddim_step") and bound.get("noise") is None:
        bound["noise"] = obj.randn(bound["x_t"].shape, kwargs.get("generator"))
    return bound


CATALOG = [(piece, method, m) for piece in PIECES for method, ms in MISTAKES[piece].items() for m in ms]


@pytest.mark.parametrize("piece,method,mistake", CATALOG, ids=[f"{p}.{me}.{m.name}" for p, me, m in CATALOG])
def test_each_mistake_is_caught_and_explained(piece, method, mistake):
    report, text = run_quiet(piece, wrong_class(piece, method, mistake), methods=[method])
    result = report.result(method)
    assert not result.passed
    line = next(l for l in text.splitlines() if f" {method} " in l + " ")
    assert "✗" in line
    assert mistake.explanation in text, text


# -- the solutions pass ---------------------------------------------------------------------------
def _todo_cells(path: Path):
    nb = json.loads(path.read_text())
    for cell in nb["cells"]:
        if "todo" in cell["metadata"].get("tags", []) and cell["metadata"]["labsupport"]["piece"] in PIECES:
            yield cell["metadata"]["labsupport"], "".join(cell["source"])


def _exec_cell(source: str, meta: dict):
    ns = {"torch": torch, "lab": lab, "SamplerBase": SamplerBase, "plots": plots}
    exec(compile(source, "student_cell.py", "exec"), ns)
    return ns[meta["defines"][0]]


SOLUTIONS = [(meta, src) for nb in sorted(NOTEBOOKS.glob("0[123]_*.ipynb")) for meta, src in _todo_cells(nb)]


@pytest.mark.parametrize("meta,source", SOLUTIONS, ids=[m["piece"] for m, _ in SOLUTIONS])
def test_notebook_solutions_pass(meta, source):
    report, text = run_quiet(meta["piece"], _exec_cell(source, meta))
    assert report.passed, text
    assert text.count("✓") == len(report.results) and "✗" not in text


@pytest.mark.parametrize("piece", PIECES)
def test_reference_passes_and_no_mistake_matches_it(piece):
    report, text = run_quiet(piece, REFERENCE[piece])
    assert report.passed, text
    for spec in check.PIECES[piece].methods:
        for case in spec.cases():
            expected = spec.reference(case.inputs)
            assert find_mistakes(piece, spec.name, expected, case.inputs, expected=expected) == [], case.label


@pytest.mark.parametrize("meta,source", SOLUTIONS, ids=[m["piece"] for m, _ in SOLUTIONS])
def test_unfilled_todos_say_not_done_and_fall_back(meta, source):
    stub = _exec_cell(release_source(source), meta)
    report, text = run_quiet(meta["piece"], stub)
    assert not report.done and all(r.status == "todo" for r in report.results)
    assert all("not done yet" in line for line in text.splitlines() if "○" in line)
    assert sum("○" in line for line in text.splitlines()) == len(report.results)
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        chosen = check.or_reference(stub, meta["piece"])
    assert chosen is REFERENCE[meta["piece"]]
    assert "not done yet" in buf.getvalue() and "reference" in buf.getvalue()


def test_or_reference_keeps_a_passing_class():
    class Mine(ForwardProcessImpl):
        pass
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert check.or_reference(Mine, "forward_process") is Mine
    assert "your Mine" in buf.getvalue()


def test_or_reference_falls_back_for_a_wrong_class():
    wrong = wrong_class("forward_process", "add_noise", mistakes_for("forward_process", "add_noise")[0])
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert check.or_reference(wrong, "forward_process") is ForwardProcessImpl
    assert "does not pass" in buf.getvalue()


# -- the student's exceptions are reported, with the line ----------------------------------------
class Crashing(SamplerBase):
    def __init__(self, model, schedule, *, variance_type="fixed_lower", clip_x0=False):
        super().__init__(model, schedule, clip_x0=clip_x0)

    def compute_posterior_mean(self, x_t, t, predicted_noise):
        return x_t / 0 + undefined_name  # noqa: F821

    def compute_posterior_variance(self, t):
        raise NotImplementedError("TODO: DDPMSampler.compute_posterior_variance")

    def ddpm_step(self, x_t, t, *, generator=None, noise=None):
        return self.compute_posterior_variance(t)

    def sample(self, shape):  # the signature lost its keyword arguments
        return torch.zeros(shape)


def test_student_exceptions_are_reported_not_raised():
    report, text = run_quiet("ddpm_sampler", Crashing)
    mean, var, step, sample = report.results
    assert mean.status == "error" and "raised NameError" in text and "undefined_name" in text
    assert "at line" in mean.detail and "test_checks.py" in mean.detail and "return x_t / 0" in mean.detail
    assert var.status == "todo"
    assert step.status == "todo" and "compute_posterior_variance, which is still a TODO" in step.detail
    assert sample.status == "error" and "keep the method's signature" in sample.detail


def test_checks_leave_the_global_random_state_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    run_quiet("ddpm_sampler", lab.DDPMSampler)
    assert torch.equal(torch.rand(3), expected)


def test_shape_mismatch_is_explained():
    class Flat(ForwardProcessImpl):
        def add_noise(self, x_start, t, noise=None, generator=None):
            return super().add_noise(x_start, t, noise, generator).flatten(1)
    report, text = run_quiet("forward_process", Flat, methods=["add_noise"])
    assert "expected shape" in text and "✗" in text


# -- the catalog's API ---------------------------------------------------------------------------
def test_find_mistake_names_the_variant_and_ignores_right_answers():
    case = check.cases("ddim_sampler", "ddim_step")[1]  # s = -1
    m = next(m for m in mistakes_for("ddim_sampler", "ddim_step") if m.name == "s_minus_one_wraps")
    wrong = m.fn(**case.inputs)
    expected = check.reference_output("ddim_sampler", "ddim_step", case.inputs)
    assert find_mistake("ddim_sampler", "ddim_step", wrong, case.inputs, expected=expected) is m
    assert find_mistake("ddim_sampler", "ddim_step", expected, case.inputs, expected=expected) is None
    assert mistakes_for("no_such_piece", "x") == []


def test_call_student_matches_reference_output():
    case = check.cases("forward_process", "add_noise")[0]
    out = check.call_student("forward_process", "add_noise", ForwardProcessImpl, case.inputs)
    assert torch.equal(out, check.reference_output("forward_process", "add_noise", case.inputs))


def test_compare_messages():
    c = check.compare([torch.zeros(2), torch.zeros(2)], torch.zeros(2, 2))
    assert not c.ok and "torch.stack" in c.message
    c = check.compare(torch.tensor([float("nan"), 1.0]), torch.tensor([0.0, 1.0]))
    assert not c.ok and "nan" in c.message
    c = check.compare({"a": torch.ones(1)}, {"a": torch.ones(1), "b": torch.ones(1)})
    assert not c.ok and "'b'" in c.message
    assert check.compare([3, 2, 1], torch.tensor([3, 2, 1]), rtol=0, atol=0).ok
    assert check.compare(torch.tensor([0.5]), torch.tensor(0.5)).ok


def test_unknown_piece_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown piece"):
        check.run_piece("no_such_piece", object)
