"""The reference noise predictor ε_θ(x_t, t, y): a small class-conditional U-Net for MNIST.

One network serves unconditional sampling and classifier-free guidance: the class embedding has
one extra row, the "null" class (index `num_classes`), used when `y is None` and during training
for the dropped labels. The model picks no device; it follows its input.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["UNetConfig", "UNet", "timestep_embedding"]


@dataclass
class UNetConfig:
    in_channels: int = 1
    base_channels: int = 32
    channel_mults: tuple[int, ...] = (1, 2, 2)
    num_res_blocks: int = 1
    num_classes: int = 10
    mid_attention: bool = False
    dropout: float = 0.0
    groups: int = 8

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "UNetConfig":
        d = dict(d)
        d["channel_mults"] = tuple(d["channel_mults"])
        return cls(**d)


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """Sinusoidal embedding of (B,) timesteps -> (B, dim), as in the Transformer and DDPM."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=1)


class ResBlock(nn.Module):
    """GroupNorm -> SiLU -> conv, plus the (time + class) embedding as a per-channel shift."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int, groups: int, dropout: float):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb = nn.Linear(emb_dim, c_out)
        self.norm2 = nn.GroupNorm(groups, c_out)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.emb(F.silu(emb))[:, :, None, None]
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return self.skip(x) + h


class SelfAttention(nn.Module):
    """Single-head self-attention over the pixels of the 7x7 bottleneck."""

    def __init__(self, channels: int, groups: int):
        super().__init__()
        self.norm = nn.GroupNorm(groups, channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(B, 3, C, H * W).transpose(-1, -2).unbind(1)  # (B, HW, C)
        h = F.scaled_dot_product_attention(q, k, v)
        return x + self.proj(h.transpose(-1, -2).reshape(B, C, H, W))


class UNet(nn.Module):
    """ε-predictor: `model(x_t, t, y=None)` -> predicted noise of x_t's shape.

    x_t: (B, C, H, W) with H, W divisible by 2**(levels-1); t: int or (B,) tensor;
    y: None (null class) or (B,) labels in [0, num_classes] (num_classes is the null class).
    """

    def __init__(self, config: UNetConfig | None = None, **overrides):
        super().__init__()
        cfg = config or UNetConfig(**overrides)
        self.config = cfg
        self.num_classes = cfg.num_classes
        self.null_class = cfg.num_classes
        c0, emb_dim, g, p = cfg.base_channels, 4 * cfg.base_channels, cfg.groups, cfg.dropout
        self.time_mlp = nn.Sequential(nn.Linear(c0, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.class_emb = nn.Embedding(cfg.num_classes + 1, emb_dim)
        self.conv_in = nn.Conv2d(cfg.in_channels, c0, 3, padding=1)

        self.down, skip_ch, ch = nn.ModuleList(), [c0], c0
        for level, mult in enumerate(cfg.channel_mults):
            for _ in range(cfg.num_res_blocks):
                self.down.append(ResBlock(ch, c0 * mult, emb_dim, g, p))
                ch = c0 * mult
                skip_ch.append(ch)
            if level < len(cfg.channel_mults) - 1:
                self.down.append(nn.Conv2d(ch, ch, 3, stride=2, padding=1))
                skip_ch.append(ch)

        self.mid1 = ResBlock(ch, ch, emb_dim, g, p)
        self.mid_attn = SelfAttention(ch, g) if cfg.mid_attention else nn.Identity()
        self.mid2 = ResBlock(ch, ch, emb_dim, g, p)

        self.up = nn.ModuleList()
        for level, mult in reversed(list(enumerate(cfg.channel_mults))):
            for _ in range(cfg.num_res_blocks + 1):
                self.up.append(ResBlock(ch + skip_ch.pop(), c0 * mult, emb_dim, g, p))
                ch = c0 * mult
            if level > 0:
                # transposed conv works at the coarse resolution: 4x cheaper than upsample + conv
                self.up.append(nn.ConvTranspose2d(ch, ch, 4, stride=2, padding=1))
        self.out = nn.Sequential(nn.GroupNorm(g, ch), nn.SiLU(), nn.Conv2d(ch, cfg.in_channels, 3, padding=1))

    def forward(self, x_t: torch.Tensor, t: int | torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if x_t.ndim != 4 or x_t.shape[1] != self.config.in_channels:
            raise ValueError(f"x_t must have shape (B, {self.config.in_channels}, H, W), got {tuple(x_t.shape)}")
        B, (H, W), k = x_t.shape[0], x_t.shape[2:], 2 ** (len(self.config.channel_mults) - 1)
        if H % k or W % k:
            raise ValueError(f"x_t's height and width must be divisible by {k}, got {H}x{W}")
        t = torch.as_tensor(t, device=x_t.device).reshape(-1).expand(B) if not torch.is_tensor(t) or t.numel() == 1 \
            else t.to(x_t.device)
        if t.shape != (B,):
            raise ValueError(f"t must be an int or a ({B},) tensor, one step per sample, got shape {tuple(t.shape)}")
        if y is None:
            y = torch.full((B,), self.null_class, device=x_t.device, dtype=torch.long)
        elif y.shape != (B,):
            raise ValueError(f"y must have shape ({B},), one label per sample, got {tuple(y.shape)}")
        emb = self.time_mlp(timestep_embedding(t, self.config.base_channels).to(x_t.dtype)) + self.class_emb(y.to(x_t.device))

        h = self.conv_in(x_t)
        skips = [h]
        for layer in self.down:
            h = layer(h, emb) if isinstance(layer, ResBlock) else layer(h)
            skips.append(h)
        h = self.mid2(self.mid_attn(self.mid1(h, emb)), emb)
        for layer in self.up:
            h = layer(torch.cat([h, skips.pop()], 1), emb) if isinstance(layer, ResBlock) else layer(h)
        return self.out(h)
