"""Independent oracles for the tests: plain autograd forms of what the engine computes with
hand-written passes. They live here, not in the package, because only tests need them."""

from __future__ import annotations

import torch
from torch.func import grad, jvp

from landscape.problem import losses
from landscape.problem.mlp import ACTIVATIONS, MLPSpec


def forward(spec: MLPSpec, theta: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
    """Logits (R, P, C) of every replica on the shared inputs X (P, d), in the plain
    sample-major form (the engine uses feature-major passes)."""
    act = ACTIVATIONS[spec.activation]
    layers = spec.unflatten(theta)
    h = X
    for li, (W, b) in enumerate(layers):
        h = torch.matmul(h, W) + b.unsqueeze(1)
        if li < len(layers) - 1:
            h = act(h)
    return h


def loss(engine, theta: torch.Tensor, t: int) -> torch.Tensor:
    """F_t(θ) per replica (R,), autograd-friendly."""
    return losses.loss(engine.loss_name, forward(engine.spec, theta, engine.X), engine.y, engine.Y, engine.gamma(t))


def hvp_autodiff(engine, theta: torch.Tensor, t: int):
    """V ↦ H V of every replica by torch.func forward-over-reverse (R, n) → (R, n)."""
    G = engine.gamma(t)
    theta = theta.detach()

    def total(th):
        return losses.loss(engine.loss_name, forward(engine.spec, th, engine.X), engine.y, engine.Y, G).sum()

    g = grad(total)
    return lambda V: jvp(g, (theta,), (V,))[1]
