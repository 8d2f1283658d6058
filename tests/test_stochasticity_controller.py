"""labsupport.lab5.stochasticity_controller: σ² of a DDIM jump as a function of η, and how far runs from one
x_T spread apart (notebook 04).

σ²(t→s) = η²·(1−ᾱ_s)/(1−ᾱ_t)·(1−ᾱ_t/ᾱ_s) (DDIM eq. 16, ᾱ_{-1} = 1), written here in float64 from the betas.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from conftest import reference_tables
from labsupport import NoiseSchedule
from labsupport.lab5.stochasticity_controller import StochasticityController
from labsupport.samplers import DDIMSampler
from labsupport.teaching.checks.cases import CallCounter, short_schedule, toy_model

SHAPE = (4, 1, 5, 5)


def short_abar():
    """short_schedule()'s ᾱ from its definition (30 betas from 1e-3 to 0.3), float64."""
    return np.cumprod(1 - np.linspace(1e-3, 0.3, 30))


def ref_variance(abar, t, s, eta):
    a_t = abar[t]
    a_s = 1.0 if s == -1 else abar[s]
    return eta ** 2 * (1 - a_s) / (1 - a_t) * (1 - a_t / a_s)


@pytest.fixture
def controller():
    return StochasticityController(toy_model(), short_schedule())


@pytest.mark.parametrize("eta", [0.0, 0.2, 1.0, 1.5])
def test_variance_is_the_closed_form(controller, eta):
    abar = short_abar()
    for t, s in [(29, 28), (29, 0), (20, 10), (5, 4), (1, 0), (0, -1), (12, -1)]:
        got = controller.compute_stochastic_variance(t, s, eta)
        # float32 ᾱ: 1 − ᾱ carries ~6e-8 absolute error, so σ² is compared to 1e-4 relative
        assert float(got) == pytest.approx(ref_variance(abar, t, s, eta), rel=1e-4, abs=1e-10)
        assert float(controller.compute_sigma(t, s, eta)) == pytest.approx(math.sqrt(ref_variance(abar, t, s, eta)),
                                                                          rel=1e-4, abs=1e-7)


def test_variance_of_tensors_and_the_ddpm_limit():
    """On the 1000-step schedule, η = 1 between consecutive steps gives β̃_t (DDPM's posterior variance)."""
    ref = reference_tables()
    c = StochasticityController(toy_model(), NoiseSchedule.linear(1000))
    t = torch.arange(100, 1000, 100)
    got = c.compute_stochastic_variance(t, t - 1, 1.0)
    assert got.shape == t.shape
    np.testing.assert_allclose(got.double().numpy(), ref["beta_tilde"][t.numpy()], rtol=1e-3)
    # σ² grows as η²
    torch.testing.assert_close(c.compute_stochastic_variance(t, t - 1, 0.5), 0.25 * got)


def test_sample_uses_the_controllers_sigma(controller, gen):
    """The controller's σ is DDIM's, so its samples are DDIMSampler's with the same generator seed."""
    x_T = torch.randn(SHAPE, generator=gen(0))
    for eta in (0.0, 0.5, 1.0):
        ours = controller.sample(SHAPE, num_steps=8, eta=eta, x_T=x_T, generator=gen(1), progress=False)
        ddim = DDIMSampler(toy_model(), short_schedule()).sample(SHAPE, num_steps=8, eta=eta, x_T=x_T,
                                                                 generator=gen(1), progress=False)
        torch.testing.assert_close(ours, ddim)


def test_sample_follows_an_overridden_variance(gen):
    """Every update, `sample` included, takes σ from compute_stochastic_variance."""
    class NoNoise(StochasticityController):
        def compute_stochastic_variance(self, t, s, eta):
            return super().compute_stochastic_variance(t, s, eta) * 0

    x_T = torch.randn(SHAPE, generator=gen(0))
    quiet = NoNoise(toy_model(), short_schedule()).sample(SHAPE, num_steps=8, eta=1.0, x_T=x_T, generator=gen(1),
                                                          progress=False)
    plain = DDIMSampler(toy_model(), short_schedule())
    # σ = 0 at η = 1: the direction term is √(1−ᾱ_s) as at η = 0, only the σ·z draws differ (not used)
    torch.testing.assert_close(quiet, plain.sample(SHAPE, num_steps=8, eta=0.0, x_T=x_T, progress=False))
    assert not torch.allclose(quiet, plain.sample(SHAPE, num_steps=8, eta=1.0, x_T=x_T, generator=gen(1),
                                                  progress=False))


def test_spread_is_zero_at_eta_0_and_grows_with_eta(controller, gen):
    out = controller.analyze_eta_effects(SHAPE, [0.0, 0.5, 1.0], num_steps=10, generator=gen(3))
    assert set(out) == {"eta", "samples", "spread"}
    assert out["samples"].shape == (3, *SHAPE) and out["spread"].shape == (3,)
    assert out["eta"].tolist() == [0.0, 0.5, 1.0]
    eta0 = out["samples"][0]
    assert all(torch.equal(eta0[b], eta0[0]) for b in range(SHAPE[0]))  # deterministic: every run identical
    assert float(out["spread"][0]) == 0.0
    assert float(out["spread"][1]) > 0 and float(out["spread"][2]) > float(out["spread"][1])
    # the spread is the per-pixel std across runs, averaged over pixels
    torch.testing.assert_close(out["spread"][2], out["samples"][2].std(dim=0).mean())


def test_every_eta_starts_from_one_x_T(controller, gen):
    """With x_T given, η = 0 gives DDIM's deterministic sample of that x_T in every run."""
    x_T = torch.randn((1, *SHAPE[1:]), generator=gen(4))
    out = controller.analyze_eta_effects(SHAPE, [0.0, 1.0], num_steps=6, x_T=x_T, generator=gen(5))
    single = DDIMSampler(toy_model(), short_schedule()).sample((1, *SHAPE[1:]), num_steps=6, x_T=x_T, progress=False)
    for b in range(SHAPE[0]):
        torch.testing.assert_close(out["samples"][0, b], single[0])


def test_same_seed_same_result_other_seed_other_result(controller, gen):
    a = controller.analyze_eta_effects(SHAPE, [0.0, 1.0], num_steps=6, generator=gen(11))
    b = controller.analyze_eta_effects(SHAPE, [0.0, 1.0], num_steps=6, generator=gen(11))
    c = controller.analyze_eta_effects(SHAPE, [0.0, 1.0], num_steps=6, generator=gen(12))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.allclose(a["samples"][1], c["samples"][1])


def test_one_sampling_run_per_eta(gen):
    model = CallCounter(toy_model())
    StochasticityController(model, short_schedule()).analyze_eta_effects(SHAPE, [0.0, 0.3, 1.0], num_steps=5,
                                                                         generator=gen(0))
    assert model.batches == [SHAPE[0]] * (3 * 5)  # 3 η values × 5 steps, all B runs in one batch


def test_needs_at_least_two_runs(controller):
    with pytest.raises(ValueError, match=r"shape\[0\] is the number of runs per η and must be at least 2, got 1"):
        controller.analyze_eta_effects((1, 1, 4, 4), [0.0], num_steps=3)
