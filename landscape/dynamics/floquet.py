"""Floquet multipliers of a map's orbit: the eigenvalues of its p-step tangent map.

Along x_{t+1} = φ_t(x_t) the p-step tangent map is M = J_{t+p−1} ⋯ J_{t+1} J_t. On a period-p
orbit its eigenvalues (the Floquet multipliers) decide stability: all inside the unit circle,
the orbit attracts; one crossing −1, it flips into a period-2p orbit (a period doubling), the
criterion beside the detector's. For gradient descent J_t = I − η H_t(θ_t), so for p = 1 the
multipliers are 1 − ηλ_i (the flip at λ1 = 2/η); along a bounce of period 2 the 2-step map
J_{t+1}J_t is not symmetric and its multipliers are not those of either step.

Up to `dense_below` parameters M is formed exactly (the identity pushed through the p tangent
maps, n vectors a replica in blocks) and its eigenvalues taken by LAPACK; above it ARPACK
(scipy's `eigs`) finds the k of smallest real part from products with M.

>>> import torch
>>> lam, eta = torch.tensor([[3.0, 0.5]], dtype=torch.float64), 0.5  # GD on ½ Σ λ_i x_i²
>>> m = multipliers(lambda x, t: x - eta * lam * x, lambda x, t, V: V - eta * lam[:, None, :] * V,
...                 torch.ones(1, 2, dtype=torch.float64), 0, 2, k=2)
>>> m.values[0].real.tolist()  # (1 − ηλ)²: 0.25 and 0.5625, smallest real part first
[0.25, 0.5625]
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

DENSE_BELOW = 2048  # parameters up to which M is formed exactly (R × n² numbers)
BLOCK = 256  # identity columns pushed through the tangent maps at a time


@dataclass(frozen=True)
class Multipliers:
    """values (R, k) complex: the multipliers of smallest real part first (a flip's is near −1);
    x (R, n): the state after the p steps; method: "dense" or "arpack"."""

    values: np.ndarray
    x: torch.Tensor
    method: str

    @property
    def flip(self) -> np.ndarray:
        """(R,) the smallest real part among the real multipliers (|imag| ≤ 1e-9 |μ|), NaN if
        none is real: below −1 the orbit has flipped."""
        v = self.values
        real = np.abs(v.imag) <= 1e-9 * np.maximum(np.abs(v), 1e-300)
        return np.where(real.any(axis=1), np.where(real, v.real, np.inf).min(axis=1), np.nan)


def multipliers(
    step: Callable[[torch.Tensor, int], torch.Tensor],
    tangent: Callable[[torch.Tensor, int, torch.Tensor], torch.Tensor],
    x0: torch.Tensor,
    t0: int,
    p: int,
    k: int = 2,
    dense_below: int = DENSE_BELOW,
) -> Multipliers:
    """The k multipliers of smallest real part of the p-step tangent map from x0 (R, n) at t0:
    step(x, t) = φ_t(x), tangent(x, t, V) = J_t V for V (R, b, n)."""
    if p < 1 or k < 1:
        raise ValueError("p and k must be >= 1")
    R, n = x0.shape
    xs = [x0]
    for i in range(p - 1):
        xs.append(step(xs[-1], t0 + i))
    x_end = step(xs[-1], t0 + p - 1)

    def apply(V: torch.Tensor) -> torch.Tensor:
        for i, x in enumerate(xs):
            V = tangent(x, t0 + i, V)
        return V

    if n <= dense_below:
        eye = torch.eye(n, dtype=x0.dtype, device=x0.device)
        cols = [apply(eye[a : a + BLOCK].expand(R, -1, -1).contiguous()) for a in range(0, n, BLOCK)]
        W = torch.cat(cols, dim=1).cpu().numpy()  # row j: M e_j, so W = Mᵀ (the same eigenvalues)
        vals = [np.linalg.eigvals(W[r]) for r in range(R)]
        out = np.stack([v[np.argsort(v.real, kind="stable")[:k]] for v in vals])
        return Multipliers(out, x_end, "dense")
    from scipy.sparse.linalg import LinearOperator, eigs

    out = np.empty((R, k), dtype=complex)
    for r in range(R):

        def mv(v, r=r):
            V = torch.zeros(R, 1, n, dtype=x0.dtype, device=x0.device)
            V[r, 0] = torch.as_tensor(np.real(v).ravel(), dtype=x0.dtype, device=x0.device)
            return apply(V)[r, 0].cpu().numpy()

        op = LinearOperator((n, n), matvec=mv, dtype=np.float64)
        found = np.asarray(eigs(op, k=k, which="SR", return_eigenvectors=False))
        out[r] = found[np.argsort(found.real, kind="stable")]
    return Multipliers(out, x_end, "arpack")
