"""Guidance rescale against its float64 definition; the guidance interval's calls and its limits."""
import pytest
import torch

from labsupport.maths import NoiseSchedule, rescale_guided_eps
from labsupport.samplers import DDIMSampler, IntervalGuidance
from labsupport.teaching.checks.cases import CallCounter, ToyCondEpsModel


def test_rescale_matches_definition_and_limits():
    g = torch.Generator().manual_seed(0)
    eps_g, eps_c = 3 * torch.randn(2, 1, 4, 4, generator=g), torch.randn(2, 1, 4, 4, generator=g)
    a, c = eps_g.double(), eps_c.double()
    ratio = c.flatten(1).std(1).reshape(-1, 1, 1, 1) / a.flatten(1).std(1).reshape(-1, 1, 1, 1)
    want = 0.7 * a * ratio + 0.3 * a
    assert torch.allclose(rescale_guided_eps(eps_g, eps_c, 0.7).double(), want, atol=1e-5)
    assert torch.equal(rescale_guided_eps(eps_g, eps_c, 0.0), eps_g)
    full = rescale_guided_eps(eps_g, eps_c, 1.0)
    assert torch.allclose(full.flatten(1).std(1), eps_c.flatten(1).std(1), rtol=1e-5)
    with pytest.raises(ValueError, match="phi"):
        rescale_guided_eps(eps_g, eps_c, 1.5)


def test_interval_guidance_calls_and_equivalences():
    model, sched = ToyCondEpsModel().eval(), NoiseSchedule.linear()
    x_T, y = torch.randn(3, 1, 5, 5, generator=torch.Generator().manual_seed(1)), torch.tensor([1, 4, 7])
    ts = DDIMSampler(model, sched).create_timestep_schedule(10).tolist()
    counter = CallCounter(model)
    everywhere = DDIMSampler(IntervalGuidance(counter, 3.0, (0, 999)), sched).sample(x_T.shape, x_T=x_T, y=y,
                                                                                     num_steps=10, progress=False)
    assert len(counter.batches) == 20
    plain = DDIMSampler(model, sched).sample(x_T.shape, x_T=x_T, y=y, guidance_scale=3.0, num_steps=10, progress=False)
    assert torch.allclose(everywhere, plain, atol=1e-5)
    counter.batches.clear()
    DDIMSampler(IntervalGuidance(counter, 3.0, (200, 800)), sched).sample(x_T.shape, x_T=x_T, y=y, num_steps=10,
                                                                          progress=False)
    inside = sum(200 <= t <= 800 for t in ts)
    assert len(counter.batches) == 10 + inside
    nowhere = DDIMSampler(IntervalGuidance(model, 3.0, (2000, 3000)), sched).sample(x_T.shape, x_T=x_T, y=y,
                                                                                    num_steps=10, progress=False)
    conditional = DDIMSampler(model, sched).sample(x_T.shape, x_T=x_T, y=y, num_steps=10, progress=False)
    assert torch.allclose(nowhere, conditional, atol=1e-6)
    with pytest.raises(ValueError, match="interval"):
        IntervalGuidance(model, 3.0, (500, 100))
