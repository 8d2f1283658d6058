"""Notebook 07's bonus piece: its solution passes its check, and every hand-written mistake is named."""
import nbformat
import pytest
import torch

import labsupport as lab
import labsupport.teaching.checks as check
from labsupport.samplers import SamplerBase
from labsupport.teaching.checks.few_step_solver import _SAMPLE_MISTAKES, _STEP_MISTAKES
from grading_cases import NOTEBOOKS, todo_cells


@pytest.fixture(scope="module")
def solution():
    src = todo_cells(nbformat.read(NOTEBOOKS["07"], as_version=4), "few_step_solver")[0].source
    ns = {"torch": torch, "lab": lab, "SamplerBase": SamplerBase}
    exec(src, ns)
    return ns["DPMSolverPlusPlus"]


def test_solution_passes(solution):
    assert check.few_step_solver(solution).passed


@pytest.mark.parametrize("mistake", _STEP_MISTAKES, ids=lambda m: m.name)
def test_step_mistakes_are_named(solution, mistake):
    class Wrong(solution):
        def dpm_solver_step(self, x_t, t, s, x0_hat, x0_prev=None, t_prev=None):
            return mistake.fn(schedule=self.schedule, x_t=x_t, t=t, s=s, x0_hat=x0_hat, x0_prev=x0_prev, t_prev=t_prev)
    assert f"Known mistake ({mistake.name})" in check.few_step_solver(Wrong).text()


@pytest.mark.parametrize("mistake", _SAMPLE_MISTAKES, ids=lambda m: m.name)
def test_loop_mistakes_are_named(solution, mistake):
    class Wrong(solution):
        def sample(self, shape, num_steps=20, *, x_T=None, generator=None, y=None, guidance_scale=None, progress=None):
            return mistake.fn(model=self.model, schedule=self.schedule, x_T=x_T, num_steps=num_steps, labels=y,
                              guidance_scale=guidance_scale)
    assert f"Known mistake ({mistake.name})" in check.few_step_solver(Wrong).text()
