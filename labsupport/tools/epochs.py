"""A resumable epoch loop for the small helper networks (noise-aware classifier, autoencoder).

After every epoch the checkpoint holds model, optimizer, learning-rate schedule, generator and the
epoch count, so an interrupted run continues where it stopped and ends with the same weights.
"""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Callable

import torch
from tqdm.auto import tqdm

from .train import save_atomic

__all__ = ["fit_epochs"]


def fit_epochs(ckpt_path: Path, model: torch.nn.Module, batch_loss: Callable, n: int, *, epochs: int,
               batch_size: int, lr: float, seed: int, device: torch.device, progress: bool = True,
               max_minutes: float | None = None) -> dict:
    """Run `epochs` passes of `batch_loss(model, idx, g)` over n examples; returns the checkpoint dict."""
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * math.ceil(n / batch_size))
    g = torch.Generator(device).manual_seed(seed)
    ck = {"epoch": 0, "wall_s": 0.0}
    if ckpt_path.exists():
        ck = torch.load(ckpt_path, map_location=device, weights_only=False)
        model.load_state_dict(ck["model"]); opt.load_state_dict(ck["opt"]); sched.load_state_dict(ck["sched"])
        g.set_state(ck["rng"].cpu() if device.type == "cpu" else ck["rng"])
    start = time.time()
    for epoch in tqdm(range(ck["epoch"], epochs), initial=ck["epoch"], total=epochs, disable=not progress):
        began = time.time()
        model.train()
        perm = torch.randperm(n, generator=g, device=device)
        for i in range(0, n, batch_size):
            loss = batch_loss(model, perm[i:i + batch_size], g)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        ck = {"model": model.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
              "rng": g.get_state(), "epoch": epoch + 1, "wall_s": ck["wall_s"] + time.time() - began,
              "last_loss": loss.item()}
        save_atomic(ck, ckpt_path)
        if max_minutes is not None and time.time() - start > 60 * max_minutes:
            break
    model.eval()
    return ck
