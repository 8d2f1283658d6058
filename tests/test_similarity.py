"""labsupport.grading.similarity: pasted reference code and copies between students are found, honest
solutions are not. Submissions are the source notebooks (their solutions are independent
implementations) written to tmp_path and read as the grader reads them."""
from __future__ import annotations

import ast
import copy
import inspect
import re
import textwrap
import time

import nbformat
import pytest

import labsupport
from grading_cases import NOTEBOOK_OF, NOTEBOOKS, SEEDED, _region, edit_method, source, todo_cells
from labsupport.teaching.checks import PIECES
from labsupport.maths.forward import q_sample
from labsupport.grading import forms as canonical, similarity
from labsupport.grading.rubric import DEFAULT_RUBRIC, load_rubric
from labsupport.grading.similarity import (MIN_NODES, MIN_STATEMENTS, copied_from_reference, form_size, normalized,
                                           reference_forms, similar_pairs, student_forms, substantial)
from labsupport.grading.submission import read_submission
from labsupport.samplers.ddim import timestep_schedule
from labsupport.samplers.ddpm import DDPMSampler

PIECE_NAMES = {p: PIECES[p].defines for p in PIECES}
# the bonus pieces are graded (and checked for copies) only with [grading] bonus = true
BONUS_PIECES = {"classifier_guidance", "few_step_solver"}
GRADED = [(p, m.name) for p in PIECES if p not in BONUS_PIECES for m in PIECES[p].methods]
# references whose code is too short to tell a copy from the formula written once (see the module)
TOO_SMALL = {("ddim_sampler", "predict_x0_from_eps"), ("ddim_sampler", "ddim_step"),
             ("ddim_sampler", "create_timestep_schedule"), ("ddpm_sampler", "ddpm_step"), ("forward_process", "add_noise"),
             ("forward_process", "demonstrate_forward_trajectory"), ("cfg_guidance", "guided_noise"),
             ("stochasticity_controller", "compute_stochastic_variance")}
# references that are a short delegation to the maths (too short to flag when pasted as they are; their
# form with the maths written out is indexed, and the maths itself is not in the grader's view)
DELEGATES = {("ddpm_sampler", "compute_posterior_mean"), ("ddpm_sampler", "compute_posterior_variance")}


def submit(nb, folder, student: str, number: str):
    path = folder / student / f"{number}.ipynb"
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    sub = read_submission(path, folder, PIECE_NAMES)
    assert sub.readable, sub.detail
    return sub


def replace_def(nb, piece: str, method: str, new_code: str):
    """`nb` with the def of `method` in the piece's TODO cell replaced by `new_code` (indented already)."""
    for cell in todo_cells(nb, piece):
        try:
            a, b = _region(cell.source, method)
        except KeyError:
            continue
        cell.source = cell.source[:a] + new_code.rstrip("\n") + "\n\n" + cell.source[b:]
        return nb
    raise AssertionError(f"{piece}.{method} is in no TODO cell")


def rename_words(text: str, names: dict[str, str]) -> str:
    tree = ast.parse(text)
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id in names:
            node.id = names[node.id]
        elif isinstance(node, ast.arg) and node.arg in names:
            node.arg = names[node.arg]
    return ast.unparse(tree)


def reference_source(piece: str, method: str) -> str:
    ref = PIECES[piece].reference.get(method)
    if ref is None or isinstance(ref, type):
        cls = next(c for c in PIECES[piece].reference.values() if isinstance(c, type))
        owner = next(k for k in cls.__mro__ if method in vars(k))
        ref = vars(owner)[method]
    return textwrap.dedent(inspect.getsource(ref))


class _Disguise(ast.NodeTransformer):
    """Renames every argument and local (`x` -> `x_mine`), writes labsupport's names as `lab.name`."""

    def __init__(self, local: set[str]):
        self.local = local

    def visit_Name(self, node):
        if node.id in self.local:
            return ast.Name(id=node.id + "_mine", ctx=node.ctx)
        if isinstance(node.ctx, ast.Load) and hasattr(labsupport, node.id) and not node.id.startswith("_"):
            return ast.Attribute(value=ast.Name(id="lab", ctx=ast.Load()), attr=node.id, ctx=ast.Load())
        return node

    def visit_arg(self, node):
        node.arg = node.arg + "_mine"
        return node


