"""Check of notebook 05's piece `cfg_guidance`: the guided blend and a guided DDIM sampler.

The piece defines two functions in two TODO cells, so the check takes either one and checks that
one: `check.cfg_guidance(guided_noise)`, then `check.cfg_guidance(sample_with_guidance)`. (The
grader passes each function by its name, or anything with both as attributes.)

Its known mistakes get the inputs  guided_noise: eps_cond, eps_uncond, guidance_scale;
sample_with_guidance: model, schedule, labels, guidance_scale, num_steps, x_T, seed, image_shape.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ...maths.ddim import ddim_step_given_eps
from ...maths.guidance import cfg_blend
from ...lab5.cfg_guidance import sample_with_guidance
from ...samplers.ddim import DDIMSampler, timestep_schedule
from ...samplers.guidance import guided_eps
from . import core
from .cases import CallCounter, ToyCondEpsModel, noise, short_schedule
from .catalog import Mistake
from .core import Case, MethodSpec, Piece, Report, register, run_piece
from .slips import gen

__all__ = ["cfg_guidance", "ToyCondEpsModel", "CallCounter"]

FUNCTIONS = ("guided_noise", "sample_with_guidance")


_CACHE: dict[str, nn.Module] = {}


def toy_cond_model() -> ToyCondEpsModel:
    if "model" not in _CACHE:
        _CACHE["model"] = ToyCondEpsModel().eval()
    return _CACHE["model"]


def _function(obj: Any, name: str):
    """The function `name` from the student's object: the function itself, a dict or a namespace."""
    if callable(obj) and getattr(obj, "__name__", None) == name:
        return obj
    if isinstance(obj, dict) and name in obj:
        return obj[name]
    if hasattr(obj, name):
        return getattr(obj, name)
    return obj


# -- guided_noise ------------------------------------------------------------------------------------
def _blend_cases() -> list[Case]:
    cases = [Case(f"seed 001's numbers: ε_c = 1.0, ε_u = 0.6, w = {w:g} (expect {want})",
                  {"eps_cond": torch.tensor(1.0), "eps_uncond": torch.tensor(0.6), "guidance_scale": w})
             for w, want in ((1.0, 1.0), (5.0, 2.6), (15.0, 6.6))]
    rows = [("w = 0 (unconditional)", 0.0), ("w = 3, batch of 2 images", 3.0), ("w = 7.5", 7.5), ("w = 0.5", 0.5)]
    shape = (2, 1, 5, 5)
    cases += [Case(label, {"eps_cond": noise(shape, 300 + k), "eps_uncond": noise(shape, 310 + k), "guidance_scale": w})
              for k, (label, w) in enumerate(rows)]
    return cases


def _call_blend(obj, i):
    return _function(obj, "guided_noise")(i["eps_cond"], i["eps_uncond"], i["guidance_scale"])


# -- sample_with_guidance -----------------------------------------------------------------------------
def _sampler_cases() -> list[Case]:
    rows = [("labels [1, 7], w = 3, 5 steps", [1, 7], 3.0, 5, True, 0),
            ("labels [0, 4, 9], w = 7.5, 8 steps", [0, 4, 9], 7.5, 8, True, None),
            ("w = 1 (plain conditional)", [2, 2], 1.0, 5, True, None),
            ("w = 0 (unconditional)", [5, 6], 0.0, 5, True, None),
            ("x_T=None: drawn with the generator (seed 4), shape (B, 1, 28, 28)", [3, 8], 2.0, 3, False, 4),
            ("all 30 steps of the short schedule, w = 5", [1, 9], 5.0, 30, True, None)]
    out = []
    for k, (label, labels, w, n, given, seed) in enumerate(rows):
        y = torch.tensor(labels)
        x_T = noise((len(labels), 1, 6, 6), 320 + k) if given else None
        out.append(Case(label, {"model": toy_cond_model(), "schedule": short_schedule(), "labels": y,
                                "guidance_scale": w, "num_steps": n, "x_T": x_T, "seed": seed,
                                "image_shape": (1, 28, 28)}))
    return out


