"""Small, deterministic ingredients for generated check cases: a toy ε-model, schedules, images, noise."""
from __future__ import annotations

import contextlib

import torch
from torch import nn

from ...maths.schedule import NoiseSchedule, linear_betas

__all__ = ["ToyEpsModel", "ToyCondEpsModel", "ToyNoisyClassifier", "CallCounter", "NaNAtTheEnd", "TOY_MODELS", "toy_model", "schedule", "short_schedule", "images", "noise", "reseeded", "SHORT_T"]

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


class ToyCondEpsModel(nn.Module):
    """A cheap class-conditional ε(x, t, y): every label, and the null class 10, bends the output differently,
    so that a swapped label, a wrong null class or a missing guidance term shows up in the numbers."""

    num_classes = 10
    null_class = 10

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.tensor([0.9, -0.4, 0.35]))
        # null (index 10) is 0; the digits spread over [-1, 1], none of them 0
        self.register_buffer("shift", torch.tensor([-1.0, -0.8, -0.6, -0.4, -0.2, 0.2, 0.4, 0.6, 0.8, 1.0, 0.0]))

    def forward(self, x_t: torch.Tensor, t, y: torch.Tensor | None = None) -> torch.Tensor:
        B = x_t.shape[0]
        t = torch.as_tensor(t, device=x_t.device, dtype=x_t.dtype).reshape(-1, *([1] * (x_t.ndim - 1)))
        y = torch.full((B,), self.null_class, device=x_t.device) if y is None else y
        c = self.shift[y.long()].to(x_t.dtype).reshape(-1, *([1] * (x_t.ndim - 1)))
        w = self.w.to(x_t.dtype)
        base = w[0] * x_t + w[1] * x_t.roll(1, -1) + w[2] * torch.sin(t / 37.0 + 0.3)
        return 1.2 * torch.tanh(base + 0.5 * c * torch.cos(x_t.roll(1, -2) + c))


class CallCounter(nn.Module):
    """Wraps a noise predictor and records the batch size of every call.

    The grader keeps it in its own process (student code gets a stand-in that asks for each ε), so
    the count is the grader's, not a number student code could write."""

    counts_calls = True

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner
        self.num_classes, self.null_class = inner.num_classes, inner.null_class
        self.batches: list[int] = []

    def forward(self, x_t, t, y=None):
        self.batches.append(int(x_t.shape[0]))
        return self.inner(x_t, t, y)


_CACHE: dict[str, object] = {}


def toy_model() -> ToyEpsModel:
    if "model" not in _CACHE:
        _CACHE["model"] = ToyEpsModel().eval()
    return _CACHE["model"]


class NaNAtTheEnd(nn.Module):
    """The toy network, except that it returns NaN in the last steps (as a float16 overflow would)."""

    def __init__(self):
        super().__init__()
        self.inner = toy_model()
        self.num_classes, self.null_class = self.inner.num_classes, self.inner.null_class

    def forward(self, x_t, t, y=None):
        eps = self.inner(x_t, t, y)
        return eps * float("nan") if int(torch.as_tensor(t).reshape(-1)[0]) < 5 else eps


class ToyNoisyClassifier(nn.Module):
    """A cheap p(y | x_t, t) for any image shape: each class reads the pixels through its own
    nonlinearity, so log p, p and the raw logit all have different gradients."""

    def __init__(self):
        super().__init__()
        k = torch.arange(10, dtype=torch.float32)
        self.register_buffer("gain", 0.6 + 0.15 * k)
        self.register_buffer("bias", torch.linspace(-0.9, 0.9, 10))
        self.weight = nn.Parameter(torch.tensor(2.5))

    def forward(self, x_t: torch.Tensor, t) -> torch.Tensor:
        t = torch.as_tensor(t, device=x_t.device, dtype=x_t.dtype).reshape(-1, 1)
        x = x_t.flatten(1)[:, None, :]                                          # (B, 1, D)
        shift = self.bias[None, :, None] * torch.cos(t / 40.0)[:, :, None]      # (B, 10, 1)
        per_class = torch.tanh(self.gain[None, :, None] * x.roll(1, -1) * x + shift)
        return self.weight * per_class.mean(-1) + 0.05 * torch.arange(10, device=x_t.device)


# the networks a check may hand to student code; the grader's worker rebuilds them by these names
TOY_MODELS = {cls.__name__: cls for cls in (ToyEpsModel, ToyCondEpsModel, ToyNoisyClassifier, CallCounter,
                                            NaNAtTheEnd)}


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


_OFFSET = [0]   # added to every seed: `reseeded` draws a second, independent set of case tensors


@contextlib.contextmanager
def reseeded(offset: int):
    """Within the block, images() and noise() draw other tensors (the slip survey's second opinion)."""
    old, _OFFSET[0] = _OFFSET[0], offset
    try:
        yield
    finally:
        _OFFSET[0] = old


def images(shape, seed: int) -> torch.Tensor:
    """Image-like values in [-1, 1] (smooth blobs, saturated in places, as MNIST digits are)."""
    g = torch.Generator().manual_seed(seed + _OFFSET[0])
    return (2.5 * torch.randn(shape, generator=g)).tanh()


def noise(shape, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(10_000 + seed + _OFFSET[0])
    return torch.randn(shape, generator=g)
