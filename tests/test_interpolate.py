"""labsupport.maths.interpolate.slerp: endpoints, the great circle, and why it beats a straight line for noise."""
import math

import pytest
import torch

from labsupport.maths.interpolate import slerp


def gaussians(shape=(4, 1, 28, 28), seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g, dtype=torch.float64), torch.randn(shape, generator=g, dtype=torch.float64)


def test_endpoints():
    z0, z1 = gaussians()
    torch.testing.assert_close(slerp(z0, z1, 0.0), z0, rtol=0, atol=1e-12)
    torch.testing.assert_close(slerp(z0, z1, 1.0), z1, rtol=0, atol=1e-12)
    assert slerp(z0, z1, 0.3).shape == z0.shape


def test_orthogonal_unit_vectors_trace_the_circle():
    """For orthonormal e0, e1 the great circle is cos(απ/2)·e0 + sin(απ/2)·e1: norm 1 everywhere."""
    e0 = torch.tensor([[1.0, 0.0, 0.0]], dtype=torch.float64)
    e1 = torch.tensor([[0.0, 1.0, 0.0]], dtype=torch.float64)
    for a in (0.1, 0.25, 0.5, 0.9):
        expected = math.cos(a * math.pi / 2) * e0 + math.sin(a * math.pi / 2) * e1
        torch.testing.assert_close(slerp(e0, e1, a), expected, rtol=0, atol=1e-12)


def test_norm_preserved_for_gaussian_noise():
    """Independent Gaussians in 784 dimensions are nearly orthogonal with nearly equal norms (≈ √784 = 28),
    so slerp stays at that norm, while a straight line dips to ≈ 28/√2 at the middle: a sample far
    from the shell where x_T lives (seed 000's reason for slerp)."""
    z0, z1 = gaussians()
    d = z0[0].numel()
    n0, n1 = z0.flatten(1).norm(dim=1), z1.flatten(1).norm(dim=1)
    for a in (0.25, 0.5, 0.75):
        n = slerp(z0, z1, a).flatten(1).norm(dim=1)
        assert bool(((n - math.sqrt(d)).abs() < 0.1 * math.sqrt(d)).all())
        # between the two endpoint norms up to the small non-orthogonality
        assert bool((n > 0.95 * torch.minimum(n0, n1)).all() and (n < 1.05 * torch.maximum(n0, n1)).all())
    lerp_mid = (0.5 * z0 + 0.5 * z1).flatten(1).norm(dim=1)
    assert bool((lerp_mid < 0.8 * math.sqrt(d)).all())


def test_each_sample_gets_its_own_angle():
    z0, z1 = gaussians((3, 1, 4, 4), seed=1)
    batched = slerp(z0, z1, 0.4)
    for b in range(3):
        torch.testing.assert_close(batched[b:b + 1], slerp(z0[b:b + 1], z1[b:b + 1], 0.4), rtol=1e-12, atol=1e-12)


def test_parallel_vectors_fall_back_to_a_line():
    z = torch.randn(2, 5, dtype=torch.float64)
    out = slerp(z, 2 * z, 0.5)  # angle 0: the formula would divide by sin 0
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, 1.5 * z)


def test_shapes_must_match():
    with pytest.raises(ValueError, match="z0 and z1 must have the same shape"):
        slerp(torch.zeros(2, 4), torch.zeros(3, 4), 0.5)