def _call_sampler(obj, i):
    g = torch.Generator().manual_seed(i["seed"]) if i.get("seed") is not None else None
    return _function(obj, "sample_with_guidance")(i["model"], i["schedule"], i["labels"], i["guidance_scale"],
                                                  i["num_steps"], generator=g, x_T=i.get("x_T"))


def _reference_sampler(i):
    g = torch.Generator().manual_seed(i["seed"]) if i.get("seed") is not None else None
    return sample_with_guidance(i["model"], i["schedule"], i["labels"], i["guidance_scale"], i["num_steps"],
                                generator=g, x_T=i.get("x_T"), image_shape=i["image_shape"])


def _one_batched_forward(run) -> str | None:
    counter = CallCounter(toy_cond_model())
    i = {"model": counter, "schedule": short_schedule(), "labels": torch.tensor([1, 7, 3]), "guidance_scale": 3.0,
         "num_steps": 4, "x_T": noise((3, 1, 6, 6), 77), "seed": None}
    run(i)
    calls = counter.batches
    if calls == [6] * 4:
        return None
    if calls == [3] * 8:
        return ("two network calls per step (conditional, then unconditional): stack them into ONE call on a batch "
                "of 2B, model(torch.cat([x, x]), t, torch.cat([labels, null])), then split with .chunk(2)")
    return (f"expected one network call of batch 2B = 6 per step (4 steps), got calls of batch sizes {calls}")


# -- known mistakes: guided_noise ------------------------------------------------------------------
_BLENDS = {
    "swapped_roles": lambda c, u, w: cfg_blend(u, c, w),
    "paper_convention": lambda c, u, w: c + w * (c - u),
    "missing_base": lambda c, u, w: w * (c - u),
    "scale_on_cond_only": lambda c, u, w: u + w * c,
    "sign_flipped": lambda c, u, w: u - w * (c - u),
    "normalized_average": lambda c, u, w: (u + w * c) / (1 + w),
}
_BLEND_TEXT = {
    "swapped_roles": "the roles are swapped: start from the UNconditional prediction and add w times the "
                     "difference ε_c − ε_u (ε̃ = ε_u + w·(ε_c − ε_u))",
    "paper_convention": "that is the paper's convention (1 + w)·ε_c − w·ε_u; this lab's w is the paper's w + 1, "
                        "so write ε_u + w·(ε_c − ε_u) (w = 1 must give ε_c)",
    "missing_base": "the unconditional prediction ε_u is missing in front: ε̃ = ε_u + w·(ε_c − ε_u)",
    "scale_on_cond_only": "w scales the DIFFERENCE ε_c − ε_u, not ε_c alone",
    "sign_flipped": "sign error: guidance adds w·(ε_c − ε_u), pushing toward the condition",
    "normalized_average": "a weighted average never extrapolates; guidance goes beyond ε_c when w > 1: "
                          "ε̃ = ε_u + w·(ε_c − ε_u)",
}


def _blend(kind: str):
    def fn(eps_cond, eps_uncond, guidance_scale, **_):
        return _BLENDS[kind](eps_cond, eps_uncond, guidance_scale)
    return fn


_GUIDED_NOISE = [Mistake(k, _BLEND_TEXT[k], _blend(k)) for k in _BLENDS]


# -- known mistakes: sample_with_guidance ----------------------------------------------------------
def _two_calls(blend, null: str = "null"):
    """ε from a conditional and an unconditional call, blended by `blend` (null label: 10, or the digit 0)."""
    def eps(model, x, t, labels, w):
        y_null = torch.full_like(labels, model.null_class) if null == "null" else torch.zeros_like(labels)
        return blend(model(x, t, labels), model(x, t, y_null), w)
    return eps


