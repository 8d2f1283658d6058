"""labsupport.maths.solvers and the few-step samplers: DPM-Solver++(2M) and Heun against independent facts.

The toy data distribution is N(0, s²·I). Its exact noise prediction is ε*(x_t, t) = √(1−ᾱ_t)·x_t/(ᾱ_t·s² + 1−ᾱ_t),
and the probability-flow ODE has a closed form in EDM scaling (x/√ᾱ, σ): x(σ) = x(σ_T)·√(s²+σ²)/√(s²+σ_T²).
Every solver ends with the same jump from σ_0 (timestep 0) to σ = 0, which returns x̂0 = s²/(s²+σ_0²)·x, so
the exact answer at the end is that jump applied to the exact x(σ_0).
"""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import labsupport as lab
from labsupport.maths import (dpm_solver_2m_update, dpm_solver_first_order_update, edm_sigma, half_log_snr,
                              predict_x0_from_eps)
from labsupport.maths.ddim import ddim_step_given_eps
from labsupport.samplers import DDIMSampler, DPMSolverSampler, HeunSampler, heun_nfe
from labsupport.teaching.checks.cases import CallCounter, ToyCondEpsModel, ToyEpsModel

S = 0.5


class GaussianEps(nn.Module):
    """ε* of data N(0, S²·I), in float64: the exact noise prediction, so only the solver errs."""
    num_classes, null_class = 10, 10

    def __init__(self, schedule):
        super().__init__()
        self.p = nn.Parameter(torch.zeros((), dtype=torch.float64))   # sets the sampler's dtype to float64
        self.abar = schedule.float64.alphas_cumprod

    def forward(self, x_t, t, y=None):
        a = self.abar[torch.as_tensor(t).long().reshape(-1)].reshape(-1, 1, 1, 1).to(x_t)
        return (1 - a).sqrt() * x_t / (a * S ** 2 + 1 - a)


@pytest.fixture(scope="module")
def sched():
    return lab.NoiseSchedule.linear()


def test_lambda_and_sigma_from_the_float64_table(sched):
    a = sched.float64.alphas_cumprod
    for t in (0, 500, 999):
        assert half_log_snr(sched, t).item() == pytest.approx(0.5 * math.log(a[t].item() / (1 - a[t].item())), rel=1e-12)
        assert edm_sigma(sched, t).item() == pytest.approx(math.sqrt((1 - a[t].item()) / a[t].item()), rel=1e-12)
    assert math.isinf(half_log_snr(sched, -1).item()) and edm_sigma(sched, -1).item() == 0.0
    # λ falls as t grows; σ = e^{−λ}
    lam = half_log_snr(sched, torch.arange(1000))
    assert bool((lam[1:] < lam[:-1]).all())
    assert torch.allclose(edm_sigma(sched, torch.arange(1000)), torch.exp(-lam), rtol=1e-10)
    with pytest.raises(ValueError, match=r"\[-1, 1000\)"):
        half_log_snr(sched, -2)


@pytest.mark.parametrize("t,s", [(999, 888), (500, 300), (10, 3), (200, -1)])
def test_first_order_update_is_ddim_eta_zero(sched, t, s):
    g = torch.Generator().manual_seed(t)
    x_t, eps = torch.randn(2, 1, 4, 4, generator=g, dtype=torch.float64), torch.randn(2, 1, 4, 4, generator=g, dtype=torch.float64)
    x0 = predict_x0_from_eps(sched, x_t, t, eps)
    ddim = ddim_step_given_eps(sched, x_t, t, s, eps, 0.0)[0]
    assert torch.allclose(dpm_solver_first_order_update(sched, x_t, t, s, x0), ddim.double(), atol=1e-6)


def test_first_step_of_the_sampler_is_the_ddim_step(sched):
    model = ToyEpsModel().eval()
    x_T = torch.randn(2, 1, 5, 5, generator=torch.Generator().manual_seed(1))
    one = DPMSolverSampler(model, sched).sample(x_T.shape, timesteps=[999, 700], x_T=x_T, return_trajectory=True,
                                                record_every=1)[1]
    ddim = DDIMSampler(model, sched)
    assert torch.allclose(one.x_t[1], ddim.ddim_step(x_T, 999, 700), atol=1e-5)


def test_2m_with_equal_previous_x0_is_first_order_and_refuses_the_final_jump(sched):
    x_t, x0 = torch.randn(1, 1, 3, 3, dtype=torch.float64), torch.randn(1, 1, 3, 3, dtype=torch.float64)
    assert torch.allclose(dpm_solver_2m_update(sched, x_t, 500, 300, x0, x0, 700),
                          dpm_solver_first_order_update(sched, x_t, 500, 300, x0))
    with pytest.raises(ValueError, match="first order"):
        dpm_solver_2m_update(sched, x_t, 10, -1, x0, x0, 20)


