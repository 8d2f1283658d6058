"""labsupport.tools.generation: chunked generation with per-sample seeds, OOM retry, health check;
labsupport.tools.speedups: the time budget and the optimization wrappers (each must give the fp32 samples back,
within a stated tolerance)."""
import warnings

import pytest
import torch

from conftest import TINY
from labsupport import NoiseSchedule, UNet, UNetConfig
from labsupport.tools import generation as gen, speedups as opt, timing
from labsupport.samplers import DDIMSampler, DDPMSampler

IMAGE = (1, 8, 8)
CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
# Chunked runs differ from one batch only by batch-size-dependent kernel rounding: none is visible in
# float64; in float32 it stays below 1e-5.
TOL64, TOL32 = 1e-12, 1e-5
# bfloat16 keeps 8 bits of mantissa: after 10 DDIM steps the samples move by up to ~1e-2.
TOL_BF16 = 5e-2


@pytest.fixture(scope="module")
def short() -> NoiseSchedule:
    return NoiseSchedule.linear(50)


@pytest.fixture(scope="module")
def model32() -> UNet:
    torch.manual_seed(0)
    return UNet(UNetConfig(**TINY)).eval()


def x_T(batch=3, seed=0, dtype=torch.float32):
    return torch.randn((batch, *IMAGE), generator=torch.Generator().manual_seed(seed), dtype=dtype)


# -- per-sample noise ---------------------------------------------------------------------------
def test_sample_generators_depend_on_seed_and_index_only():
    a = [g.initial_seed() for g in gen.sample_generators(7, range(5))]
    b = [g.initial_seed() for g in gen.sample_generators(7, [3, 4])]
    assert a[3:] == b and len(set(a)) == 5
    assert a != [g.initial_seed() for g in gen.sample_generators(8, range(5))]
    with pytest.raises(ValueError, match="seed must be >= 0"):
        gen.sample_generators(-1, range(2))


def test_randn_with_one_generator_per_sample(tiny_model, short):
    sampler = DDIMSampler(tiny_model, short)
    gens = gen.sample_generators(0, range(3))
    z = sampler.randn((3, *IMAGE), gens)
    for i, g in enumerate(gen.sample_generators(0, range(3))):
        torch.testing.assert_close(z[i], torch.randn(IMAGE, generator=g).double(), rtol=0, atol=0)
    with pytest.raises(ValueError, match="one per sample"):
        sampler.randn((2, *IMAGE), gens)


# -- chunked generation -------------------------------------------------------------------------
SAMPLERS = {  # (make sampler from model and schedule, sample keywords)
    "ddim_eta0": (DDIMSampler, dict(num_steps=8)),
    "ddim_eta0.8": (DDIMSampler, dict(num_steps=8, eta=0.8)),
    "ddpm": (lambda model, schedule: DDPMSampler(model, schedule.respace(range(0, schedule.T, 5))), {}),
}


@pytest.mark.parametrize("which", list(SAMPLERS))
def test_chunked_generation_equals_one_batch(tiny_model, short, which):
    make, kw = SAMPLERS[which]
    sampler = make(tiny_model, short)
    whole = gen.generate(sampler, 5, chunk_size=5, seed=3, image_shape=IMAGE, **kw)
    assert whole.shape == (5, *IMAGE) and whole.device.type == "cpu"
    for chunk in (1, 2, 3):
        torch.testing.assert_close(gen.generate(sampler, 5, chunk_size=chunk, seed=3, image_shape=IMAGE, **kw),
                                   whole, rtol=0, atol=TOL64)
    # sample i depends on (seed, i) only: a shorter run gives the same first samples, another seed others
    torch.testing.assert_close(gen.generate(sampler, 2, seed=3, image_shape=IMAGE, **kw), whole[:2], rtol=0, atol=TOL64)
    assert (gen.generate(sampler, 2, seed=4, image_shape=IMAGE, **kw) - whole[:2]).abs().min() > 1e-6


def test_chunked_generation_float32_and_guided(model32, short):
    sampler = DDIMSampler(model32, short)
    y = torch.tensor([0, 1, 2, 3, 4])
    kw = dict(seed=1, image_shape=IMAGE, num_steps=6, eta=0.5, y=y, guidance_scale=3.0)
    whole = gen.generate(sampler, 5, chunk_size=5, **kw)
    torch.testing.assert_close(gen.generate(sampler, 5, chunk_size=2, **kw), whole, rtol=0, atol=TOL32)
    with pytest.raises(ValueError, match="one label per sample"):
        gen.generate(sampler, 4, **kw)


