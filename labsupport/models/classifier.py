"""The evaluation classifier: a small CNN whose penultimate features define the MNIST FID."""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["MNISTClassifier"]


class MNISTClassifier(nn.Module):
    """(B, 1, 28, 28) in [-1, 1] -> (B, 10) logits; `features` gives the 128-d penultimate layer."""

    feature_dim = 128

    def __init__(self):
        super().__init__()
        def block(c_in, c_out):
            return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(),
                                 nn.Conv2d(c_out, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(),
                                 nn.MaxPool2d(2))
        self.body = nn.Sequential(block(1, 32), block(32, 64), nn.Flatten(), nn.Dropout(0.3),
                                  nn.Linear(64 * 7 * 7, self.feature_dim), nn.ReLU())
        self.head = nn.Sequential(nn.Dropout(0.3), nn.Linear(self.feature_dim, 10))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))
