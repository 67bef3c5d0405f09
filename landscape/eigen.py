"""Top-k Hessian eigenpairs of many independent operators at once (batched Lanczos).

Each replica's Hessian is a separate operator, but one Hessian-vector product of
the summed loss applies all of them at once, so the solver runs R Lanczos
recurrences in lockstep: (R, n) vectors, (R, m, m) tridiagonal Ritz problems.
scipy's eigsh/lobpcg and torch.lobpcg take one operator at a time, which would
cost R times the products; that is why this loop is written here.

Full reorthogonalisation (twice, classical Gram–Schmidt) keeps the Ritz pairs
honest; the products H q_j are kept, so the true residual ‖H v − λ v‖ of every
returned pair comes for free (no extra products).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch


@dataclass(frozen=True)
class EigResult:
    """Top-k eigenpairs per replica, largest first, with their true residuals."""

    eigvals: torch.Tensor  # (R, k)
    eigvecs: torch.Tensor  # (R, k, n), unit norm, sign fixed (largest |entry| positive)
    residuals: torch.Tensor  # (R, k): ‖H v − λ v‖
    converged: torch.Tensor  # (R, k) bool: residual ≤ tol · max(|λ_1|, 1e-12)
    iterations: int  # Lanczos steps (= Hessian-vector products) taken


def _fix_sign(V: torch.Tensor) -> torch.Tensor:
    idx = V.abs().argmax(dim=-1, keepdim=True)
    s = torch.sign(V.gather(-1, idx))
    return V * torch.where(s == 0, torch.ones_like(s), s)


def lanczos_topk(matvec: Callable[[torch.Tensor], torch.Tensor], v0: torch.Tensor, k: int = 2,
                 tol: float = 1e-3, max_iter: int = 100, seed: int = 0) -> EigResult:
    """Largest-algebraic k eigenpairs of the symmetric operators `matvec` applies row-wise.

    matvec: (R, n) → (R, n), replica r's operator on row r.
    v0: (R, n) start vectors (warm start: a sum of the previous eigenvectors).
    tol: stop once every replica's k residuals are ≤ tol·|λ_1|.
    seed: seeds the random vector used if a Krylov space closes early.
    """
    R, n = v0.shape
    m_max = min(max_iter, n)
    k = min(k, n)
    dtype, dev = v0.dtype, v0.device
    Q = torch.zeros(R, m_max, n, dtype=dtype, device=dev)
    HQ = torch.zeros(R, m_max, n, dtype=dtype, device=dev)
    alpha = torch.zeros(R, m_max, dtype=dtype, device=dev)
    beta = torch.zeros(R, m_max, dtype=dtype, device=dev)
    gen = torch.Generator(device="cpu").manual_seed(seed)

    q = v0 / v0.norm(dim=1, keepdim=True).clamp_min(torch.finfo(dtype).tiny)
    scale = None
    for j in range(m_max):
        Q[:, j] = q
        w = matvec(q)
        HQ[:, j] = w
        alpha[:, j] = (w * q).sum(dim=1)
        Qj = Q[:, : j + 1]
        for _ in range(2):  # full reorthogonalisation, twice is enough
            w = w - torch.einsum("rjn,rj->rn", Qj, torch.einsum("rjn,rn->rj", Qj, w))
        b = w.norm(dim=1)
        m = j + 1
        if m >= k:
            T = torch.diag_embed(alpha[:, :m]) + torch.diag_embed(beta[:, : m - 1], 1) + torch.diag_embed(beta[:, : m - 1], -1)
            theta, S = torch.linalg.eigh(T)
            top = torch.arange(m - 1, m - 1 - k, -1, device=dev)
            scale = theta[:, -1].abs().clamp_min(1e-12)
            est = (b.unsqueeze(1) * S[:, -1, top]).abs()  # Lanczos residual estimate
            if bool((est <= tol * scale.unsqueeze(1)).all()) or m == m_max:
                break
        # next Lanczos vector; restart with a random orthogonal vector if the space closed
        small = b <= 1e-10 * (alpha[:, : j + 1].abs().amax(dim=1) + 1e-30)
        if bool(small.any()):
            rnd = torch.randn(R, n, generator=gen, dtype=torch.float64).to(dtype=dtype, device=dev)
            for _ in range(2):
                rnd = rnd - torch.einsum("rjn,rj->rn", Qj, torch.einsum("rjn,rn->rj", Qj, rnd))
            w = torch.where(small.unsqueeze(1), rnd, w)
            b = torch.where(small, torch.zeros_like(b), b)
            q = w / w.norm(dim=1, keepdim=True)
        else:
            q = w / b.unsqueeze(1)
        beta[:, j] = b

    Sk = S[:, :, top]  # (R, m, k)
    vecs = torch.einsum("rmn,rmk->rkn", Q[:, :m], Sk)
    hvecs = torch.einsum("rmn,rmk->rkn", HQ[:, :m], Sk)
    vals = theta[:, top]
    res = (hvecs - vals.unsqueeze(-1) * vecs).norm(dim=-1)
    return EigResult(vals, _fix_sign(vecs), res, res <= tol * scale.unsqueeze(1), m)