def test_memory_budget_picks_the_chunk(tiny_model, short):
    one = gen.bytes_per_sample(tiny_model, IMAGE)
    # at least the input and output of the network, in float64
    assert one > 2 * 8 * 64 and gen.bytes_per_sample(tiny_model, IMAGE, guided=True) > 1.9 * one
    assert gen.chunk_size_for_memory(tiny_model, 1, IMAGE) == 1
    assert gen.chunk_size_for_memory(tiny_model, int(3.5 * one), IMAGE) == 3
    assert gen.chunk_size_for_memory(tiny_model, int(3.5 * one), IMAGE, guided=True) == 1
    with pytest.raises(ValueError, match="positive"):
        gen.chunk_size_for_memory(tiny_model, 0, IMAGE)

    sizes = []

    class Spy(DDIMSampler):
        def sample(self, shape, *args, **kwargs):
            sizes.append(shape[0])
            return super().sample(shape, *args, **kwargs)

    spy = Spy(tiny_model, short)
    out = gen.generate(spy, 7, memory_budget=int(3.5 * one), seed=0, image_shape=IMAGE, num_steps=4)
    assert sizes == [3, 3, 1]
    torch.testing.assert_close(out, gen.generate(spy, 7, seed=0, image_shape=IMAGE, num_steps=4), rtol=0, atol=TOL64)


class OOMAbove(DDIMSampler):
    """Raises CUDA's out-of-memory error for batches above `limit`, like a full GPU would."""

    limit = 2

    def sample(self, shape, *args, **kwargs):
        if shape[0] > self.limit:
            raise torch.cuda.OutOfMemoryError(f"CUDA out of memory (fake, batch {shape[0]})")
        return super().sample(shape, *args, **kwargs)


def test_out_of_memory_halves_the_chunk_and_goes_on(tiny_model, short):
    sampler = OOMAbove(tiny_model, short)
    with pytest.warns(RuntimeWarning) as record:
        out = gen.generate(sampler, 9, chunk_size=8, seed=2, image_shape=IMAGE, num_steps=4)
    assert [str(w.message).split("retrying with chunks of ")[1] for w in record] == ["4", "2"]
    expected = gen.generate(DDIMSampler(tiny_model, short), 9, seed=2, image_shape=IMAGE, num_steps=4)
    torch.testing.assert_close(out, expected, rtol=0, atol=TOL64)


def test_out_of_memory_at_one_sample_is_raised(tiny_model, short):
    sampler = OOMAbove(tiny_model, short)
    sampler.limit = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with pytest.raises(torch.cuda.OutOfMemoryError):
            gen.generate(sampler, 3, chunk_size=2, image_shape=IMAGE, num_steps=2)


def test_generate_rejects_bad_sizes(tiny_model, short):
    sampler = DDIMSampler(tiny_model, short)
    with pytest.raises(ValueError, match="n must be at least 1"):
        gen.generate(sampler, 0, image_shape=IMAGE)
    with pytest.raises(ValueError, match="chunk_size must be at least 1"):
        gen.generate(sampler, 2, chunk_size=0, image_shape=IMAGE)


# -- health check -------------------------------------------------------------------------------
def test_check_finite():
    x = torch.zeros(2, 3)
    assert gen.check_finite(x, "ok") is x
    x[0, 0], x[1, 1], x[1, 2] = float("nan"), float("inf"), -float("inf")
    with pytest.raises(gen.NonFiniteError, match=r"step 7: 1 NaN and 2 inf among 6 values"):
        gen.check_finite(x, "step 7")


def test_generate_runs_the_health_check(short):
    class NaNModel(torch.nn.Module):
        num_classes = null_class = 10

        def __init__(self):
            super().__init__()
            self.anchor = torch.nn.Parameter(torch.zeros(()))

        def forward(self, x_t, t, y=None):
            return torch.full_like(x_t, float("nan"))

    sampler = DDIMSampler(NaNModel(), short)
    with pytest.raises(gen.NonFiniteError, match=r"samples 0\.\.1"):
        gen.generate(sampler, 2, image_shape=IMAGE, num_steps=2)
    assert gen.generate(sampler, 2, image_shape=IMAGE, num_steps=2, check=False).isnan().all()


