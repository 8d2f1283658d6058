"""A TODO that only calls the package's function for its own equation fails its self-check, saying why.

The grader gives such code 0 because its sandbox lacks those functions (tests/test_grading_view.py);
the self-check must not tell the student the opposite.
"""
from __future__ import annotations

import pytest
import torch

import labsupport as lab
import labsupport.maths as maths
import labsupport.teaching.checks as check
from labsupport.lab5.forward_process import ForwardProcessImpl
from labsupport.lab5.stochasticity_controller import StochasticityController
from labsupport.maths.guard import OwnEquationCalled, blocked


class BorrowedNoising(ForwardProcessImpl):
    def add_noise(self, x_start, t, noise=None, generator=None):
        if noise is None:
            noise = torch.randn(x_start.shape, generator=generator)
        return lab.q_sample(self.schedule, x_start, t, noise)


class BorrowedVariance(StochasticityController):
    def compute_stochastic_variance(self, t, s, eta):
        return maths.ddim_sigma(self.schedule, t, s, eta) ** 2


def borrowed_blend(eps_cond, eps_uncond, guidance_scale):
    return lab.cfg_blend(eps_cond, eps_uncond, guidance_scale)


@pytest.mark.parametrize("piece,obj,method", [
    ("forward_process", BorrowedNoising, "add_noise"),
    ("stochasticity_controller", BorrowedVariance, "compute_stochastic_variance"),
    ("cfg_guidance", borrowed_blend, "guided_noise"),
])
def test_calling_the_own_equation_fails_the_check(piece, obj, method):
    report = check.run_piece(piece, obj, methods=[method], quiet=True)
    result = report.result(method)
    assert not result.passed
    assert f"labsupport.maths.{ {'add_noise': 'q_sample', 'guided_noise': 'cfg_blend'}.get(method, 'ddim_sigma')}" \
        in result.detail and "write the formula yourself" in result.detail, result.detail


def test_the_reference_itself_still_passes_while_its_equation_is_blocked():
    # the references call the same maths from inside the package, which the guard lets through
    for piece, obj in [("forward_process", ForwardProcessImpl), ("stochasticity_controller", StochasticityController)]:
        assert check.run_piece(piece, obj, quiet=True).passed


def test_blocking_is_scoped_and_names_the_function():
    s = lab.NoiseSchedule.linear(10)
    with blocked(["ddim_sigma"]):
        with pytest.raises(OwnEquationCalled, match="ddim_sigma"):
            maths.ddim_sigma(s, 5, 3, 1.0)
        assert float(maths.alpha_bar(s, -1)) == 1.0          # other equations stay callable
    assert float(maths.ddim_sigma(s, 5, 3, 0.0)) == 0.0       # and the block ends with the block
