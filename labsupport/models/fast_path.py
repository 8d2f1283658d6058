"""The default path: each shipped model in the fastest setting of its device that keeps fp32 eager's results.

CPU: channels_last weights when a one-time measurement on this machine finds them faster. Whether
they are depends on the CPU: on one 2-core Intel Xeon they made DDIM-50 at batch 16 1.17x faster, on
a 2-core AMD EPYC 0.94-1.13x from run to run (docs/benchmarks.md), so the choice is measured, not assumed. CUDA: cuDNN
autotuning (`torch.backends.cudnn.benchmark`, process-wide); not measured for this lab. TF32, reduced
precision and compilation change the results or cost a long first call, so they stay opt-in
(`labsupport.tools.speedups`). LABSUPPORT_FAST_PATH=0, or `fast=False`, gives the plain model.
"""
from __future__ import annotations

import os
import statistics
import time

import torch
from torch import nn

__all__ = ["FAST_PATH_ENV", "fast_path_enabled", "use_fast_path", "use_plain_path", "channels_last_pays",
           "clear_layout_choices", "PLAIN_MEASURED"]

FAST_PATH_ENV = "LABSUPPORT_FAST_PATH"  # "0" turns it off (LABSUPPORT_FAST is the notebooks' fast *mode*)
PLAIN_MEASURED = "plain layout (channels_last measured no faster here)"
_MIN_GAIN = 1.03        # channels_last only when clearly faster: a tie keeps the layout students expect
_PROBE_BATCH, _ROUNDS = 16, 5
_LAYOUT_CHOICES: dict[tuple, bool] = {}


def fast_path_enabled(fast: bool | None = None) -> bool:
    """`fast` when given, else whether the environment leaves the fast path on (LABSUPPORT_FAST_PATH != "0")."""
    return bool(fast) if fast is not None else os.environ.get(FAST_PATH_ENV, "1") != "0"


def clear_layout_choices() -> None:
    """Forget the measured layout choices (they are made once per process)."""
    _LAYOUT_CHOICES.clear()


def _contiguous_output(module, args, out):
    # a channels_last model's output comes back in the default layout, so .view() and friends keep working
    return out.contiguous() if torch.is_tensor(out) else out


def _probe(model: nn.Module):
    """One forward at batch 16 on inputs of the model's `sample_shape`, or None when it has none."""
    shape = getattr(model, "sample_shape", None)
    if shape is None:
        return None
    device = next(model.parameters()).device
    x = torch.randn((_PROBE_BATCH, *shape), generator=torch.Generator().manual_seed(0)).to(device)
    t = torch.full((_PROBE_BATCH,), 500, device=device)
    args = (x, t) if getattr(model, "probe_with_t", True) else (x,)   # ε-models and p(y | x_t, t) take t
    return lambda m: m(*args)


def _seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def channels_last_pays(model: nn.Module) -> bool:
    """Whether channels_last runs the model's probe at least 3% faster than the plain layout, here.

    Measured once per process for each (architecture, device, thread count): warm-up, then five rounds
    that time both layouts back to back; the median of the five ratios decides (drift cancels out).
    A model without `sample_shape` is not measured and keeps the plain layout.
    """
    probe = _probe(model)
    if probe is None:
        return False
    device = next(model.parameters()).device
    key = (type(model).__name__, tuple((n, tuple(p.shape)) for n, p in model.named_parameters()), str(device),
           torch.get_num_threads())
    if key not in _LAYOUT_CHOICES:
        layouts = (torch.contiguous_format, torch.channels_last)
        ratios = []
        for round_ in range(_ROUNDS + 1):   # round 0 warms both layouts up
            times = []
            for layout in layouts:
                model.to(memory_format=layout)   # outside inference mode: the weights must stay normal tensors
                with torch.inference_mode():
                    times.append(_seconds(lambda: probe(model)))
            if round_:
                ratios.append(times[0] / times[1])
        model.to(memory_format=torch.contiguous_format)
        _LAYOUT_CHOICES[key] = statistics.median(ratios) >= _MIN_GAIN
    return _LAYOUT_CHOICES[key]


def use_fast_path(model: nn.Module, fast: bool | None = None, *, layout: str | None = None) -> nn.Module:
    """Put `model` (in place) on the default path of its device; `model.fast_path` names what was done.

    layout (CPU): None measures (`channels_last_pays`), "channels_last" or "plain" forces one.
    Inputs in either layout work, and the output comes back contiguous.
    """
    if not fast_path_enabled(fast):
        return use_plain_path(model)
    if layout not in (None, "channels_last", "plain"):
        raise ValueError(f"layout must be None (measure), 'channels_last' or 'plain', got {layout!r}")
    device = next(model.parameters()).device
    if device.type == "cpu":
        if layout == "channels_last" or (layout is None and channels_last_pays(model)):
            model.to(memory_format=torch.channels_last)
            if _contiguous_output not in model._forward_hooks.values():
                model.register_forward_hook(_contiguous_output)
            model.fast_path = "channels_last"
        else:
            use_plain_path(model)
            model.fast_path = PLAIN_MEASURED if layout is None else None
    elif device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        model.fast_path = "cudnn.benchmark"
    else:
        model.fast_path = None
    return model


def use_plain_path(model: nn.Module) -> nn.Module:
    """Undo `use_fast_path` on `model` (in place): contiguous weights, no output hook (cuDNN's flag is process-wide)."""
    model.to(memory_format=torch.contiguous_format)
    for key in [k for k, hook in model._forward_hooks.items() if hook is _contiguous_output]:
        del model._forward_hooks[key]
    model.fast_path = None
    return model