def pasted(code: str, name: str, indent: str) -> str:
    """What a student pasting `code` would hand in: renamed, reformatted, commented, another docstring."""
    fn = ast.parse(code).body[0]
    local = {n.arg for n in ast.walk(fn) if isinstance(n, ast.arg)}
    local |= {n.id for n in ast.walk(fn) if isinstance(n, ast.Name) and not isinstance(n.ctx, ast.Load)}
    fn = _Disguise(local).visit(fn)
    fn.name, fn.decorator_list = name, []
    if ast.get_docstring(fn) is not None:
        fn.body = fn.body[1:]
    fn.body.insert(0, ast.Expr(ast.Constant("My own implementation, written from the lecture notes.")))
    lines = ast.unparse(ast.fix_missing_locations(fn)).splitlines()
    out = []
    for i, line in enumerate(lines):
        out.append(line + ("  # careful here" if i % 3 == 1 and not line.rstrip().endswith(("(", "\\")) else ""))
        if i % 4 == 2:
            out.append(line[: len(line) - len(line.lstrip())] + "# the next line follows the formula")
    return textwrap.indent("\n".join(out), indent)


def test_normalized_ignores_layout_comments_docstrings_names_and_prefixes():
    a = '''
@torch.no_grad()
def posterior_mean(self, x_t: torch.Tensor, t, eps) -> torch.Tensor:
    """The mean."""
    s = self.schedule
    coef: torch.Tensor = extract(s.eps_coef, t, x_t.shape)
    return extract(s.sqrt_recip_alphas, t, x_t.shape) * (x_t - coef * eps)
'''
    b = '''
    def compute_posterior_mean(me, x, step, noise=None):
        # from the lecture
        sched = me.schedule   # shorter
        c = lab.extract(sched.eps_coef, step,
                        x.shape)
        return (labsupport.maths.schedule.extract(sched.sqrt_recip_alphas, step, x.shape)
                * (x - c * noise))
'''
    assert normalized(a) == normalized(b)
    assert normalized(a) == normalized(ast.parse(textwrap.dedent(b)).body[0])
    assert "v0" in normalized(a) and "'self'" not in normalized(a) and "'eps_coef'" in normalized(a)


@pytest.mark.parametrize("call", ["lab.timestep_schedule", "labsupport.timestep_schedule",
                                  "labsupport.samplers.ddim.timestep_schedule", "lab.samplers.timestep_schedule"])
def test_normalized_strips_labsupport_prefixes(call):
    code = "def f(self, n):\n    return {}(self.T, n).flip(0)\n"
    assert normalized(code.format(call)) == normalized(code.format("timestep_schedule"))
    assert normalized(code.format("other.timestep_schedule")) != normalized(code.format("timestep_schedule"))


@pytest.mark.parametrize("change", [
    ("x.sqrt()", "x.rsqrt()"),               # an attribute
    ("dim=0", "axis=0"),                      # a keyword name at a call site
    ("torch.stack", "numpy.stack"),           # a global name
    ("2", "3"),                               # a constant
])
def test_normalized_keeps_what_is_code(change):
    code = "def f(x, ys):\n    z = torch.stack([x.sqrt() for _ in ys], dim=0)\n    return z * 2\n"
    assert normalized(code) != normalized(code.replace(*change))


def test_normalized_needs_a_function():
    with pytest.raises(ValueError, match="no function"):
        normalized("x = 1\n")


def test_reference_forms_cover_every_graded_method():
    forms = reference_forms()
    assert set(forms) == set(GRADED) | {(p, m.name) for p in BONUS_PIECES for m in PIECES[p].methods}
    assert all(forms[key] for key in GRADED)
    # delegations to a labsupport function also give the helper written out (substituted, and bound)
    assert len(forms[("forward_process", "add_noise")]) == 3
    assert len(forms[("ddim_sampler", "create_timestep_schedule")]) == 3
    small = {key for key in GRADED if not any(substantial(f) for f in forms[key])}
    assert small == TOO_SMALL - {("forward_process", "add_noise"), ("ddim_sampler", "create_timestep_schedule")}


def test_min_size_is_what_the_threshold_says():
    form = normalized("def f(a):\n    if a < 0:\n        raise ValueError(a)\n    b = a + 1\n    return b\n")
    assert form_size(form) == (2, 8)  # the guard clause does not count
    assert not substantial(form)
    assert MIN_STATEMENTS == 3 and MIN_NODES == 40


def test_size_of_a_form_read_back_from_its_dump_agrees(tmp_path):
    """Forms read from a cache (made in another process) get the same size as fresh ones."""
    forms = [f for fs in reference_forms().values() for f in fs]
    forms += list(student_forms(submit(source("03"), tmp_path, "alice", "03")).values())
    fresh = [form_size(f) for f in forms]
    canonical._SIZES.clear()
    assert [form_size(f) for f in forms] == fresh


