"""The whole Hessian spectrum of a small network, exactly: the Hessian formed from n batched
Hessian-vector products on the identity, then a symmetric eigensolver.

Below a few hundred parameters this is cheaper than the stochastic estimators and has none of
their error: SLQ's density from V vectors carries the sampling error of its trace moments
(36–100 % at V = 8 on the reference network), Hutchinson's trace a standard error, a Krylov
λ_min a tolerance. The threshold where the Krylov methods become cheaper is measured in
`bench/bench_density.py` (docs/performance.md): `landscape.config.run.DENSE_SPECTRUM_BELOW`.

The density it gives is the exact spectral measure: one "vector" whose n nodes are the
eigenvalues, each of weight 1/n, so Σ w f(node) = tr f(H)/n — what SLQ estimates.

>>> H = torch.diag(torch.tensor([3.0, -1.0, 2.0], dtype=torch.float64))[None]
>>> vals, vecs = spectrum(lambda rows: lambda V, r: V @ H[0], 1, 3, torch.float64, "cpu")
>>> vals.tolist()
[[-1.0, 2.0, 3.0]]
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from landscape.curvature.eigen import BlockOp

MAX_DENSE = 4096  # parameters: R × n² numbers beyond this are refused for --density-method dense
BATCH_NUMBERS = 2**25  # Hessian entries formed at a time (256 MB in float64): replicas in groups


def hessian(op: BlockOp, R: int, n: int, dtype, device) -> torch.Tensor:
    """(R, n, n) the symmetrised Hessians of an operator's R replicas (row j: H e_j)."""
    eye = torch.eye(n, dtype=dtype, device=device).expand(R, n, n).contiguous()
    H = op(eye, torch.arange(R, device=device))
    return 0.5 * (H + H.transpose(1, 2))


def spectrum(op_of: Callable[[torch.Tensor], BlockOp], R: int, n: int, dtype, device, vectors: bool = False):
    """Every eigenvalue (R, n), ascending, and with `vectors` the eigenvectors as rows (R, n, n)
    (else None), formed a group of replicas at a time (≤ BATCH_NUMBERS Hessian entries);
    op_of(rows) is the operator of the replicas `rows` (a block operator's active rows may only
    shrink, so each group gets its own)."""
    per = max(1, BATCH_NUMBERS // (n * n))
    vals = torch.empty(R, n, dtype=dtype, device=device)
    vecs = torch.empty(R, n, n, dtype=dtype, device=device) if vectors else None
    for a in range(0, R, per):
        rows = torch.arange(a, min(a + per, R), device=device)
        H = hessian(op_of(rows), len(rows), n, dtype, device)
        if vecs is not None:
            w, S = torch.linalg.eigh(H)
            vals[rows], vecs[rows] = w, S.transpose(1, 2)
        else:
            vals[rows] = torch.linalg.eigvalsh(H)
    return vals, vecs
