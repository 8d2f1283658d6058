"""Issue 16: the shipped models come on the fastest exact path of their device, and guidance picks its batching.

The default model must give the plain model's results (within 1e-4, the issue's bound); the switch
(argument and environment variable) must give the plain contiguous model back; the CPU layout is
chosen by measurement, so the tests force each choice where they need one.
"""
import copy

import pytest
import torch

import labsupport as lab
from conftest import TINY
from labsupport import NoiseSchedule, UNet, UNetConfig
from labsupport.models import fast_path
from labsupport.models.fast_path import FAST_PATH_ENV, PLAIN_MEASURED, use_fast_path, use_plain_path
from labsupport.samplers import guidance
from labsupport.teaching.checks.cases import CallCounter
from labsupport.tools import speedups


def _conv_weights(model):
    return [p for p in model.parameters() if p.ndim == 4]


def _is_plain(model) -> bool:
    return model.fast_path is None and all(p.is_contiguous() for p in _conv_weights(model)) and \
        not model._forward_hooks


@pytest.fixture(scope="module")
def pair():
    plain, schedule = lab.load_pretrained(device="cpu", fast=False)
    return use_fast_path(copy.deepcopy(plain), True, layout="channels_last"), plain, schedule


def test_default_layout_is_measured_and_switch_gives_plain(monkeypatch):
    for pays, expected in ((True, "channels_last"), (False, PLAIN_MEASURED)):
        monkeypatch.setattr(fast_path, "channels_last_pays", lambda model, pays=pays: pays)
        model = lab.load_pretrained(device="cpu")[0]
        assert model.fast_path == expected
        wide = [w for w in _conv_weights(model) if w.shape[1] > 1 and w.shape[-1] > 1]   # where layouts differ
        assert wide and all(w.is_contiguous() != pays for w in wide)
        assert lab.load_classifier("cpu").fast_path == expected
    assert _is_plain(lab.load_pretrained(device="cpu", fast=False)[0])
    monkeypatch.setattr(fast_path, "channels_last_pays", lambda model: True)
    monkeypatch.setenv(FAST_PATH_ENV, "0")
    assert _is_plain(lab.load_pretrained(device="cpu")[0]) and _is_plain(lab.load_classifier("cpu"))
    assert lab.load_pretrained(device="cpu", fast=True)[0].fast_path == "channels_last"  # the argument wins
    monkeypatch.setenv(FAST_PATH_ENV, "1")
    assert lab.load_pretrained(device="cpu")[0].fast_path == "channels_last"


def test_layout_choice_follows_the_measured_ratio_once_per_process(monkeypatch):
    torch.manual_seed(0)
    model = UNet(UNetConfig(**TINY)).eval()
    assert not fast_path.channels_last_pays(model)          # no sample_shape: nothing to measure, plain layout
    model.sample_shape = (1, 16, 16)
    calls = []

    def fake_seconds(fn):                                      # channels_last "takes" `share` of the plain time
        fn()
        cl = not max(_conv_weights(model), key=lambda w: w.shape[1]).is_contiguous()   # a conv with C_in > 1
        calls.append(cl)
        return share if cl else 1.0

    monkeypatch.setattr(fast_path, "_seconds", fake_seconds)
    for share, pays in ((0.9, True), (0.99, False), (1.2, False)):
        fast_path.clear_layout_choices()
        calls.clear()
        assert fast_path.channels_last_pays(model) is pays
        assert calls.count(True) == calls.count(False) == 6    # one warm-up and five timed rounds each
        assert fast_path.channels_last_pays(model) is pays and len(calls) == 12   # cached: no new measurement
        assert all(p.is_contiguous() for p in _conv_weights(model))   # measuring leaves the plain layout
    fast_path.clear_layout_choices()


def test_default_model_matches_plain_model(pair):
    fast, plain, _ = pair
    torch.manual_seed(0)
    x = torch.randn(5, 1, 28, 28)
    t = torch.tensor([999, 700, 400, 100, 0])
    y = torch.tensor([0, 3, 7, 10, 9])
    with torch.inference_mode():
        out_fast, out_plain = fast(x, t, y), plain(x, t, y)
        nhwc = fast(torch.randn(5, 1, 28, 28).contiguous(memory_format=torch.channels_last), 500)
    assert out_fast.is_contiguous() and nhwc.is_contiguous() and nhwc.shape == x.shape
    assert (out_fast - out_plain).abs().max().item() <= 1e-4
    out_fast.view(5, -1)  # the default layout: .view works on the output


def test_default_samples_match_plain_samples(pair):
    fast, plain, schedule = pair
    x_T = torch.randn((4, 1, 28, 28), generator=torch.Generator().manual_seed(1))
    a = lab.DDIMSampler(fast, schedule).sample(x_T.shape, x_T=x_T, num_steps=5, progress=False)
    b = lab.DDIMSampler(plain, schedule).sample(x_T.shape, x_T=x_T, num_steps=5, progress=False)
    assert (a - b).abs().max().item() <= 1e-4


