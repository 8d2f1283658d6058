"""Check of notebook 05's piece `cfg_guidance`: the guided blend and a guided DDIM sampler.

The piece defines two functions in two TODO cells, so the check takes either one and checks that
one: `check.cfg_guidance(guided_noise)`, then `check.cfg_guidance(sample_with_guidance)`. (The
grader passes each function by its name, or anything with both as attributes.)
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ...maths.guidance import cfg_blend
from ...lab5.cfg_guidance import sample_with_guidance
from . import core
from .cases import CallCounter, ToyCondEpsModel, noise, short_schedule
from .core import Case, MethodSpec, Piece, register, run_piece

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


PIECE = register(Piece(
    id="cfg_guidance",
    defines=FUNCTIONS,
    reference={"guided_noise": cfg_blend, "sample_with_guidance": sample_with_guidance},
    build=lambda obj, i: obj,
    methods=[
        MethodSpec("guided_noise", _blend_cases, _call_blend, lambda i: cfg_blend(i["eps_cond"], i["eps_uncond"],
                                                                                i["guidance_scale"])),
        MethodSpec("sample_with_guidance", _sampler_cases, _call_sampler, _reference_sampler, atol=1e-4,
                   properties=(_one_batched_forward,), uses=("guided_noise",)),
    ],
))


def cfg_guidance(obj) -> "Report":  # noqa: F821
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