def _errors(sched, cls, steps):
    model = GaussianEps(sched)
    x_T = torch.randn(2, 1, 3, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    a = sched.float64.alphas_cumprod
    sigma_T, sigma_0 = ((1 - a[999]) / a[999]).sqrt(), ((1 - a[0]) / a[0]).sqrt()
    x_0 = x_T / a[999].sqrt() * (S ** 2 + sigma_0 ** 2).sqrt() / (S ** 2 + sigma_T ** 2).sqrt()   # exact ODE to σ_0
    exact = S ** 2 / (S ** 2 + sigma_0 ** 2) * x_0                                                  # the shared last jump
    return [(cls(model, sched).sample(x_T.shape, num_steps=n, x_T=x_T) - exact).abs().max().item() for n in steps]


def _orders(errors):
    return [math.log2(a / b) for a, b in zip(errors, errors[1:])]


def test_ddim_converges_at_first_order(sched):
    orders = _orders(_errors(sched, DDIMSampler, [10, 20, 40, 80]))
    assert all(0.9 < p < 1.1 for p in orders), orders


def test_dpm_solver_converges_at_second_order(sched):
    errors = _errors(sched, DPMSolverSampler, [40, 80, 160])   # measured 1.53, 1.92, 2.00 from 20 steps on
    assert errors[-1] < 0.01
    assert all(1.8 < p < 2.3 for p in _orders(errors)), _orders(errors)


def test_heun_converges_at_second_order(sched):
    errors = _errors(sched, HeunSampler, [20, 40, 80])           # measured 2.15, 2.05, 2.02
    assert errors[-1] < 0.002
    assert all(1.8 < p < 2.3 for p in _orders(errors)), _orders(errors)


def test_second_order_beats_ddim_at_equal_steps(sched):
    ddim, dpm, heun = (_errors(sched, c, [80])[0] for c in (DDIMSampler, DPMSolverSampler, HeunSampler))
    assert dpm < ddim / 1.5 and heun < ddim / 10


@pytest.mark.parametrize("cls", [DPMSolverSampler, HeunSampler])
def test_same_generator_same_samples_and_latent_shapes(sched, cls):
    model = ToyCondEpsModel().eval()
    draw = lambda: cls(model, sched).sample((3, 4, 7, 7), num_steps=4, generator=torch.Generator().manual_seed(5),
                                            y=torch.tensor([1, 2, 3]), guidance_scale=2.0)
    a, b = draw(), draw()
    assert a.shape == (3, 4, 7, 7) and torch.equal(a, b) and bool(torch.isfinite(a).all())


@pytest.mark.parametrize("cls", [DPMSolverSampler, HeunSampler])
def test_bad_inputs_are_clear_errors(sched, cls):
    sampler = cls(ToyEpsModel().eval(), sched)
    with pytest.raises(ValueError, match="NaN"):
        sampler.sample((1, 1, 4, 4), num_steps=3, x_T=torch.full((1, 1, 4, 4), float("nan")))
    with pytest.raises(ValueError, match="num_steps"):
        sampler.sample((1, 1, 4, 4), num_steps=0)
    with pytest.raises(ValueError, match="decreasing"):
        sampler.sample((1, 1, 4, 4), timesteps=[10, 20])


def test_heun_nfe_argument(sched):
    sampler = HeunSampler(ToyEpsModel().eval(), sched)
    with pytest.raises(ValueError, match="odd"):
        sampler.sample((1, 1, 4, 4), nfe=4)
    with pytest.raises(ValueError, match="not several"):
        sampler.sample((1, 1, 4, 4), nfe=5, num_steps=3)


@pytest.mark.parametrize("n", [1, 2, 5, 10])
def test_network_calls(sched, n):
    dpm = CallCounter(ToyEpsModel().eval())
    DPMSolverSampler(dpm, sched).sample((2, 1, 4, 4), num_steps=n)
    assert len(dpm.batches) == n
    heun = CallCounter(ToyEpsModel().eval())
    HeunSampler(heun, sched).sample((2, 1, 4, 4), num_steps=n)
    assert len(heun.batches) == heun_nfe(n) == 2 * n - 1
    by_nfe = CallCounter(ToyEpsModel().eval())
    HeunSampler(by_nfe, sched).sample((2, 1, 4, 4), nfe=2 * n - 1)
    assert len(by_nfe.batches) == 2 * n - 1
