"""labsupport.lab5.sampling_optimizer: the DDIM loop over precomputed coefficients gives DDIMSampler's samples,
the coefficient table is the closed form, and chunked generation does not depend on the chunk size (notebook 06)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from labsupport.lab5.sampling_optimizer import SamplingOptimizer, ddim_coefficient_table
from labsupport.samplers import DDIMSampler, timestep_schedule
from labsupport.teaching.checks.cases import CallCounter, ToyCondEpsModel, short_schedule, toy_model
from labsupport.tools.generation import bytes_per_sample, sample_generators

SHAPE = (3, 1, 5, 5)
IMAGE = (1, 5, 5)


def short_abar():
    """short_schedule()'s ᾱ from its definition (30 betas from 1e-3 to 0.3), float64."""
    return np.cumprod(1 - np.linspace(1e-3, 0.3, 30))


@pytest.fixture
def parts():
    s = short_schedule()
    return SamplingOptimizer(toy_model(), s), DDIMSampler(toy_model(), s)


@pytest.mark.parametrize("num_steps", [1, 4, 10, 30])
def test_cached_loop_equals_ddim_sample_eta0(parts, gen, num_steps):
    opt, ddim = parts
    x_T = torch.randn(SHAPE, generator=gen(0))
    cached = opt.cached_noise_schedule_sampling(ddim, SHAPE, num_steps, x_T=x_T)
    torch.testing.assert_close(cached, ddim.sample(SHAPE, num_steps=num_steps, x_T=x_T, progress=False))


@pytest.mark.parametrize("eta", [0.5, 1.0])
def test_cached_loop_equals_ddim_sample_with_noise(parts, gen, eta):
    opt, ddim = parts
    x_T = torch.randn(SHAPE, generator=gen(0))
    cached = opt.cached_noise_schedule_sampling(ddim, SHAPE, 8, eta=eta, x_T=x_T, generator=gen(3))
    reference = ddim.sample(SHAPE, num_steps=8, eta=eta, x_T=x_T, generator=gen(3), progress=False)
    torch.testing.assert_close(cached, reference)
    # the noise matters: another seed moves the sample, η = 0 differs too
    assert not torch.allclose(cached, opt.cached_noise_schedule_sampling(ddim, SHAPE, 8, eta=eta, x_T=x_T,
                                                                         generator=gen(4)))
    assert not torch.allclose(cached, opt.cached_noise_schedule_sampling(ddim, SHAPE, 8, x_T=x_T))


def test_cached_loop_draws_x_T_from_the_generator(parts, gen):
    opt, ddim = parts
    a = opt.cached_noise_schedule_sampling(ddim, SHAPE, 5, generator=gen(9))
    b = ddim.sample(SHAPE, num_steps=5, generator=gen(9), progress=False)
    torch.testing.assert_close(a, b)


def test_cached_loop_calls_the_network_once_per_step():
    model = CallCounter(toy_model())
    s = short_schedule()
    SamplingOptimizer(model, s).cached_noise_schedule_sampling(DDIMSampler(model, s), SHAPE, 7,
                                                               generator=torch.Generator().manual_seed(0))
    assert model.batches == [SHAPE[0]] * 7


@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
def test_coefficient_table_rows_are_the_closed_form(parts, eta):
    """Row i: [1/√ᾱ_t, √(1−ᾱ_t), √ᾱ_s, √(1−ᾱ_s−σ²), σ] for t_i → s_i, s of the last row = −1 (ᾱ = 1)."""
    _, ddim = parts
    abar = short_abar()
    ts = timestep_schedule(30, 6)
    table = ddim_coefficient_table(ddim, ts, eta)
    assert isinstance(table, list) and len(table) == 6 and all(len(row) == 5 for row in table)
    assert all(isinstance(v, float) for row in table for v in row)
    targets = ts.tolist()[1:] + [-1]
    for row, t, s in zip(table, ts.tolist(), targets):
        a_t, a_s = abar[t], (1.0 if s == -1 else abar[s])
        sigma = eta * math.sqrt((1 - a_s) / (1 - a_t) * (1 - a_t / a_s))
        expected = [1 / math.sqrt(a_t), math.sqrt(1 - a_t), math.sqrt(a_s), math.sqrt(1 - a_s - sigma ** 2), sigma]
        np.testing.assert_allclose(row, expected, rtol=1e-5, atol=1e-6)
    assert table[-1][2:] == pytest.approx([1.0, 0.0, 0.0], abs=1e-7)  # the last jump lands on x̂0


