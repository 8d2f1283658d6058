"""labsupport.maths.forward: q(x_t | x_0) in closed form, and the one-step chain that it summarises.

Statistical checks use 5 standard errors: for n Gaussian draws of variance v, the sample mean has
standard error √(v/n) and the sample variance v·√(2/(n−1)); a correct implementation fails a 5-SE
check with probability below 1e-6 per statistic, and the seeds are fixed anyway.
"""
import math

import numpy as np
import pytest
import torch

from conftest import standard_errors
from labsupport.maths.forward import q_mean_variance, q_sample, q_step

N = 20_000
X0_VALUES = torch.tensor([-0.8, 0.0, 0.3, 1.0], dtype=torch.float64)


def batch_of_x0() -> torch.Tensor:
    return X0_VALUES.repeat(N, 1)  # (N, 4): each column is one pixel value, N draws of it


def check_moments(x_t: torch.Tensor, abar: float):
    """Per column: sample mean ≈ √ᾱ·x0 and sample variance ≈ 1 − ᾱ within 5 standard errors."""
    var = 1 - abar
    se_mean, se_var = standard_errors(x_t.shape[0], var)
    mean_err = (x_t.mean(0) - math.sqrt(abar) * X0_VALUES).abs()
    var_err = (x_t.var(0) - var).abs()
    assert bool((mean_err < 5 * se_mean).all()), (mean_err / se_mean).tolist()
    assert bool((var_err < 5 * se_var).all()), (var_err / se_var).tolist()


@pytest.mark.parametrize("t", [0, 10, 250, 999])
def test_q_sample_matches_closed_form_moments(schedule, ref, gen, t):
    x_t = q_sample(schedule, batch_of_x0(), t, generator=gen(t))
    check_moments(x_t, ref["abar"][t])


def test_q_sample_batch_t_uses_each_rows_step(schedule, ref):
    x0 = torch.randn(3, 1, 4, 4, dtype=torch.float64)
    noise = torch.randn_like(x0)
    t = torch.tensor([0, 500, 999])
    out = q_sample(schedule, x0, t, noise)
    for b, tb in enumerate(t.tolist()):
        a = ref["abar"][tb]
        expected = math.sqrt(a) * x0[b] + math.sqrt(1 - a) * noise[b]
        torch.testing.assert_close(out[b], expected, rtol=1e-6, atol=1e-7)
    # an int t equals the same t for every row
    torch.testing.assert_close(q_sample(schedule, x0, 500, noise),
                               q_sample(schedule, x0, torch.full((3,), 500), noise))


def test_q_sample_follows_dtype(schedule):
    x0 = torch.zeros(2, 1, 4, 4, dtype=torch.float64)
    assert q_sample(schedule, x0, 3).dtype == torch.float64
    assert q_sample(schedule, x0.float(), 3).dtype == torch.float32


def test_q_mean_variance(schedule, ref):
    x0 = torch.randn(2, 1, 3, 3, dtype=torch.float64)
    mean, var = q_mean_variance(schedule, x0, 123)
    a = ref["abar"][123]
    torch.testing.assert_close(mean, math.sqrt(a) * x0, rtol=1e-6, atol=1e-8)
    assert var.item() == pytest.approx(1 - a, rel=1e-6)


def test_q_sample_with_generator_is_reproducible(schedule, gen):
    x0 = torch.zeros(2, 1, 4, 4)
    assert torch.equal(q_sample(schedule, x0, 5, generator=gen(1)), q_sample(schedule, x0, 5, generator=gen(1)))
    assert not torch.equal(q_sample(schedule, x0, 5, generator=gen(1)), q_sample(schedule, x0, 5, generator=gen(2)))


@pytest.mark.parametrize("t", [0, 49])
def test_iterated_q_step_agrees_with_closed_form(schedule, ref, gen, t):
    """Steps 0..t of x_t = √α_t·x_{t−1} + √β_t·ε, from the clean image, give q(x_t | x_0)."""
    g = gen(100 + t)
    x = batch_of_x0()
    for k in range(t + 1):
        x = q_step(schedule, x, k, generator=g)
    check_moments(x, ref["abar"][t])


def test_q_step_explicit_noise(schedule, ref):
    x = torch.randn(2, 1, 4, 4, dtype=torch.float64)
    z = torch.randn_like(x)
    b = ref["betas"][300]
    torch.testing.assert_close(q_step(schedule, x, 300, z), math.sqrt(1 - b) * x + math.sqrt(b) * z,
                               rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("fn", [q_sample, q_step])
@pytest.mark.parametrize("t", [-1, 1000, torch.tensor([3, 1000])])
def test_t_out_of_range(schedule, fn, t):
    x = torch.zeros(2, 1, 4, 4)
    with pytest.raises(ValueError, match=r"t must lie in \[0, 1000\)"):
        fn(schedule, x, t)


@pytest.mark.parametrize("fn", [q_sample, q_step])
def test_noise_of_wrong_shape(schedule, fn):
    x = torch.zeros(2, 1, 4, 4)
    with pytest.raises(ValueError, match="noise must have the shape"):
        fn(schedule, x, 5, torch.zeros(1, 1, 4, 4))  # would broadcast silently: same noise for every sample


@pytest.mark.parametrize("fn", [q_sample, q_step])
def test_t_batch_must_match_x(schedule, fn):
    x = torch.zeros(2, 1, 4, 4)
    with pytest.raises(ValueError, match="t must"):
        fn(schedule, x, torch.tensor([1, 2, 3]))
