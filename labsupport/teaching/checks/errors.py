"""What the self-checks say about an exception raised by the student's code: the error, the line of
the student's code it came from, and a hint where the error has a well-known cause."""
from __future__ import annotations

import linecache
import re
import sys
import traceback
from pathlib import Path

import torch

__all__ = ["describe_exception", "todo_detail", "error_hints"]

_PACKAGE_DIR = str(Path(__file__).resolve().parents[2])  # labsupport/

# PyTorch's words for two shapes that do not broadcast against each other
_BROADCAST = re.compile(r"size of tensor a \(\d+\) must match the size of tensor b \(\d+\)|"
                        r"doesn't match the broadcast shape|shapes? cannot be broadcast|not broadcastable")


def _is_package_frame(filename: str) -> bool:
    return (filename.startswith(_PACKAGE_DIR) or "site-packages" in filename or "dist-packages" in filename
            or filename.startswith(sys.prefix) or filename.startswith(sys.base_prefix) or filename.startswith("<frozen"))


def describe_exception(err: BaseException) -> str:
    """'ValueError: msg' and where in the student's code it happened (the last frame outside labsupport/torch)."""
    frames = traceback.extract_tb(err.__traceback__)
    own = [f for f in frames if not _is_package_frame(f.filename)]
    head = f"raised {type(err).__name__}: {err}".strip()
    if not own:
        return head
    f = own[-1]
    code = (f.line or linecache.getline(f.filename, f.lineno)).strip()
    cell = "your cell" if re.search(r"ipykernel_|<ipython-input", f.filename) else Path(f.filename).name
    return f"{head}\nat line {f.lineno} of {cell}, in {f.name}: {code}"


def todo_detail(err: NotImplementedError, method: str) -> str:
    m = re.search(r"TODO: ([\w.]+)", str(err))
    other = m.group(1) if m else None
    if other and other.split(".")[-1] != method:
        return f"not done yet: it calls {other}, which is still a TODO"
    return "not done yet (still raises NotImplementedError)"


def _signature_hint(err: BaseException) -> str:
    if isinstance(err, TypeError) and re.search(r"unexpected keyword argument|positional argument|required", str(err)):
        return " (keep the method's signature exactly as the skeleton gives it)"
    return ""


def _tensor_t_hint(err: BaseException, inputs: dict) -> str:
    """A table indexed with a (B,) tensor t gives shape (B,), which lines up with x's LAST axis, not its first."""
    t = inputs.get("t")
    if not (isinstance(err, RuntimeError) and torch.is_tensor(t) and t.ndim == 1 and _BROADCAST.search(str(err))):
        return ""
    return (f"\nin this case t is a (B,) tensor ({t.numel()} timesteps): table[t] then has shape ({t.numel()},), which "
            "broadcasts against the LAST axis of x (B, C, H, W), not the batch axis; look the table up with "
            "lab.extract(table, t, x.shape), which gives shape (B, 1, 1, 1) (and works for an int t too)")


_NO_GRAPH = re.compile(r"does not require grad and does not have a grad_fn|Inference tensors cannot be saved for "
                       r"backward|inference tensor")


def _inference_mode_hint(err: BaseException) -> str:
    """A gradient inside the samplers' torch.inference_mode(): enable_grad alone does not record a graph there."""
    if not (isinstance(err, RuntimeError) and _NO_GRAPH.search(str(err))):
        return ""
    return ("\nthe samplers run inside torch.inference_mode(), where no graph is recorded even under "
            "torch.enable_grad(): take the gradient inside `with torch.inference_mode(False), torch.enable_grad():` "
            "on a fresh tensor, x = x_t.detach().clone().requires_grad_(True)")


def error_hints(err: BaseException, inputs: dict) -> str:
    """What to append to describe_exception(err) for the case `inputs` (empty when no cause is known)."""
    return _signature_hint(err) + _tensor_t_hint(err, inputs) + _inference_mode_hint(err)
