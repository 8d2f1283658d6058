"""The noise-aware classifier p(y | x_t, t) of classifier guidance (seed 004; notebook 05).

Unlike the evaluation CNN it sees noisy digits and is told how noisy: the timestep's sinusoidal
embedding shifts every block's channels, as in the U-Net. SiLU and GroupNorm keep ∇_x log p(y | x_t)
smooth and independent of the batch, which guidance differentiates through.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .unet import timestep_embedding

__all__ = ["NoisyClassifier"]


class _Block(nn.Module):
    """conv -> GroupNorm -> + time shift -> SiLU, twice, then 2x2 average pooling."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(c_in, c_out, 3, padding=1), nn.Conv2d(c_out, c_out, 3, padding=1)
        self.norm1, self.norm2 = nn.GroupNorm(8, c_out), nn.GroupNorm(8, c_out)
        self.emb = nn.Linear(emb_dim, c_out)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = F.silu(self.norm1(self.conv1(x)) + self.emb(emb)[:, :, None, None])
        h = F.silu(self.norm2(self.conv2(h)))
        return F.avg_pool2d(h, 2)


class NoisyClassifier(nn.Module):
    """`model(x_t, t)` -> (B, 10) logits of p(y | x_t, t); x_t (B, 1, 28, 28), t an int or (B,) tensor."""

    def __init__(self, width: int = 32, emb_dim: int = 64):
        super().__init__()
        self.emb_dim = emb_dim
        self.time_mlp = nn.Sequential(nn.Linear(emb_dim, emb_dim), nn.SiLU())
        self.block1 = _Block(1, width, emb_dim)              # 28 -> 14
        self.block2 = _Block(width, 2 * width, emb_dim)      # 14 -> 7
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(2 * width * 7 * 7, 128), nn.SiLU(), nn.Linear(128, 10))

    def forward(self, x_t: torch.Tensor, t: int | torch.Tensor) -> torch.Tensor:
        if x_t.ndim != 4 or tuple(x_t.shape[1:]) != (1, 28, 28):
            raise ValueError(f"x_t must have shape (B, 1, 28, 28), got {tuple(x_t.shape)}")
        B = x_t.shape[0]
        t = torch.as_tensor(t, device=x_t.device).reshape(-1)
        t = t.expand(B) if t.numel() == 1 else t
        if t.shape != (B,):
            raise ValueError(f"t must be an int or a ({B},) tensor, one step per sample, got shape {tuple(t.shape)}")
        emb = self.time_mlp(timestep_embedding(t, self.emb_dim).to(x_t.dtype))
        return self.head(self.block2(self.block1(x_t, emb), emb))
