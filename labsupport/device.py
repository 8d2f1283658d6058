"""The one place that chooses a device: CUDA when present, CPU otherwise, LABSUPPORT_DEVICE overrides."""
from __future__ import annotations

import os

import torch

__all__ = ["get_device"]


def get_device(prefer: str | None = None) -> torch.device:
    """`prefer` or $LABSUPPORT_DEVICE ("cpu", "cuda", "cuda:1", ...) else cuda if available else cpu."""
    name = prefer or os.environ.get("LABSUPPORT_DEVICE")
    if name:
        device = torch.device(name)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device {name!r} was requested but CUDA is not available here; use 'cpu'")
        return device
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
