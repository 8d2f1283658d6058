"""labsupport.samplers: DDPM posterior (seed 004), DDIM update (seeds 000/001), their agreement,
timestep schedules, reproducibility, trajectories, inversion and bad inputs."""
import math

import numpy as np
import pytest
import torch

from conftest import IMG, T, ConstantEps, GaussianEps, SmoothEps, standard_errors
from labsupport import NoiseSchedule
from labsupport.samplers import SCHEDULE_TYPES, DDIMSampler, DDPMSampler, timestep_schedule


def randn(shape, seed, scale=1.0):
    return scale * torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def ref_mu_eps(ref, x_t, t, eps):
    """μ_θ = (x_t − β_t/√(1−ᾱ_t)·ε) / √α_t (seed 004, eq. of §1.2)."""
    return (x_t - ref["betas"][t] / math.sqrt(1 - ref["abar"][t]) * eps) / math.sqrt(ref["alphas"][t])


def ref_x0_hat(ref, x_t, t, eps):
    return (x_t - math.sqrt(1 - ref["abar"][t]) * eps) / math.sqrt(ref["abar"][t])


# ---------------------------------------------------------------------------------------------
# DDPM posterior
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("t", [0, 1, 2, 100, 500, 998, 999])
def test_posterior_mean_equals_eps_formula(schedule, ref, t):
    sampler = DDPMSampler(SmoothEps(), schedule)
    x_t, eps = randn((3, 1, 4, 4), 1), randn((3, 1, 4, 4), 2)
    got = sampler.compute_posterior_mean(x_t, t, eps)
    torch.testing.assert_close(got, ref_mu_eps(ref, x_t, t, eps), rtol=1e-5, atol=1e-5)
    # seed 004 §1.3: the same mean through x̂0, μ̃ = c1·x̂0 + c2·x_t
    x0 = ref_x0_hat(ref, x_t, t, eps)
    torch.testing.assert_close(got, ref["coef_x0"][t] * x0 + ref["coef_xt"][t] * x_t, rtol=1e-4, atol=1e-4)


