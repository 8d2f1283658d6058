"""The self-checks of notebooks 04-06: the solution passes, a TODO is "not done yet", and every
catalogued wrong variant fails with its own explanation."""
from __future__ import annotations

import inspect

import pytest
import torch

import labsupport.teaching.checks as check
from labsupport.teaching.checks import core
from labsupport.teaching.checks import MISTAKES, MISTAKES_LATER
from labsupport.maths.guidance import cfg_blend
from labsupport.samplers.ddim import DDIMSampler
from labsupport.lab5.cfg_guidance import sample_with_guidance
from labsupport.lab5.sampling_optimizer import SamplingOptimizer
from labsupport.lab5.stochasticity_controller import StochasticityController

CLASSES = {"stochasticity_controller": StochasticityController, "sampling_optimizer": SamplingOptimizer}
FUNCTIONS = {"guided_noise": cfg_blend, "sample_with_guidance": sample_with_guidance}
RUN = {"stochasticity_controller": check.stochasticity_controller, "cfg_guidance": check.cfg_guidance,
       "sampling_optimizer": check.sampling_optimizer}


def _inputs(reference, args, kwargs, **known) -> dict:
    """The mistake's inputs from one call: its arguments by name, a generator's seed as `seed`."""
    bound = inspect.signature(reference).bind(*args, **kwargs)
    bound.apply_defaults()
    inputs = {**known, **bound.arguments}
    if "generator" in inputs:
        gen = inputs.pop("generator")
        inputs["seed"] = gen.initial_seed() if isinstance(gen, torch.Generator) else None
    return inputs


def _wrong_class(piece: str, method: str, fn):
    """The reference class with `method` replaced by the wrong variant `fn` (the reference where fn does not apply)."""
    base = CLASSES[piece]
    right = getattr(base, method)

    def wrong(self, *args, **kwargs):
        known = {"model": self.model, "schedule": self.schedule}
        if method == "cached_noise_schedule_sampling":
            known = {"model": args[0].model, "schedule": args[0].schedule}
        out = fn(**_inputs(right.__get__(self), args, kwargs, **known))
        return right(self, *args, **kwargs) if out is None else out

    return type(base.__name__, (base,), {method: wrong})


def _wrong_function(method: str, fn):
    reference = FUNCTIONS[method]

    def wrong(*args, **kwargs):
        out = fn(**_inputs(reference, args, kwargs))
        return reference(*args, **kwargs) if out is None else out

    wrong.__name__ = method
    return wrong


# the bonus pieces' variants are named by their own tests (test_classifier_guidance.py, test_checks_few_step.py)
BONUS = {"classifier_guidance", "few_step_solver"}
CATALOG = [(piece, method, m) for piece, methods in MISTAKES_LATER.items() if piece not in BONUS
           for method, ms in methods.items() for m in ms if m.fn is not None]


def test_catalog_is_merged_into_the_one_catalog():
    for piece, methods in MISTAKES_LATER.items():
        assert MISTAKES[piece] is methods
        assert set(methods) == {s.name for s in core.PIECES[piece].methods}


@pytest.mark.parametrize("piece", ["stochasticity_controller", "sampling_optimizer"])
def test_reference_class_passes(piece, capsys):
    report = RUN[piece](CLASSES[piece])
    assert report.passed
    assert "✓" in capsys.readouterr().out


@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_reference_function_passes_and_or_reference_keeps_it(name, capsys):
    def solution(*args, **kwargs):
        if name == "guided_noise":  # written out: a TODO that calls labsupport's blend fails (test_checks_own_maths)
            eps_cond, eps_uncond, w = args
            return eps_uncond + w * (eps_cond - eps_uncond)
        return FUNCTIONS[name](*args, **kwargs)
    solution.__name__ = name
    report = check.cfg_guidance(solution)
    assert report.passed and [r.method for r in report.results] == [name]
    assert check.or_reference(solution, "cfg_guidance") is solution
    assert "✓" in capsys.readouterr().out


@pytest.mark.parametrize("piece,method,mistake", CATALOG, ids=[f"{p}.{m}.{x.name}" for p, m, x in CATALOG])
def test_each_wrong_variant_is_named(piece, method, mistake, capsys):
    obj = _wrong_function(method, mistake.fn) if piece == "cfg_guidance" else _wrong_class(piece, method, mistake.fn)
    report = RUN[piece](obj)
    out = capsys.readouterr().out
    result = report.result(method)
    assert not result.passed, f"{mistake.name} passed the check"
    assert "✗" in out
    assert mistake.explanation in out, f"{mistake.name} not named; the check printed:\n{out}"


def test_runs_that_do_not_share_x_T_are_named(capsys):
    class Independent(StochasticityController):
        def analyze_eta_effects(self, shape, eta_values, num_steps, *, x_T=None, generator=None,
                                schedule_type="uniform"):
            runs = self.randn(shape, generator)  # one start per run: the mistake
            samples = torch.stack([self.sample(shape, eta=e, num_steps=num_steps, x_T=runs, generator=generator,
                                               progress=False) for e in eta_values])
            return {"eta": torch.tensor(eta_values), "samples": samples, "spread": samples.std(1).mean((1, 2, 3))}

    report = check.stochasticity_controller(Independent)
    assert not report.result("analyze_eta_effects").passed
    assert "runs_do_not_share_x_T" in capsys.readouterr().out


