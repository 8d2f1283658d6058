"""Small, deterministic ingredients for generated check cases: a toy ε-model, schedules, images, noise."""
from __future__ import annotations

import torch
from torch import nn

from ..schedule import NoiseSchedule, linear_betas

__all__ = ["ToyEpsModel", "toy_model", "schedule", "short_schedule", "images", "noise", "SHORT_T"]

SHORT_T = 30


class ToyEpsModel(nn.Module):
    """A cheap stand-in for the U-Net: ε(x, t) depends on every pixel's neighbour and on t, so that a
    wrong timestep or a wrong input shows up in the numbers. Accepts any (B, C, H, W) and ignores y."""

    num_classes = 10
    null_class = 10

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.tensor([0.9, -0.4, 0.35]))

    def forward(self, x_t: torch.Tensor, t, y=None) -> torch.Tensor:
        t = torch.as_tensor(t, device=x_t.device, dtype=x_t.dtype).reshape(-1, *([1] * (x_t.ndim - 1)))
        w = self.w.to(x_t.dtype)
        return 1.2 * torch.tanh(w[0] * x_t + w[1] * x_t.roll(1, -1) + w[2] * torch.sin(t / 37.0 + 0.3))


_CACHE: dict[str, object] = {}


def toy_model() -> ToyEpsModel:
    if "model" not in _CACHE:
        _CACHE["model"] = ToyEpsModel().eval()
    return _CACHE["model"]


def schedule(kind: str = "linear") -> NoiseSchedule:
    """The course's 1000-step schedules (shared, built once)."""
    if kind not in _CACHE:
        _CACHE[kind] = NoiseSchedule.from_name(kind, 1000)
    return _CACHE[kind]


def short_schedule() -> NoiseSchedule:
    """A 30-step schedule that still ends near pure noise, so whole sampling loops run in milliseconds."""
    if "short" not in _CACHE:
        _CACHE["short"] = NoiseSchedule(linear_betas(SHORT_T, 1e-3, 0.3), kind="short")
    return _CACHE["short"]


def images(shape, seed: int) -> torch.Tensor:
    """Image-like values in [-1, 1] (smooth blobs, saturated in places, as MNIST digits are)."""
    g = torch.Generator().manual_seed(seed)
    return (2.5 * torch.randn(shape, generator=g)).tanh()


def noise(shape, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(10_000 + seed)
    return torch.randn(shape, generator=g)
