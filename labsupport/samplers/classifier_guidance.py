"""Classifier guidance as a noise predictor (seed 004; notebook 05): any sampler can use it.

`ClassifierGuided(model, classifier, schedule, s)` answers ε̃(x_t, t, y) = ε_θ(x_t, t) − s·√(1−ᾱ_t)·∇ log p(y | x_t, t)
(`labsupport.maths.guidance.classifier_guided_eps`), so the DDPM and DDIM loops need no special case. Each
call costs one unconditional forward of the ε-model and one forward and one backward of the classifier.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..maths.guidance import classifier_guided_eps
from ..maths.schedule import NoiseSchedule

__all__ = ["log_prob_grad", "classifier_guided_noise", "ClassifierGuided"]


def log_prob_grad(classifier: nn.Module, x_t: torch.Tensor, t: int | torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """∇_{x_t} log p(y | x_t, t), (B, C, H, W); works inside the samplers' torch.inference_mode().

    Inference mode records no graph even under enable_grad, so it is switched off here, and x_t and t,
    inference tensors there, are cloned into ordinary ones.
    """
    with torch.inference_mode(False), torch.enable_grad():
        x = x_t.detach().clone().requires_grad_(True)
        t = t.clone() if torch.is_tensor(t) else t
        log_p = F.log_softmax(classifier(x, t), dim=-1)
        chosen = log_p.gather(1, y.to(log_p.device).long().reshape(-1, 1)).sum()  # samples are independent
        return torch.autograd.grad(chosen, x)[0].detach()


def classifier_guided_noise(model: nn.Module, classifier: nn.Module, schedule: NoiseSchedule, x_t: torch.Tensor,
                            t: int | torch.Tensor, labels: torch.Tensor, guidance_scale: float) -> torch.Tensor:
    """ε̃ = ε_θ(x_t, t) − s·√(1−ᾱ_t)·∇_{x_t} log p(y | x_t, t), with the unconditional (null-class) ε_θ."""
    eps = model(x_t, t, None)
    return classifier_guided_eps(schedule, t, eps, log_prob_grad(classifier, x_t, t, labels), guidance_scale)


class ClassifierGuided(nn.Module):
    """A noise predictor `(x_t, t, y) -> ε̃` for the lab's samplers: pass it where they take the model.

    schedule: the one both networks were trained with (t here is always a training timestep, also
    in respaced samplers). noise_fn: the guided noise, by default `classifier_guided_noise`; notebook
    05 passes the student's own.
    """

    def __init__(self, model: nn.Module, classifier: nn.Module, schedule: NoiseSchedule, guidance_scale: float,
                 noise_fn: Callable | None = None):
        super().__init__()
        self.model, self.classifier, self.guidance_scale = model, classifier, float(guidance_scale)
        self.schedule = schedule.to(next(model.parameters()).device)
        self.noise_fn = noise_fn or classifier_guided_noise
        self.num_classes = getattr(model, "num_classes", 10)
        self.null_class = getattr(model, "null_class", self.num_classes)

    def forward(self, x_t: torch.Tensor, t: int | torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if y is None:
            raise ValueError("classifier guidance needs the requested labels: pass y=torch.tensor([...]) to sample")
        return self.noise_fn(self.model, self.classifier, self.schedule, x_t, t, y, self.guidance_scale)