def test_classifier_on_fast_path_matches_plain():
    plain = use_plain_path(lab.load_classifier("cpu"))
    clf = use_fast_path(copy.deepcopy(plain), True, layout="channels_last")
    assert clf.fast_path == "channels_last"
    x = torch.randn(6, 1, 28, 28)
    with torch.inference_mode():
        assert (clf(x) - plain(x)).abs().max().item() <= 1e-4
        assert (clf.features(x) - plain.features(x)).abs().max().item() <= 1e-4


def test_plain_path_undoes_fast_path_and_plain_model_copies():
    torch.manual_seed(0)
    model = UNet(UNetConfig(**TINY)).eval()
    use_fast_path(model, True, layout="channels_last")
    use_fast_path(model, True, layout="channels_last")  # twice: still one hook
    assert len(model._forward_hooks) == 1
    plain = speedups.plain_model(model)
    assert plain is not model and _is_plain(plain) and model.fast_path == "channels_last"
    assert speedups.plain_model(plain) is plain
    assert _is_plain(use_plain_path(model))


@pytest.fixture
def tiny():
    torch.manual_seed(0)
    return UNet(UNetConfig(**TINY)).eval()


@pytest.mark.parametrize("batch", [1, 3, 16])
def test_guided_eps_auto_equals_both_batchings(tiny, batch):
    guidance.clear_batching_choices()
    x = torch.randn(batch, 1, 8, 8)
    y = torch.arange(batch) % 10
    with torch.inference_mode():
        auto = guidance.guided_eps(tiny, x, 7, y, 3.0)
        one = guidance.guided_eps(tiny, x, 7, y, 3.0, batched=True)
        two = guidance.guided_eps(tiny, x, 7, y, 3.0, batched=False)
    assert torch.equal(auto, one) or torch.equal(auto, two)  # the auto choice is one of the two, exactly
    torch.testing.assert_close(auto, one, rtol=1e-4, atol=1e-5)  # and they agree to float32 rounding
    torch.testing.assert_close(auto, two, rtol=1e-4, atol=1e-5)


def test_batching_is_measured_once_per_bucket_on_the_network_itself(tiny, monkeypatch):
    guidance.clear_batching_choices()
    measured = []
    real = guidance._measure
    monkeypatch.setattr(guidance, "_measure", lambda net, *a, **k: measured.append(net) or real(net, *a, **k))
    counter = CallCounter(tiny)
    y = torch.tensor([1, 2, 3])
    with torch.inference_mode():
        for batch in (3, 4, 3):  # 3 and 4 share the bucket of 4
            guidance.guided_eps(counter, torch.randn(batch, 1, 8, 8), 5, torch.arange(batch) % 10, 2.0)
        guidance.guided_eps(tiny, torch.randn(3, 1, 8, 8), 5, y, 2.0)  # the same network: no new measurement
    assert measured == [tiny]
    # the counter saw only the real calls: one of 2B or two of B per guided call
    assert counter.batches in ([6, 8, 6], [3, 3, 4, 4, 3, 3])
    assert [guidance.batch_bucket(b) for b in (1, 2, 3, 9, 16, 17)] == [1, 2, 4, 16, 16, 32]


def test_explicit_batching_is_not_measured(tiny, monkeypatch):
    guidance.clear_batching_choices()
    monkeypatch.setattr(guidance, "_measure", lambda *a, **k: pytest.fail("measured although batched was given"))
    counter = CallCounter(tiny)
    with torch.inference_mode():
        guidance.guided_eps(counter, torch.randn(2, 1, 8, 8), 5, torch.tensor([1, 2]), 2.0, batched=True)
        guidance.guided_eps(counter, torch.randn(2, 1, 8, 8), 5, torch.tensor([1, 2]), 2.0, batched=False)
    assert counter.batches == [4, 2, 2]


def test_guided_sampling_with_auto_batching_matches_both(tiny):
    guidance.clear_batching_choices()
    schedule = NoiseSchedule.linear(20)
    x_T = torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    y = torch.tensor([1, 4, 7, 10])
    auto = lab.DDIMSampler(tiny, schedule).sample(x_T.shape, x_T=x_T, num_steps=5, y=y, guidance_scale=3.0,
                                                  progress=False)
    chosen = next(iter(guidance._CHOICES.values()))
    guidance._CHOICES[next(iter(guidance._CHOICES))] = not chosen  # force the other batching
    other = lab.DDIMSampler(tiny, schedule).sample(x_T.shape, x_T=x_T, num_steps=5, y=y, guidance_scale=3.0,
                                                   progress=False)
    torch.testing.assert_close(auto, other, rtol=1e-5, atol=1e-5)
