"""The autoencoder of latent diffusion (seed 000, notebook 07): 28x28 digits <-> 4x7x7 latents.

784 numbers become 196, 4x fewer; the latent ε-model works on `encode(x) * scale`, where the
shipped `scale` makes the training latents' standard deviation 1, the variance the noise schedule
assumes of x0 (Stable Diffusion's 0.18215 plays the same role).
"""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["Autoencoder"]


def _res(c: int) -> nn.Module:
    return nn.Sequential(nn.GroupNorm(8, c), nn.SiLU(), nn.Conv2d(c, c, 3, padding=1))


class Autoencoder(nn.Module):
    """encode (B, 1, 28, 28) in [-1, 1] -> (B, latent_channels, 7, 7); decode back to [-1, 1]."""

    def __init__(self, width: int = 32, latent_channels: int = 4):
        super().__init__()
        w, z = width, latent_channels
        self.latent_channels = latent_channels
        self.enc = nn.Sequential(nn.Conv2d(1, w, 3, padding=1), nn.SiLU(),
                                 nn.Conv2d(w, 2 * w, 4, stride=2, padding=1), _res(2 * w),          # 14x14
                                 nn.Conv2d(2 * w, 2 * w, 4, stride=2, padding=1), _res(2 * w),      # 7x7
                                 nn.GroupNorm(8, 2 * w), nn.SiLU(), nn.Conv2d(2 * w, z, 3, padding=1))
        self.dec = nn.Sequential(nn.Conv2d(z, 2 * w, 3, padding=1), _res(2 * w),
                                 nn.ConvTranspose2d(2 * w, 2 * w, 4, stride=2, padding=1), _res(2 * w),  # 14x14
                                 nn.ConvTranspose2d(2 * w, w, 4, stride=2, padding=1),                     # 28x28
                                 nn.GroupNorm(8, w), nn.SiLU(), nn.Conv2d(w, 1, 3, padding=1))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or tuple(x.shape[1:]) != (1, 28, 28):
            raise ValueError(f"x must have shape (B, 1, 28, 28), got {tuple(x.shape)}")
        return self.enc(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        if z.ndim != 4 or tuple(z.shape[1:]) != (self.latent_channels, 7, 7):
            raise ValueError(f"z must have shape (B, {self.latent_channels}, 7, 7), got {tuple(z.shape)}")
        return torch.tanh(self.dec(z))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))
