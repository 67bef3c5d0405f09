"""Oscillating class weights Γ_i(t) (spec: reference-notebook form).

τ = t mod T, the emphasised class c = ⌊t/T⌋ mod C; its raw weight is a triangle
(default) or half-sine bump of height A at τ = T/2, every other class 1; the weights
are normalised so that Σ_i Γ_i = C. A = 1 gives the static loss.
"""

from __future__ import annotations

import math

import torch

SHAPES = ("triangle", "sine")


def gamma(
    t,
    amplitude: torch.Tensor,
    period: torch.Tensor,
    num_classes: int,
    shape: str = "triangle",
    static_from: torch.Tensor | None = None,
) -> torch.Tensor:
    """Γ at integer step(s) t for per-replica amplitude (R,) and period (R,).

    t an int gives (R, C); t a sequence of S steps gives (S, R, C), which is how the
    engine computes a whole chunk of steps in one go. `static_from` (R,): from that
    step on the amplitude is 1 (the paper's static last period, Fig. 3).
    """
    scalar = isinstance(t, int)
    t = torch.as_tensor(t, dtype=torch.long, device=period.device).reshape(-1, 1)  # (S, 1)
    A = amplitude.expand(t.shape[0], -1)
    if static_from is not None:
        A = torch.where(t >= static_from, torch.ones_like(A), A)
    T = period.to(A.dtype)
    tau = torch.remainder(t, period).to(A.dtype)  # (S, R)
    cls = torch.div(t, period, rounding_mode="floor").remainder(num_classes)
    if shape == "triangle":
        rising = 1 + 2 * (A - 1) * tau / T
        falling = 2 * A - 1 - 2 * (A - 1) * tau / T
        bump = torch.where(tau < T / 2, rising, falling)
    elif shape == "sine":
        bump = 1 + (A - 1) * torch.sin(math.pi * tau / T)
    else:
        raise ValueError(f"unknown Γ shape {shape!r}")
    raw = torch.ones(*A.shape, num_classes, dtype=A.dtype, device=A.device)
    raw.scatter_(2, cls.unsqueeze(2), bump.unsqueeze(2))
    G = num_classes * raw / raw.sum(dim=2, keepdim=True)
    return G[0] if scalar else G


def static_start(steps: int, period: int) -> int:
    """First step of the final (possibly partial) oscillation of a run of `steps` steps."""
    return ((steps - 1) // period) * period
