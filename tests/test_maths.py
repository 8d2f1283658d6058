"""labsupport.maths: every equation against a float64 closed form written here from the course's formulas
(seeds 000, 001, 004), the practice sheet's hand-worked numbers (seed 001), and the bad numbers each
function refuses with a clear message.

The closed forms use conftest's `reference_tables` (numpy float64, independent of maths.schedule); the
package stores its tables in float32, so comparisons allow ~1e-6 relative error (more where x̂0 divides
by √ᾱ_t ≈ 0.006 at t = 999).
"""
import math
import re

import numpy as np
import pytest
import torch

from conftest import IMG
from labsupport import NoiseSchedule
from labsupport import maths as M
from labsupport.models.scripted import ScriptedNoise
from labsupport.samplers import DDIMSampler, DDPMSampler
from labsupport.samplers.guidance import guided_eps
from labsupport.teaching.checks.cases import CallCounter, short_schedule, toy_model

TS = [0, 1, 2, 50, 500, 998, 999]
NAN, INF = float("nan"), float("inf")


def randn(shape, seed, scale=1.0):
    return scale * torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def close(got, expected, tol=1e-5):
    torch.testing.assert_close(got, torch.as_tensor(expected, dtype=got.dtype), rtol=tol, atol=tol)


# the practice sheet's schedule (seed 001; notebook 03 builds it the same way): ᾱ = 0.70, 0.30, 0.01 at t = 0, 1, 2
SHEET_ABAR = {2: 0.01, 1: 0.30, 0: 0.70, -1: 1.0}


def sheet_schedule() -> NoiseSchedule:
    return NoiseSchedule(torch.tensor([1 - 0.70, 1 - 0.30 / 0.70, 1 - 0.01 / 0.30], dtype=torch.float64))


def ref_abar(ref, s):
    return 1.0 if s == -1 else float(ref["abar"][s])


def ref_sigma(a_t, a_s, eta):
    """DDIM eq. 16: σ = η·√((1−ᾱ_s)/(1−ᾱ_t))·√(1 − ᾱ_t/ᾱ_s)."""
    return eta * math.sqrt((1 - a_s) / (1 - a_t)) * math.sqrt(1 - a_t / a_s)


# ---------------------------------------------------------------------------------------------
# schedule: alpha_bar, extract
# ---------------------------------------------------------------------------------------------
def test_alpha_bar_ints_tensors_and_the_clean_end(schedule, ref):
    for s in (0, 1, 500, 999):
        got = M.alpha_bar(schedule, s)
        assert got.ndim == 0 and float(got) == pytest.approx(ref["abar"][s], rel=1e-6)
    assert float(M.alpha_bar(schedule, -1)) == 1.0  # ᾱ_{-1} = 1: the clean image
    got = M.alpha_bar(schedule, torch.tensor([999, 10, 0, -1]))
    np.testing.assert_allclose(got.double().numpy(), [ref["abar"][999], ref["abar"][10], ref["abar"][0], 1.0],
                               rtol=1e-6)


def test_alpha_bar_of_the_practice_sheet_schedule():
    hand = sheet_schedule()
    for s, a in SHEET_ABAR.items():
        assert float(M.alpha_bar(hand, s)) == pytest.approx(a, rel=1e-6)


@pytest.mark.parametrize("s", [-2, 1000])
def test_alpha_bar_out_of_range(schedule, s):
    with pytest.raises(ValueError, match=r"s must lie in \[-1, 1000\)"):
        M.alpha_bar(schedule, s)
    with pytest.raises(ValueError, match=r"s must lie in \[-1, 1000\)"):
        M.alpha_bar(schedule, torch.tensor([5, s]))


def test_extract_broadcasts_and_refuses_negative_steps(schedule, ref):
    out = M.extract(schedule.alphas_cumprod, torch.tensor([0, 500, 999]), (3, 1, 4, 4))
    assert out.shape == (3, 1, 1, 1)
    np.testing.assert_allclose(out.flatten().double().numpy(), ref["abar"][[0, 500, 999]], rtol=1e-6)
    assert M.extract(schedule.betas, 7, (2, 1, 4, 4)).shape == (1, 1, 1, 1)
    with pytest.raises(ValueError, match=r"t must lie in \[0, 1000\)"):
        M.extract(schedule.betas, -1, (2, 1, 4, 4))


# ---------------------------------------------------------------------------------------------
# forward: q_sample, q_step, q_mean_variance
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("t", TS)
def test_q_sample_closed_form(schedule, ref, t):
    x0, eps = randn(IMG, 1).tanh(), randn(IMG, 2)
    a = ref["abar"][t]
    close(M.q_sample(schedule, x0, t, eps), math.sqrt(a) * x0 + math.sqrt(1 - a) * eps, 1e-6)


@pytest.mark.parametrize("t", TS)
def test_q_step_closed_form(schedule, ref, t):
    x, eps = randn(IMG, 3), randn(IMG, 4)
    b = ref["betas"][t]
    close(M.q_step(schedule, x, t, eps), math.sqrt(1 - b) * x + math.sqrt(b) * eps, 1e-6)


