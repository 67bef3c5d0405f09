"""A small CNN for the shipped 8×8 digits (data/digits.npz):

    landscape record --model examples.cnn:make --data data/digits.npz --loss dce --eta 0.5 -A 10 -T 400

The factory signature landscape expects: `make(seed, **model_args) -> torch.nn.Module`,
a fresh, deterministic module per seed, without buffers (no BatchNorm), returning
(inputs, classes) logits for inputs of the data's sample shape.
"""

from __future__ import annotations

import torch
from torch import nn


class DigitsCNN(nn.Module):
    def __init__(self, channels: int = 4, classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(1, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, stride=2)  # 8×8 → 4×4
        self.fc = nn.Linear(channels * 4 * 4, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.conv1(x.reshape(-1, 1, 8, 8)))
        h = torch.relu(self.conv2(h))
        return self.fc(h.flatten(1))


def make(seed: int, channels: int = 4) -> nn.Module:
    """PyTorch's default initialisation, drawn from `seed` without touching the global RNG."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return DigitsCNN(channels).double()
