"""labsupport.maths.schedule: tables against seed 004's formulas, extract's broadcasting, respacing."""
import math

import numpy as np
import pytest
import torch

from labsupport.maths.schedule import NoiseSchedule, cosine_betas, extract, linear_betas


def as_np(x: torch.Tensor) -> np.ndarray:
    return x.double().cpu().numpy()


# float32 storage: relative error ~6e-8 per entry
F32 = dict(rtol=2e-6, atol=1e-9)


def test_linear_endpoints_and_spacing():
    b = linear_betas(1000)
    assert b.dtype == torch.float64 and b.shape == (1000,)
    assert b[0].item() == pytest.approx(1e-4, abs=1e-15)
    assert b[-1].item() == pytest.approx(0.02, abs=1e-15)
    step = (0.02 - 1e-4) / 999
    np.testing.assert_allclose(np.diff(b.numpy()), step, rtol=1e-9)
    s = NoiseSchedule.linear()
    assert s.T == 1000 and s.kind == "linear"
    assert s.betas[0].item() == pytest.approx(1e-4, rel=1e-6)
    assert s.betas[-1].item() == pytest.approx(0.02, rel=1e-6)


def test_cosine_properties():
    T, s = 1000, 0.008
    betas = cosine_betas(T)
    sched = NoiseSchedule.cosine(T)
    abar = as_np(sched.alphas_cumprod)
    assert sched.T == T and betas.shape == (T,)
    assert bool((betas > 0).all()) and float(betas.max()) <= 0.999 + 1e-12
    assert np.all(np.diff(abar) < 0), "ᾱ must fall strictly"
    assert 1 - abar[0] < 1e-3 and abar[-1] < 1e-6
    # ᾱ_t = f(t+1)/f(0) with f(u) = cos²((u/T + s)/(1+s)·π/2), wherever the 0.999 cap has not bitten
    f = lambda u: math.cos((u / T + s) / (1 + s) * math.pi / 2) ** 2
    expected = np.array([f(t + 1) / f(0) for t in range(T - 1)])
    np.testing.assert_allclose(abar[:-1], expected, rtol=2e-5, atol=1e-9)
    # the cap only bites at the very end, where f(T) = 0 would give β = 1
    assert float(betas[-1]) == pytest.approx(0.999)
    assert float(betas[-2]) < 0.999


def test_tables_match_seed_004_formulas(schedule, ref):
    s = schedule
    np.testing.assert_allclose(as_np(s.betas), ref["betas"], **F32)
    np.testing.assert_allclose(as_np(s.alphas), ref["alphas"], **F32)
    np.testing.assert_allclose(as_np(s.alphas_cumprod), ref["abar"], **F32)
    np.testing.assert_allclose(as_np(s.alphas_cumprod_prev), ref["abar_prev"], **F32)
    np.testing.assert_allclose(as_np(s.sqrt_alphas_cumprod), np.sqrt(ref["abar"]), **F32)
    np.testing.assert_allclose(as_np(s.sqrt_one_minus_alphas_cumprod), np.sqrt(1 - ref["abar"]), **F32)
    np.testing.assert_allclose(as_np(s.sqrt_recip_alphas), 1 / np.sqrt(ref["alphas"]), **F32)
    np.testing.assert_allclose(as_np(s.posterior_variance), ref["beta_tilde"], **F32)
    np.testing.assert_allclose(as_np(s.posterior_mean_coef1), ref["coef_x0"], **F32)
    np.testing.assert_allclose(as_np(s.posterior_mean_coef2), ref["coef_xt"], **F32)
    # ε coefficient of μ_θ: (1 − α_t)/√(1 − ᾱ_t)
    np.testing.assert_allclose(as_np(s.eps_coef), (1 - ref["alphas"]) / np.sqrt(1 - ref["abar"]), **F32)
    # snr divides by 1 − ᾱ formed from float32 ᾱ: near t = 0 that loses ~4 digits
    np.testing.assert_allclose(as_np(s.snr()), ref["abar"] / (1 - ref["abar"]), rtol=5e-4)


def test_alphas_cumprod_is_cumprod_of_alphas(schedule):
    manual = np.cumprod(1 - schedule.betas.double().numpy())
    np.testing.assert_allclose(as_np(schedule.alphas_cumprod), manual, rtol=1e-5)
    assert schedule.alphas_cumprod_prev[0].item() == 1.0
    assert schedule.posterior_variance[0].item() == 0.0  # β̃_0 = 0: x_{-1} is the clean image


def test_tables_are_float32_and_timesteps_identity(schedule):
    assert schedule.betas.dtype == torch.float32
    assert torch.equal(schedule.timesteps, torch.arange(1000))