def test_two_q_steps_are_one_q_sample(schedule, ref):
    """x_1 = √α_1(√α_0 x0 + √β_0 ε_0) + √β_1 ε_1: signal √ᾱ_1·x0, noise variance α_1β_0 + β_1 = 1 − ᾱ_1."""
    x0 = randn(IMG, 5)
    zero, one = torch.zeros_like(x0), torch.ones_like(x0)
    close(M.q_step(schedule, M.q_step(schedule, x0, 0, zero), 1, zero), math.sqrt(ref["abar"][1]) * x0, 1e-6)
    c0 = M.q_step(schedule, M.q_step(schedule, zero, 0, one), 1, zero)   # coefficient of ε_0
    c1 = M.q_step(schedule, M.q_step(schedule, zero, 0, zero), 1, one)   # coefficient of ε_1
    close(c0 ** 2 + c1 ** 2, torch.full_like(x0, 1 - ref["abar"][1]), 1e-6)


def test_q_mean_variance_closed_form(schedule, ref):
    x0 = randn(IMG, 6)
    t = torch.tensor([0, 1, 500, 999])[: IMG[0]]
    mean, var = M.q_mean_variance(schedule, x0, t)
    for b, tb in enumerate(t.tolist()):
        a = ref["abar"][tb]
        close(mean[b], math.sqrt(a) * x0[b], 1e-6)
        # 1 − ᾱ from the float32 table: absolute error up to ~6e-8 (relative 2e-4 at t = 0, where 1 − ᾱ = 1e-4)
        assert float(var[b].reshape(-1)[0]) == pytest.approx(1 - a, rel=1e-6, abs=1e-7)
    assert (mean + var).shape == x0.shape  # the variance broadcasts per pixel


# ---------------------------------------------------------------------------------------------
# predictions: x̂0 from ε and ε from x̂0
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("t", TS)
def test_predictions_closed_form_and_round_trip(schedule, ref, t):
    x_t, eps, x0 = randn(IMG, 7), randn(IMG, 8), randn(IMG, 9)
    a = ref["abar"][t]
    x0_hat = M.predict_x0_from_eps(schedule, x_t, t, eps)
    close(x0_hat, (x_t - math.sqrt(1 - a) * eps) / math.sqrt(a), 1e-4)
    eps_hat = M.predict_eps_from_x0(schedule, x_t, t, x0)
    close(eps_hat, (x_t - math.sqrt(a) * x0) / math.sqrt(1 - a), 1e-4)
    # each inverts the other at the same x_t
    close(M.predict_eps_from_x0(schedule, x_t, t, x0_hat), eps, 1e-4)
    close(M.predict_x0_from_eps(schedule, x_t, t, eps_hat), x0, 1e-4)
    # and the forward process solved for x0: x̂0(q_sample(x0, ε), ε) = x0
    close(M.predict_x0_from_eps(schedule, M.q_sample(schedule, x0, t, eps), t, eps), x0, 1e-4)


# ---------------------------------------------------------------------------------------------
# ddpm: posterior mean (two forms), posterior variance, one step
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("t", TS)
def test_posterior_mean_closed_forms_and_their_agreement(schedule, ref, t):
    x_t, eps, x0 = randn(IMG, 10), randn(IMG, 11), randn(IMG, 12).tanh()
    mu_eps = M.posterior_mean_from_eps(schedule, x_t, t, eps)
    close(mu_eps, (x_t - ref["betas"][t] / math.sqrt(1 - ref["abar"][t]) * eps) / math.sqrt(ref["alphas"][t]))
    mu_x0 = M.posterior_mean_from_x0(schedule, x_t, t, x0)
    close(mu_x0, ref["coef_x0"][t] * x0 + ref["coef_xt"][t] * x_t)
    # seed 004: the ε form is μ̃_t(x_t, x̂0(ε))
    x0_hat = M.predict_x0_from_eps(schedule, x_t, t, eps)
    close(M.posterior_mean_from_x0(schedule, x_t, t, x0_hat), mu_eps, 1e-4)


def test_posterior_mean_with_a_step_per_sample(schedule, ref):
    t = torch.tensor([1, 300, 999])
    x_t, eps = randn((3, 1, 4, 4), 13), randn((3, 1, 4, 4), 14)
    got = M.posterior_mean_from_eps(schedule, x_t, t, eps)
    for b, tb in enumerate(t.tolist()):
        close(got[b], (x_t[b] - ref["betas"][tb] / math.sqrt(1 - ref["abar"][tb]) * eps[b])
              / math.sqrt(ref["alphas"][tb]))