def test_two_forwards_per_step_fail_the_batching_property(capsys):
    def sample_with_guidance_two_calls(model, schedule, labels, guidance_scale, num_steps, *, generator=None,
                                       x_T=None):
        class TwoCalls(torch.nn.Module):
            num_classes, null_class = model.num_classes, model.null_class

            def forward(self, x, t, y=None):
                half = len(x) // 2
                if y is None or len(x) % 2 or not bool((y[half:] == model.null_class).all()):
                    return model(x, t, y)
                return torch.cat([model(x[:half], t, y[:half]), model(x[half:], t, y[half:])])
        model_two = TwoCalls()
        model_two.register_parameter("p", torch.nn.Parameter(torch.zeros(())))
        return sample_with_guidance(model_two, schedule, labels, guidance_scale, num_steps, generator=generator,
                                    x_T=x_T)
    sample_with_guidance_two_calls.__name__ = "sample_with_guidance"
    report = check.cfg_guidance(sample_with_guidance_two_calls)
    assert not report.passed
    assert "ONE call on a batch of 2B" in capsys.readouterr().out


def test_an_ignored_memory_budget_fails_its_property(capsys):
    class NoBudget(SamplingOptimizer):
        def batch_sampling_with_memory_management(self, total_samples, batch_size, *, memory_budget=None, **kw):
            return super().batch_sampling_with_memory_management(total_samples, batch_size, **kw)

    report = check.sampling_optimizer(NoBudget)
    assert not report.result("batch_sampling_with_memory_management").passed
    assert "memory_budget fits 2 samples per chunk" in capsys.readouterr().out


def test_a_missing_health_check_fails_its_property(capsys):
    from labsupport.tools.generation import chunk_size_for_memory, generate

    class NoCheck(SamplingOptimizer):
        def batch_sampling_with_memory_management(self, total_samples, batch_size, *, num_steps=50, eta=0.0,
                                                  seed=0, memory_budget=None, image_shape=(1, 28, 28), **_):
            chunk = batch_size if memory_budget is None else min(
                batch_size, chunk_size_for_memory(self.model, memory_budget, image_shape))
            return generate(DDIMSampler(self.model, self.schedule), total_samples, chunk_size=chunk, seed=seed,
                            image_shape=image_shape, num_steps=num_steps, eta=eta, check=False)

    report = check.sampling_optimizer(NoCheck)
    assert not report.result("batch_sampling_with_memory_management").passed
    assert "went unnoticed" in capsys.readouterr().out


def test_todo_is_not_done_yet_and_falls_back(capsys):
    class Todo(StochasticityController):
        def compute_stochastic_variance(self, t, s, eta):
            raise NotImplementedError("TODO: StochasticityController.compute_stochastic_variance")

    report = check.stochasticity_controller(Todo)
    assert not report.done
    out = capsys.readouterr().out
    assert "not done yet" in out
    assert check.or_reference(Todo, "stochasticity_controller") is StochasticityController

    def guided_noise(eps_cond, eps_uncond, guidance_scale):
        raise NotImplementedError("TODO: guided_noise")
    check.cfg_guidance(guided_noise)
    assert check.or_reference(guided_noise, "cfg_guidance") is cfg_blend


def test_a_crashing_student_method_is_reported_not_raised(capsys):
    class Crash(SamplingOptimizer):
        # fails with a shape error, as a student's code might
        def cached_noise_schedule_sampling(self, ddim_sampler, shape, num_steps, *, eta=0.0, x_T=None,
                                           generator=None):
            return torch.zeros(3) @ torch.zeros(4)

    report = check.sampling_optimizer(Crash)
    assert not report.passed
    assert "RuntimeError" in capsys.readouterr().out


def test_cached_loop_equals_the_sampler_on_the_real_schedule():
    from labsupport.teaching.checks.cases import toy_model
    from labsupport.maths.schedule import NoiseSchedule
    model, sched = toy_model(), NoiseSchedule.linear()
    ddim = DDIMSampler(model, sched)
    x_T = torch.randn(2, 1, 5, 5, generator=torch.Generator().manual_seed(0))
    out = SamplingOptimizer(model, sched).cached_noise_schedule_sampling(ddim, (2, 1, 5, 5), 20, x_T=x_T)
    torch.testing.assert_close(out, ddim.sample((2, 1, 5, 5), num_steps=20, x_T=x_T, progress=False),
                               rtol=1e-4, atol=1e-4)


def test_eta_one_between_neighbours_is_ddpm_posterior_variance():
    from labsupport.teaching.checks.cases import toy_model
    from labsupport.maths.schedule import NoiseSchedule
    sched = NoiseSchedule.linear()
    ctrl = StochasticityController(toy_model(), sched)
    t = torch.arange(1, 1000)
    torch.testing.assert_close(ctrl.compute_stochastic_variance(t, t - 1, 1.0), sched.posterior_variance[1:],
                               rtol=1e-3, atol=1e-7)
    assert float(ctrl.compute_stochastic_variance(500, -1, 1.0)) == 0.0