def _guided_loop(*, eps=guided_eps, final=True, use_x_T=True, loop_index_as_t=False):
    """DDIM at η = 0 (ddim_step_given_eps) on the guided ε `eps(model, x, t, labels, w)`, with one slip."""
    def fn(model, schedule, labels, guidance_scale, num_steps, x_T=None, seed=None, image_shape=(1, 28, 28), **_):
        if not use_x_T and (x_T is None or seed is None):  # fresh global-RNG noise cannot be recomputed
            return None
        d = DDIMSampler(model, schedule)
        shape = tuple(x_T.shape) if x_T is not None else (len(labels), *image_shape)
        x = x_T.clone() if use_x_T and x_T is not None else d.randn(shape, gen(seed))
        ts = timestep_schedule(schedule.T, num_steps).tolist()
        pairs = list(zip(ts, ts[1:] + [-1]))
        if not final:
            pairs = pairs[:-1]
        for i, (t, s) in enumerate(pairs):
            t_model = i if loop_index_as_t else d.schedule.timesteps[t]
            x = ddim_step_given_eps(d.schedule, x, t, s, eps(model, x, t_model, labels, guidance_scale))[0]
        return x
    return fn


_SAMPLE_GUIDED = [
    Mistake("guidance_ignored", "the samples are plain conditional DDIM (as if w = 1): blend the two predictions "
            "with guided_noise(eps_cond, eps_uncond, guidance_scale) at every step",
            _guided_loop(eps=lambda model, x, t, labels, w: guided_eps(model, x, t, labels, 1.0))),
    Mistake("unconditional_only", "only the unconditional prediction was used (as if w = 0): use the guided blend",
            _guided_loop(eps=lambda model, x, t, labels, w: guided_eps(model, x, t, labels, 0.0))),
    Mistake("halves_swapped", "the two halves of the 2B output were swapped: with the batch [x; x] and labels "
            "[labels; null], the FIRST half is ε_c and the second ε_u", _guided_loop(eps=_two_calls(_BLENDS["swapped_roles"]))),
    Mistake("paper_convention", "(in the blend) " + _BLEND_TEXT["paper_convention"],
            _guided_loop(eps=_two_calls(_BLENDS["paper_convention"]))),
    Mistake("label_zero_as_null", "the unconditional half used label 0 (the digit zero); the null label is "
            "model.null_class (10): torch.full_like(labels, model.null_class)",
            _guided_loop(eps=_two_calls(cfg_blend, null="zero"))),
    Mistake("no_final_step", "the loop stops at the last timestep; finish with the jump to s = −1 (ᾱ = 1), "
            "which returns x̂0", _guided_loop(final=False)),
    Mistake("ignored_x_T", "the given x_T was not used; start from x_T when it is passed", _guided_loop(use_x_T=False)),
    Mistake("loop_index_as_t", "the network got the loop index i instead of the timestep t: pass t (from the "
            "timestep schedule) to the model", _guided_loop(loop_index_as_t=True)),
]


PIECE = register(Piece(
    id="cfg_guidance",
    defines=FUNCTIONS,
    reference={"guided_noise": cfg_blend, "sample_with_guidance": sample_with_guidance},
    build=lambda obj, i: obj,
    methods=[
        MethodSpec("guided_noise", _blend_cases, _call_blend, lambda i: cfg_blend(i["eps_cond"], i["eps_uncond"],
                                                                                i["guidance_scale"]),
                                                                                own_maths=("cfg_blend",)),
        MethodSpec("sample_with_guidance", _sampler_cases, _call_sampler, _reference_sampler, atol=1e-4,
                   properties=(_one_batched_forward,), uses=("guided_noise",),
                   own_maths=("cfg_blend", "ddim_step_given_eps"),
                   derive_from=("lab5.cfg_guidance.sample_with_guidance", "predict_x0_from_eps", "ddim_coefficients")),
    ],
    mistakes={"guided_noise": _GUIDED_NOISE, "sample_with_guidance": _SAMPLE_GUIDED},
))


def cfg_guidance(obj) -> Report:
    """Check guided_noise or sample_with_guidance (notebook 05), whichever is given; ✓ or a precise ✗.

    Given one of the two functions, only that one is checked, and `or_reference(fn, "cfg_guidance")`
    right after reads this result.
    """
    name = getattr(obj, "__name__", None)
    if name not in FUNCTIONS:
        return run_piece("cfg_guidance", obj)
    report = run_piece("cfg_guidance", obj, methods=[name])
    core._LAST["cfg_guidance"] = (obj, report)
    return report