def test_posterior_variance_both_types(schedule, ref):
    abar, abar_prev, betas = ref["abar"], ref["abar_prev"], ref["betas"]
    for t in (0, 1, 10, 500, 999):
        beta_tilde = betas[t] * (1 - abar_prev[t]) / (1 - abar[t])   # β̃_t = β_t(1−ᾱ_{t−1})/(1−ᾱ_t)
        assert float(M.posterior_variance(schedule, t)) == pytest.approx(beta_tilde, rel=1e-5, abs=1e-12)
        assert float(M.posterior_variance(schedule, t, "fixed_lower")) == pytest.approx(beta_tilde, rel=1e-5, abs=1e-12)
        assert float(M.posterior_variance(schedule, t, "fixed_upper")) == pytest.approx(betas[t], rel=1e-6)
    assert float(M.posterior_variance(schedule, 0)) == 0.0  # ᾱ_{-1} = 1: no posterior noise at the last step
    every = torch.arange(1000)
    np.testing.assert_allclose(M.posterior_variance(schedule, every, "fixed_upper").double().numpy(), betas, rtol=1e-6)
    lower = M.posterior_variance(schedule, every[1:]).double().numpy()
    np.testing.assert_allclose(lower, (betas * (1 - abar_prev) / (1 - abar))[1:], rtol=1e-5)
    assert (lower < betas[1:]).all()  # seed 004: β̃_t < β_t bound the true variance from both sides
    with pytest.raises(ValueError, match="variance_type must be one of"):
        M.posterior_variance(schedule, 3, "learned")


@pytest.mark.parametrize("variance_type", M.VARIANCE_TYPES)
@pytest.mark.parametrize("t", [1, 2, 500, 999])
def test_ddpm_step_is_mean_plus_sigma_noise(schedule, ref, t, variance_type):
    x_t, eps, z = randn(IMG, 15), randn(IMG, 16), randn(IMG, 17)
    mean = (x_t - ref["betas"][t] / math.sqrt(1 - ref["abar"][t]) * eps) / math.sqrt(ref["alphas"][t])
    var = ref["beta_tilde"][t] if variance_type == "fixed_lower" else ref["betas"][t]
    x_prev, x0_hat = M.ddpm_step_given_eps(schedule, x_t, t, eps, z, variance_type=variance_type)
    close(x_prev, mean + math.sqrt(var) * z)
    close(x0_hat, (x_t - math.sqrt(1 - ref["abar"][t]) * eps) / math.sqrt(ref["abar"][t]), 1e-4)


def test_ddpm_step_at_t0_returns_the_mean_and_needs_no_noise(schedule, ref):
    x_t, eps = randn(IMG, 18), randn(IMG, 19)
    mean = (x_t - ref["betas"][0] / math.sqrt(1 - ref["abar"][0]) * eps) / math.sqrt(ref["alphas"][0])
    x_prev, _ = M.ddpm_step_given_eps(schedule, x_t, 0, eps)
    close(x_prev, mean)
    # noise handed in at t = 0 is not used
    torch.testing.assert_close(M.ddpm_step_given_eps(schedule, x_t, 0, eps, randn(IMG, 20))[0], x_prev)


@pytest.mark.parametrize("t", [1, 10, 999])
def test_ddpm_step_above_t0_requires_noise(schedule, t):
    x = randn(IMG, 21)
    with pytest.raises(ValueError, match=rf"a DDPM step at t={t} > 0 adds σ_t·z: pass noise"):
        M.ddpm_step_given_eps(schedule, x, t, x)


def test_ddpm_step_clipped_mean_goes_through_clipped_x0(schedule, ref):
    t = 700
    x_t, eps = randn(IMG, 22, 3.0), randn(IMG, 23)
    x0_hat = (x_t - math.sqrt(1 - ref["abar"][t]) * eps) / math.sqrt(ref["abar"][t])
    assert bool((x0_hat.abs() > 1).any())  # the clip matters here
    z = torch.zeros_like(x_t)
    got, _ = M.ddpm_step_given_eps(schedule, x_t, t, eps, z, clip_x0=True)
    close(got, ref["coef_x0"][t] * x0_hat.clamp(-1, 1) + ref["coef_xt"][t] * x_t)
    assert not torch.allclose(got, M.ddpm_step_given_eps(schedule, x_t, t, eps, z)[0])


# ---------------------------------------------------------------------------------------------
# ddim: σ(η), the coefficients, one update
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("t,s", [(999, 0), (999, 979), (500, 250), (10, 9), (1, 0), (0, -1), (999, -1), (5, -1)])
@pytest.mark.parametrize("eta", [0.0, 0.3, 1.0])
def test_ddim_sigma_closed_form(schedule, ref, t, s, eta):
    """σ is formed from float32 ᾱ near 1 (1 − ᾱ_t/ᾱ_s ≈ 1e-4 on the smallest jumps): relative 1e-3."""
    expected = ref_sigma(ref_abar(ref, t), ref_abar(ref, s), eta)
    assert float(M.ddim_sigma(schedule, t, s, eta)) == pytest.approx(expected, rel=1e-3, abs=1e-9)


