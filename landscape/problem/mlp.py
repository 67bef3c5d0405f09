"""Batched fully connected networks on flat parameter vectors.

Parameters of R replicas live in one tensor θ of shape (R, n); layers are views of
it. Working on flat vectors keeps the update, the Hessian-vector products and the
stored trajectories one and the same object.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch


def softplus(z: torch.Tensor, beta: float = 1.0) -> torch.Tensor:
    """log(1 + e^{βz})/β, written so that no exponential overflows: a smooth ReLU whose kink
    sharpens with β (β → ∞: the ReLU; σ'(0) = 1/2, σ''(0) = β/4).

    >>> softplus(torch.tensor([-1000.0, 0.0, 1000.0], dtype=torch.float64), 2.0).tolist()
    [0.0, 0.34657359027997264, 1000.0]
    """
    bz = beta * z
    return (torch.relu(bz) + torch.log1p(torch.exp(-bz.abs()))) / beta


ACTIVATIONS: dict[str, Callable[..., torch.Tensor]] = {
    "relu": lambda z, beta=1.0: torch.relu(z),
    "tanh": lambda z, beta=1.0: torch.tanh(z),
    "softplus": softplus,
}
FUSED_ACTIVATIONS = ("relu", "tanh")  # what the hand-fused C++ kernel is written for


def fused_refusal(depth: int, device, dtype=torch.float64, activation: str = "relu") -> str | None:
    """Why the hand-fused C++ step (`--step fused`) cannot run this MLP, or None if it can: the
    one rule the configuration, the step strategy and the kernel all apply. The kernel is one
    hidden layer of either activation, float64 or float32, on the CPU.

    >>> fused_refusal(2, "cpu")
    '--step fused runs the one-hidden-layer MLP (--depth 1), not depth 2'
    >>> fused_refusal(1, "cpu") is None
    True
    """
    if depth != 1:
        return f"--step fused runs the one-hidden-layer MLP (--depth 1), not depth {depth}"
    if activation not in FUSED_ACTIVATIONS:
        return f"--step fused runs {' and '.join(FUSED_ACTIVATIONS)} networks, not {activation} (use --step eager)"
    if torch.device(device).type != "cpu":
        return "--step fused runs on the CPU only (use --step compile on a GPU)"
    if dtype not in (torch.float64, torch.float32):
        return f"--step fused supports float64 and float32, not {dtype}"
    return None


def chunk_refusal(step: str) -> str:
    """Why a step strategy other than eager does not take `--chunk` (the configuration's and the
    engine's one line)."""
    return (
        f"--chunk applies to the eager step and --model; --step {step} runs the whole batch at once "
        "(the fused kernel keeps no per-example activations, so its memory does not grow with the data)"
    )


@dataclass(frozen=True)
class MLPSpec:
    """Layer sizes input → hidden × depth → classes."""

    input_dim: int
    width: int
    num_classes: int
    depth: int = 1
    activation: str = "relu"
    beta: float = 1.0  # the softplus's sharpness (the other activations have none)

    def act(self, z: torch.Tensor) -> torch.Tensor:
        """The hidden layers' activation σ(z), out of place."""
        return ACTIVATIONS[self.activation](z, self.beta)

    @property
    def sizes(self) -> list[int]:
        return [self.input_dim] + [self.width] * self.depth + [self.num_classes]

    @property
    def layer_shapes(self) -> list[tuple[int, int]]:
        s = self.sizes
        return list(zip(s[:-1], s[1:]))

    @property
    def num_params(self) -> int:
        return sum(i * o + o for i, o in self.layer_shapes)

    def unflatten(self, theta: torch.Tensor):
        """Split θ (R, n) into [(W (R, in, out), b (R, out)), …] views."""
        layers, off = [], 0
        for i, o in self.layer_shapes:
            W = theta[:, off : off + i * o].reshape(-1, i, o)
            off += i * o
            b = theta[:, off : off + o]
            off += o
            layers.append((W, b))
        return layers

    def forward(self, theta: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
        """Logits (R, P, C) on the shared inputs X (P, d), out of place throughout, so that
        torch.func transforms it (the engines' own passes are hand-written and in place)."""
        layers = self.unflatten(theta)
        h = X
        for li, (W, b) in enumerate(layers):
            h = torch.matmul(h, W) + b.unsqueeze(1)
            if li < len(layers) - 1:
                h = self.act(h)
        return h

    def init(self, seeds, dtype=torch.float64, device="cpu") -> torch.Tensor:
        """Reference init W ~ N(0, 1/fan_in), b = 0, one generator per seed.

        Drawn in float64 on the CPU, then cast, so a seed gives the same network
        on every device and dtype, alone or inside a batch.
        """
        rows = []
        for seed in seeds:
            g = torch.Generator().manual_seed(int(seed))
            parts = []
            for i, o in self.layer_shapes:
                parts.append(torch.randn(i * o, generator=g, dtype=torch.float64) / i**0.5)
                parts.append(torch.zeros(o, dtype=torch.float64))
            rows.append(torch.cat(parts))
        return torch.stack(rows).to(device=device, dtype=dtype)