def test_coefficient_table_step_reproduces_the_ddim_update(parts, gen):
    """x̂0 = (x − √(1−ᾱ_t)ε)·(1/√ᾱ_t), x_s = √ᾱ_s·x̂0 + √(1−ᾱ_s−σ²)·ε + σ·z from one row is the sampler's step."""
    _, ddim = parts
    ts = timestep_schedule(30, 5)
    table = ddim_coefficient_table(ddim, ts, 0.5)
    x = torch.randn(SHAPE, generator=gen(1))
    for row, t, s in zip(table, ts.tolist(), ts.tolist()[1:] + [-1]):
        eps = toy_model()(x, t)
        z = torch.randn(SHAPE, generator=gen(t))
        inv_sqrt_a_t, sqrt_1m_a_t, sqrt_a_s, direction, sigma = row
        x0_hat = (x - sqrt_1m_a_t * eps) * inv_sqrt_a_t
        by_hand = sqrt_a_s * x0_hat + direction * eps + (sigma * z if s >= 0 else 0)
        x_next = ddim.ddim_step(x, t, s, 0.5, noise=z)
        torch.testing.assert_close(by_hand, x_next, rtol=1e-5, atol=1e-5)
        x = x_next


@pytest.mark.parametrize("eta", [0.0, 0.5])
def test_batch_sampling_does_not_depend_on_the_chunk_size(parts, eta):
    opt, _ = parts
    runs = [opt.batch_sampling_with_memory_management(7, b, num_steps=6, eta=eta, seed=3, image_shape=IMAGE)
            for b in (1, 3, 7, 50)]
    assert runs[0].shape == (7, *IMAGE) and runs[0].device.type == "cpu"
    for other in runs[1:]:
        torch.testing.assert_close(other, runs[0], rtol=1e-5, atol=1e-5)
    # distinct samples, and another seed gives other samples
    assert not torch.allclose(runs[0][0], runs[0][1])
    assert not torch.allclose(runs[0], opt.batch_sampling_with_memory_management(7, 3, num_steps=6, eta=eta, seed=4,
                                                                                 image_shape=IMAGE))


def test_sample_i_comes_from_its_own_generator(parts):
    opt, ddim = parts
    out = opt.batch_sampling_with_memory_management(5, 2, num_steps=6, eta=0.5, seed=11, image_shape=IMAGE)
    alone = ddim.sample((1, *IMAGE), num_steps=6, eta=0.5, generator=sample_generators(11, [3]), progress=False)
    torch.testing.assert_close(out[3:4], alone, rtol=1e-5, atol=1e-5)


def test_memory_budget_lowers_the_chunk():
    model = CallCounter(toy_model())
    opt = SamplingOptimizer(model, short_schedule())
    per_sample = bytes_per_sample(model, IMAGE)
    model.batches.clear()
    out = opt.batch_sampling_with_memory_management(5, 4, num_steps=3, image_shape=IMAGE, memory_budget=2 * per_sample)
    # one probe forward of 1 sample measures the memory, then chunks of 2, 2, 1: the budget's 2 < batch_size 4
    assert model.batches == [1] + [2] * 3 + [2] * 3 + [1] * 3
    model.batches.clear()
    again = opt.batch_sampling_with_memory_management(5, 1, num_steps=3, image_shape=IMAGE,
                                                      memory_budget=100 * per_sample)
    assert model.batches == [1] + [1] * 15  # the probe, then batch_size 1 stays the limit under a large budget
    torch.testing.assert_close(again, out, rtol=1e-5, atol=1e-5)


def test_guided_batch_sampling_does_not_depend_on_the_chunk_size():
    opt = SamplingOptimizer(ToyCondEpsModel().eval(), short_schedule())
    y = torch.tensor([0, 3, 7, 9, 1])
    a = opt.batch_sampling_with_memory_management(5, 2, num_steps=5, image_shape=IMAGE, y=y, guidance_scale=3.0)
    b = opt.batch_sampling_with_memory_management(5, 5, num_steps=5, image_shape=IMAGE, y=y, guidance_scale=3.0)
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    c = opt.batch_sampling_with_memory_management(5, 5, num_steps=5, image_shape=IMAGE, y=y.flip(0),
                                                  guidance_scale=3.0)
    assert not torch.allclose(a, c)  # the labels steer the samples


@pytest.mark.parametrize("total,batch", [(0, 2), (3, 0), (-1, 1)])
def test_batch_sampling_rejects_bad_sizes(parts, total, batch):
    opt, _ = parts
    with pytest.raises(ValueError, match="total_samples and batch_size must be at least 1"):
        opt.batch_sampling_with_memory_management(total, batch, num_steps=2, image_shape=IMAGE)