def test_pasted_reference_method_is_flagged(tmp_path):
    code = inspect.getsource(DDPMSampler.sample)
    code = code.replace('"""Run all T steps', '"""My DDPM loop, all T steps')
    code = code.replace("traj", "history").replace("x0_hat", "x0_pred")
    code = code.replace("        record = self.record_set(", "        # which steps to keep\n        record = self.record_set(")
    code = code.replace("x_prev, x0_pred = self.step(x, t, y=y,", "x_prev, x0_pred = self.step(\\\n                x, t, y=y,")
    code = code.replace("Trajectory()", "lab.Trajectory()")
    assert "# which steps" in code and "\\\n" in code and "traj." not in code
    nb = replace_def(source("02"), "ddpm_sampler", "sample", code)
    found = copied_from_reference(submit(nb, tmp_path, "mallory", "02"))
    assert found == {("ddpm_sampler", "sample"): (
        "matches labsupport's reference implementation (labsupport.samplers.ddpm.DDPMSampler.sample) "
        "up to formatting, comments and names")}


@pytest.mark.parametrize("piece,method", GRADED)
def test_every_substantial_reference_pasted_is_flagged(tmp_path, piece, method):
    number = NOTEBOOK_OF[piece]
    indent = "" if method in PIECES[piece].reference else "    "
    code = pasted(reference_source(piece, method), method, indent)
    sub = submit(replace_def(source(number), piece, method, code), tmp_path, "mallory", number)
    found = copied_from_reference(sub)
    assert set(found) <= {(piece, method)}
    if (piece, method) in TOO_SMALL | DELEGATES:
        assert not found  # too short to tell from the formula written once
    else:
        assert "matches labsupport's reference implementation" in found[(piece, method)]


def test_reference_helper_written_out_is_flagged(tmp_path):
    body = textwrap.dedent(inspect.getsource(q_sample)).split('"""', 2)[2]
    body = body.replace("schedule.", "self.schedule.").replace("x0", "x_start").replace("\"x_start\"", "\"x0\"")
    code = ("    def add_noise(self, x_start, t, noise=None, generator=None):\n        # q(x_t | x_0) in one jump"
            + textwrap.indent(textwrap.dedent(body), "        "))
    found = copied_from_reference(submit(replace_def(source("01"), "forward_process", "add_noise", code),
                                         tmp_path, "mallory", "01"))
    assert "with labsupport.maths.forward.q_sample written out" in found[("forward_process", "add_noise")]

    body = textwrap.dedent(inspect.getsource(timestep_schedule)).split('"""', 2)[2]
    code = ("    def create_timestep_schedule(self, num_steps, schedule_type='uniform'):\n        T = self.T"
            + textwrap.indent(textwrap.dedent(body), "        ").replace("SCHEDULE_TYPES", "lab.SCHEDULE_TYPES"))
    found = copied_from_reference(submit(replace_def(source("03"), "ddim_sampler", "create_timestep_schedule", code),
                                         tmp_path, "trudy", "03"))
    assert "timestep_schedule written out" in found[("ddim_sampler", "create_timestep_schedule")]


@pytest.mark.parametrize("number", sorted(NOTEBOOKS))
def test_notebook_solutions_are_not_flagged(tmp_path, number):
    sub = submit(source(number), tmp_path, "alice", number)
    forms = student_forms(sub)
    expected = {(p, m.name) for p in PIECES for m in PIECES[p].methods if NOTEBOOK_OF[p] == number}
    assert set(forms) == expected  # every graded method of the notebook was compared
    assert copied_from_reference(sub) == {}
    refs = reference_forms()
    for key, form in forms.items():
        if form in refs[key]:  # the formula written once, as the reference writes it: too small to count
            assert key in {("stochasticity_controller", "compute_stochastic_variance"),
                           ("cfg_guidance", "guided_noise")}
            assert not substantial(form)


def test_student_forms_take_the_last_definition(tmp_path):
    nb = source("03")
    later = nbformat.v4.new_code_cell(
        "class DDIMSampler(SamplerBase):\n    def ddim_step(self, x_t, t, s, eta=0.0, *, generator=None, noise=None):\n"
        "        return x_t\n", metadata={"labsupport": {"piece": "ddim_sampler"}})
    other = nbformat.v4.new_code_cell(
        "class DDIMSampler(SamplerBase):\n    def sample(self, shape):\n        return shape\n")
    nb.cells += [later, other]
    forms = student_forms(submit(nb, tmp_path, "alice", "03"))
    assert forms == {("ddim_sampler", "ddim_step"): normalized("def f(a, b):\n    return b\n")}


