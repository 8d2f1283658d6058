"""The grading view (labsupport/grading/view.py): what a graded method's worker can import.

Invariant under test: a worker that grades (piece, method) finds neither that method's reference
nor any package function with the same code, and the rest of the notebook's imports still work.
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from labsupport.teaching.checks import PIECES
from labsupport.grading import similarity
from labsupport.grading.rubric import load_rubric
from labsupport.grading.view import build_view, view_for



def _bonus_on_rubric():
    """The shipped rubric with its bonus items on: the bonus pieces need views like the others."""
    import tempfile
    from labsupport.grading.rubric import DEFAULT_RUBRIC
    path = Path(tempfile.mkdtemp()) / "rubric.toml"
    path.write_text(DEFAULT_RUBRIC.read_text().replace("bonus = false", "bonus = true", 1))
    return load_rubric(path)


GRADED = [(p, m) for p, methods in _bonus_on_rubric().graded_methods().items() for m in methods]


@pytest.fixture(scope="module")
def views(tmp_path_factory):
    root = tmp_path_factory.mktemp("views")
    return {(p, m): build_view(view_for(p, m), root / f"{p}.{m}") for p, m in GRADED}


def _functions(package: Path):
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                yield path, node


@pytest.mark.parametrize("piece,method", GRADED)
def test_no_function_of_the_view_has_the_reference_code(views, piece, method):
    forms = similarity.reference_forms()[(piece, method)]
    assert forms, "the reference must have a form to look for"
    found = [f"{path.name}:{node.name}" for path, node in _functions(views[(piece, method)])
             if similarity.normalized(node) in forms]
    assert not found, f"the view of {piece}.{method} still holds the reference's code in {found}"


def _run(view: Path, code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=view.parent, capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(view.parent), "PATH": "/usr/bin:/bin", "LABSUPPORT_PROGRESS": "0"})


def test_references_and_course_maths_raise_unavailable(views):
    code = """
import torch, labsupport as lab
from labsupport.grading.unavailable import Unavailable
from labsupport.teaching.checks.cases import toy_model, schedule
s, x = schedule(), torch.zeros(1, 1, 4, 4)
calls = {
    "q_sample": lambda: lab.q_sample(s, x, 3),
    "cfg_blend": lambda: lab.cfg_blend(x, x, 2.0),
    "guided_eps": lambda: lab.guided_eps(toy_model(), x, 3, torch.tensor([1]), 2.0),
    "timestep_schedule": lambda: lab.timestep_schedule(1000, 10),
    "DDPMSampler": lambda: lab.DDPMSampler(toy_model(), s),
    "ForwardProcessImpl": lambda: __import__("labsupport.lab5.forward_process", fromlist=["_"]).ForwardProcessImpl(s),
    "checks": lambda: __import__("labsupport.teaching.checks", fromlist=["_"]).ddpm_sampler(None),
    "hidden": lambda: __import__("labsupport.grading.hidden", fromlist=["_"]).hidden_cases("a", "b", 1),
    "generate": lambda: __import__("labsupport.tools.generation", fromlist=["_"]).generate(None, 1),
}
for name, call in calls.items():
    try:
        call()
    except Unavailable:
        continue
    print("REACHABLE", name)
print("plain call", lab.samplers.SamplerBase(toy_model(), s).predict_eps(x, 3).shape)
"""
    for (piece, method), view in views.items():
        if (piece, method) == ("sampling_optimizer", "batch_sampling_with_memory_management"):
            continue  # its view keeps the guided DDIM sampler on purpose (the skeleton calls it)
        result = _run(view, code)
        assert result.returncode == 0, result.stderr[-2000:]
        reachable = {line.split()[1] for line in result.stdout.splitlines() if line.startswith("REACHABLE")}
        # the spacing helper is kept where the skeleton itself calls it (the controller, guidance, the cached loop)
        parts = view_for(piece, method)
        kept = {"timestep_schedule"} if parts["samplers/ddim"].get("timestep_schedule") else set()
        if parts["samplers/guidance"].get("guided_eps"):   # DPM-Solver++'s guided loop: CFG is another piece's
            kept |= {"guided_eps", "cfg_blend"}
        assert reachable == kept, (piece, method, result.stdout)
        assert "plain call torch.Size([1, 1, 4, 4])" in result.stdout


def test_lab_classes_kept_where_a_notebook_builds_on_them(views):
    code = """
import torch, labsupport as lab
from labsupport.grading.unavailable import Unavailable
from labsupport.teaching.checks.cases import toy_model, short_schedule
d = lab.DDIMSampler(toy_model(), short_schedule())
for name, call in {"sigma": lambda: d.compute_sigma(5, 3, 1.0), "sample": lambda: d.sample((1, 1, 4, 4), num_steps=3)}.items():
    try:
        call()
        print("KEPT", name)
    except Unavailable:
        print("GONE", name)
