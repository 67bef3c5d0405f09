"""The Hessian's eigenvalue density by stochastic Lanczos quadrature (Ghorbani et al. 2019;
Papyan 2020), and its bottom eigenvalues, for R operators at once.

SLQ: from each of V random unit vectors v, M steps of Lanczos (with full reorthogonalisation)
give a tridiagonal T whose eigenvalues (nodes) and squared first eigenvector components
(weights) are the Gauss quadrature of the spectral measure seen from v: Σ_j w_j f(θ_j) =
vᵀ f(H) v exactly for polynomials f of degree ≤ 2M − 1. Averaged over the vectors, the nodes
and weights estimate the eigenvalue density; smoothing each node with a Gaussian gives a
density on a grid.

Bottom eigenvalues: the top eigenpairs of −H by the same block Lanczos as the top of H
(`eigen.topk_eigs`), so λ_min comes with a residual and a convergence flag.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from landscape.curvature.eigen import BlockOp, EigResult, random_block, topk_eigs


@dataclass(frozen=True)
class Quadrature:
    """Nodes and weights (R, V, M) of the Gauss quadrature from each of V vectors, per replica;
    a vector whose Krylov space closed early has zero-weight nodes after its last step."""

    nodes: torch.Tensor
    weights: torch.Tensor

    def moments(self, k: int) -> torch.Tensor:
        """(R,) the quadrature's estimate of tr(H^k)/n: Σ_j w_j θ_j^k averaged over the vectors."""
        return (self.weights * self.nodes**k).sum(-1).mean(-1)

    def smoothed(self, grid: torch.Tensor, sigma: float) -> torch.Tensor:
        """(R, len(grid)) the density: every node a Gaussian of width `sigma` with its weight."""
        z = (grid[None, None, None, :] - self.nodes[..., None]) / sigma
        g = torch.exp(-0.5 * z**2) / (sigma * (2 * torch.pi) ** 0.5)
        return (self.weights[..., None] * g).sum(2).mean(1)


PROBE_SALT = 7919  # added to the caller's salt: SLQ's probes differ from the eigensolver's start block


def probes(seeds: Sequence[int], vectors: int, n: int, salt: int, dtype=torch.float64, device="cpu") -> torch.Tensor:
    """(R, V, n) SLQ's unit Rademacher start vectors of each replica, a pure function of (seed,
    salt): a test or a replay draws the same ones."""
    q = torch.sign(random_block(seeds, vectors, n, salt + PROBE_SALT, dtype, device))
    return q / q.norm(dim=-1, keepdim=True)


def slq(
    op: BlockOp,
    seeds: Sequence[int],
    n: int,
    steps: int,
    vectors: int,
    salt: int = 0,
    dtype=torch.float64,
    device="cpu",
) -> Quadrature:
    """`steps` Lanczos steps (M) from each of `vectors` (V) random unit vectors per replica (drawn
    from its seed and `salt`, as the eigensolver draws them), all replicas and vectors as one
    block: V Hessian products per replica and step."""
    R, M, V = len(seeds), min(steps, n), vectors
    rows = torch.arange(R, device=device)
    q = probes(seeds, V, n, salt, dtype, device)
    Q = torch.zeros((R, V, M, n), dtype=dtype, device=device)
    alpha = torch.zeros((R, V, M), dtype=dtype, device=device)
    beta = torch.zeros((R, V, M), dtype=dtype, device=device)
    alive = torch.ones((R, V), dtype=torch.bool, device=device)
    prev = torch.zeros_like(q)
    for j in range(M):
        Q[:, :, j] = q
        w = op(q, rows)
        a = (w * q).sum(-1)
        alpha[:, :, j] = torch.where(alive, a, 0.0)
        w = w - a[..., None] * q - (beta[:, :, j - 1, None] if j else 0.0) * prev
        for _ in range(2):  # full reorthogonalisation, twice is enough
            w = w - torch.einsum("rvm,rvmn->rvn", torch.einsum("rvmn,rvn->rvm", Q[:, :, : j + 1], w), Q[:, :, : j + 1])
        b = w.norm(dim=-1)
        scale = alpha[:, :, : j + 1].abs().amax(-1).clamp_min(1e-300)
        alive = alive & (b > 1e-10 * scale)  # the Krylov space closed: no more steps for this vector
        beta[:, :, j] = torch.where(alive, b, 0.0)
        prev, q = q, torch.where(alive[..., None], w / b.clamp_min(1e-300)[..., None], 0.0)
    T = torch.diag_embed(alpha) + torch.diag_embed(beta[..., :-1], 1) + torch.diag_embed(beta[..., :-1], -1)
    nodes, vecs = torch.linalg.eigh(T)
    return Quadrature(nodes, vecs[..., 0, :] ** 2)


def bottomk_eigs(op: BlockOp, k: int, *, seeds: Sequence[int], n: int, tol: float = 1e-3, max_iter: int = 200,
                 salt: int = 0, dtype=torch.float64, device="cpu") -> EigResult:  # fmt: skip
    """The k smallest-algebraic eigenpairs (smallest first): the top of −H by `topk_eigs`."""
    res = topk_eigs(lambda V, rows: -op(V, rows), None, k, seeds=seeds, n=n, tol=tol, max_iter=max_iter, salt=salt,
                    dtype=dtype, device=device)  # fmt: skip
    return EigResult(-res.eigvals, res.eigvecs, res.residuals, res.converged, res.iterations, res.products,
                     res.block)  # fmt: skip
