"""Hutchinson's estimate of the Hessian trace, tr H ≈ mean over z of zᵀHz with Rademacher z,
for every replica at once (the trace PyHessian reports).

Pure function of an operator and explicit seeds, like `eigen.topk_eigs`: the probe vectors
come from the same counter-based generator (their signs), so a replica's estimate does not
depend on its batch. The result carries its standard error; Rademacher probes have the
smallest variance of the usual choices (2 Σ_{i≠j} H_ij²).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from landscape.curvature.eigen import BlockOp, random_block


@dataclass(frozen=True)
class TraceResult:
    estimate: torch.Tensor  # (R,) mean of zᵀHz
    stderr: torch.Tensor  # (R,) its standard error over the probes
    samples: int


def hutchinson_trace(
    op: BlockOp,
    seeds: Sequence[int],
    n: int,
    samples: int = 64,
    salt: int = 0,
    block: int = 8,
    dtype=torch.float64,
    device="cpu",
) -> TraceResult:
    """tr H of each replica from `samples` Rademacher probes, applied `block` at a time."""
    R = len(seeds)
    rows = torch.arange(R, device=device)
    quad = []
    for start in range(0, samples, block):
        b = min(block, samples - start)
        Z = torch.sign(random_block(seeds, b, n, salt * 1_000_003 + start + 1, dtype, device))
        quad.append((Z * op(Z, rows)).sum(dim=-1))  # (R, b): zᵀHz
    q = torch.cat(quad, dim=1)
    se = q.std(dim=1, unbiased=True) / samples**0.5 if samples > 1 else torch.full((R,), float("nan"))
    return TraceResult(q.mean(dim=1), se, samples)