# -- timing -------------------------------------------------------------------------------------
class FakeClock:
    """perf_counter for `timing`: each call of `work` moves it on by the next of `durations`."""

    def __init__(self, durations):
        self.now, self.durations, self.calls = 0.0, list(durations), 0

    def perf_counter(self):
        return self.now

    def work(self):
        self.now += self.durations[self.calls]
        self.calls += 1
        return self.calls


def test_median_time_warms_up_then_takes_the_median_of_the_repeats(monkeypatch):
    clock = FakeClock([100.0, 3.0, 1.0, 2.0])  # the slow first call is the warm-up
    monkeypatch.setattr(timing, "time", clock)
    assert timing.median_time(clock.work, "cpu", repeats=3, warmup=1) == 2.0 and clock.calls == 4
    clock = FakeClock([5.0, 7.0])
    monkeypatch.setattr(timing, "time", clock)
    assert timing.repeat_times(clock.work, repeats=2, warmup=0) == [5.0, 7.0]
    clock = FakeClock([0.5])
    monkeypatch.setattr(timing, "time", clock)
    assert timing.timed(clock.work) == (0.5, 1)
    for bad in (dict(repeats=0), dict(warmup=-1)):
        with pytest.raises(ValueError, match="repeats >= 1 and warmup >= 0"):
            timing.median_time(lambda: None, **bad)


def test_timing_synchronises_cuda_around_every_call(monkeypatch):
    synced = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: synced.append(device))
    timing.median_time(lambda: synced.append("call"), "cuda:0", repeats=2, warmup=1)
    assert synced == ["cuda:0", "call", "cuda:0"] * 3  # before and after the warm-up and each repeat
    synced.clear()
    timing.median_time(lambda: synced.append("call"), "cpu", repeats=2, warmup=1)
    assert synced == ["call"] * 3  # nothing to wait for on the CPU


# -- time budget --------------------------------------------------------------------------------
def test_steps_for_budget():
    assert opt.steps_for_budget(0.1, 1.0) == 10  # exactly at the budget counts as fitting
    assert opt.steps_for_budget(0.1, 1.05) == 10
    assert opt.steps_for_budget(0.1, 1.0, fixed_s=0.25) == 7
    assert opt.steps_for_budget(0.001, 10.0, max_steps=250) == 250
    assert opt.steps_for_budget(0.06, 3.0, choices=(10, 20, 50, 100)) == 50
    assert opt.steps_for_budget(0.06, 2.9, choices=(100, 10, 20, 50)) == 20
    with pytest.raises(ValueError, match=r"smallest allowed count \(10\) needs 0\.6 s"):
        opt.steps_for_budget(0.06, 0.5, choices=(10, 20))
    with pytest.raises(ValueError, match="needs"):
        opt.steps_for_budget(0.1, 0.5, min_steps=6)
    for bad in (dict(seconds_per_step=0.0), dict(min_steps=0), dict(min_steps=5, max_steps=4)):
        with pytest.raises(ValueError):
            opt.steps_for_budget(**{"seconds_per_step": 0.1, "budget_s": 1.0, **bad})


def test_adaptive_num_steps_uses_the_measured_step(tiny_model, short, monkeypatch):
    sampler = DDIMSampler(tiny_model, short)
    per_step = opt.measure_step_time(sampler, 2, image_shape=IMAGE, repeats=2, warmup=1)
    assert per_step > 0
    monkeypatch.setattr(opt, "measure_step_time", lambda *a, **k: 0.01)
    assert opt.adaptive_num_steps(sampler, 4, 0.205) == 20
    assert opt.adaptive_num_steps(sampler, 4, 100.0) == short.T  # never more steps than the schedule has
    assert opt.adaptive_num_steps(sampler, 4, 0.3, choices=(5, 25, 40)) == 25


# -- optimization wrappers ----------------------------------------------------------------------
def ddim_from(sampler, x, steps=10):
    return sampler.sample(x.shape, x_T=x, num_steps=steps, progress=False)


@pytest.mark.parametrize("names,tol", [
    (("inference_mode",), 0.0),
    (("channels_last",), TOL32),
    (("channels_last", "inference_mode"), TOL32),
    (("autocast",), TOL_BF16),
    (("channels_last", "autocast", "inference_mode"), TOL_BF16),
])
def test_optimizations_give_the_fp32_samples(model32, short, names, tol):
    base = DDIMSampler(model32, short)
    x = x_T()
    reference = ddim_from(base, x)
    fast = opt.optimize_sampler(base, *names)
    out = ddim_from(fast, x)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, reference, rtol=0, atol=tol)
    assert base.model is model32  # the original sampler is left alone
    assert model32.conv_in.weight.is_contiguous()  # and so is its model (channels_last works on a copy)


