"""Finite-time Lyapunov exponents of a map, batched over replicas (Benettin's algorithm).

The map x_{t+1} = φ_t(x_t) and its tangent map V ↦ J_t V (J_t = ∂φ_t/∂x at x_t) are given as
functions; K tangent vectors per replica are pushed through J_t and re-orthonormalised by a
QR factorisation every step. The logarithms of the diagonal of R are the step's stretch
factors along the Gram–Schmidt directions: averaged over steps they are the top K
exponents, in Gram–Schmidt order (the j-th converges to the j-th largest as the steps grow;
over a short stretch they may not yet be sorted); their sum is the mean log-volume growth
(log |det J| for K = n).

For gradient descent on F_t the tangent map is J_t = I − η H_t(θ_t), one Hessian-vector
product per vector, so the exponents of training cost K batched HVPs a step
(`landscape.analysis.lyapunov` replays a recorded run through them).

>>> import math
>>> res = benettin(lambda x, t: 4 * x * (1 - x), lambda x, t, V: (4 - 8 * x)[:, None, :] * V,
...                torch.tensor([[0.3]], dtype=torch.float64), torch.ones(1, 1, 1, dtype=torch.float64), 5000)
>>> abs(float(res.exponents[0, 0]) - math.log(2)) < 0.05
True
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class LyapunovResult:
    """exponents (R, K): the mean log stretch per step over all steps, largest first;
    stretch (R, K, S): each step's log |R_jj| (the per-step contributions, for windows and
    running means); x (R, n): the state after the last step; V (R, K, n): the orthonormal
    tangent vectors there (to continue from)."""

    exponents: torch.Tensor
    stretch: torch.Tensor
    x: torch.Tensor
    V: torch.Tensor

    def windows(self, width: int) -> torch.Tensor:
        """(R, K, S // width) the exponents over consecutive windows of `width` steps."""
        S = self.stretch.shape[-1] // width * width
        return self.stretch[..., :S].reshape(*self.stretch.shape[:2], -1, width).mean(-1)

    def running(self) -> torch.Tensor:
        """(R, K, S) the exponents from the first step to each step."""
        S = self.stretch.shape[-1]
        steps = torch.arange(1, S + 1, dtype=self.stretch.dtype, device=self.stretch.device)
        return self.stretch.cumsum(-1) / steps


def benettin(
    step: Callable[[torch.Tensor, int], torch.Tensor],
    tangent: Callable[[torch.Tensor, int, torch.Tensor], torch.Tensor],
    x0: torch.Tensor,
    V0: torch.Tensor,
    steps: int,
    t0: int = 0,
) -> LyapunovResult:
    """K finite-time exponents of x_{t+1} = step(x_t, t) from x0 (R, n) at t0, over `steps`
    steps; tangent(x_t, t, V) = J_t V for V (R, K, n); V0 (R, K, n) the start directions
    (orthonormalised here)."""
    x = x0
    V = orthonormal(V0)[0]
    logs = []
    for i in range(steps):
        t = t0 + i
        W = tangent(x, t, V)
        x = step(x, t)
        V, r = orthonormal(W)
        logs.append(torch.log(r.abs()))
    stretch = torch.stack(logs, dim=-1) if logs else torch.empty((*V.shape[:2], 0), dtype=V.dtype)
    return LyapunovResult(stretch.mean(-1), stretch, x, V)


def orthonormal(W: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Q (R, K, n) with orthonormal rows spanning W's (Gram–Schmidt order) and |diag R| (R, K)."""
    Q, Rm = torch.linalg.qr(W.transpose(1, 2))  # (R, n, K), (R, K, K)
    d = torch.diagonal(Rm, dim1=1, dim2=2)
    sign = torch.where(d < 0, -1.0, 1.0).to(W.dtype)
    return (Q * sign[:, None, :]).transpose(1, 2), d.abs()