def test_ddim_sigma_at_eta_1_on_consecutive_steps_is_ddpm_posterior_std(schedule, ref):
    t = torch.arange(1, 1000)
    got = M.ddim_sigma(schedule, t, t - 1, 1.0)
    assert got.shape == (999,)
    # float32 ᾱ near 1: up to 3e-4 relative at the smallest t (see test_ddim_sigma_closed_form)
    np.testing.assert_allclose(got.double().numpy() ** 2, ref["beta_tilde"][1:], rtol=1e-3)
    # and twice η, twice σ
    torch.testing.assert_close(M.ddim_sigma(schedule, t, t - 1, 2.0), 2 * got)


def test_ddim_sigma_is_zero_on_the_jump_to_the_clean_image_from_t0(schedule):
    """ᾱ_{-1} = 1 makes 1 − ᾱ_s = 0: the last jump (0 → −1) adds no noise at any η."""
    for eta in (0.0, 0.5, 1.0, 3.0):
        assert float(M.ddim_sigma(schedule, 0, -1, eta)) == 0.0


def test_ddim_sigma_at_eta_0_is_exactly_zero_even_upwards(schedule):
    assert float(M.ddim_sigma(schedule, 500, 100, 0.0)) == 0.0
    assert float(M.ddim_sigma(schedule, 100, 500, 0.0)) == 0.0  # inversion: s > t, where the root does not exist
    assert torch.equal(M.ddim_sigma(schedule, torch.tensor([3, 9]), torch.tensor([9, 20]), 0), torch.zeros(2))


@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
def test_ddim_coefficients_closed_form(schedule, ref, eta):
    pairs = [(999, 949), (500, 480), (20, 0), (0, -1)]
    for t, s in pairs:
        a_t, a_s = ref_abar(ref, t), ref_abar(ref, s)
        sigma = ref_sigma(a_t, a_s, eta)
        expected = [math.sqrt(a_s), math.sqrt(1 - a_s - sigma ** 2), sigma]
        got = M.ddim_coefficients(schedule, t, s, eta)
        assert got.shape == (3,)
        np.testing.assert_allclose(got.double().numpy(), expected, rtol=1e-3, atol=1e-6)
    table = M.ddim_coefficients(schedule, torch.tensor([t for t, _ in pairs]), torch.tensor([s for _, s in pairs]), eta)
    assert table.shape == (len(pairs), 3)
    for row, (t, s) in zip(table, pairs):
        torch.testing.assert_close(row, M.ddim_coefficients(schedule, t, s, eta))
    np.testing.assert_allclose(table[-1].double().numpy(), [1.0, 0.0, 0.0], atol=1e-7)  # s = −1 lands on x̂0


def test_ddim_coefficients_with_a_given_sigma(schedule, ref):
    a_s = ref["abar"][400]
    got = M.ddim_coefficients(schedule, 600, 400, 1.0, sigma=torch.tensor(0.25))
    np.testing.assert_allclose(got.double().numpy(), [math.sqrt(a_s), math.sqrt(1 - a_s - 0.0625), 0.25], rtol=1e-5)


@pytest.mark.parametrize("t,s", [(999, 899), (500, 499), (100, 0), (40, -1)])
def test_ddim_step_eta0_is_the_formula(schedule, ref, t, s):
    """x̂0 = (x_t − √(1−ᾱ_t)ε)/√ᾱ_t, x_s = √ᾱ_s·x̂0 + √(1−ᾱ_s)·ε (seed 001, question 2)."""
    x_t, eps = randn(IMG, 24), randn(IMG, 25)
    a_t, a_s = ref_abar(ref, t), ref_abar(ref, s)
    x0 = (x_t - math.sqrt(1 - a_t) * eps) / math.sqrt(a_t)
    x_s, x0_hat = M.ddim_step_given_eps(schedule, x_t, t, s, eps)
    close(x0_hat, x0, 1e-4)
    close(x_s, math.sqrt(a_s) * x0 + math.sqrt(1 - a_s) * eps, 1e-4)
    if s == -1:
        torch.testing.assert_close(x_s, x0_hat)


def test_ddim_step_with_eta_adds_sigma_noise(schedule, ref):
    t, s, eta = 600, 550, 0.7
    x_t, eps, z = randn(IMG, 26), randn(IMG, 27), randn(IMG, 28)
    a_t, a_s = ref["abar"][t], ref["abar"][s]
    sigma = ref_sigma(a_t, a_s, eta)
    x0 = (x_t - math.sqrt(1 - a_t) * eps) / math.sqrt(a_t)
    x_s, _ = M.ddim_step_given_eps(schedule, x_t, t, s, eps, eta, z)
    close(x_s, math.sqrt(a_s) * x0 + math.sqrt(1 - a_s - sigma ** 2) * eps + sigma * z, 1e-4)
    # precomputed coefficients give the same update
    coefs = M.ddim_coefficients(schedule, t, s, eta)
    torch.testing.assert_close(M.ddim_step_given_eps(schedule, x_t, t, s, eps, eta, z, coefficients=coefs)[0], x_s)


