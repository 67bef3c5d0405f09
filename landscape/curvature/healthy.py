"""Which replicas are alive, and computing on those alone.

A replica whose θ is not finite, or has left DIVERGED_BOUND, has diverged: every curvature
quantity reads NaN (not converged) for it and spends no solver time on it.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

DIVERGED_BOUND = 1e12  # a replica with |θ_i| beyond this (or a non-finite θ or F) has diverged


def healthy(theta: torch.Tensor) -> torch.Tensor:
    """(R,) bool: the replicas whose θ is finite and within DIVERGED_BOUND."""
    return torch.isfinite(theta).all(dim=1) & (theta.abs().amax(dim=1) <= DIVERGED_BOUND)


def on_healthy(theta: torch.Tensor, compute: Callable[[torch.Tensor], dict], shapes: dict) -> dict[str, torch.Tensor]:
    """compute(idx) on the healthy rows idx of θ, spread over all R rows: NaN (False for a
    flag) where a replica diverged; `shapes`: {array: (tail shape, dtype)}."""
    ok = healthy(theta)
    R = theta.shape[0]
    if bool(ok.all()):
        return compute(torch.arange(R, device=theta.device))
    out = {}
    for name, (tail, dtype) in shapes.items():
        if dtype == "bool":
            out[name] = torch.zeros((R, *tail), dtype=torch.bool, device=theta.device)
        else:
            out[name] = torch.full((R, *tail), float("nan"), dtype=theta.dtype, device=theta.device)
    idx = ok.nonzero().flatten()
    if idx.numel():
        for name, v in compute(idx).items():
            out[name][idx] = v
    return out