def test_autograd_baseline_is_fp32_eager(model32, short):
    base = DDIMSampler(model32, short)
    x = x_T()
    slow = opt.with_model(base, opt.use_autograd(model32))
    torch.testing.assert_close(ddim_from(slow, x), ddim_from(base, x), rtol=0, atol=0)
    with torch.inference_mode():
        assert not opt.use_autograd(model32)(x, 10).requires_grad


def test_autocast_default_dtype_and_override(model32):
    seen = []
    hook = model32.conv_in.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    try:
        with torch.inference_mode():
            out = opt.use_autocast(model32)(x_T(), 10)
            opt.use_autocast(model32, torch.float16)(x_T(), 10)
    finally:
        hook.remove()
    assert out.dtype == torch.float32 and seen == [torch.bfloat16, torch.float16]


def test_wrappers_keep_guidance_and_ddpm_working(model32, short):
    """Wrappers are sampler-agnostic: DDPM with guidance, same generator, same samples."""
    y = torch.tensor([1, 7, 3])
    base = DDPMSampler(model32, short)
    fast = opt.optimize_sampler(base, "channels_last", "inference_mode")
    assert fast.model.null_class == model32.null_class and fast.model.config == model32.config

    def run(s):
        return s.sample((3, *IMAGE), generator=torch.Generator().manual_seed(5), y=y, guidance_scale=4.0,
                        progress=False)
    torch.testing.assert_close(run(fast), run(base), rtol=0, atol=TOL32)


def test_compile_wrapper_gives_the_fp32_samples(model32, short):
    """The torch.compile path through the sampler, with dynamo's eager backend (inductor takes minutes
    on a small CPU; `labsupport bench` runs the real compiler)."""
    if opt.unavailable_reason("compile", "cpu"):
        pytest.skip(opt.unavailable_reason("compile", "cpu"))
    base = DDIMSampler(model32, short)
    x = x_T()
    fast = opt.with_model(base, opt.use_inference_mode(opt.use_compile(model32, backend="eager")))
    torch.testing.assert_close(ddim_from(fast, x, steps=4), ddim_from(base, x, steps=4), rtol=0, atol=TOL32)


def test_unavailable_and_unknown_optimizations(model32, short):
    base = DDIMSampler(model32, short)
    assert "CUDA" in opt.unavailable_reason("cuda_graphs", "cpu")
    assert opt.unavailable_reason("autocast", "cpu") is None
    with pytest.raises(opt.OptimizationUnavailable, match="CUDA graphs need a CUDA device"):
        opt.optimize_sampler(base, "cuda_graphs")
    with pytest.raises(ValueError, match="unknown optimization"):
        opt.optimize_sampler(base, "turbo")
    with pytest.raises(ValueError, match="unknown optimization"):
        opt.unavailable_reason("turbo", "cpu")


@CUDA
@pytest.mark.parametrize("names,tol", [
    (("cuda_graphs", "inference_mode"), 1e-4),
    (("channels_last", "autocast", "cuda_graphs", "inference_mode"), 5e-2),
])
def test_cuda_graphs_give_the_fp32_samples(short, names, tol):
    torch.manual_seed(0)
    model = UNet(UNetConfig(**TINY)).cuda().eval()
    base = DDIMSampler(model, short)
    x = x_T().cuda()
    fast = opt.optimize_sampler(base, *names)
    torch.testing.assert_close(ddim_from(fast, x), ddim_from(base, x), rtol=0, atol=tol)
    # a second run replays the captured graph and still tracks its inputs
    x2 = x_T(seed=1).cuda()
    torch.testing.assert_close(ddim_from(fast, x2), ddim_from(base, x2), rtol=0, atol=tol)


@CUDA
def test_generate_on_cuda_is_chunk_independent(short):
    torch.manual_seed(0)
    sampler = DDIMSampler(UNet(UNetConfig(**TINY)).cuda().eval(), short)
    kw = dict(seed=0, image_shape=IMAGE, num_steps=5, eta=1.0)
    torch.testing.assert_close(gen.generate(sampler, 4, chunk_size=1, **kw), gen.generate(sampler, 4, **kw),
                               rtol=0, atol=TOL32)