def test_ddim_step_with_eta_requires_noise_except_on_the_last_jump(schedule):
    x = randn(IMG, 29)
    with pytest.raises(ValueError, match=r"a DDIM jump with eta=0.5 > 0 to s=3 adds σ·z: pass noise"):
        M.ddim_step_given_eps(schedule, x, 10, 3, x, 0.5)
    x_s, x0_hat = M.ddim_step_given_eps(schedule, x, 10, -1, x, 0.5)  # s = −1 adds nothing
    torch.testing.assert_close(x_s, x0_hat)
    assert M.adds_noise(0.5, 3) and not M.adds_noise(0.5, -1) and not M.adds_noise(0.0, 3)


@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_ddim_step_clip_and_recomputed_eps_are_consistent(schedule, ref, eta):
    t, s = 700, 600
    x_t, eps, z = randn(IMG, 30, 3.0), randn(IMG, 31), randn(IMG, 32)
    a_t, a_s = ref["abar"][t], ref["abar"][s]
    sigma = ref_sigma(a_t, a_s, eta)
    x0 = ((x_t - math.sqrt(1 - a_t) * eps) / math.sqrt(a_t))
    assert bool((x0.abs() > 1).any())
    x0c = x0.clamp(-1, 1)
    eps_c = (x_t - math.sqrt(a_t) * x0c) / math.sqrt(1 - a_t)        # the ε the clipped x̂0 implies
    x_s, x0_hat = M.ddim_step_given_eps(schedule, x_t, t, s, eps, eta, z, clip_x0=True)
    close(x0_hat, x0c, 1e-4)
    close(x_s, math.sqrt(a_s) * x0c + math.sqrt(1 - a_s - sigma ** 2) * eps_c + sigma * z, 1e-4)
    # consistency: (x_t, ε_c) implies exactly the clipped x̂0 back
    close(M.predict_x0_from_eps(schedule, x_t, t, eps_c), x0c, 1e-4)
    # without recompute_eps the direction term keeps the network's ε
    x_s_raw, _ = M.ddim_step_given_eps(schedule, x_t, t, s, eps, eta, z, clip_x0=True, recompute_eps=False)
    close(x_s_raw, math.sqrt(a_s) * x0c + math.sqrt(1 - a_s - sigma ** 2) * eps + sigma * z, 1e-4)
    assert not torch.allclose(x_s_raw, x_s)


@pytest.mark.parametrize("clip", [False, True])
@pytest.mark.parametrize("t", [0, 1, 10, 500, 999])
def test_ddim_eta1_consecutive_is_the_ddpm_step(schedule, t, clip):
    """η = 1 between consecutive steps gives σ² = β̃_t and the posterior mean: the DDPM step, same z."""
    x_t, eps, z = randn(IMG, 33, 2.0 if clip else 1.0), randn(IMG, 34), randn(IMG, 35)
    ddim, ddim_x0 = M.ddim_step_given_eps(schedule, x_t, t, t - 1, eps, 1.0, z, clip_x0=clip)
    ddpm, ddpm_x0 = M.ddpm_step_given_eps(schedule, x_t, t, eps, z, clip_x0=clip)
    # DDIM's direction coefficient √(1 − ᾱ_{t−1} − σ²) comes from float32 ᾱ near 1 (absolute error ~1e-7
    # under the root, ~1e-5 on the coefficient at t = 1), and multiplies the ε that the clipped x̂0 implies,
    # which is large at small t: allow 2e-5 per unit of that ε
    eps_used = M.predict_eps_from_x0(schedule, x_t, t, ddpm_x0.clamp(-1, 1)) if clip else eps
    tol = 1e-4 + 2e-5 * float(eps_used.abs().max())
    torch.testing.assert_close(ddim, ddpm, rtol=0, atol=tol)
    close(ddim_x0.clamp(-1, 1) if clip else ddim_x0, ddpm_x0.clamp(-1, 1) if clip else ddpm_x0, 1e-4)


def test_seed_001_hand_walked_ddim_with_the_maths():
    """Seed 001: x = 2.0, ε = 1.8, 1.4, 0.5 at ᾱ = 0.01, 0.30, 0.70: x̂0 = 2.09, x = 2.651, x̂0 = 2.70,
    x = 3.027, x̂0 = 3.29 (the sheet rounds as it goes: tolerance 2e-3); each step also against the
    unrounded float64 formula."""
    hand = sheet_schedule()
    x = torch.full((1, 1, 1, 1), 2.0, dtype=torch.float64)
    sheet = [(2, 1, 1.8, 2.09, 2.651), (1, 0, 1.4, 2.70, 3.027), (0, -1, 0.5, 3.29, 3.29)]
    for t, s, e, x0_sheet, x_sheet in sheet:
        a_t, a_s = SHEET_ABAR[t], SHEET_ABAR[s]
        x0 = (float(x) - math.sqrt(1 - a_t) * e) / math.sqrt(a_t)
        expected = math.sqrt(a_s) * x0 + math.sqrt(1 - a_s) * e
        x_new, x0_hat = M.ddim_step_given_eps(hand, x, t, s, torch.full_like(x, e))
        assert float(x0_hat) == pytest.approx(x0, abs=1e-6)
        assert float(x_new) == pytest.approx(expected, abs=1e-6)
        assert float(x0_hat) == pytest.approx(x0_sheet, abs=2e-3)
        assert float(x_new) == pytest.approx(x_sheet, abs=2e-3)
        x = x_new
    # step 1's x̂0 is predict_x0_from_eps on its own: (2 − √0.99·1.8)/√0.01 = 2.09
    assert float(M.predict_x0_from_eps(hand, torch.tensor([2.0]), 2, torch.tensor([1.8]))) == pytest.approx(2.09, abs=1e-3)


