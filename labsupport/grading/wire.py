"""The grader's inputs on their way into the worker, and generators both ways.

`codec` carries what student code returns back to the grader as plain data. This module adds what
the grader hands *to* student code: generators (by state), noise schedules (by their betas and
timesteps), the checks' toy networks (by class name, tensors and plain attributes) and the lab's
samplers (by class, model, schedule and options). Only the worker rebuilds objects from it
(`decode(..., rich=True)`); the grader decodes what comes back with `rich=False`, which rebuilds
generators only (a generator's state is a byte tensor, nothing to execute).

Objects keep their identity: a model given twice (to the constructor and to a call) is one object
in the worker, and `refs` maps each rebuilt module back to its number, so the worker can report
what a call did to it (a call counter's batch sizes).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from . import codec

__all__ = ["encode", "encode_student", "decode", "Memo", "generator_state", "set_generator_state"]

_PLAIN_ATTRS = (bool, int, float, str, type(None))


class Memo:
    """Encoding: object id -> ref number (and the objects); decoding: ref number -> rebuilt object."""

    def __init__(self):
        self.ids: dict[int, int] = {}
        self.objects: dict[int, Any] = {}

    def add(self, obj) -> tuple[int, bool]:
        key = id(obj)
        if key in self.ids:
            return self.ids[key], False
        ref = len(self.ids)
        self.ids[key] = ref
        self.objects[ref] = obj
        return ref, True


def generator_state(g: torch.Generator) -> torch.Tensor:
    return g.get_state()


def set_generator_state(g: torch.Generator, state: torch.Tensor) -> None:
    g.set_state(state.to(torch.uint8).cpu())


def _tensor(t: torch.Tensor, folder: Path, name: str) -> dict:
    arr = t.detach().cpu().contiguous().numpy()
    np.save(folder / name, arr, allow_pickle=False)
    return {"t": "tensor", "dtype": str(t.dtype), "shape": list(arr.shape), "file": name,
            "grad": bool(t.requires_grad)}


def _plain(value: Any, folder: Path, name, memo: Memo, inner) -> dict | None:
    """Generators, tensors, numbers, strings and containers (`inner` encodes an item); None for the rest."""
    if isinstance(value, torch.Generator):
        ref, _ = memo.add(value)
        return {"t": "generator", "ref": ref, "state": _tensor(value.get_state(), folder, name()),
                "device": str(value.device)}
    if torch.is_tensor(value):
        return _tensor(value, folder, name())
    if value is None or type(value) in (bool, int, str):
        return {"t": "none" if value is None else type(value).__name__, "v": value}
    if type(value) is float:
        return {"t": "float", "v": repr(value)}
    if type(value) in (list, tuple):
        return {"t": type(value).__name__, "items": [inner(v) for v in value[:10_000]]}
    if type(value) is dict:
        return {"t": "dict", "items": [[k if isinstance(k, (int, str)) else str(k), inner(v)]
                                       for k, v in list(value.items())[:10_000]]}
    return None


def _namer(prefix: str, n: list | None) -> tuple[list, Any]:
    n = n if n is not None else [0]

    def name() -> str:
        n[0] += 1
        return f"{prefix}_in{n[0]}.npy"
    return n, name


def encode(value: Any, folder: Path, prefix: str, memo: Memo | None = None, _n: list | None = None) -> dict:
    """JSON-able description of a grader input; arrays go to `folder`."""
    memo = memo if memo is not None else Memo()
    n, name = _namer(prefix, _n)
    plain = _plain(value, folder, name, memo, lambda v: encode(v, folder, prefix, memo, n))
    if plain is not None:
        return plain
    if hasattr(value, "betas") and hasattr(value, "timesteps") and hasattr(value, "alphas_cumprod"):
        # every table as it is, so that the worker's schedule is bit for bit the grader's
        return {"t": "schedule", "kind": value.kind, "T": value.T,
                "tables": {k: _tensor(getattr(value, k), folder, name()) for k in value._TABLES}}
    if isinstance(value, nn.Module):
        ref, new = memo.add(value)
        if not new:
            return {"t": "ref", "ref": ref}
        if getattr(value, "counts_calls", False):
            # what a check counts stays in the grader: the worker gets a stand-in that asks it for ε
            return {"t": "remote", "ref": ref, "num_classes": value.num_classes, "null_class": value.null_class}
        return {"t": "module", "ref": ref, "cls": type(value).__name__,
                "params": {k: _tensor(p.data, folder, name()) for k, p in value.named_parameters(recurse=False)},
                "buffers": {k: _tensor(b, folder, name()) for k, b in value.named_buffers(recurse=False)},
                "children": {k: encode(c, folder, prefix, memo, n) for k, c in value.named_children()},
                "attrs": {k: encode(v, folder, prefix, memo, n) for k, v in vars(value).items()
                          if not k.startswith("_") and k != "training" and (type(v) in _PLAIN_ATTRS or type(v) is list)},
                "training": value.training}
    if hasattr(value, "model") and hasattr(value, "schedule") and type(value).__name__ in ("DDIMSampler", "DDPMSampler"):
        options = {k: getattr(value, k) for k in ("clip_x0", "recompute_eps", "variance_type") if hasattr(value, k)}
        return {"t": "sampler", "cls": type(value).__name__, "model": encode(value.model, folder, prefix, memo, n),
                "schedule": encode(value.schedule, folder, prefix, memo, n),
                "options": {k: encode(v, folder, prefix, memo, n) for k, v in options.items()}}
    raise TypeError(f"the grader cannot hand a {type(value).__name__} to student code")


def _load(enc: dict, folder: Path) -> torch.Tensor:
    t = codec.as_tensor(codec.read_array(Path(folder), str(enc["file"])), enc.get("dtype"))
    return t.requires_grad_(bool(enc.get("grad"))) if t.is_floating_point() else t


def _module(enc: dict, folder: Path, memo: Memo) -> nn.Module:
    from ..teaching.checks.cases import TOY_MODELS
    cls = TOY_MODELS.get(str(enc.get("cls")))
    if cls is None:
        raise TypeError(f"unknown network {enc.get('cls')!r}")
    module = cls.__new__(cls)
    nn.Module.__init__(module)
    memo.objects[int(enc["ref"])] = module
    for key, child in enc.get("children", {}).items():
        module.add_module(key, decode(child, folder, rich=True, memo=memo))  # toys hold no remote parts
    for key, p in enc.get("params", {}).items():
        module.register_parameter(key, nn.Parameter(_load(p, folder).detach()))
    for key, b in enc.get("buffers", {}).items():
        module.register_buffer(key, _load(b, folder))
    for key, v in enc.get("attrs", {}).items():
        setattr(module, key, decode(v, folder, rich=True, memo=memo))
    return module.train(bool(enc.get("training")))


def decode(enc: dict, folder: Path, *, rich: bool, memo: Memo | None = None, remote=None) -> Any:
    """The value `encode` described. rich=False (the grader): generators and plain data only."""
    memo = memo if memo is not None else Memo()
    kind = enc.get("t")
    if kind == "generator":
        g = torch.Generator(device="cpu")
        set_generator_state(g, _load(enc["state"], folder))
        memo.objects[int(enc.get("ref", -1))] = g
        return g
    if kind == "none":
        return None
    if kind in ("bool", "int", "str"):
        return enc.get("v")
    if kind == "float":
        return float(enc["v"])
    if kind == "tensor":
        return _load(enc, folder)
    if kind in ("list", "tuple"):
        items = [decode(e, folder, rich=rich, memo=memo, remote=remote) for e in enc.get("items", [])]
        return tuple(items) if kind == "tuple" else items
    if kind == "dict":
        return {k: decode(v, folder, rich=rich, memo=memo, remote=remote) for k, v in enc.get("items", [])}
    if not rich:
        return codec.Opaque(str(kind), "not read back by the grader")
    if kind == "ref":
        return memo.objects[int(enc["ref"])]
    if kind == "schedule":
        from ..maths.schedule import NoiseSchedule
        schedule = NoiseSchedule.__new__(NoiseSchedule)
        schedule.kind, schedule.T = str(enc.get("kind")), int(enc["T"])
        for key, table in enc["tables"].items():
            if key in NoiseSchedule._TABLES:
                setattr(schedule, key, _load(table, folder))
        return schedule
    if kind == "module":
        return _module(enc, folder, memo)
    if kind == "remote":
        if remote is None:
            raise TypeError("a remote network needs the worker's channel")
        module = remote(int(enc["ref"]), int(enc["num_classes"]), int(enc["null_class"]))
        memo.objects[int(enc["ref"])] = module
        return module
    if kind == "sampler":
        from ..samplers.ddim import DDIMSampler
        from ..samplers.ddpm import DDPMSampler
        cls = {"DDIMSampler": DDIMSampler, "DDPMSampler": DDPMSampler}[str(enc["cls"])]
        options = {k: decode(v, folder, rich=True, memo=memo, remote=remote) for k, v in enc.get("options", {}).items()}
        return cls(decode(enc["model"], folder, rich=True, memo=memo, remote=remote), decode(enc["schedule"], folder, rich=True, memo=memo), **options)
    raise TypeError(f"cannot rebuild {kind!r}")


def encode_student(value: Any, folder: Path, prefix: str, memo: Memo, _n: list | None = None, _depth: int = 0) -> dict:
    """What student code passes to a reference collaborator: tensors, numbers, containers and
    generators; anything else arrives as opaque (and the reference will refuse it)."""
    n, name = _namer(prefix, _n)
    if _depth > 6:
        return {"t": "opaque"}
    plain = _plain(value, folder, name, memo, lambda v: encode_student(v, folder, prefix, memo, n, _depth + 1))
    return plain if plain is not None else {"t": "opaque"}
