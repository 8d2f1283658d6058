"""Plain data across the process boundary: what the probe writes, what the grader reads.

The probe (`encode`) turns whatever a student's method returned into JSON plus `.npy` files; the
grader (`decode`) reads them back with `allow_pickle=False`, so no object made by student code
reaches the grader's process: tensors come back as fresh tensors, containers as plain lists and
dicts, other objects as `Returned` records of their public attributes, anything else as `Opaque`.

`fingerprint` hashes a case's inputs the same way on both sides, so the grader can tell when the
inputs the student's code saw differ from the ones it generated.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["encode", "decode", "fingerprint", "Returned", "Opaque", "MAX_ARRAY_BYTES"]

MAX_ARRAY_BYTES = 32 * 2 ** 20   # one returned tensor
MAX_TOTAL_BYTES = 128 * 2 ** 20  # all the arrays of one decoded value
MAX_DEPTH = 5
MAX_ITEMS = 2_000


class Returned:
    """An object the student returned, rebuilt from its public attributes (e.g. a Trajectory)."""

    def __init__(self, cls: str, attrs: dict[str, Any]):
        self.__dict__.update(attrs)
        self._cls = cls

    def __repr__(self) -> str:
        return f"<{self._cls} with {sorted(k for k in self.__dict__ if k != '_cls')}>"


class Opaque:
    """A value the grader does not read back; equal to nothing."""

    def __init__(self, cls: str, why: str = ""):
        self.cls, self.why = cls, why

    def __eq__(self, other) -> bool:
        return False

    __hash__ = object.__hash__

    def __repr__(self) -> str:
        return f"<{self.cls}{': ' + self.why if self.why else ''}>"


def _type_name(value: Any) -> str:
    t = type(value)
    return t.__name__ if t.__module__ == "builtins" else f"{t.__module__}.{t.__qualname__}"


def encode(value: Any, folder: Path, prefix: str, _depth: int = 0, _counter: list | None = None) -> dict:
    """JSON-able description of `value`; tensors and arrays go to `folder/<prefix>_<n>.npy`."""
    counter = _counter if _counter is not None else [0]
    if _depth > MAX_DEPTH:
        return {"t": "opaque", "cls": _type_name(value), "why": "nested too deeply"}
    if value is None or type(value) in (bool, int, str):
        return {"t": type(value).__name__ if value is not None else "none", "v": value}
    if type(value) is float:
        return {"t": "float", "v": value if math.isfinite(value) else repr(value)}
    if isinstance(value, np.generic):
        return {"t": "npscalar", "cls": _type_name(value), "v": value.item() if np.isfinite(value).all() else repr(value.item())}
    if isinstance(value, (torch.Tensor, np.ndarray)):
        is_tensor = isinstance(value, torch.Tensor)
        arr_t = torch.Tensor.detach(value).cpu() if is_tensor else value
        dtype = str(arr_t.dtype)
        nbytes = arr_t.numel() * arr_t.element_size() if is_tensor else arr_t.nbytes
        if nbytes > MAX_ARRAY_BYTES:
            return {"t": "opaque", "cls": _type_name(value), "why": f"{nbytes / 2**20:.0f} MB is too large to grade"}
        if is_tensor:
            if arr_t.dtype == torch.bfloat16 or arr_t.is_complex() and arr_t.dtype == torch.complex32:
                arr_t = arr_t.float() if not arr_t.is_complex() else arr_t.to(torch.complex64)
            arr = arr_t.resolve_conj().resolve_neg().contiguous().numpy()
        else:
            if arr_t.dtype.hasobject:
                return {"t": "opaque", "cls": _type_name(value), "why": "an object array"}
            arr = np.ascontiguousarray(arr_t)
        counter[0] += 1
        name = f"{prefix}_{counter[0]}.npy"
        np.save(folder / name, arr, allow_pickle=False)
        return {"t": "tensor" if is_tensor else "ndarray", "cls": _type_name(value), "dtype": dtype,
                "shape": list(arr.shape), "file": name}
    if isinstance(value, (list, tuple)):
        items = [encode(v, folder, prefix, _depth + 1, counter) for v in list(value)[:MAX_ITEMS]]
        return {"t": "tuple" if isinstance(value, tuple) else "list", "cls": _type_name(value), "items": items,
                "truncated": len(value) > MAX_ITEMS}
    if isinstance(value, dict):
        pairs = [[str(k) if not isinstance(k, (int, str)) else k, encode(v, folder, prefix, _depth + 1, counter)]
                 for k, v in list(value.items())[:MAX_ITEMS]]
        return {"t": "dict", "cls": _type_name(value), "items": pairs}
    attrs = None
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        attrs = {f.name: getattr(value, f.name, None) for f in dataclasses.fields(value)}
    elif hasattr(value, "__dict__") and not callable(value) and not isinstance(value, (type, torch.nn.Module)):
        attrs = {k: v for k, v in vars(value).items() if not k.startswith("_")}
    if attrs is not None:
        return {"t": "object", "cls": _type_name(value),
                "attrs": {k: encode(v, folder, prefix, _depth + 1, counter) for k, v in list(attrs.items())[:50]}}
    return {"t": "opaque", "cls": _type_name(value)}


def read_array(folder: Path, name: str, max_bytes: int = MAX_ARRAY_BYTES) -> np.ndarray:
    """np.load of `folder/name` as a plain file only: no symlink, FIFO or device (a sandbox may plant
    them in the folders it can write), no pickle, at most `max_bytes`."""
    import os
    import stat
    name = Path(str(name)).name
    dfd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dfd)
    finally:
        os.close(dfd)
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode) or st.st_size > max_bytes + 4096:
            raise ValueError(f"{name} is not a plain file of at most {max_bytes} bytes")
        arr = np.load(f, allow_pickle=False)
    if arr.dtype.kind not in "biufc" or not arr.dtype.isnative:
        raise ValueError(f"{name} holds {arr.dtype}, not native numbers")
    return arr


def as_tensor(arr: np.ndarray, dtype: Any) -> torch.Tensor:
    """A fresh tensor of `arr`, in the torch dtype named by `dtype` (e.g. bfloat16 saved as float32)."""
    t = torch.from_numpy(np.array(arr))
    name = str(dtype or "")
    wanted = getattr(torch, name[6:], None) if name.startswith("torch.") else None
    return t.to(wanted) if isinstance(wanted, torch.dtype) and t.dtype != wanted else t


def _float(v: Any) -> float:
    return float(v) if not isinstance(v, str) else float(v)  # 'nan', 'inf', '-inf' parse as floats


def decode(enc: dict, folder: Path, max_bytes: int = MAX_ARRAY_BYTES) -> Any:
    """The value `encode` described, made of plain Python, numpy-free tensors and `Returned`/`Opaque`.

    Total: whatever a (hostile) worker wrote, the answer is a value, never an exception; all arrays
    together may hold at most MAX_TOTAL_BYTES."""
    try:
        return _decode(enc, folder, max_bytes, [MAX_TOTAL_BYTES], 0)
    except Exception as err:  # noqa: BLE001 - RecursionError, type confusion in forged records
        return Opaque("?", f"unreadable ({type(err).__name__})")


def _decode(enc: dict, folder: Path, max_bytes: int, budget: list, depth: int) -> Any:
    if not isinstance(enc, dict) or depth > MAX_DEPTH + 2:
        return Opaque("?", "not a record")
    kind = enc.get("t")
    if kind == "none":
        return None
    if kind in ("bool", "int", "str"):
        want = {"bool": bool, "int": int, "str": str}[kind]
        v = enc.get("v")
        return v if type(v) is want else Opaque(kind, "unreadable")
    if kind == "float":
        return _float(enc["v"])
    if kind == "npscalar":
        v = enc["v"]
        return np.float64(_float(v)) if isinstance(v, (float, str)) else v
    if kind in ("tensor", "ndarray"):
        try:
            arr = read_array(Path(folder), str(enc["file"]), max_bytes)
        except Exception as err:  # noqa: BLE001 - missing, forged, truncated, symlinked, non-numeric files
            return Opaque(str(enc.get("cls", kind)), f"unreadable array ({type(err).__name__})")
        budget[0] -= arr.nbytes
        if budget[0] < 0:
            return Opaque(str(enc.get("cls", kind)), "the arrays returned are too large in all")
        if kind == "ndarray":
            return arr
        return as_tensor(arr, enc.get("dtype"))
    if kind in ("list", "tuple"):
        items = [_decode(e, folder, max_bytes, budget, depth + 1) for e in list(enc.get("items", []))[:MAX_ITEMS]]
        return tuple(items) if kind == "tuple" else items
    if kind == "dict":
        return {k if isinstance(k, (int, str)) else str(k): _decode(v, folder, max_bytes, budget, depth + 1)
                for k, v in list(enc.get("items", []))[:MAX_ITEMS]}
    if kind == "object":
        return Returned(str(enc.get("cls")), {str(k): _decode(v, folder, max_bytes, budget, depth + 1)
                                              for k, v in list(dict(enc.get("attrs", {})).items())[:50]})
    return Opaque(str(enc.get("cls", "?")), str(enc.get("why", "")))


def type_of(enc: dict) -> str:
    """The returned value's class as the probe saw it (e.g. 'torch.Tensor', 'list')."""
    return str(enc.get("cls") or enc.get("t"))