# ---------------------------------------------------------------------------------------------
# guidance: cfg_blend
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("w,expected", [(1.0, 1.0), (5.0, 2.6), (15.0, 6.6)])
def test_seed_001_cfg_numbers(w, expected):
    got = M.cfg_blend(torch.tensor(1.0, dtype=torch.float64), torch.tensor(0.6, dtype=torch.float64), w)
    assert float(got) == pytest.approx(expected, abs=1e-12)


def test_cfg_blend_closed_form():
    ec, eu = randn(IMG, 36), randn(IMG, 37)
    for w in (0.0, 1.0, 2.5, 7.5, -1.0):
        close(M.cfg_blend(ec, eu, w), (1 - w) * eu + w * ec, 1e-12)
    assert torch.equal(M.cfg_blend(ec, eu, 0.0), eu)   # scale 0: unconditional (seed 001, question 4)
    torch.testing.assert_close(M.cfg_blend(ec, eu, 1.0), ec, rtol=0, atol=1e-15)  # scale 1: conditional
    w = torch.tensor([0.0, 1.0, 3.0, 8.0], dtype=torch.float64).reshape(-1, 1, 1, 1)[: IMG[0]]
    close(M.cfg_blend(ec, eu, w), (1 - w) * eu + w * ec, 1e-12)   # a scale per sample


