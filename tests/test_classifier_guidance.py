"""Classifier guidance: the ε shift against float64 arithmetic, its gradient against finite differences,
the sampler wrapper's invariants and the check's named mistakes."""
import pytest
import torch
import torch.nn.functional as F

import labsupport.teaching.checks as check
from labsupport.maths import NoiseSchedule, classifier_guided_eps
from labsupport.samplers import ClassifierGuided, DDIMSampler, classifier_guided_noise, log_prob_grad
from labsupport.teaching.checks.cases import ToyCondEpsModel
from labsupport.teaching.checks.classifier_guidance import _MISTAKES, ToyNoisyClassifier


def test_shift_is_s_times_root_one_minus_abar_times_gradient():
    sched = NoiseSchedule.linear()
    eps, grad = torch.randn(2, 1, 4, 4), torch.randn(2, 1, 4, 4)
    abar = 1.0
    for b in torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)[:301]:
        abar *= 1 - b.item()
    want = eps.double() - 2.5 * (1 - abar) ** 0.5 * grad.double()
    assert torch.allclose(classifier_guided_eps(sched, 300, eps, grad, 2.5).double(), want, atol=1e-6)
    assert torch.equal(classifier_guided_eps(sched, 300, eps, grad, 0.0), eps)


def test_log_prob_gradient_matches_finite_differences():
    clf = ToyNoisyClassifier().double()
    x, y = torch.randn(2, 1, 3, 3, dtype=torch.float64), torch.tensor([3, 8])
    g = log_prob_grad(clf, x, 5, y)
    h, i = 1e-6, (1, 0, 2, 1)
    bump = torch.zeros_like(x); bump[i] = h
    lp = lambda z: F.log_softmax(clf(z, 5), -1)[1, 8]
    assert abs(g[i].item() - (lp(x + bump) - lp(x - bump)).item() / (2 * h)) < 1e-6


def test_gradient_works_inside_inference_mode():
    clf, x, y = ToyNoisyClassifier(), torch.randn(2, 1, 4, 4), torch.tensor([1, 2])
    with torch.inference_mode():
        inside = log_prob_grad(clf, x.clone(), torch.tensor([3, 4]), y)
    assert torch.allclose(inside, log_prob_grad(clf, x, torch.tensor([3, 4]), y))


def test_guided_sampler_at_scale_zero_is_unconditional_ddim():
    model, clf, sched = ToyCondEpsModel().eval(), ToyNoisyClassifier(), NoiseSchedule.linear()
    x_T, y = torch.randn(2, 1, 5, 5, generator=torch.Generator().manual_seed(0)), torch.tensor([1, 4])
    plain = DDIMSampler(model, sched).sample(x_T.shape, num_steps=6, x_T=x_T, progress=False)
    guided = DDIMSampler(ClassifierGuided(model, clf, sched, 0.0), sched).sample(x_T.shape, num_steps=6, x_T=x_T,
                                                                              y=y, progress=False)
    assert torch.allclose(plain, guided, atol=1e-6)
    stronger = DDIMSampler(ClassifierGuided(model, clf, sched, 5.0), sched).sample(x_T.shape, num_steps=6, x_T=x_T,
                                                                                y=y, progress=False)
    assert (stronger - plain).abs().max() > 1e-3


def test_guided_sampler_needs_labels():
    model, clf, sched = ToyCondEpsModel().eval(), ToyNoisyClassifier(), NoiseSchedule.linear()
    with pytest.raises(ValueError, match="labels"):
        DDIMSampler(ClassifierGuided(model, clf, sched, 2.0), sched).sample((1, 1, 4, 4), num_steps=2, progress=False)


def test_reference_passes_and_every_mistake_is_named():
    assert check.classifier_guidance(classifier_guided_noise).passed
    for mistake in _MISTAKES:
        def student(model, classifier, schedule, x_t, t, labels, guidance_scale, _m=mistake):
            return _m.fn(model=model, classifier=classifier, schedule=schedule, x_t=x_t, t=t, labels=labels,
                         guidance_scale=guidance_scale)
        student.__name__ = "classifier_guided_noise"
        assert f"Known mistake ({mistake.name})" in check.classifier_guidance(student).text()


def test_enable_grad_alone_gets_the_inference_mode_hint():
    def classifier_guided_noise(model, classifier, schedule, x_t, t, labels, guidance_scale):
        with torch.enable_grad():
            x = x_t.detach().requires_grad_(True)
            lp = F.log_softmax(classifier(x, t), -1).gather(1, labels[:, None]).sum()
            return model(x_t, t, None) - guidance_scale * torch.autograd.grad(lp, x)[0]
    assert "torch.inference_mode(False)" in check.classifier_guidance(classifier_guided_noise).text()