def rename_in_method(nb, piece: str, method: str, names: dict[str, str]):
    """A copy of `nb` whose `method` has its locals renamed and a comment added (a student's copy)."""
    nb = copy.deepcopy(nb)
    for cell in todo_cells(nb, piece):
        try:
            a, b = _region(cell.source, method)
        except KeyError:
            continue
        code = textwrap.indent(rename_words(textwrap.dedent(cell.source[a:b]), names), "    ")
        cell.source = cell.source[:a] + code.replace(":\n", ":  # mine\n", 1) + "\n\n" + cell.source[b:]
        return nb
    raise AssertionError(method)


def test_renamed_copies_between_students_are_paired(tmp_path):
    key = ("ddim_sampler", "ddim_step")
    alice = source("03")
    bob = rename_in_method(alice, *key, {"x0_hat": "x0_pred", "a_s": "abar_s", "sigma": "std", "z": "noise_s"})
    bug = next(edits for (p, m, _), edits in SEEDED.items() if (p, m) == key)
    carol = edit_method(alice, *key, bug)
    forms = {name: student_forms(submit(nb, tmp_path, name, "03"))
             for name, nb in [("alice", alice), ("bob", bob), ("carol", carol)]}
    assert forms["alice"][key] == forms["bob"][key] != forms["carol"][key]
    pairs = [p for p in similar_pairs(forms) if (p["piece"], p["method"]) == key]
    assert pairs == [{"students": ["alice", "bob"], "piece": "ddim_sampler", "method": "ddim_step",
                      "why": "identical up to formatting, comments and names", "reference": False, "shared_by": 2}]
    # the other methods are the same solution for all three
    others = {(p["piece"], p["method"]) for p in similar_pairs(forms) if p["students"] == ["alice", "carol"]}
    assert key not in others and ("ddim_sampler", "sample") in others


def test_two_reference_copies_are_paired_and_flagged(tmp_path):
    key = ("ddpm_sampler", "sample")
    code = pasted(reference_source(*key), "sample", "    ")
    subs = {name: submit(replace_def(source("02"), *key, code.replace("_mine", suffix)), tmp_path, name, "02")
            for name, suffix in [("mallory", "_m"), ("trudy", "_t")]}
    assert all(key in copied_from_reference(sub) for sub in subs.values())
    pairs = [p for p in similar_pairs({n: student_forms(s) for n, s in subs.items()}) if p["method"] == "sample"]
    assert len(pairs) == 1 and pairs[0]["reference"] and pairs[0]["students"] == ["mallory", "trudy"]


def test_similar_pairs_is_fast_for_a_large_class():
    template = ("def f(self, x, n):\n    y = self.prepare(x) * {a}\n    out = []\n    for i in range(n):\n"
                "        y = self.step(y, i, scale={b})\n        out.append(y.clamp(-1, 1))\n"
                "    return torch.stack(out).mean(dim=0)\n")
    keys = [(p, m) for p, m in GRADED][:20]
    forms_by_student = {f"s{i:03d}": {key: normalized(template.format(a=i % 150, b=k)) for k, key in enumerate(keys)}
                        for i in range(300)}
    assert substantial(forms_by_student["s000"][keys[0]])
    start = time.perf_counter()
    pairs = similar_pairs(forms_by_student)
    assert time.perf_counter() - start < 2.0
    assert len(pairs) == 150 * len(keys)  # s000 and s150, s001 and s151, ...
    assert {"students": ["s007", "s157"], "piece": keys[3][0], "method": keys[3][1], "reference": False,
            "why": "identical up to formatting, comments and names", "shared_by": 2} in pairs


def test_rubric_reference_copy_option(tmp_path):
    assert load_rubric().reference_copy == "zero"
    text = DEFAULT_RUBRIC.read_text(encoding="utf-8")
    assert 'reference_copy = "zero"' in text
    manual = tmp_path / "manual.toml"
    manual.write_text(text.replace('reference_copy = "zero"', 'reference_copy = "manual"'), encoding="utf-8")
    assert load_rubric(manual).reference_copy == "manual"
    bad = tmp_path / "bad.toml"
    bad.write_text(text.replace('reference_copy = "zero"', 'reference_copy = "half"'), encoding="utf-8")
    with pytest.raises(ValueError, match=r"reference_copy must be one of 'zero', 'manual', got 'half'"):
        load_rubric(bad)
    default = tmp_path / "default.toml"
    default.write_text(text.replace('reference_copy = "zero"\n', ""), encoding="utf-8")
    assert load_rubric(default).reference_copy == "zero"