def test_extract_int_t():
    coef = torch.arange(10, dtype=torch.float32) * 0.5
    out = extract(coef, 3, (4, 1, 5, 5))
    assert out.shape == (1, 1, 1, 1)
    assert out.item() == 1.5


def test_extract_batch_t_broadcasts_per_sample():
    coef = torch.arange(10, dtype=torch.float32) ** 2
    t = torch.tensor([0, 7, 3])
    out = extract(coef, t, (3, 2, 4, 4))
    assert out.shape == (3, 1, 1, 1)
    x = torch.ones(3, 2, 4, 4)
    y = out * x
    for b, tb in enumerate(t.tolist()):
        assert torch.all(y[b] == tb ** 2)
    # any number of trailing dims: (B, D) -> (B, 1)
    assert extract(coef, t, (3, 6)).shape == (3, 1)


def test_extract_rejects_t_of_wrong_batch():
    coef = torch.arange(10, dtype=torch.float32)
    with pytest.raises(ValueError, match="t must"):
        extract(coef, torch.tensor([1, 2, 3]), (2, 1, 4, 4))


def test_respace_keeps_abar_at_kept_steps(schedule):
    kept = [999, 800, 500, 250, 100, 10, 0]  # given decreasing, as a sampler would
    r = schedule.respace(kept)
    asc = sorted(kept)
    assert r.T == len(kept)
    assert r.timesteps.tolist() == asc
    full = schedule.alphas_cumprod.double()
    np.testing.assert_allclose(as_np(r.alphas_cumprod), as_np(full[asc]), rtol=1e-6)
    # effective β_i = 1 − ᾱ_{t_i}/ᾱ_{t_{i−1}}, with ᾱ before the first kept step equal to 1
    abar_k = as_np(full[asc])
    eff = 1 - abar_k / np.concatenate([[1.0], abar_k[:-1]])
    np.testing.assert_allclose(as_np(r.betas), eff, rtol=1e-6)
    # and the product of the new α's walks through exactly those ᾱ's
    np.testing.assert_allclose(np.cumprod(1 - as_np(r.betas)), abar_k, rtol=1e-6)


def test_respace_on_all_steps_reproduces_schedule(schedule, ref):
    r = schedule.respace(range(1000))
    assert r.T == 1000
    assert torch.equal(r.timesteps, torch.arange(1000))
    # β recovered from ratios of float32 ᾱ's: absolute error ~1e-7
    np.testing.assert_allclose(as_np(r.betas), ref["betas"], rtol=0, atol=5e-7)
    np.testing.assert_allclose(as_np(r.alphas_cumprod), ref["abar"], rtol=1e-6)
    np.testing.assert_allclose(as_np(r.posterior_variance[1:]), ref["beta_tilde"][1:], rtol=5e-3)


def test_respace_of_respaced_keeps_original_timesteps(schedule):
    r = schedule.respace([0, 100, 200, 300]).respace([1, 3])
    assert r.timesteps.tolist() == [100, 300]
    np.testing.assert_allclose(as_np(r.alphas_cumprod), as_np(schedule.alphas_cumprod[[100, 300]]), rtol=1e-6)


@pytest.mark.parametrize("bad", [[], [-1, 5], [5, 1000]])
def test_respace_rejects_bad_timesteps(schedule, bad):
    with pytest.raises(ValueError, match="timesteps"):
        schedule.respace(bad)


def test_from_name_and_unknown_name():
    assert NoiseSchedule.from_name("linear", 50).kind == "linear"
    assert NoiseSchedule.from_name("cosine", 50).T == 50
    with pytest.raises(ValueError, match="schedule must be one of"):
        NoiseSchedule.from_name("sigmoid")


@pytest.mark.parametrize("betas", [torch.tensor([0.1, 0.0]), torch.tensor([0.5, 1.5]), torch.zeros(0),
                                   torch.full((2, 2), 0.1)])
def test_bad_betas(betas):
    with pytest.raises(ValueError, match="betas"):
        NoiseSchedule(betas)


@pytest.mark.parametrize("t", [-1, 1000, torch.tensor([0, 1000]), torch.tensor([-3, 2])])
def test_check_t_names_t(schedule, t):
    with pytest.raises(ValueError, match=r"t must lie in \[0, 1000\)"):
        schedule.check_t(t)
    schedule.check_t(0)
    schedule.check_t(torch.tensor([0, 999]))


def test_to_device_copies_every_table(schedule):
    moved = schedule.to("meta")
    assert moved.device.type == "meta"
    for name in NoiseSchedule._TABLES:
        assert getattr(moved, name).device.type == "meta", name
    assert schedule.device.type == "cpu"  # the original is left alone