def _feed(h, value: Any, depth: int = 0) -> None:
    if depth > MAX_DEPTH:
        h.update(b"<deep>")
        return
    if isinstance(value, torch.Tensor):
        t = value.detach().cpu().contiguous()
        h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    elif isinstance(value, torch.nn.Module):
        h.update(f"M{type(value).__qualname__}".encode())
        for name, tensor in sorted(value.state_dict().items()):
            h.update(name.encode())
            _feed(h, tensor, depth + 1)
    elif isinstance(value, dict):
        for k in sorted(value, key=str):
            h.update(f"K{k}".encode())
            _feed(h, value[k], depth + 1)
    elif isinstance(value, (list, tuple)):
        h.update(f"L{len(value)}".encode())
        for v in value:
            _feed(h, v, depth + 1)
    elif value is None or isinstance(value, (bool, int, float, str)):
        h.update(f"V{value!r}".encode())
    elif hasattr(value, "betas") and hasattr(value, "timesteps"):  # a NoiseSchedule
        h.update(b"S")
        _feed(h, value.betas, depth + 1)
        _feed(h, value.timesteps, depth + 1)
    else:
        h.update(f"O{type(value).__qualname__}".encode())


def fingerprint(inputs: dict) -> str:
    """A short hash of a case's inputs (tensors by value, the model by its weights)."""
    h = hashlib.sha256()
    _feed(h, inputs)
    return h.hexdigest()[:24]


def dumps(obj: Any) -> str:
    return json.dumps(obj, allow_nan=True, separators=(",", ":"))