# ---------------------------------------------------------------------------------------------
# interpolate: slerp
# ---------------------------------------------------------------------------------------------
def test_slerp_closed_form_endpoints_and_norms():
    z0, z1 = randn((3, 1, 4, 4), 38), randn((3, 1, 4, 4), 39)
    a, b = z0.flatten(1).numpy(), z1.flatten(1).numpy()
    for alpha in (0.0, 0.2, 0.5, 0.9, 1.0):
        got = M.slerp(z0, z1, alpha).flatten(1).numpy()
        for k in range(3):
            theta = math.acos(a[k] @ b[k] / (np.linalg.norm(a[k]) * np.linalg.norm(b[k])))
            expected = (math.sin((1 - alpha) * theta) * a[k] + math.sin(alpha * theta) * b[k]) / math.sin(theta)
            np.testing.assert_allclose(got[k], expected, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(M.slerp(z0, z1, 0.0), z0, rtol=0, atol=1e-12)
    torch.testing.assert_close(M.slerp(z0, z1, 1.0), z1, rtol=0, atol=1e-12)
    # two noises of the same norm: every point of the great circle keeps it, a straight line does not
    u = z1 * (z0.flatten(1).norm(dim=1) / z1.flatten(1).norm(dim=1)).reshape(-1, 1, 1, 1)
    for alpha in (0.25, 0.5, 0.75):
        torch.testing.assert_close(M.slerp(z0, u, alpha).flatten(1).norm(dim=1), z0.flatten(1).norm(dim=1))
    assert bool((((z0 + u) / 2).flatten(1).norm(dim=1) < 0.95 * z0.flatten(1).norm(dim=1)).all())


def test_slerp_angle_grows_linearly():
    """For two noises of the same norm the point at α sits at angle α·θ from z0 (a great circle)."""
    z0, z1 = randn((1, 10), 40), randn((1, 10), 41)
    z1 = z1 * z0.norm() / z1.norm()

    def angle(p, q):
        return math.acos(float((p * q).sum() / (p.norm() * q.norm())))
    theta = angle(z0, z1)
    for alpha in (0.1, 0.4, 0.8):
        assert angle(z0, M.slerp(z0, z1, alpha)) == pytest.approx(alpha * theta, rel=1e-9)


# ---------------------------------------------------------------------------------------------
# validate
# ---------------------------------------------------------------------------------------------
def test_check_eta_and_check_finite_pass_good_numbers_through():
    assert M.check_eta(0) == 0.0 and isinstance(M.check_eta(1), float)
    assert M.check_eta(torch.tensor(0.5)) == 0.5
    with pytest.raises(TypeError, match="eta must be a number, got bool"):
        M.check_eta(True)
    with pytest.raises(TypeError, match="eta must be a number, got str"):
        M.check_eta("0.5")
    x = randn((2, 3), 42)
    assert M.check_finite(x, "x") is x
    M.check_guidance_scale(7.5)
    M.check_guidance_scale(torch.tensor([0.0, 20.0]))


# ---------------------------------------------------------------------------------------------
# bad numbers: each refused with a message that says what is wrong
# ---------------------------------------------------------------------------------------------
BAD_ETAS = pytest.mark.parametrize("eta", [NAN, INF, -INF, -0.5, -1e-9], ids=["nan", "inf", "-inf", "-0.5", "-tiny"])


def eta_message(eta):
    return r"eta must be >= 0 and finite, got " + re.escape(str(eta))


@pytest.fixture
def toy_ddim():
    """The toy network behind a call counter on the 30-step schedule."""
    model = CallCounter(toy_model())
    return model, DDIMSampler(model, short_schedule())


@BAD_ETAS
def test_bad_eta_ddim_sigma(schedule, eta):
    with pytest.raises(ValueError, match=eta_message(eta)):
        M.ddim_sigma(schedule, 10, 5, eta)
    with pytest.raises(ValueError, match=eta_message(eta)):
        M.ddim_sigma(schedule, torch.tensor([10, 5]), torch.tensor([5, -1]), eta)


@BAD_ETAS
def test_bad_eta_ddim_coefficients_and_step(schedule, eta):
    x = randn(IMG, 43)
    with pytest.raises(ValueError, match=eta_message(eta)):
        M.ddim_coefficients(schedule, 10, 5, eta)
    with pytest.raises(ValueError, match=eta_message(eta)):
        M.ddim_step_given_eps(schedule, x, 10, 5, x, eta, torch.zeros_like(x))


@BAD_ETAS
def test_bad_eta_ddim_sampler_sample(toy_ddim, eta):
    model, sampler = toy_ddim
    with pytest.raises(ValueError, match=eta_message(eta)):
        sampler.sample((2, 1, 4, 4), num_steps=3, eta=eta)
    assert model.batches == []  # refused before the first network call


@BAD_ETAS
def test_bad_eta_ddim_step(toy_ddim, eta):
    _, sampler = toy_ddim
    x = torch.randn(2, 1, 4, 4)
    with pytest.raises(ValueError, match=eta_message(eta)):
        sampler.ddim_step(x, 20, 10, eta=eta, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match=eta_message(eta)):
        sampler.ddim_step(x, 20, 10, eta=eta, noise=torch.zeros_like(x))


def largest_eta(a_t, a_s):
    """1 − ᾱ_s − σ(η)² = (1 − ᾱ_s)·(1 − η²·(1 − ᾱ_t/ᾱ_s)/(1 − ᾱ_t)) is ≥ 0 up to this η."""
    return math.sqrt((1 - a_t) / (1 - a_t / a_s))


def allowed_eta_in(message):
    found = re.search(r"this jump allows eta up to ([0-9.]+(?:e[-+]?[0-9]+)?)", message)
    assert found, message
    return float(found.group(1))


def test_eta_too_large_names_the_largest_allowed_eta():
    """The sheet's jump ᾱ = 0.30 → 0.70 allows η up to √(0.7/(1 − 3/7)) = 1.1068; η = 3 is refused."""
    hand = sheet_schedule()
    largest = largest_eta(0.30, 0.70)
    assert largest == pytest.approx(1.1068, abs=1e-4)
    with pytest.raises(ValueError, match=r"eta=3 is too large for the jump t=1 -> s=0: 1 - ᾱ_s - σ² = .* < 0") as info:
        M.ddim_coefficients(hand, 1, 0, 3.0)
    assert allowed_eta_in(str(info.value)) == pytest.approx(largest, rel=1e-3)
    # just below works (the direction term nearly vanishes), just above is refused
    below = M.ddim_coefficients(hand, 1, 0, largest * (1 - 1e-3))
    sigma = ref_sigma(0.30, 0.70, largest * (1 - 1e-3))
    np.testing.assert_allclose(below.double().numpy(), [math.sqrt(0.7), math.sqrt(0.3 - sigma ** 2), sigma],
                               rtol=1e-4, atol=1e-6)
    assert 0 < float(below[1]) < 0.05
    with pytest.raises(ValueError, match=r"is too large for the jump t=1 -> s=0"):
        M.ddim_coefficients(hand, 1, 0, largest * (1 + 1e-3))
    # the same refusal through the update and through the sampler, whose table covers every jump
    x = torch.full((1, 1, 1, 1), 2.65, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"this jump allows eta up to 1\.10"):
        M.ddim_step_given_eps(hand, x, 1, 0, torch.full_like(x, 1.4), 3.0, torch.zeros_like(x))
    sampler = DDIMSampler(ScriptedNoise({2: 1.8, 1: 1.4, 0: 0.5}).double(), hand)
    with pytest.raises(ValueError, match=r"eta=3 is too large for the jump t=1 -> s=0"):
        sampler.sample(x.shape, timesteps=[1, 0], eta=3.0, x_T=x)
    with pytest.raises(ValueError, match=r"eta=3 is too large for the jump t=2 -> s=1") as info:
        sampler.sample(x.shape, timesteps=[2, 1, 0], eta=3.0, x_T=x)  # both jumps too large: 2 -> 1 is further out
    assert allowed_eta_in(str(info.value)) == pytest.approx(largest_eta(0.01, 0.30), rel=1e-3)
    with pytest.raises(ValueError, match=r"eta=3 is too large for the jump t=1 -> s=0"):
        sampler.ddim_step(x, 1, 0, eta=3.0, noise=torch.zeros_like(x))
    out = sampler.sample(x.shape, timesteps=[1, 0], eta=largest * (1 - 1e-3), x_T=x,
                         generator=torch.Generator().manual_seed(0))
    assert bool(torch.isfinite(out).all())


def test_eta_too_large_on_the_course_schedules_largest_jump(schedule, ref):
    largest = largest_eta(ref["abar"][999], ref["abar"][0])
    with pytest.raises(ValueError, match=r"eta=3 is too large for the jump t=999 -> s=0") as info:
        M.ddim_coefficients(schedule, 999, 0, 3.0)
    assert allowed_eta_in(str(info.value)) == pytest.approx(largest, rel=1e-3)
    # a table of jumps names the offending one
    with pytest.raises(ValueError, match=r"eta=3 is too large for the jump t=999 -> s=0"):
        M.ddim_coefficients(schedule, torch.tensor([999, 0]), torch.tensor([0, -1]), 3.0)


NON_FINITE_SCALES = pytest.mark.parametrize("w", [NAN, INF, -INF], ids=["nan", "inf", "-inf"])


def scale_message(w):
    return r"guidance_scale must be finite, got " + re.escape(str(w))


@NON_FINITE_SCALES
def test_non_finite_guidance_scale_cfg_blend(w):
    e = torch.ones(2, 1, 2, 2)
    with pytest.raises(ValueError, match=scale_message(w)):
        M.cfg_blend(e, 0.5 * e, w)
    with pytest.raises(ValueError, match="guidance_scale must be finite"):
        M.cfg_blend(e, 0.5 * e, torch.tensor([1.0, w]).reshape(-1, 1, 1, 1))


@NON_FINITE_SCALES
def test_non_finite_guidance_scale_guided_eps(w):
    x = torch.randn(2, 1, 4, 4)
    with pytest.raises(ValueError, match=scale_message(w)):
        guided_eps(toy_model(), x, 10, torch.tensor([3, 7]), w)
    with pytest.raises(ValueError, match=scale_message(w)):
        guided_eps(toy_model(), x, 10, torch.tensor([3, 7]), w, batched=False)


@NON_FINITE_SCALES
def test_non_finite_guidance_scale_in_the_samplers(toy_ddim, w):
    model, ddim = toy_ddim
    y = torch.tensor([3, 7])
    with pytest.raises(ValueError, match=scale_message(w)):
        ddim.sample((2, 1, 4, 4), num_steps=3, y=y, guidance_scale=w)
    with pytest.raises(ValueError, match=scale_message(w)):
        DDPMSampler(model, short_schedule()).sample((2, 1, 4, 4), y=y, guidance_scale=w)
    assert model.batches == []


@pytest.mark.parametrize("bad", [NAN, INF])
def test_non_finite_x_T(toy_ddim, bad):
    model, ddim = toy_ddim
    x_T = torch.randn(2, 1, 4, 4)
    x_T[1, 0, 2, 3] = bad
    for sample in (lambda: ddim.sample(x_T.shape, num_steps=3, x_T=x_T),
                   lambda: DDPMSampler(model, short_schedule()).sample(x_T.shape, x_T=x_T)):
        with pytest.raises(ValueError, match=r"x_T holds 1 NaN or infinite values; pass finite numbers"):
            sample()
    assert model.batches == []


def test_slerp_of_a_zero_vector():
    z = randn((2, 1, 3, 3), 44)
    zero = z.clone()
    zero[1] = 0
    with pytest.raises(ValueError, match="z0 has a sample that is all zeros; slerp needs non-zero noises"):
        M.slerp(zero, z, 0.5)
    with pytest.raises(ValueError, match="z1 has a sample that is all zeros; slerp needs non-zero noises"):
        M.slerp(z, zero, 0.5)


def test_slerp_of_a_nan_vector():
    z = randn((2, 1, 3, 3), 45)
    bad = z.clone()
    bad[0, 0, 1, 1] = NAN
    with pytest.raises(ValueError, match="z0 holds 1 NaN or infinite values"):
        M.slerp(bad, z, 0.5)
    bad[1, 0, 0, 0] = INF
    with pytest.raises(ValueError, match="z1 holds 2 NaN or infinite values"):
        M.slerp(z, bad, 0.5)