"""
    controller = _run(views[("stochasticity_controller", "analyze_eta_effects")], code)
    assert "GONE sigma" in controller.stdout and "GONE sample" in controller.stdout  # sample needs σ: the student's
    cached = _run(views[("sampling_optimizer", "cached_noise_schedule_sampling")], code)
    assert "GONE sigma" in cached.stdout and "GONE sample" in cached.stdout
    chunked = _run(views[("sampling_optimizer", "batch_sampling_with_memory_management")], code)
    assert "KEPT sigma" in chunked.stdout and "KEPT sample" in chunked.stdout


def test_every_graded_method_has_a_view(views):
    assert set(views) == set(GRADED)
    for piece, method in GRADED:
        assert PIECES[piece].method(method).name == method


# the maths functions that compute each graded method's own equation: the self-check blocks them
OWN_EQUATIONS = {(p, m.name): list(m.own_maths) for p in PIECES for m in PIECES[p].methods if m.own_maths}
_MATHS_CALLS = {
    "q_sample": "m.q_sample(s, x, 3, torch.zeros_like(x))", "q_step": "m.q_step(s, x, 3, torch.zeros_like(x))",
    "q_mean_variance": "m.q_mean_variance(s, x, 3)", "predict_x0_from_eps": "m.predict_x0_from_eps(s, x, 3, x)",
    "posterior_mean_from_eps": "m.posterior_mean_from_eps(s, x, 3, x)",
    "posterior_mean_from_x0": "m.posterior_mean_from_x0(s, x, 3, x)", "posterior_variance": "m.posterior_variance(s, 3)",
    "ddpm_step_given_eps": "m.ddpm_step_given_eps(s, x, 0, x)", "ddim_sigma": "m.ddim_sigma(s, 3, 1, 1.0)",
    "ddim_coefficients": "m.ddim_coefficients(s, 3, 1, 0.0)", "alpha_bar": "m.alpha_bar(s, -1)",
    "ddim_step_given_eps": "m.ddim_step_given_eps(s, x, 3, 1, x)", "cfg_blend": "m.cfg_blend(x, x, 2.0)",
    "classifier_guided_eps": "m.classifier_guided_eps(s, 3, x, x, 2.0)",
    "dpm_solver_first_order_update": "m.dpm_solver_first_order_update(s, x, 3, 1, x)",
    "dpm_solver_2m_update": "m.dpm_solver_2m_update(s, x, 3, 1, x, x, 5)",
}


_HOME = {name: module for module, names in {
    "forward": ["q_sample", "q_step", "q_mean_variance"], "predictions": ["predict_x0_from_eps"],
    "ddpm": ["posterior_mean_from_eps", "posterior_mean_from_x0", "posterior_variance", "ddpm_step_given_eps"],
    "ddim": ["ddim_sigma", "ddim_coefficients", "ddim_step_given_eps"], "schedule": ["alpha_bar"],
    "guidance": ["cfg_blend", "classifier_guided_eps", "rescale_guided_eps"],
    "solvers": ["half_log_snr", "edm_sigma", "dpm_solver_first_order_update", "dpm_solver_2m_update", "to_edm_scaling",
                "from_edm_scaling", "edm_derivative", "heun_euler_update", "heun_trapezoid_update"]}.items()
    for name in names}


def test_every_graded_method_but_the_chunked_one_has_its_equations_listed():
    assert set(GRADED) - set(OWN_EQUATIONS) == {("sampling_optimizer", "batch_sampling_with_memory_management"),
                                                ("ddim_sampler", "create_timestep_schedule")}


def test_every_equation_of_the_maths_is_listed():
    import labsupport.maths as maths
    inputs_and_data = {"NoiseSchedule", "linear_betas", "cosine_betas", "extract", "VARIANCE_TYPES", "adds_noise",
                       "check_eta", "check_guidance_scale", "check_finite", "predict_eps_from_x0", "slerp"}
    assert set(maths.__all__) - inputs_and_data == set(_HOME)


@pytest.mark.parametrize("piece,method", sorted(OWN_EQUATIONS))
def test_the_maths_of_the_graded_method_is_out_of_reach(views, piece, method):
    """A TODO that calls the course maths for its own equation gains nothing: those functions raise there."""
    names = OWN_EQUATIONS[(piece, method)]
    lines = [f"    ({n!r}, lambda: {_MATHS_CALLS[n]})," for n in names]
    code = ("import importlib, torch\nfrom labsupport.grading.unavailable import Unavailable\n"
            "from labsupport.teaching.checks.cases import schedule\ns, x = schedule(), torch.zeros(1, 1, 4, 4)\n"
            f"home = {_HOME!r}\n"
            "class M:\n    def __getattr__(self, name):\n"
            "        return getattr(importlib.import_module('labsupport.maths.' + home[name]), name)\n"
            "m = M()\nfor name, call in [\n" + "\n".join(lines) + "\n]:\n"
            "    try:\n        call()\n        print('REACHABLE', name)\n    except Unavailable:\n        print('GONE', name)\n")
    result = _run(views[(piece, method)], code)
    assert result.returncode == 0, result.stderr[-2000:]
    assert [line.split()[1] for line in result.stdout.splitlines() if line.startswith("GONE")] == names, result.stdout