def test_posterior_mean_with_batch_t(schedule, ref):
    sampler = DDPMSampler(SmoothEps(), schedule)
    t = torch.tensor([3, 400, 999])
    x_t, eps = randn((3, 1, 4, 4), 3), randn((3, 1, 4, 4), 4)
    got = sampler.compute_posterior_mean(x_t, t, eps)
    for b, tb in enumerate(t.tolist()):
        torch.testing.assert_close(got[b], ref_mu_eps(ref, x_t[b], tb, eps[b]), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("variance_type,key", [("fixed_lower", "beta_tilde"), ("fixed_upper", "betas")])
def test_posterior_variance(schedule, ref, variance_type, key):
    sampler = DDPMSampler(SmoothEps(), schedule, variance_type=variance_type)
    for t in (0, 1, 10, 500, 999):
        assert sampler.compute_posterior_variance(t).item() == pytest.approx(ref[key][t], rel=1e-5, abs=1e-12)
    all_t = sampler.compute_posterior_variance(torch.arange(T))
    np.testing.assert_allclose(all_t.double().numpy(), ref[key], rtol=1e-5, atol=1e-12)


def test_fixed_lower_is_below_fixed_upper(schedule):
    lower = DDPMSampler(SmoothEps(), schedule).compute_posterior_variance(torch.arange(1, T))
    upper = DDPMSampler(SmoothEps(), schedule, variance_type="fixed_upper").compute_posterior_variance(
        torch.arange(1, T))
    assert bool((lower < upper).all())


@pytest.mark.parametrize("t", [1, 50, 300, 700, 999])
def test_clip_form_equals_eps_form_when_x0_hat_inside(schedule, ref, t):
    """Build x_t from an x0 inside (−1, 1) and the true ε: x̂0 = x0, so clipping is a no-op."""
    x0 = randn((4, 1, 4, 4), 5).tanh() * 0.9
    eps = randn(x0.shape, 6)
    a = ref["abar"][t]
    x_t = math.sqrt(a) * x0 + math.sqrt(1 - a) * eps
    plain = DDPMSampler(SmoothEps(), schedule).compute_posterior_mean(x_t, t, eps)
    clipped = DDPMSampler(SmoothEps(), schedule, clip_x0=True).compute_posterior_mean(x_t, t, eps)
    torch.testing.assert_close(clipped, plain, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(plain, ref["coef_x0"][t] * x0 + ref["coef_xt"][t] * x_t, rtol=1e-4, atol=1e-4)


def test_clip_form_clips(schedule, ref):
    t = 600
    x_t, eps = randn((2, 1, 4, 4), 7, 3.0), randn((2, 1, 4, 4), 8)
    x0 = ref_x0_hat(ref, x_t, t, eps)
    assert bool((x0.abs() > 1).any()), "the test needs some x̂0 outside [-1, 1]"
    got = DDPMSampler(SmoothEps(), schedule, clip_x0=True).compute_posterior_mean(x_t, t, eps)
    torch.testing.assert_close(got, ref["coef_x0"][t] * x0.clamp(-1, 1) + ref["coef_xt"][t] * x_t,
                               rtol=1e-5, atol=1e-5)


def test_ddpm_step_adds_sigma_times_noise_and_none_at_t0(schedule, ref):
    model = SmoothEps()
    sampler = DDPMSampler(model, schedule)
    x, z = randn((2, 1, 4, 4), 9), randn((2, 1, 4, 4), 10)
    for t in (500, 1):
        mean = ref_mu_eps(ref, x, t, model(x, t))
        torch.testing.assert_close(sampler.ddpm_step(x, t, noise=z), mean + math.sqrt(ref["beta_tilde"][t]) * z,
                                   rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(sampler.ddpm_step(x, 0, noise=z), ref_mu_eps(ref, x, 0, model(x, 0)),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("variance_type", ["fixed_lower", "fixed_upper"])
def test_ddpm_with_exact_predictor_samples_the_data_distribution(schedule, gen, variance_type):
    """With the exact ε for data N(0, 0.25), 1000 DDPM steps draw from N(0, 0.25) (5 standard errors)."""
    n, var = 5_000, 0.25
    x = DDPMSampler(GaussianEps(var), schedule, variance_type=variance_type).sample((n, 1, 1, 1), generator=gen(3))
    se_mean, se_var = standard_errors(n, var)
    assert abs(x.mean().item()) < 5 * se_mean
    assert abs(x.var().item() - var) < 5 * se_var


# ---------------------------------------------------------------------------------------------
# DDIM update and its relation to DDPM
# ---------------------------------------------------------------------------------------------
def test_predict_x0_and_sigma_formulas(schedule, ref):
    sampler = DDIMSampler(SmoothEps(), schedule)
    x_t, eps = randn((2, 1, 4, 4), 11), randn((2, 1, 4, 4), 12)
    torch.testing.assert_close(sampler.predict_x0_from_eps(x_t, eps, 321), ref_x0_hat(ref, x_t, 321, eps),
                               rtol=1e-5, atol=1e-5)
    a = ref["abar"]
    for t, s, eta in [(999, 899, 1.0), (500, 250, 0.5), (10, 0, 0.3), (1, 0, 1.0)]:
        expected = eta * math.sqrt((1 - a[s]) / (1 - a[t]) * (1 - a[t] / a[s]))
        assert sampler.compute_sigma(t, s, eta).item() == pytest.approx(expected, rel=1e-4)
    assert sampler.compute_sigma(5, -1, 1.0).item() == 0.0  # the last jump, to the clean image, is noise-free
    assert sampler.compute_sigma(500, 100, 0.0).item() == 0.0


@pytest.mark.parametrize("clip", [False, True])
def test_ddim_eta1_full_schedule_is_ddpm_step_by_step(schedule, ref, clip):
    """η = 1, s = t − 1: σ² is β̃_t and the update is DDPM's posterior mean, at every one of the 1000 steps.

    Fresh x_t at each step (not a chain) so every t is checked on O(1) inputs; explicit noise. x_t has
    scale 2 so that, with clipping, many x̂0 leave [-1, 1]. Tolerance: DDIM forms √(1 − ᾱ_s − σ²) from
    float32 ᾱ's, an absolute error of ~1e-7 on a number as small as 5e-5 (t = 1), so its coefficient
    on ε is off by up to ~1e-5 relative to ε; with clipping the recomputed ε reaches ~300 near t = 0.
    Hence atol = 1e-5·max(10, |ε|) (1e-4 for ordinary ε) plus rtol 1e-4, far below the O(0.1) of a
    wrong formula.
    """
    model = SmoothEps()
    ddpm = DDPMSampler(model, schedule, clip_x0=clip)
    ddim = DDIMSampler(model, schedule, clip_x0=clip, recompute_eps=True)
    xs, zs = randn((T, 2, 1, 4, 4), 0, 2.0), randn((T, 2, 1, 4, 4), 1)  # xs[t], zs[t]: input and noise of step t
    zero = torch.zeros_like(xs[0])
    with torch.no_grad():
        sigma = torch.stack([ddim.compute_sigma(t, t - 1, 1.0) for t in range(T)]).double()
        mean_ddim = torch.stack([ddim.ddim_step(xs[t], t, t - 1, eta=1.0, noise=zero) for t in range(T)])
        mean_ddpm = torch.stack([ddpm.compute_posterior_mean(xs[t], t, model(xs[t], t)) for t in range(T)])
        step_ddim = torch.stack([ddim.ddim_step(xs[t], t, t - 1, eta=1.0, noise=zs[t]) for t in range(T)])
        step_ddpm = torch.stack([ddpm.ddpm_step(xs[t], t, noise=zs[t]) for t in range(T)])
    np.testing.assert_allclose(sigma.numpy(), np.sqrt(ref["beta_tilde"]), rtol=1e-3, atol=1e-7)
    # the ε each update uses, written out: the network's, or the one that agrees with the clipped x̂0
    abar = torch.from_numpy(ref["abar"]).reshape(T, 1, 1, 1, 1)
    eps = model(xs.flatten(0, 1), torch.arange(T).repeat_interleave(2)).reshape(xs.shape)
    x0_hat = (xs - (1 - abar).sqrt() * eps) / abar.sqrt()
    if clip:
        eps = (xs - abar.sqrt() * x0_hat.clamp(-1, 1)) / (1 - abar).sqrt()
        assert (x0_hat.abs() > 1).double().mean() > 0.1, "the test needs many x̂0 outside [-1, 1]"
    atol = 1e-5 * eps.flatten(1).abs().max(1).values.clamp(min=10).reshape(T, 1, 1, 1, 1)
    for got, want in ((mean_ddim, mean_ddpm), (step_ddim, step_ddpm)):
        bad = ((got - want).abs() > atol + 1e-4 * want.abs()).flatten(1).any(1)
        assert not bool(bad.any()), f"steps that disagree: {bad.nonzero().flatten().tolist()[:10]}"


def test_ddim_clipping_without_recomputed_eps_is_not_ddpm(schedule):
    """The check above can fail: DDIM keeps the raw ε after clipping unless recompute_eps is set."""
    model = SmoothEps()
    ddpm = DDPMSampler(model, schedule, clip_x0=True)
    ddim = DDIMSampler(model, schedule, clip_x0=True, recompute_eps=False)
    x, t = randn((2, 1, 4, 4), 1, 3.0), 300
    zero = torch.zeros_like(x)
    assert not torch.allclose(ddim.ddim_step(x, t, t - 1, eta=1.0, noise=zero),
                              ddpm.compute_posterior_mean(x, t, model(x, t)), atol=1e-3)


@pytest.mark.parametrize("clip", [False, True])
def test_ddpm_on_respaced_schedule_is_ddim_eta1(schedule, tiny_model, gen, clip):
    """DDPM on schedule.respace(ts) jumps between the same noise levels as DDIM on ts with η = 1:
    same σ, same means, same noise order from the same generator, so the same samples."""
    ts = timestep_schedule(T, 10, "uniform")
    ddpm = DDPMSampler(tiny_model, schedule.respace(ts), clip_x0=clip)
    ddim = DDIMSampler(tiny_model, schedule, clip_x0=clip, recompute_eps=True)
    a = ddpm.sample(IMG, generator=gen(5))
    b = ddim.sample(IMG, timesteps=ts, eta=1.0, generator=gen(5))
    scale = a.abs().max().item()
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4 * max(1.0, scale))
    # and η matters: a different η gives a different sample from the same generator
    c = ddim.sample(IMG, timesteps=ts, eta=0.5, generator=gen(5))
    assert not torch.allclose(a, c, rtol=1e-3, atol=1e-3)


def test_ddim_eta0_is_deterministic(schedule, tiny_model, gen):
    sampler = DDIMSampler(tiny_model, schedule)
    x_T = randn(IMG, 13)
    a = sampler.sample(IMG, x_T=x_T, num_steps=5, generator=gen(1))
    b = DDIMSampler(tiny_model, schedule).sample(IMG, x_T=x_T.clone(), num_steps=5, generator=gen(2))
    assert torch.equal(a, b)
    # η > 0 with different generators gives different samples from the same x_T
    c = sampler.sample(IMG, x_T=x_T, num_steps=5, eta=1.0, generator=gen(1))
    d = sampler.sample(IMG, x_T=x_T, num_steps=5, eta=1.0, generator=gen(2))
    assert not torch.allclose(c, d)


def test_seed_001_hand_walked_ddim_trajectory():
    """Seed 001: ᾱ = 0.01, 0.30, 0.70 at three steps, x = 2.0, predicted ε = 1.8, 1.4, 0.5.

    The sheet prints x̂0 = 2.09, x = 2.651, x̂0 = 2.70, x = 3.027, final 3.29. It rounds as it goes
    (√0.99 to 0.995, and it restarts step 2 from 2.65, step 3 from 3.03), so its numbers carry errors
    of a few thousandths: tolerance 0.005.
    """
    # betas chosen so that cumprod(1 − β) = (0.70, 0.30, 0.01) at t = 0, 1, 2
    abar = [0.70, 0.30, 0.01]
    betas = torch.tensor([1 - abar[0], 1 - abar[1] / abar[0], 1 - abar[2] / abar[1]], dtype=torch.float64)
    sched = NoiseSchedule(betas)
    np.testing.assert_allclose(sched.alphas_cumprod.double().numpy(), abar, rtol=1e-6)
    sampler = DDIMSampler(ConstantEps({2: 1.8, 1: 1.4, 0: 0.5}), sched)
    x_T = torch.full((1, 1, 1, 1), 2.0, dtype=torch.float64)
    out, traj = sampler.sample(x_T.shape, timesteps=[2, 1, 0], x_T=x_T, return_trajectory=True, record_every=1)
    assert traj.steps == [2, 1, 0]
    x0_hats = [v.item() for v in traj.x0_hat]
    states = [v.item() for v in traj.x_t]
    assert x0_hats == pytest.approx([2.09, 2.70, 3.29], abs=5e-3)
    assert states == pytest.approx([2.0, 2.651, 3.027], abs=5e-3)
    assert out.item() == pytest.approx(3.29, abs=5e-3)
    # one step at a time through the Lab 5 method gives the same numbers
    x = sampler.ddim_step(x_T, 2, 1)
    assert x.item() == pytest.approx(2.651, abs=5e-3)
    x = sampler.ddim_step(x, 1, 0)
    assert x.item() == pytest.approx(3.027, abs=5e-3)
    assert sampler.ddim_step(x, 0, -1).item() == pytest.approx(3.29, abs=5e-3)


# ---------------------------------------------------------------------------------------------
# Timestep schedules
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("schedule_type", SCHEDULE_TYPES)
@pytest.mark.parametrize("n", [1, 2, 3, 7, 10, 50, 333, 999, 1000])
def test_timestep_schedules(schedule_type, n):
    ts = timestep_schedule(T, n, schedule_type)
    assert ts.dtype == torch.int64 and ts.shape == (n,)
    assert int(ts.min()) >= 0 and int(ts.max()) < T
    assert bool((ts[1:] < ts[:-1]).all()), "strictly decreasing"
    if n == 1:  # a single jump must start from pure noise, whatever the spacing rule
        assert ts.tolist() == [T - 1]
        return
    if schedule_type in ("uniform", "linspace"):
        assert ts[0] == T - 1 and ts[-1] == 0
    if schedule_type == "trailing":
        assert ts[0] == T - 1
    if schedule_type == "leading":
        assert ts[-1] == 0
        assert bool((ts % (T // n) == 0).all())
    if schedule_type == "quadratic":
        assert ts[0] == T - 1 and ts[-1] == 0
        gaps = (ts[:-1] - ts[1:]).tolist()  # denser near t = 0: gaps shrink towards the end
        assert gaps[-1] <= gaps[0]
    if n == T:
        assert ts.tolist() == list(range(T - 1, -1, -1))


def test_sampler_create_timestep_schedule_matches_function(schedule):
    sampler = DDIMSampler(SmoothEps(), schedule)
    assert torch.equal(sampler.create_timestep_schedule(25, "trailing"), timestep_schedule(T, 25, "trailing"))


# ---------------------------------------------------------------------------------------------
# Randomness, x_T, trajectories
# ---------------------------------------------------------------------------------------------
def sampler_run(which, tiny_model, schedule):
    """(sampler, run): short runs of either sampler; DDPM on a 10-step respaced schedule, DDIM with η = 0.5."""
    if which == "ddpm":
        sampler = DDPMSampler(tiny_model, schedule.respace(timestep_schedule(T, 10)))
        return sampler, lambda **kw: sampler.sample(IMG, **kw)
    sampler = DDIMSampler(tiny_model, schedule)
    return sampler, lambda **kw: sampler.sample(IMG, num_steps=6, eta=0.5, **kw)


@pytest.mark.parametrize("which", ["ddpm", "ddim"])
def test_same_seed_bit_identical_different_seed_different(schedule, tiny_model, gen, which):
    _, run = sampler_run(which, tiny_model, schedule)
    a, b, c = run(generator=gen(7)), run(generator=gen(7)), run(generator=gen(8))
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)
    assert a.shape == IMG and a.dtype == torch.float64


@pytest.mark.parametrize("which", ["ddpm", "ddim"])
def test_sample_starts_from_given_x_T(schedule, tiny_model, gen, which):
    sampler, run = sampler_run(which, tiny_model, schedule)
    x_T = randn(IMG, 21)
    out, traj = run(x_T=x_T, generator=gen(1), return_trajectory=True)
    assert torch.equal(traj.x_t[0], x_T)
    assert not torch.allclose(out, run(x_T=randn(IMG, 22), generator=gen(1)))
    # without x_T the first draw of the generator is x_T, and the rest is the per-step noise
    g = gen(4)
    x_T = sampler.randn(IMG, g)
    torch.testing.assert_close(run(x_T=x_T, generator=g), run(generator=gen(4)), rtol=0, atol=0)


def test_ddim_trajectory_records_x_t_and_x0_hat(schedule, tiny_model):
    sampler = DDIMSampler(tiny_model, schedule)
    x_T = randn(IMG, 22)
    ts = timestep_schedule(T, 8)
    out, traj = sampler.sample(IMG, timesteps=ts, x_T=x_T, return_trajectory=True, record_every=3)
    idx = [0, 3, 6, 7]  # every third loop index, plus the last
    assert traj.steps == [int(ts[i]) for i in idx]
    assert len(traj.x_t) == len(traj.x0_hat) == len(idx)
    with torch.no_grad():
        for step, x_t, x0_hat in zip(traj.steps, traj.x_t, traj.x0_hat):
            a = schedule.alphas_cumprod.double()[step]
            eps = tiny_model(x_t, step)
            torch.testing.assert_close(x0_hat, (x_t - (1 - a).sqrt() * eps) / a.sqrt(), rtol=1e-5, atol=1e-5)
    # the last DDIM jump lands on x̂0 of the last recorded step
    torch.testing.assert_close(out, traj.x0_hat[-1], rtol=0, atol=0)
    torch.testing.assert_close(sampler.sample(IMG, timesteps=ts, x_T=x_T), out, rtol=0, atol=0)


def test_ddpm_trajectory_reports_training_timesteps(schedule, tiny_model, gen):
    ts = timestep_schedule(T, 10)
    out, traj = DDPMSampler(tiny_model, schedule.respace(ts)).sample(IMG, return_trajectory=True, record_every=1,
                                                                     generator=gen(0))
    assert traj.steps == ts.tolist()
    assert len(traj.x_t) == 10 and traj.x_t[0].shape == IMG


# ---------------------------------------------------------------------------------------------
# Inversion
# ---------------------------------------------------------------------------------------------
def test_inversion_round_trip_with_exact_predictor(schedule):
    """With the exact ε of Gaussian data the only error is the discretisation, which is first order:
    10x the steps, about 10x smaller error (measured 0.71, 0.083, 0.0089 for 10, 100, 1000 steps).
    The inverted x_T follows the probability-flow map of N(0, v): x_T = x0·√((ᾱ_T·v + 1 − ᾱ_T)/v)."""
    var = 0.25
    sampler = DDIMSampler(GaussianEps(var), schedule)
    x0 = randn((4, 1, 4, 4), 30, math.sqrt(var))
    errs = {}
    for n in (100, 1000):
        x_T = sampler.invert(x0, num_steps=n)
        errs[n] = (sampler.sample(x0.shape, num_steps=n, x_T=x_T) - x0).abs().max().item()
    assert errs[1000] < 0.02
    assert errs[1000] < errs[100] / 5
    a = schedule.alphas_cumprod.double()[T - 1]
    flow = x0 * ((a * var + 1 - a) / var).sqrt()
    torch.testing.assert_close(x_T, flow, rtol=0, atol=0.02)


def test_inversion_round_trip_tiny_model(schedule, tiny_model):
    """Tiny random U-Net, inverting up to t = 300 (ᾱ ≈ 0.4) with 50 steps: max error < 0.05.

    Why not to t = 999: an untrained ε is not the score of anything, and x̂0 = (x − √(1−ᾱ)ε)/√ᾱ
    multiplies its errors by 1/√ᾱ_999 ≈ 160 (measured round-trip errors of 6 to 30 there). Up to t = 300
    the error comes from using ε(x_t) in place of ε(x_{t'}) over each step, so it shrinks with the step
    size until the network's own jitter in t dominates (measured 0.08 at 10 steps, 0.017 at 50)."""
    x0 = randn(IMG, 31).tanh() * 0.8
    sampler = DDIMSampler(tiny_model, schedule)
    errs = {}
    for n in (10, 50):
        ts = torch.linspace(300, 0, n).round().long()
        x_T = sampler.invert(x0, timesteps=ts)
        assert x_T.shape == x0.shape
        errs[n] = (sampler.sample(IMG, timesteps=ts, x_T=x_T) - x0).abs().max().item()
    assert errs[50] < 0.05
    assert errs[50] < errs[10] / 2


# ---------------------------------------------------------------------------------------------
# Bad inputs
# ---------------------------------------------------------------------------------------------
@pytest.fixture
def ddim(schedule):
    return DDIMSampler(SmoothEps(), schedule)


@pytest.fixture
def ddpm(schedule):
    return DDPMSampler(SmoothEps(), schedule)


def test_eta_negative(ddim):
    x = torch.zeros(1, 1, 2, 2, dtype=torch.float64)
    for call in (lambda: ddim.ddim_step(x, 10, 5, eta=-0.5), lambda: ddim.sample(x.shape, eta=-0.5, num_steps=2),
                 lambda: ddim.compute_sigma(10, 5, -0.1)):
        with pytest.raises(ValueError, match="eta must be >= 0"):
            call()


@pytest.mark.parametrize("n", [0, -3, 1001])
def test_num_steps_out_of_range(ddim, n):
    with pytest.raises(ValueError, match=r"num_steps must lie in \[1, 1000\]"):
        ddim.create_timestep_schedule(n)
    with pytest.raises(ValueError, match="num_steps"):
        ddim.sample((1, 1, 2, 2), num_steps=n)


def test_num_steps_not_int(ddim):
    with pytest.raises(TypeError, match="num_steps must be an int"):
        timestep_schedule(T, 10.0)


def test_unknown_schedule_type(ddim):
    with pytest.raises(ValueError, match="schedule_type must be one of"):
        ddim.create_timestep_schedule(10, "cubic")


@pytest.mark.parametrize("ts,msg", [([5, 5, 1], "strictly decreasing"), ([1, 5, 9], "strictly decreasing"),
                                    ([1000, 5], r"timesteps must lie in \[0, 1000\)"),
                                    ([5, -2], r"timesteps must lie in \[0, 1000\)"), ([], "timesteps must not be empty")])
def test_bad_timesteps(ddim, ts, msg):
    with pytest.raises(ValueError, match=msg):
        ddim.sample((1, 1, 2, 2), timesteps=ts)
    if ts:
        with pytest.raises(ValueError, match=msg):
            ddim.invert(torch.zeros(1, 1, 2, 2, dtype=torch.float64), timesteps=ts)


def test_unknown_variance_type(schedule):
    with pytest.raises(ValueError, match="variance_type must be one of"):
        DDPMSampler(SmoothEps(), schedule, variance_type="learned")


def test_schedule_must_be_a_noise_schedule():
    with pytest.raises(TypeError, match="schedule must be a labsupport NoiseSchedule"):
        DDIMSampler(SmoothEps(), torch.linspace(1e-4, 0.02, 10))


@pytest.mark.parametrize("t", [-1, 1000])
def test_ddpm_t_out_of_range(ddpm, t):
    x = torch.zeros(1, 1, 2, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"t must lie in \[0, 1000\)"):
        ddpm.ddpm_step(x, t)
    with pytest.raises(ValueError, match=r"t must lie in \[0, 1000\)"):
        ddpm.compute_posterior_variance(t)
    with pytest.raises(ValueError, match=r"t must lie in \[0, 1000\)"):
        ddpm.compute_posterior_mean(x, t, x)


def test_ddpm_step_t_must_be_int(ddpm):
    with pytest.raises(TypeError, match="t must be a Python int"):
        ddpm.ddpm_step(torch.zeros(1, 1, 2, 2, dtype=torch.float64), torch.tensor([5]))


@pytest.mark.parametrize("t,s", [(1000, 5), (5, 5), (5, 7), (5, -2)])
def test_ddim_step_bad_t_or_s(ddim, t, s):
    with pytest.raises(ValueError, match=r"need -1 <= s < t < 1000"):
        ddim.ddim_step(torch.zeros(1, 1, 2, 2, dtype=torch.float64), t, s)


@pytest.mark.parametrize("shape", [(2, 1, 8), (0, 1, 8, 8), (2, 1, 8, 8, 1)])
def test_bad_sample_shape(ddim, ddpm, shape):
    for sampler in (ddim, ddpm):
        with pytest.raises(ValueError, match=r"shape must be \(B, C, H, W\)"):
            sampler.sample(shape)


def test_x_T_of_wrong_shape(ddim, ddpm):
    for sampler in (ddim, ddpm):
        with pytest.raises(ValueError, match="x_T must have shape"):
            sampler.sample((2, 1, 4, 4), x_T=torch.zeros(3, 1, 4, 4))
