"""labsupport.samplers.guidance: the classifier-free guidance blend (seed 001), its batched evaluation, label checks."""
import pytest
import torch

from conftest import IMG
from labsupport.maths.guidance import cfg_blend
from labsupport.samplers.guidance import check_labels, guided_eps
from labsupport.samplers import DDIMSampler, DDPMSampler


def x_of(seed=0):
    return torch.randn(IMG, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.mark.parametrize("w,expected", [(1.0, 1.0), (5.0, 2.6), (15.0, 6.6)])
def test_seed_001_guidance_numbers(w, expected):
    """ε_c = 1.0, ε_u = 0.6: the sheet's guided predictions at scales 1, 5 and 15."""
    assert cfg_blend(1.0, 0.6, w) == pytest.approx(expected, abs=1e-12)
    got = cfg_blend(torch.tensor([1.0], dtype=torch.float64), torch.tensor([0.6], dtype=torch.float64), w)
    assert got.item() == pytest.approx(expected, abs=1e-12)


def test_blend_is_an_affine_combination():
    c, u = x_of(1), x_of(2)
    for w in (0.0, 0.5, 1.0, 3.0, -1.0):
        torch.testing.assert_close(cfg_blend(c, u, w), (1 - w) * u + w * c)


@pytest.mark.parametrize("t", [500, torch.tensor([3, 900])])
@pytest.mark.parametrize("w", [3.0, 7.5, -0.5])
def test_batched_equals_two_separate_forwards(tiny_model, t, w):
    x, y = x_of(3), torch.tensor([2, 7])
    null = torch.full((2,), 10)
    with torch.no_grad():
        eps_c, eps_u = tiny_model(x, t, y), tiny_model(x, t, null)
        expected = eps_u + w * (eps_c - eps_u)
        torch.testing.assert_close(guided_eps(tiny_model, x, t, y, w), expected, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(guided_eps(tiny_model, x, t, y, w, batched=False), expected, rtol=1e-10,
                                   atol=1e-12)


def test_scale_0_is_unconditional_and_1_is_conditional(tiny_model):
    x, y, t = x_of(4), torch.tensor([1, 5]), 250
    with torch.no_grad():
        torch.testing.assert_close(guided_eps(tiny_model, x, t, y, 0.0), tiny_model(x, t), rtol=0, atol=0)
        torch.testing.assert_close(guided_eps(tiny_model, x, t, y, 1.0), tiny_model(x, t, y), rtol=0, atol=0)
        torch.testing.assert_close(guided_eps(tiny_model, x, t, y, None), tiny_model(x, t, y), rtol=0, atol=0)
        # the two ends are different predictions, so the checks above can tell them apart
        assert not torch.allclose(tiny_model(x, t), tiny_model(x, t, y))


def test_guided_sampling_at_scales_0_and_1(schedule, tiny_model, gen):
    sampler = DDIMSampler(tiny_model, schedule)
    y = torch.tensor([0, 9])
    run = lambda **kw: sampler.sample(IMG, num_steps=4, eta=0.5, generator=gen(11), **kw)
    torch.testing.assert_close(run(y=y, guidance_scale=1.0), run(y=y), rtol=0, atol=0)
    torch.testing.assert_close(run(y=y, guidance_scale=0.0), run(), rtol=0, atol=0)
    assert not torch.allclose(run(y=y, guidance_scale=4.0), run(y=y))


def test_guided_ddim_step_uses_the_blend(schedule, tiny_model):
    """One guided DDIM step equals the η = 0 update written out with the blended ε."""
    sampler = DDIMSampler(tiny_model, schedule)
    x, y, t, s, w = x_of(5), torch.tensor([4, 4]), 700, 500, 3.0
    abar = schedule.alphas_cumprod.double()
    with torch.no_grad():
        eps_c, eps_u = tiny_model(x, t, y), tiny_model(x, t)
        eps = eps_u + w * (eps_c - eps_u)
    x0 = (x - (1 - abar[t]).sqrt() * eps) / abar[t].sqrt()
    expected = abar[s].sqrt() * x0 + (1 - abar[s]).sqrt() * eps
    torch.testing.assert_close(sampler.ddim_step(x, t, s, y=y, guidance_scale=w), expected, rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------------------------
# Bad inputs
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", [DDIMSampler, DDPMSampler])
def test_guidance_scale_without_labels(schedule, tiny_model, cls):
    with pytest.raises(ValueError, match=r"guidance_scale=3.0 needs class labels"):
        cls(tiny_model, schedule).sample(IMG, guidance_scale=3.0)
    with pytest.raises(ValueError, match=r"guidance_scale=3.0 needs class labels"):
        guided_eps(tiny_model, x_of(), 5, None, 3.0)


@pytest.mark.parametrize("cls", [DDIMSampler, DDPMSampler])
@pytest.mark.parametrize("y", [torch.tensor([11, 0]), torch.tensor([-1, 3])])
def test_labels_outside_range(schedule, tiny_model, cls, y):
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 10\]"):
        cls(tiny_model, schedule).sample(IMG, y=y, guidance_scale=2.0)


def test_label_type_and_shape():
    with pytest.raises(TypeError, match="y must be an integer tensor"):
        check_labels(torch.tensor([1.0, 2.0]), 2, 10, None)
    with pytest.raises(TypeError, match="y must be an integer tensor"):
        check_labels([1, 2], 2, 10, None)
    with pytest.raises(ValueError, match=r"y must have shape \(2,\)"):
        check_labels(torch.tensor([1, 2, 3]), 2, 10, None)
    check_labels(torch.tensor([0, 10]), 2, 10, 3.0)  # the null class is a valid label
    check_labels(None, 2, 10, None)
