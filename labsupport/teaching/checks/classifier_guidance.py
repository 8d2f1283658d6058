"""Check of notebook 05's bonus piece `classifier_guidance`: the classifier-guided noise prediction.

`check.classifier_guidance(classifier_guided_noise)`. The student's function is called inside
torch.inference_mode(), as the samplers call it, so its gradient must be taken with inference mode
switched off. Its known mistakes get the inputs  model, classifier, schedule, x_t, t, labels,
guidance_scale.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...maths.guidance import classifier_guided_eps
from ...maths.schedule import NoiseSchedule
from ...samplers.classifier_guidance import classifier_guided_noise, log_prob_grad
from . import core
from .cases import ToyCondEpsModel, ToyNoisyClassifier, noise, short_schedule
from .catalog import Mistake
from .core import Case, MethodSpec, Piece, Report, register, run_piece

__all__ = ["classifier_guidance", "ToyNoisyClassifier"]


_CACHE: dict[str, nn.Module] = {}


def _toys() -> tuple[nn.Module, nn.Module]:
    if not _CACHE:
        _CACHE["model"], _CACHE["classifier"] = ToyCondEpsModel().eval(), ToyNoisyClassifier().eval()
    return _CACHE["model"], _CACHE["classifier"]


def _linear() -> NoiseSchedule:
    if "linear" not in _CACHE:
        _CACHE["linear"] = NoiseSchedule.linear()
    return _CACHE["linear"]


def _cases() -> list[Case]:
    model, classifier = _toys()
    rows = [("short schedule, t = 12, s = 3, labels [1, 7]", short_schedule(), 12, [1, 7], 3.0, (2, 1, 6, 6)),
            ("t = 29 (the noisiest step), s = 1", short_schedule(), 29, [4, 4], 1.0, (2, 1, 5, 5)),
            ("t = 0, s = 10, three labels", short_schedule(), 0, [0, 5, 9], 10.0, (3, 1, 5, 5)),
            ("linear T = 1000 at t = 300, s = 2", _linear(), 300, [3, 8], 2.0, (2, 1, 6, 6)),
            ("t as a (B,) tensor [20, 5], s = 4", short_schedule(), torch.tensor([20, 5]), [2, 6], 4.0, (2, 1, 6, 6)),
            ("s = 0 (no guidance: the unconditional ε)", short_schedule(), 15, [1, 2], 0.0, (2, 1, 5, 5)),
            ("4-channel latents (B, 4, 7, 7), s = 3", short_schedule(), 18, [7, 0], 3.0, (2, 4, 7, 7))]
    return [Case(label, {"model": model, "classifier": classifier, "schedule": sched, "x_t": noise(shape, 400 + k),
                         "t": t, "labels": torch.tensor(labels), "guidance_scale": s})
            for k, (label, sched, t, labels, s, shape) in enumerate(rows)]


def _call(obj, i):
    fn = obj if callable(obj) and getattr(obj, "__name__", "") == "classifier_guided_noise" \
        else getattr(obj, "classifier_guided_noise", obj)
    with torch.inference_mode():  # as inside the samplers
        return fn(i["model"], i["classifier"], i["schedule"], i["x_t"], i["t"], i["labels"], i["guidance_scale"])


def _reference(i):
    with torch.inference_mode():
        return classifier_guided_noise(i["model"], i["classifier"], i["schedule"], i["x_t"], i["t"], i["labels"],
                                       i["guidance_scale"])


# -- known mistakes ----------------------------------------------------------------------------------
def _grad_of(score):
    """∇_x score(classifier logits, labels) summed over the batch."""
    def grad(classifier, x_t, t, labels):
        with torch.inference_mode(False), torch.enable_grad():
            x = x_t.detach().clone().requires_grad_(True)
            return torch.autograd.grad(score(classifier(x, t), labels).sum(), x)[0]
    return grad


def _pick(values, labels):
    return values.gather(1, labels.long().reshape(-1, 1))


_GRADS = {
    "logit_not_log_softmax": _grad_of(lambda logits, y: _pick(logits, y)),
    "prob_not_log_prob": _grad_of(lambda logits, y: _pick(F.softmax(logits, -1), y)),
    "sum_over_classes": _grad_of(lambda logits, y: F.log_softmax(logits, -1)),
}


def _variant(*, grad=log_prob_grad, sign=1.0, root=True, conditional=False, on_eps=False):
    def fn(model, classifier, schedule, x_t, t, labels, guidance_scale, **_):
        with torch.inference_mode():
            eps = model(x_t, t, labels if conditional else None)
            g = grad(classifier, eps if on_eps else x_t, t, labels)
            if not root:
                return eps - sign * guidance_scale * g
            return classifier_guided_eps(schedule, t, eps, sign * g, guidance_scale)
    return fn


_MISTAKES = [
    Mistake("sign_flipped", "sign error: guidance SUBTRACTS s·√(1−ᾱ_t)·∇log p(y | x_t) from ε (ε points away from "
            "the data, so lowering it raises the class's probability): ε̃ = ε − s·√(1−ᾱ_t)·∇", _variant(sign=-1.0)),
    Mistake("missing_sqrt_one_minus_abar", "the factor √(1−ᾱ_t) is missing: the score is −ε/√(1−ᾱ_t), so a shift of "
            "the score by s·∇log p becomes a shift of ε by s·√(1−ᾱ_t)·∇log p", _variant(root=False)),
    Mistake("gradient_wrt_eps", "the gradient was taken with respect to the network's ε (the classifier read ε_θ): "
            "the classifier judges x_t, so differentiate log p(y | x_t, t) with respect to x_t", _variant(on_eps=True)),
    Mistake("conditional_eps", "ε came from the conditional prediction ε_θ(x_t, t, y); classifier guidance steers "
            "the UNconditional model: model(x_t, t, None)", _variant(conditional=True)),
    Mistake("logit_not_log_softmax", "the gradient is of the raw logit of y; guidance needs log p(y | x_t): take "
            "log_softmax over the classes first, then pick label y", _variant(grad=_GRADS["logit_not_log_softmax"])),
    Mistake("prob_not_log_prob", "the gradient is of p(y | x_t) (softmax), not of log p(y | x_t): use log_softmax",
            _variant(grad=_GRADS["prob_not_log_prob"])),
    Mistake("sum_over_classes", "the log-probabilities of all ten classes were summed: pick each sample's own label, "
            "log_p.gather(1, labels[:, None])", _variant(grad=_GRADS["sum_over_classes"])),
]


PIECE = register(Piece(
    id="classifier_guidance",
    defines=("classifier_guided_noise",),
    reference={"classifier_guided_noise": classifier_guided_noise},
    build=lambda obj, i: obj,
    methods=[MethodSpec("classifier_guided_noise", _cases, _call, _reference, atol=1e-5,
                        own_maths=("classifier_guided_eps",),
                        derive_from=("samplers.classifier_guidance.log_prob_grad",))],
    mistakes={"classifier_guided_noise": _MISTAKES},
))


def classifier_guidance(obj) -> Report:
    """Check classifier_guided_noise (notebook 05, bonus); ✓ or a precise ✗."""
    report = run_piece("classifier_guidance", obj)
    core._LAST["classifier_guidance"] = (obj, report)
    return report
